"""Ring (a): the builders' pool, the split by seed, and sPhinX LANG N-shot on hand-made rows, through
the build jobs.build runs (actors/dataflow/build_pipeline.py, here in one process: tests/local_build.py)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from engine.builders.groups import english_of_seed, language_examples
from engine.builders.pool import Pool, build_pool, query_text
from engine.builders.ranks import validation_count
from engine.builders.sphinx import render_shots
from engine.config import BuildConfig, redacted
from tests.local_build import build_and_read, run_config
from tests.reference_build import build_datasets, split_seeds, summarise

# Which seeds each language has (per-language sampling: languages see different seeds).
LAYOUT = {"fr": range(0, 10), "de": range(4, 14), "ja": range(0, 3)}


def make_row(seed: int, lang: str, **extra) -> dict:
    return {
        "id": f"s{seed:02d}-{lang}",
        "seed_id": f"s{seed:02d}",
        "recipe": "sphinx",
        "lang": lang,
        "status": "accepted",
        "instruction": f"{lang} instruction {seed}",
        "input": f"{lang} input {seed}" if seed % 3 == 0 else "",
        "output": f"{lang} answer {seed}",
        "src_instruction": f"English instruction {seed}",
        "src_input": f"English input {seed}" if seed % 3 == 0 else "",
        "src_output": f"English answer {seed}",
        "model": "fake-llm",
        "prompt_version": "translate.v1",
        "source": f"seeds.jsonl:{seed + 1}",
        **extra,
    }


def make_rows(layout=LAYOUT) -> list[dict]:
    return [make_row(seed, lang) for lang, seeds in layout.items() for seed in seeds]


def pool(rows=None) -> Pool:
    return build_pool(make_rows() if rows is None else rows)


def held_out(p: Pool, share: float, seed: int = 0) -> frozenset[str]:
    """The seeds a build with this validation share holds out (the reference split)."""
    return split_seeds(p.seeds, share, seed)


def build_sphinx(
    p: Pool, shots: int, retrieval: str, include_english: bool, seed: int, embed=None, validation_seeds=frozenset()
) -> list[dict]:
    """sPhinX as the build runs it: language_examples once per language group, the seeds' English
    originals (english_of_seed, from each seed's rows) as the 'en' group when included."""
    config = BuildConfig(seed=seed, sphinx={"shots": shots, "retrieval": retrieval, "include_english": include_english})
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in p.rows:
        groups[row["lang"]].append(row)
    if include_english:
        by_seed: dict[str, list[dict]] = defaultdict(list)
        for row in p.rows:
            by_seed[row["seed_id"]].append(row)
        groups["en"] = [original for rows in by_seed.values() if (original := english_of_seed(rows))]
    return [
        e
        for lang, rows in sorted(groups.items())
        for e in language_examples(lang, rows, config, validation_seeds.__contains__, embed)
    ]


def as_multiset(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows)


def held_seeds(built: dict[str, dict[str, list[dict]]]) -> set[str]:
    return {row["seed_id"] for splits in built.values() for row in splits["validation"]}


def topic_embed(texts: list[str]) -> list[list[float]]:
    """A fake embedder: the seed number's parity and size are the two 'topics' of a text."""
    vectors = []
    for text in texts:
        number = int(text.split()[2])
        vectors.append([1.0, 0.0, number / 100] if number % 2 == 0 else [0.0, 1.0, number / 100])
    return vectors


# --- pool and split ---------------------------------------------------------------------------


def test_pool_derives_one_english_original_per_seed_from_the_source_fields():
    p = pool()
    assert set(p.english) == {f"s{i:02d}" for i in range(14)}
    english = p.english["s03"]
    assert (english["lang"], english["instruction"], english["input"], english["output"]) == (
        "en",
        "English instruction 3",
        "English input 3",
        "English answer 3",
    )
    assert english["model"] is None, "no model wrote the English text"
    assert set(p.by_seed["s05"]) == {"en", "fr", "de"} and set(p.by_seed["s00"]) == {"en", "fr", "ja"}


def test_rows_without_an_english_original_stay_in_the_pool_but_are_not_aligned():
    generated = make_row(
        50,
        "fr",
        src_instruction="",
        src_input="",
        src_output="texte français",
        instruction="Describe it. Answer in French.",
    )
    p = pool(rows=[*make_rows(), generated])
    assert generated["id"] in {row["id"] for row in p.rows}
    assert "s50" not in p.english and "s50" not in p.by_seed and "s50" in p.seeds
    assert generated["id"] not in {row["id"] for row in p.aligned}


def test_two_rows_of_one_seed_and_language_are_a_run_problem():
    with pytest.raises(ValueError, match="two accepted rows"):
        build_pool([make_row(1, "fr"), make_row(1, "fr", id="other")])


@pytest.mark.parametrize(
    "share, seeds, expected", [(0.2, 14, 3), (0.1, 14, 1), (0.01, 14, 1), (0.0, 14, 0), (0.5, 1, 0), (0.9, 3, 2)]
)
def test_split_holds_out_a_share_of_seeds(share, seeds, expected, tmp_path):
    assert validation_count(seeds, share) == expected
    summary, built = build_and_read(
        make_rows({"fr": range(seeds)}), BuildConfig(builders=("qalign",), validation_share=share), tmp_path
    )
    assert summary["seeds"]["validation"] == len(held_seeds(built)) == expected


def test_split_is_deterministic_and_moves_with_the_seed(tmp_path):
    rows = make_rows({"fr": range(40)})

    def held(rows, seed, out):
        return held_seeds(
            build_and_read(rows, BuildConfig(builders=("qalign",), validation_share=0.25, seed=seed), tmp_path / out)[1]
        )

    assert held(rows, 0, "a") == held(list(reversed(rows)), 0, "b")
    assert held(rows, 0, "a") != held(rows, 1, "c")


def test_every_dataset_keeps_each_seed_on_one_side_in_every_language(tmp_path):
    summary, built = build_and_read(make_rows(), BuildConfig(validation_share=0.3), tmp_path)
    validation_seeds = held_out(pool(), 0.3)
    assert validation_seeds and summary["seeds"]["validation"] == len(validation_seeds)
    for name, splits in built.items():
        train_seeds = {row["seed_id"] for row in splits["train"]}
        held_seeds = {row["seed_id"] for row in splits["validation"]}
        assert not train_seeds & held_seeds, name
        assert held_seeds <= validation_seeds and not train_seeds & validation_seeds, name
        # Nor may a held-out row hide inside a training prompt as a demonstration.
        shown = {shot.split("-")[0] for row in splits["train"] for shot in row["shot_ids"]}
        assert not shown & validation_seeds, name


def test_the_same_rows_and_config_build_the_same_datasets(tmp_path):
    config = BuildConfig(validation_share=0.2, sphinx={"shots": 3}, mix={"anchor_share": 0.5, "temperature": 2.0})
    assert build_and_read(make_rows(), config, tmp_path / "a") == build_and_read(
        list(reversed(make_rows())), config, tmp_path / "b"
    )


def test_the_build_makes_the_examples_and_counts_of_the_reference_build(tmp_path):
    """What the distributed build keeps by cuts found from counts (the split, CrossIn's size, the
    mix) is what the plain reference build keeps by sorting (tests/reference_build.py)."""
    rows = [
        *make_rows({"fr": range(0, 30), "de": range(10, 40), "sw": range(25, 29)}),
        make_row(
            90,
            "fr",
            src_instruction="",
            src_input="",
            src_output="Un texte.",
            instruction="Describe it. Answer in French.",
        ),
    ]
    build = BuildConfig(
        validation_share=0.2,
        seed=7,
        crossin={"modes": {"en_x": 2, "x_en": 1, "x_x": 1, "translation": 1}, "size": 60},
        mix={
            "ratios": {"sphinx": 2, "crossin": 1, "transllm": 1},
            "anchor_share": 0.3,
            "temperature": 5.0,
            "size": 200,
        },
    )
    config = run_config(build)
    summary, built = build_and_read(rows, config, tmp_path)
    reference = build_datasets(rows, build)
    assert summary == summarise(reference, redacted(config)["build"], config.model.license)
    assert (
        summary["datasets"]["mix"]["repeated_train_rows"] > 0
        and summary["datasets"]["crossin"]["train"] + summary["datasets"]["crossin"]["validation"] == 60
    )
    for name, splits in reference.splits.items():
        for split, examples in splits.items():
            assert as_multiset(built.get(name, {}).get(split, [])) == as_multiset(examples), (name, split)


def test_a_build_from_no_rows_lists_every_dataset_empty_as_the_reference_does():
    from actors.dataflow.build_pipeline import empty_summary

    config = run_config(BuildConfig(builders=("qalign", "sphinx"), mix={"ratios": {"sphinx": 1}}))
    summary = empty_summary(config)
    assert summary == summarise(build_datasets([], config.build), redacted(config)["build"], config.model.license)
    assert list(summary["datasets"]) == ["qalign_question", "qalign_response", "sphinx", "mix"]


# --- sPhinX LANG N-shot -----------------------------------------------------------------------


@pytest.mark.parametrize("retrieval", ["random", "knn"])
@pytest.mark.parametrize("shots", [0, 1, 3, 5])
def test_nshot_demonstrations_are_same_language_training_rows_and_never_the_example(shots, retrieval):
    p = pool()
    validation_seeds = held_out(p, 0.3)
    examples = build_sphinx(p, shots, retrieval, True, seed=0, embed=topic_embed, validation_seeds=validation_seeds)
    assert len(examples) == len(p.rows) + len(p.english)
    rows = {row["id"]: row for row in (*p.rows, *p.english.values())}
    for example in examples:
        source = rows[example["source_ids"][0]]
        shown = [rows[shot_id] for shot_id in example["shot_ids"]]
        # ja has 3 seeds: fewer candidates than shots means every one that is allowed.
        candidates = [
            r
            for r in rows.values()
            if r["lang"] == source["lang"]
            and r["seed_id"] not in validation_seeds
            and r["seed_id"] != source["seed_id"]
        ]
        assert len(shown) == min(shots, len(candidates))
        assert len(set(example["shot_ids"])) == len(shown)
        for shot in shown:
            assert shot["lang"] == source["lang"] == example["lang"]
            assert shot["seed_id"] != source["seed_id"]
            assert shot["seed_id"] not in validation_seeds


def test_nshot_prompt_holds_the_shots_and_the_completion_only_the_answer():
    p = pool()
    examples = build_sphinx(p, 2, "random", False, seed=0, validation_seeds=held_out(p, 0.2))
    example = next(e for e in examples if e["lang"] == "fr" and len(e["shot_ids"]) == 2)
    row = next(r for r in p.rows if r["id"] == example["source_ids"][0])
    shots = [next(r for r in p.rows if r["id"] == i) for i in example["shot_ids"]]
    assert example["prompt"] == render_shots(shots, query_text(row))
    assert example["prompt"].count("### Instruction:") == 3 and example["prompt"].count("### Response:") == 2
    assert example["prompt"].endswith(f"### Instruction:\n{query_text(row)}")
    for shot in shots:
        assert f"### Response:\n{shot['output']}" in example["prompt"]
    assert example["completion"] == row["output"] and row["output"] not in example["prompt"]
    assert example["messages"] == [
        {"role": "user", "content": example["prompt"]},
        {"role": "assistant", "content": example["completion"]},
    ]
    assert (
        example["mode"] == "2-shot-random"
        and example["model"] == "fake-llm"
        and example["prompt_version"] == "translate.v1"
    )


def test_zero_shot_prompt_is_the_plain_instruction_and_input():
    p = pool()
    example = next(
        e
        for e in build_sphinx(p, 0, "random", True, seed=0, validation_seeds=held_out(p, 0.2))
        if e["source_ids"] == ["s03-fr"]
    )
    assert (
        example["prompt"] == "fr instruction 3\n\nfr input 3"
        and example["shot_ids"] == []
        and example["mode"] == "0-shot"
    )


def test_english_originals_join_only_when_asked():
    p = pool()
    with_english = build_sphinx(p, 1, "random", True, seed=0, validation_seeds=held_out(p, 0.2))
    without = build_sphinx(p, 1, "random", False, seed=0, validation_seeds=held_out(p, 0.2))
    assert sum(e["lang"] == "en" for e in with_english) == len(p.english)
    assert not any(e["lang"] == "en" for e in without)


def test_knn_takes_the_nearest_rows_by_the_embedding():
    p = pool()
    examples = build_sphinx(p, 2, "knn", False, seed=0, embed=topic_embed)
    for example in (e for e in examples if e["lang"] in ("fr", "de")):  # 10 seeds: each topic has >= 2 others
        number = int(example["seed_id"][1:])
        shot_numbers = [int(shot_id[1:3]) for shot_id in example["shot_ids"]]
        assert len(shot_numbers) == 2
        assert all(n % 2 == number % 2 for n in shot_numbers), (example["seed_id"], shot_numbers)


def test_knn_needs_an_embed_function():
    with pytest.raises(ValueError, match="embed"):
        build_sphinx(pool(), 2, "knn", True, seed=0)


def test_random_shots_are_deterministic_and_do_not_move_when_other_languages_change():
    held = held_out(pool(), 0.2)
    first = build_sphinx(pool(), 3, "random", True, seed=7, validation_seeds=held)
    again = build_sphinx(pool(), 3, "random", True, seed=7, validation_seeds=held)
    assert first == again
    rows = [row for row in make_rows() if row["lang"] != "ja"]
    fewer = {
        e["id"]: e["shot_ids"]
        for e in build_sphinx(
            pool(rows=rows), 3, "random", True, seed=7, validation_seeds=held_out(pool(rows=rows), 0.2)
        )
    }
    fr = {e["id"]: e["shot_ids"] for e in first if e["lang"] == "fr"}
    assert all(fewer[i] == shots for i, shots in fr.items())
