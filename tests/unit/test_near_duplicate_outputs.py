"""Near-duplicate outputs within a language (engine/selection/dedup.py): ring (a) on hand-made
vectors, ring (b) with the bundled encoder in the row machine, and through the streaming finalise
(actors.dataflow.synthesis.finalise): the reject row names the kept row, and the counts still add up."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import engine.selection.dedup as dedup
from actors.dataflow.synthesis import finalise
from engine.config import load_config
from engine.records import ACCEPTED, REJECTED, row_id, to_table
from engine.selection.dedup import NearDuplicateOutputs, near_duplicate_matches, near_duplicate_outputs
from tests.unit.test_finalise_streaming import write_run
from tests.unit.test_refine import text_task

ROOT = Path(__file__).resolve().parents[2]
DIM = 8


def axis(*weights: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


A = axis(1.0)
NEAR_A = axis(1.0, 0.1)  # cosine 0.995 with A
APART = axis(0.0, 0.0, 1.0)
LOOSE_A = axis(1.0, 0.5)  # cosine 0.894 with A: a related, distinct example


def row(seed: str, lang: str, vector, status: str = ACCEPTED, spans=(), output: str = "texte") -> dict:
    return {
        "id": row_id(seed, lang, "sphinx", "translate.v1"),
        "seed_id": seed,
        "recipe": "sphinx",
        "lang": lang,
        "status": status,
        "reason": None if status == ACCEPTED else "length_ratio:4.1",
        "src_instruction": f"instruction of {seed}",
        "instruction": f"consigne {seed}",
        "output": output,
        "protected_spans": list(spans),
        "output_embedding": None if vector is None else np.asarray(vector, np.float16),
    }


def reasons_of(table) -> dict[str, tuple[str, str | None]]:
    return {r["id"]: (r["status"], r["reason"]) for r in table.select(["id", "status", "reason"]).to_pylist()}


def test_a_near_copy_is_rejected_naming_the_earlier_row_and_its_cosine():
    rows = [row("s1", "fr", A), row("s2", "fr", NEAR_A), row("s3", "fr", APART), row("s4", "fr", LOOSE_A)]
    found = near_duplicate_outputs(to_table(rows), threshold=0.975)
    kept, copy = rows[0]["id"], rows[1]["id"]
    assert list(found) == [copy]
    name, of_id, cosine = found[copy].split(":")
    assert (name, of_id) == ("near_duplicate_of", kept) and abs(float(cosine) - float(A @ NEAR_A)) < 2e-3


def test_the_kept_row_is_the_earliest_by_seed_and_id_whatever_the_input_order():
    rows = [row(f"s{i}", "fr", vector) for i, vector in enumerate([APART, NEAR_A, A, LOOSE_A, axis(1.0, 0.05)])]
    outcomes = set()
    for seed in range(6):
        shuffled = list(rows)
        random.Random(seed).shuffle(shuffled)
        outcomes.add(tuple(sorted(near_duplicate_outputs(to_table(shuffled), 0.975).items())))
    assert len(outcomes) == 1
    (found,) = outcomes
    # s1 (NEAR_A) comes first by seed id, so it is kept: s2 (A) and s4 repeat it, s3 is apart enough.
    assert {copy for copy, _ in found} == {rows[2]["id"], rows[4]["id"]}
    assert all(reason.split(":")[1] == rows[1]["id"] for _, reason in found)


def test_only_accepted_rows_with_a_vector_and_the_same_spans_are_compared():
    rows = [
        row("s1", "fr", A, status=REJECTED),  # a rejected row keeps nothing out
        row("s2", "fr", NEAR_A),
        row("s3", "fr", None),  # no vector (gate off for this row): never compared
        row("s4", "fr", A, spans=["$x^2$"]),  # same meaning, another formula: another task
        row("s5", "fr", A, spans=["$x^3$"]),
        row("s6", "fr", NEAR_A, spans=["$x^3$"]),
    ]
    found = near_duplicate_outputs(to_table(rows), 0.975)
    assert set(found) == {rows[5]["id"]} and found[rows[5]["id"]].split(":")[1] == rows[4]["id"]


def test_the_threshold_is_inclusive():
    rows = [row("s1", "fr", A), row("s2", "fr", LOOSE_A)]
    stored = [v.astype(np.float16).astype(np.float32) for v in (A, LOOSE_A)]  # as the column holds them
    cosine = float(stored[0] @ stored[1] / np.linalg.norm(stored[0]) / np.linalg.norm(stored[1]))
    assert near_duplicate_outputs(to_table(rows), cosine - 1e-4)
    assert not near_duplicate_outputs(to_table(rows), cosine + 1e-3)


def greedy(vectors: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """The rule written plainly: each row against every earlier kept row, best match first."""
    kept, found = [], []
    for i, vector in enumerate(vectors):
        sims = [float(vector @ vectors[j]) for j in kept]
        best = int(np.argmax(sims)) if sims else -1
        if best >= 0 and sims[best] >= threshold:
            found.append((i, kept[best]))
        else:
            kept.append(i)
    return found


def test_blockwise_matches_equal_the_plain_greedy_rule_for_any_block_size(monkeypatch):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 16))
    copies = base[rng.integers(0, 40, size=25)] + rng.normal(scale=0.05, size=(25, 16))
    vectors = np.concatenate([base, copies])[rng.permutation(65)]
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    expected = greedy(vectors, 0.97)
    assert len(expected) >= 15, "the planted copies are found"
    for block in (1, 4, 7, 64, 1024):
        monkeypatch.setattr(dedup, "BLOCK", block)
        assert [(r, k) for r, k, _ in near_duplicate_matches(vectors, 0.97)] == expected


def test_the_step_counts_languages_whose_rows_carry_no_vectors():
    step = NearDuplicateOutputs(0.975)
    table = to_table([row("s1", "fr", None), row("s2", "fr", None)])
    assert step(table).equals(table) and step(table).equals(table)
    assert step.stats == {"languages_without_vectors": 2, "compared": 0, "rejected": 0}


# Through the streaming finalise: two languages, a near pair in one of them only.


def finalise_rows(
    run_dir: Path, rows: list[dict], shard_rows: int, shuffle: int | None = None, *overrides: str
) -> dict:
    store, planned = write_run(run_dir, rows, shard_rows, shuffle)
    config = load_config(ROOT / "configs/demo.yaml", [f"run.output_dir={run_dir}", *overrides])
    return finalise(run_dir, config, planned, 0, 1.0)


RUN_ROWS = [
    row("s1", "fr", A),
    row("s2", "fr", NEAR_A),
    row("s3", "fr", APART),
    row("s4", "fr", LOOSE_A),
    row("s5", "fr", A, status=REJECTED),
    row("s1", "ja", A),
    row("s2", "ja", LOOSE_A),
    row("s3", "ja", APART),
    row("s6", "ja", None),
]


def written(run_dir: Path) -> dict:
    tables = [pq.read_table(run_dir / f"{status}.parquet") for status in (ACCEPTED, REJECTED)]
    return {**reasons_of(tables[0]), **reasons_of(tables[1])}


def test_finalise_rejects_the_near_copy_in_its_language_only_and_the_counts_add_up(tmp_path):
    report = finalise_rows(tmp_path / "run", RUN_ROWS, shard_rows=3)
    outcome = written(tmp_path / "run")
    copy, kept = RUN_ROWS[1]["id"], RUN_ROWS[0]["id"]
    assert outcome[copy][0] == REJECTED and outcome[copy][1].startswith(f"near_duplicate_of:{kept}:0.99")
    others = {r["id"] for r in RUN_ROWS} - {copy, RUN_ROWS[4]["id"]}
    assert all(outcome[i] == (ACCEPTED, None) for i in others), "ja's row equal to fr's kept one is another language"
    assert report["planned"] == len(RUN_ROWS) == report["accepted"] + report["rejected"] and report["adds_up"]
    assert (report["accepted"], report["rejected"]) == (7, 2)
    assert (
        report["reject_reasons"]["near_duplicate_of"] == 1
        and report["languages"]["fr"]["reasons"]["near_duplicate_of"] == 1
    )
    accepted = pq.read_table(tmp_path / "run/accepted.parquet")
    assert accepted.column("output_embedding").null_count == 1, "the Parquet dataset keeps the vectors"
    lines = [json.loads(line) for line in (tmp_path / "run/accepted.jsonl").read_text().splitlines()]
    assert len(lines) == 7 and not any("output_embedding" in line for line in lines), "the JSONL leaves them out"


def test_finalise_gives_the_same_outcome_however_the_rows_were_sharded(tmp_path):
    outcomes = []
    for n, (shard_rows, shuffle) in enumerate([(1, None), (4, 1), (9, 2), (2, 3)]):
        finalise_rows(tmp_path / f"run{n}", RUN_ROWS, shard_rows, shuffle)
        outcomes.append(written(tmp_path / f"run{n}"))
    assert all(outcome == outcomes[0] for outcome in outcomes)
    assert sum(bool(reason) and reason.startswith("near_duplicate_of") for _, reason in outcomes[0].values()) == 1


@pytest.mark.parametrize("overrides", [("dedup.output_near_threshold=null",), ("quality.adequacy=false",)])
def test_finalise_keeps_every_copy_when_the_step_is_off(tmp_path, caplog, overrides):
    with caplog.at_level(logging.INFO):
        report = finalise_rows(tmp_path / "run", RUN_ROWS, 4, None, *overrides)
    assert report["accepted"] == 8 and report["adds_up"]
    said = any("near-duplicate outputs not checked: quality.adequacy is off" in r.getMessage() for r in caplog.records)
    assert said is (overrides == ("quality.adequacy=false",))


def test_finalise_says_once_when_no_language_carries_vectors(tmp_path, caplog):
    rows = [row("s1", "fr", None), row("s2", "fr", None), row("s1", "ja", None), row("s2", "ja", None)]
    with caplog.at_level(logging.INFO):
        report = finalise_rows(tmp_path / "run", rows, 1)
    assert report["accepted"] == 4 and report["adds_up"]
    said = [r.getMessage() for r in caplog.records if "near-duplicate outputs not checked" in r.getMessage()]
    assert said == [
        "near-duplicate outputs not checked in 2 language(s): accepted rows carry no output_embedding "
        "(the adequacy gate makes it; quality.adequacy off?)"
    ]


# Ring (b): the gate writes the vector of the example it accepts, with the bundled encoder.


def test_the_gate_writes_a_unit_float16_vector_only_for_a_draft_that_passes():
    from actors.engines.embed import load_embedder
    from engine.text.adequacy import example_text
    from tests.unit.test_adequacy_gate_in_loop import GOOD, NONSENSE, config, run

    encoder = load_embedder("multilingual-e5-small", threads=1)
    accepted, _ = run(config(), [GOOD], encoder)
    rejected, _ = run(config(), [NONSENSE, NONSENSE], encoder)
    vector = np.asarray(accepted["output_embedding"], dtype=np.float32)
    assert accepted["status"] == ACCEPTED and vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-2
    expected = encoder.encode_passages([example_text(accepted)])[0]
    assert float(vector @ expected) > 0.999, "the example's text, spans kept, as one passage"
    assert rejected["status"] == REJECTED and rejected.get("output_embedding") is None
    table = to_table([accepted, rejected])
    assert table.column("output_embedding").null_count == 1
    off, _ = run(config(adequacy=False), [GOOD], None)
    assert off["status"] == ACCEPTED and off.get("output_embedding") is None


def test_an_xinstruction_pair_that_fits_carries_its_texts_vector():
    from actors.engines.embed import load_embedder
    from engine.text.adequacy import visible_text
    from tests.unit.test_adequacy_gate_in_loop import FRENCH_TEXT, config, run

    encoder = load_embedder("multilingual-e5-small", threads=1)
    task = text_task(FRENCH_TEXT)
    fits = json.dumps({"instruction": "Why does bread rise?"})
    row, _ = run(config("xinstruction"), [fits], encoder, task)
    assert row["status"] == ACCEPTED
    vector = np.asarray(row["output_embedding"], dtype=np.float32)
    assert float(vector @ encoder.encode_passages([visible_text(FRENCH_TEXT)])[0]) > 0.999, (
        "the text is what repeats across pairs"
    )
