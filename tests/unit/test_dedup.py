"""Ring (a): exact and near deduplication; planted duplicates are removed and accounted for."""

import json

import numpy as np
import pytest

import engine.selection.dedup as dedup
from actors.dataflow.seeds import SeedSelector
from engine.config import parse_config
from engine.inputs.seeds import Seed
from engine.recipes import plan_run
from engine.records import ACCEPTED, REJECTED, to_table
from engine.selection.dedup import (
    duplicate_reason,
    duplicate_rows,
    exact_duplicates,
    near_duplicates,
    normalise_text,
    reject_duplicate_outputs,
    text_key,
)


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("What is Ray?", "  what   IS ray?\n", True),
        ("Ｒａｙ", "ray", True),  # fullwidth letters fold under NFKC
        ("Straße", "STRASSE", True),  # casefold, not lower
        ("What is 2+2?", "What is 2-2?", False),  # punctuation is content in maths and code
        ("", None, True),
        ("tab\tand\nnewline", "tab and newline", True),
    ],
)
def test_normalise_text(a, b, same):
    assert (normalise_text(a) == normalise_text(b)) is same


def test_text_key_keeps_fields_apart():
    assert text_key("a b", "") != text_key("a", "b")
    assert text_key("Sort this list", "3, 1, 2") == text_key("sort this LIST ", "3, 1, 2")


def test_exact_duplicates_map_later_copies_to_the_first():
    ids = ["s1", "s2", "s3", "s4", "s5"]
    keys = [text_key(t) for t in ["Tell a joke", "Name a colour", "tell a  JOKE", "Count to 3", "Tell a joke."]]
    assert exact_duplicates(ids, keys) == {"s3": "s1"}


def unit(rng, dim=32):
    vector = rng.normal(size=dim)
    return vector / np.linalg.norm(vector)


def planted(rng, distinct=20, copies=(1, 4, 7), noise=0.02):
    """Random (nearly orthogonal) vectors plus noisy copies of a few: the copies are near-dups."""
    vectors = [unit(rng) for _ in range(distinct)]
    ids = [f"d{i}" for i in range(distinct)]
    for n, original in enumerate(copies):
        vectors.append(vectors[original] + rng.normal(scale=noise, size=len(vectors[original])))
        ids.append(f"copy{n}-of-d{original}")
    return ids, np.array(vectors, dtype=np.float32)


def test_near_duplicates_finds_planted_copies_and_keeps_distinct_rows():
    ids, vectors = planted(np.random.default_rng(0))
    found = near_duplicates(ids, vectors, threshold=0.95)
    assert found == {"copy0-of-d1": "d1", "copy1-of-d4": "d4", "copy2-of-d7": "d7"}


def test_near_duplicates_do_not_depend_on_block_size(monkeypatch):
    ids, vectors = planted(np.random.default_rng(1), distinct=15, copies=(0, 3, 3, 14))
    whole = near_duplicates(ids, vectors, 0.95)
    monkeypatch.setattr(dedup, "BLOCK", 4)
    assert near_duplicates(ids, vectors, 0.95) == whole and len(whole) == 4


def test_threshold_is_inclusive_and_a_chain_keeps_its_far_end():
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.3), np.sin(0.3)])  # cos(a, b) = 0.955
    c = np.array([np.cos(0.6), np.sin(0.6)])  # cos(b, c) = 0.955, cos(a, c) = 0.825
    assert near_duplicates(["a", "b"], np.array([a, b]), threshold=float(a @ b)) == {"b": "a"}
    assert near_duplicates(["a", "b", "c"], np.array([a, b, c]), threshold=0.95) == {"b": "a"}


def seed(seed_id, instruction, input_text="", output="An answer."):
    return Seed(seed_id, instruction, input_text, output, f"seeds.jsonl:{seed_id}")


def test_duplicate_rows_are_rejected_with_the_id_they_repeat():
    seeds = [seed("a", "Say hi"), seed("b", "say HI"), seed("c", "Say bye")]
    rows = duplicate_rows({"b": "a"}, seeds, "sphinx", "v1")
    assert len(rows) == 1 and rows[0]["seed_id"] == "b" and rows[0]["status"] == REJECTED
    assert rows[0]["reason"] == duplicate_reason("a") == "duplicate_of:a"
    assert (
        rows[0]["src_instruction"] == "say HI"
        and rows[0]["id"] == duplicate_rows({"b": "a"}, seeds, "sphinx", "v1")[0]["id"]
    )

    def key(s):  # what the seed reader computes per seed (engine.inputs.seeds.DEDUP_KEY)
        return text_key(s.instruction, s.input)

    assert key(seeds[0]) == key(seeds[1]) != key(seed("d", "Say hi", "with input"))


def test_planted_exact_duplicates_are_planned_as_rejected_rows(tmp_path):
    records = [
        {"id": "s1", "instruction": "Name three fruits.", "output": "Apple, pear, plum."},
        {"id": "s2", "instruction": "Explain gravity simply.", "output": "Mass attracts mass."},
        {"id": "s3", "instruction": "  name THREE fruits. ", "output": "Banana, kiwi, fig."},
        {"id": "s4", "instruction": "Explain gravity simply.", "output": "Things fall.", "input": "For a child"},
    ]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    config = parse_config(
        {
            "seeds": {"paths": [str(path)]},
            "languages": {"targets": ["fr", "de"]},
            "plan": {"mode": "all"},
            "dedup": {"exact": True},
            "run": {"output_dir": str(tmp_path / "run")},
        }
    )

    def no_ray():
        raise AssertionError("exact dedup with uniform selection must not need embeddings")

    plan = plan_run(config, SeedSelector(config, no_ray))
    tasks, decided, read = plan.tasks.tasks().to_pylist(), plan.decided, plan.read
    assert read == 4
    assert {t["seed_id"] for t in tasks} == {"s1", "s2", "s4"} and len(tasks) == 6
    assert [(r["seed_id"], r["reason"]) for r in decided] == [("s3", "duplicate_of:s1")]
    # Every seed read is either planned for each language or a rejected row: nothing vanishes.
    assert len({t["id"] for t in tasks} | {r["id"] for r in decided}) == len(tasks) + len(decided)


def test_duplicate_outputs_in_one_language_are_rejected_and_counted():
    rows = [
        {"id": "r2", "seed_id": "s2", "lang": "fr", "status": ACCEPTED, "instruction": "Dis  BONJOUR", "input": ""},
        {"id": "r1", "seed_id": "s1", "lang": "fr", "status": ACCEPTED, "instruction": "Dis bonjour", "input": ""},
        {"id": "r3", "seed_id": "s3", "lang": "es", "status": ACCEPTED, "instruction": "Dis bonjour", "input": ""},
        {
            "id": "r4",
            "seed_id": "s4",
            "lang": "fr",
            "status": REJECTED,
            "reason": "wrong_language",
            "instruction": "Dis bonjour",
        },
        {
            "id": "r5",
            "seed_id": "s5",
            "lang": "fr",
            "status": ACCEPTED,
            "instruction": "Dis bonjour",
            "input": "à Paul",
        },
    ]
    out = {row["id"]: row for row in reject_duplicate_outputs(to_table(rows)).to_pylist()}
    # s1 comes first whatever the shard order; another language or another input is not a copy.
    assert (out["r2"]["status"], out["r2"]["reason"]) == (REJECTED, "duplicate_of:r1")
    assert [out[i]["status"] for i in ("r1", "r3", "r5")] == [ACCEPTED] * 3
    assert out["r4"]["reason"] == "wrong_language" and len(out) == 5
    unique = to_table(rows[1:])
    assert reject_duplicate_outputs(unique) is unique
