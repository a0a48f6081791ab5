"""Ring (a): the per-language plan is deterministic, sized by tier, and stable as languages change."""

import pyarrow as pa
import pytest

from engine.inputs.plan import build_task_plan, sample_indices
from engine.inputs.seeds import SEED_SCHEMA, Seed
from engine.languages import resolve_languages
from engine.records import TASK_COLUMNS, row_id

QUOTAS = {"high": 30, "mid": 20, "low": 10}
VERSION = "translate.v1"


def seeds_table(seeds: list[Seed]) -> pa.Table:
    """Seeds as the seed reader's table (SEED_SCHEMA)."""
    return pa.table({name: [getattr(seed, name) for seed in seeds] for name in SEED_SCHEMA.names}, schema=SEED_SCHEMA)


def make_seeds(count: int) -> list[Seed]:
    return [Seed(f"s{i:03d}", f"Instruction {i}", "", f"Output {i}", f"seeds.jsonl:{i + 1}") for i in range(count)]


def plan(seeds, codes, mode="per_language", quotas=QUOTAS, plan_seed=0, version=VERSION) -> list[dict]:
    return (
        build_task_plan(seeds_table(seeds), resolve_languages(codes), mode, quotas, plan_seed, "sphinx", version)
        .tasks()
        .to_pylist()
    )


def seed_ids(tasks: list[dict], lang: str) -> list[str]:
    return [task["seed_id"] for task in tasks if task["lang"] == lang]


SEEDS = make_seeds(50)


def test_same_inputs_give_the_identical_plan():
    first, second = plan(SEEDS, ["fr", "bg", "af"]), plan(SEEDS, ["fr", "bg", "af"])
    assert [t["id"] for t in first] == [t["id"] for t in second]
    assert first == second


def test_quota_follows_the_tier():
    tasks = plan(SEEDS, ["fr", "bg", "af"])  # high, mid, low
    assert [len(seed_ids(tasks, lang)) for lang in ("fr", "bg", "af")] == [30, 20, 10]
    assert len(tasks) == 60


def test_tasks_carry_the_task_columns_and_source_text():
    tasks = plan(SEEDS, ["fr"])
    by_id = {seed.id: seed for seed in SEEDS}
    for task in tasks:
        assert tuple(task) == TASK_COLUMNS
        seed = by_id[task["seed_id"]]
        assert (task["src_instruction"], task["src_input"], task["src_output"]) == (
            seed.instruction,
            seed.input,
            seed.output,
        )
        assert task["source"] == seed.source and task["recipe"] == "sphinx" and task["lang"] == "fr"


def test_each_sample_keeps_seed_order_without_repeats():
    ids = seed_ids(plan(SEEDS, ["fr"]), "fr")
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_languages_of_one_tier_draw_different_samples():
    tasks = plan(SEEDS, ["fr", "de", "es"])
    samples = [set(seed_ids(tasks, lang)) for lang in ("fr", "de", "es")]
    assert samples[0] != samples[1] and samples[1] != samples[2] and samples[0] != samples[2]


def test_adding_a_language_leaves_other_samples_unchanged():
    before = plan(SEEDS, ["fr", "bg"])
    after = plan(SEEDS, ["af", "fr", "de", "bg"])
    for lang in ("fr", "bg"):
        assert seed_ids(after, lang) == seed_ids(before, lang)


def test_plan_seed_changes_the_sample():
    assert seed_ids(plan(SEEDS, ["fr"], plan_seed=0), "fr") != seed_ids(plan(SEEDS, ["fr"], plan_seed=1), "fr")


def test_mode_all_takes_every_seed_for_every_language():
    tasks = plan(SEEDS, ["fr", "af"], mode="all", quotas={"high": 1, "mid": 1, "low": 1})
    assert seed_ids(tasks, "fr") == seed_ids(tasks, "af") == [s.id for s in SEEDS]


@pytest.mark.parametrize("quota", [50, 51, 10_000])
def test_quota_at_or_above_the_seed_count_takes_all(quota):
    tasks = plan(SEEDS, ["fr"], quotas={"high": quota, "mid": 1, "low": 1})
    assert seed_ids(tasks, "fr") == [s.id for s in SEEDS]


def test_zero_quota_plans_nothing_for_that_tier():
    tasks = plan(SEEDS, ["fr", "af"], quotas={"high": 5, "mid": 5, "low": 0})
    assert seed_ids(tasks, "af") == [] and len(seed_ids(tasks, "fr")) == 5


def test_no_seeds_no_tasks():
    assert plan([], ["fr"]) == []


def test_row_ids_are_unique_and_stable():
    tasks = plan(SEEDS, ["fr", "bg", "af"], mode="all")
    ids = [t["id"] for t in tasks]
    assert len(set(ids)) == len(ids)
    for task in tasks:
        assert task["id"] == row_id(task["seed_id"], task["lang"], "sphinx", VERSION)


def test_row_id_does_not_depend_on_the_other_languages():
    alone = {t["seed_id"]: t["id"] for t in plan(SEEDS, ["fr"])}
    mixed = {t["seed_id"]: t["id"] for t in plan(SEEDS, ["de", "fr"]) if t["lang"] == "fr"}
    assert alone == mixed


def test_a_new_prompt_version_gives_new_row_ids():
    old = {t["id"] for t in plan(SEEDS, ["fr"])}
    new = {t["id"] for t in plan(SEEDS, ["fr"], version="translate.v2")}
    assert not old & new


@pytest.mark.parametrize(
    "a, b",
    [
        (("s1", "fr", "sphinx", "v1"), ("s1", "de", "sphinx", "v1")),
        (("s1", "fr", "sphinx", "v1"), ("s2", "fr", "sphinx", "v1")),
        (("s1", "fr", "sphinx", "v1"), ("s1", "fr", "sphinx", "v2")),
        (("s1", "fr", "sphinx", "v1"), ("s1fr", "", "sphinx", "v1")),  # fields are separated, not glued
    ],
)
def test_row_id_separates_its_parts(a, b):
    assert row_id(*a) != row_id(*b)
    assert row_id(*a) == row_id(*a)


def test_a_language_sample_is_a_subset_of_the_right_size():
    sample = [SEEDS[i] for i in sample_indices(len(SEEDS), "fr", 7, plan_seed=3)]
    assert len(sample) == 7
    assert set(sample) <= set(SEEDS)
    assert sample == [SEEDS[i] for i in sample_indices(len(SEEDS), "fr", 7, plan_seed=3)]
