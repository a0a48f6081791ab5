"""Ring (a): the adequacy gate's section of the run report (engine/report/gate.py): per language
the rows it accepted and rejected, the drafts it turned away, the scores against that language's
thresholds (a plot) and the calibration the run gated with; built from the rows and the resolved
config, rejected rows included."""

from engine.records import REJECTED, to_table
from engine.report.page import build_html
from engine.report.plots import PLOTS
from tests.unit.test_html_report import PNG, make_rows, row
from tests.unit.test_store_report import build_report

RESOLVED = {
    "encoder": "multilingual-e5-small",
    "file": "data/calibration/thresholds/multilingual-e5-small.json",
    "digest": "sha256:0123456789abcdef0123",
    "date": "2026-12-06",
    "languages": {
        "fr": {"instruction": 0.904, "input": 0.851, "output": 0.851},
        "ja": {"instruction": 0.862, "input": 0.846, "output": 0.846},
    },
    "sources": {"fr": "own", "ja": "own"},
}
CONFIG = {
    "run": {"name": "gate"},
    "recipe": "sphinx",
    "model": {"name": "m"},
    "quality": {"adequacy": True, "encoder": "multilingual-e5-small", "resolved_gate": RESOLVED},
}


def rows():
    return make_rows(
        row("a", adequacy=0.93),
        row("b", adequacy=0.95, attempt_reasons=["low_similarity:output:0.71"], attempts=2),  # retried, then kept
        row(
            "c",
            status=REJECTED,
            adequacy=0.71,
            reason="low_similarity:output:0.71",
            attempt_reasons=["low_similarity:output:0.70", "low_similarity:output:0.71"],
            attempts=2,
        ),
        row("d", status=REJECTED, adequacy=0.92, reason="numbers_changed:output"),
        row("e", status=REJECTED, adequacy=None),  # stopped by language ID: never scored
        row("f", lang="ja", adequacy=0.90),
        row("g", lang="ja", status=REJECTED, adequacy=0.80, reason="low_similarity:instruction:0.80"),
    )


def test_the_gate_section_counts_rows_drafts_and_scores_per_language():
    gate = build_report(to_table(rows()), 7, 0, 1.0, CONFIG)["gate"]
    assert gate["calibration"] == {key: RESOLVED[key] for key in ("encoder", "file", "digest", "date")}
    fr = gate["languages"]["fr"]
    assert (fr["accepted"], fr["low_similarity"], fr["other"], fr["drafts_rejected"]) == (2, 1, 1, 3)
    assert fr["thresholds"] == RESOLVED["languages"]["fr"] and fr["source"] == "own"
    assert fr["scores"]["low_similarity"]["median"] == 0.71 and fr["scores"]["accepted"]["max"] == 0.95
    assert gate["languages"]["ja"]["low_similarity"] == 1


def test_the_page_shows_the_gate_with_its_plot_and_calibration():
    report = build_report(to_table(rows()), 7, 0, 1.0, CONFIG)
    page = build_html(report, rows(), {name: PNG + b"stand-in" for name in PLOTS})
    section = page[page.index("<h2>Adequacy gate</h2>") : page.index("<h2>Plots</h2>")]
    assert "data/calibration/thresholds/multilingual-e5-small.json" in section and "sha256:0123456789ab" in section
    assert "0.904 / 0.851" in section and section.count("<img") == 1
    assert '<img alt="Adequacy gate' in section


def test_no_section_without_a_quality_config_and_a_note_with_the_gate_off():
    assert (
        build_report(to_table(rows()), 7, 0, 1.0, {k: v for k, v in CONFIG.items() if k != "quality"})["gate"] is None
    )
    off = build_report(to_table(rows()), 7, 0, 1.0, {**CONFIG, "quality": {"adequacy": False}})
    assert off["gate"] == {"enabled": False}
    assert "Off in this run" in build_html(off, [], {})
