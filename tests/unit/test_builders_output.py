"""Ring (a)/(b): written datasets load with `datasets`, the card adds up, and `jobs.build` says
what is missing. The build here is jobs.build's, run in one process (tests/local_build.py); on Ray
Data it is tested in tests/integration/test_build_distributed.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import yaml

from engine.builders.output import swap_in, write_card
from engine.builders.summary import source_file
from engine.config import BuildConfig
from engine.records import to_table
from tests.local_build import build_here, run_config
from tests.unit.test_builders import make_rows

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, config: BuildConfig, license: str = "Apache-2.0") -> tuple[Path, dict]:
    """The build of make_rows() written as jobs.build writes it: into a folder swapped in, with its card."""
    summaries = []

    def fill(folder):
        summaries.append(build_here(make_rows(), run_config(config, license), folder))
        write_card(summaries[0], folder, config.formats, "unit")

    return swap_in(tmp_path / "datasets", fill), summaries[0]


def test_every_split_loads_with_datasets_and_matches_build_json(tmp_path):
    out, summary = write(tmp_path, BuildConfig(validation_share=0.2))
    assert json.loads((out / "build.json").read_text()) == summary
    for name, entry in summary["datasets"].items():
        files = {split: str(out / name / f"{split}.parquet" / "*.parquet") for split in ("train", "validation")}
        loaded = datasets.load_dataset("parquet", data_files=files)
        assert {split: loaded[split].num_rows for split in files} == {
            "train": entry["train"],
            "validation": entry["validation"],
        }
        first = loaded["train"][0]
        assert first["messages"] == [
            {"role": "user", "content": first["prompt"]},
            {"role": "assistant", "content": first["completion"]},
        ]
        jsonl = [
            line
            for part in sorted((out / name / "train.jsonl").glob("part-*.jsonl"))
            for line in part.read_text(encoding="utf-8").splitlines()
        ]
        assert len(jsonl) == entry["train"] and json.loads(jsonl[0]) == first
        per_language = sum(counts["train"] + counts["validation"] for counts in entry["languages"].values())
        assert per_language == entry["train"] + entry["validation"]


def test_card_front_matter_loads_each_dataset_by_name(tmp_path):
    out, summary = write(tmp_path, BuildConfig(builders=("crossin", "qalign"), validation_share=0.2))
    loaded = datasets.load_dataset(str(out), "qalign_question")
    assert loaded["train"].num_rows == summary["datasets"]["qalign_question"]["train"]


def test_card_states_counts_licence_provenance_and_config(tmp_path):
    out, summary = write(tmp_path, BuildConfig(builders=("transllm",), validation_share=0.2, mix={"enabled": False}))
    card = (out / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0"
    entry = summary["datasets"]["transllm"]
    assert (
        f"| transllm | {entry['train']} | {entry['validation']} | tcot {entry['train'] + entry['validation']} |" in card
    )
    for lang, counts in entry["languages"].items():
        assert f"{counts['train']} / {counts['validation']}" in card, lang
    assert "fake-llm" in card and "translate.v1" in card and "seeds.jsonl" in card
    assert "validation_share: 0.2" in card and "`Apache-2.0`" in card


def test_a_split_without_rows_is_neither_written_nor_listed(tmp_path):
    out, summary = write(tmp_path, BuildConfig(builders=("transllm",), validation_share=0.0, mix={"enabled": False}))
    assert summary["datasets"]["transllm"]["validation"] == 0
    assert (out / "transllm/train.parquet").exists() and not (out / "transllm/validation.parquet").exists()
    assert "transllm/validation" not in (out / "README.md").read_text()


def test_rebuild_replaces_the_folder_whole_and_leaves_no_temporaries(tmp_path):
    write(tmp_path, BuildConfig(builders=("sphinx", "crossin")))
    out, _ = write(tmp_path, BuildConfig(builders=("transllm",), mix={"enabled": False}))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "build.json", "transllm"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets"]


def test_source_file_drops_the_line_number():
    assert source_file("data/seeds.jsonl:12") == "data/seeds.jsonl"
    assert source_file("hf://org/set") == "hf://org/set" and source_file(None) == "(none)"


def fake_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pq.write_table(to_table(make_rows()), run_dir / "accepted.parquet")
    config = {
        "run": {"name": "fake", "output_dir": str(run_dir)},
        "seeds": {"paths": ["s.jsonl"]},
        "languages": {"targets": ["fr", "de", "ja"]},
    }
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "report.json").write_text(json.dumps({"accepted": len(make_rows())}))
    return run_dir


def test_jobs_build_says_what_is_missing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "jobs.build", "--run", str(tmp_path), "--config", str(tmp_path / "none.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "config file not found" in result.stderr
    run_dir = fake_run(tmp_path)
    (run_dir / "accepted.parquet").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "jobs.build", "--run", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "accepted.parquet not found" in result.stderr
