"""The report page in a real browser (headless Chromium), on a run folder written here without a
model: the filter script works, injected model text stays inert, and the comparison page renders.
The page of a real vLLM run is checked in test_synthesize.py, on that module's run."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import pytest

from engine.records import ACCEPTED, REJECTED, to_table
from jobs.report import main as report_main
from tests.integration.browser import RenderedPage, dump_dom, png_size, screenshot
from tests.unit.test_store_report import build_report

pytestmark = pytest.mark.integration

ATTACK = '<script>document.title="pwned"</script>"><img src=x onerror="document.title=\'pwned\'">'


def fake_row(n: int, lang: str, status: str, **extra) -> dict:
    return {
        "id": f"{lang}{n}",
        "seed_id": f"seed-{n}",
        "recipe": "sphinx",
        "lang": lang,
        "status": status,
        "reason": "length_ratio:4.1" if status == REJECTED else None,
        "src_instruction": f"Explain `ls` ({n}).",
        "instruction": f"[{lang}] `ls` ({n})",
        "output": ATTACK,
        "protected_spans": ["`ls`"],
        "lid_label": lang,
        "lid_confidence": 0.5 + n / 40,
        "lid_method": "fasttext",
        "attempts": 1,
        "prompt_tokens": 90,
        "completion_tokens": 30 + n,
        **extra,
    }


def write_run(run_dir, rows: list[dict]):
    run_dir.mkdir()
    table = to_table(rows)
    config = {"run": {"name": run_dir.name}, "recipe": "sphinx", "model": {"name": "fake"}}
    (run_dir / "report.json").write_text(json.dumps(build_report(table, len(rows), 0, 3.0, config)))
    for status in (ACCEPTED, REJECTED):
        pq.write_table(table.filter(pa.compute.equal(table.column("status"), status)), run_dir / f"{status}.parquet")
    return run_dir


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    rows = [fake_row(n, lang, ACCEPTED if n % 2 else REJECTED) for lang in ("fr", "ja", "sw") for n in range(8)]
    run_dir = write_run(tmp_path_factory.mktemp("page") / "fake", rows)
    assert report_main([str(run_dir)]) == 0
    return run_dir


def test_filter_script_runs_and_presets_from_the_address(fake_run):
    page = RenderedPage(dump_dom(fake_run / "report.html", "#lang=ja&status=rejected"))
    visible = page.visible_samples()
    assert len(page.samples) == 24 and len(visible) == 4
    assert {(s["data-lang"], s["data-status"]) for s in visible} == {("ja", "rejected")}
    assert "4 shown" in dump_dom(fake_run / "report.html", "#lang=ja&status=rejected")


def test_injected_model_text_stays_inert_in_the_browser(fake_run):
    dom = dump_dom(fake_run / "report.html")
    page = RenderedPage(dom)
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0], "the injected script ran"
    assert all((img.get("src") or "").startswith("data:image/png") for img in page.images), (
        "an injected <img> was parsed"
    )
    assert len(page.plots()) == 4 and len(page.visible_samples()) == 24


def test_compare_page_renders_two_runs(fake_run, tmp_path):
    other = write_run(tmp_path / "other", [fake_row(n, "fr", ACCEPTED, output=f"autre {n}") for n in range(8)])
    out = tmp_path / "compare.html"
    assert report_main([str(fake_run), "--compare", str(other), "--out", str(out)]) == 0
    page = RenderedPage(dump_dom(out))
    assert len(page.plots()) >= 6, "each run's plots, side by side"
    assert len(page.samples) == 24 and "autre 3" in dump_dom(out)
    width, height = png_size(screenshot(out, tmp_path / "compare.png"))
    assert (width, height) == (1280, 2000)
