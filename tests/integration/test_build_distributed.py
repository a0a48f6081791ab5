"""The distributed build (actors/dataflow/build_pipeline.py on Ray Data): the examples it writes depend on
the rows and the config alone, not on how many blocks the rows come in, and they are the examples
of the plain in-memory reference build (tests/reference_build.py) over the same rows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from engine.config import load_config, redacted
from engine.records import to_table
from tests.reference_build import build_datasets, summarise
from tests.unit.test_builders import make_row, make_rows
from tests.unit.test_builders_output import ROOT, fake_run

LANGS = {"fr": range(0, 40), "de": range(10, 50), "ja": range(0, 12), "sw": range(30, 36)}
BUILD = {
    "enabled": True,
    "validation_share": 0.2,
    "seed": 7,
    "sphinx": {"shots": 2, "retrieval": "random", "include_english": True},
    # A size cap below what the modes hold, so CrossIn keeps a rank cut of each mode.
    "crossin": {"modes": {"en_x": 2, "x_en": 1, "x_x": 1, "translation": 1}, "size": 90},
    # A flat temperature with an anchor share: sw is upsampled (repeats), the others cut.
    "mix": {
        "ratios": {"sphinx": 2, "crossin": 1, "transllm": 1, "qalign_question": 1},
        "anchor_share": 0.3,
        "temperature": 5.0,
        "size": 400,
    },
}


def accepted_rows() -> list[dict]:
    rows = [make_row(seed, lang) for lang, seeds in LANGS.items() for seed in seeds]
    # X-Instruction generation rows: no English original (builders that need one skip them).
    rows += [
        make_row(
            100 + i,
            "fr",
            src_instruction="",
            src_input="",
            src_output="Un texte.",
            instruction=f"Describe place {i}. Answer in French.",
            input="",
            output=f"Un texte {i}.",
        )
        for i in range(5)
    ]
    return rows


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("build") / "run"
    rows = accepted_rows()
    for lang in LANGS:  # the layout jobs.synthesize's finalise writes: a dataset by language
        (run_dir / "accepted.parquet" / lang).mkdir(parents=True)
        pq.write_table(
            to_table([r for r in rows if r["lang"] == lang]), run_dir / "accepted.parquet" / lang / "part-00000.parquet"
        )
    config = {
        "run": {"name": "distributed", "output_dir": str(run_dir)},
        "seeds": {"paths": ["s.jsonl"]},
        "languages": {"targets": list(LANGS)},
        "ray": {"num_cpus": 2},
        "build": BUILD,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (run_dir / "report.json").write_text(json.dumps({"accepted": len(rows)}))
    return run_dir


@pytest.fixture(scope="module")
def ray_session():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def read_split(folder: Path, name: str, split: str) -> list[tuple]:
    path = folder / name / f"{split}.parquet"
    if not path.exists():
        return []
    rows = pq.read_table(path).to_pylist()
    return sorted(json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows)


def as_multiset(rows: list[dict]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True, ensure_ascii=False) for row in rows)


def test_examples_do_not_depend_on_partitions_and_match_the_in_memory_build(run_dir, ray_session, tmp_path):
    from jobs.build import build_run

    config = load_config(run_dir / "config.yaml", [])
    one = build_run(run_dir, config, tmp_path / "one", partitions=1)
    many = build_run(run_dir, config, tmp_path / "many", partitions=7)
    assert one == many
    assert (tmp_path / "one/build.json").read_text() == (tmp_path / "many/build.json").read_text()
    assert (tmp_path / "one/README.md").read_text() == (tmp_path / "many/README.md").read_text()

    built = build_datasets(accepted_rows(), config.build)
    reference = summarise(built, redacted(config)["build"], config.model.license)
    assert one == reference, "the counts are those of the in-memory build"
    assert set(one["datasets"]) == {
        "sphinx",
        "crossin",
        "qalign_question",
        "qalign_response",
        "xinstruction",
        "transllm",
        "mix",
    }
    for name, splits in built.splits.items():
        for split, examples in splits.items():
            first = read_split(tmp_path / "one", name, split)
            assert first == read_split(tmp_path / "many", name, split), (name, split)
            assert first == as_multiset(examples), (name, split)
            assert len(first) == one["datasets"][name][split]
    # The properties the sampling must keep: a cut CrossIn, a mix with repeats only where a
    # language ran out, and no validation seed in any training example, demonstrations included.
    assert one["datasets"]["crossin"]["train"] + one["datasets"]["crossin"]["validation"] == 90
    mix = one["datasets"]["mix"]
    assert mix["train"] == 400 and mix["repeated_train_rows"] > 0
    sw = [row for row in pq.read_table(tmp_path / "one/mix/train.parquet").to_pylist() if row["lang"] == "sw"]
    assert Counter(row["id"] for row in sw).most_common(1)[0][1] > 1
    held_out = (
        {
            row["seed_id"]
            for name in one["datasets"]
            for row in pq.read_table(tmp_path / "one" / name / "validation.parquet").to_pylist()
        }
        if all((tmp_path / "one" / n / "validation.parquet").exists() for n in one["datasets"])
        else set()
    )
    assert held_out
    for name in one["datasets"]:
        for row in pq.read_table(tmp_path / "one" / name / "train.parquet").to_pylist():
            assert row["seed_id"] not in held_out
            assert not {shot.split("-")[0].split(":")[0] for shot in row["shot_ids"]} & held_out


def test_a_run_with_one_accepted_row_builds_like_the_in_memory_build(ray_session, tmp_path):
    """One row: most blocks and partitions are empty (some without columns), the build still runs."""
    from jobs.build import build_run

    row = make_row(3, "fr")
    run_dir = tmp_path / "run"
    (run_dir / "accepted.parquet" / "fr").mkdir(parents=True)
    pq.write_table(to_table([row]), run_dir / "accepted.parquet/fr/part-00000.parquet")
    config_dict = {
        "run": {"name": "one-row", "output_dir": str(run_dir)},
        "seeds": {"paths": ["s.jsonl"]},
        "languages": {"targets": ["fr"]},
        "ray": {"num_cpus": 2},
        "build": {**BUILD, "validation_share": 0.0},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config_dict))
    config = load_config(run_dir / "config.yaml", [])
    summary = build_run(run_dir, config, tmp_path / "out", partitions=3)
    reference = summarise(build_datasets([row], config.build), redacted(config)["build"], config.model.license)
    assert summary == reference and summary["datasets"]["qalign_question"]["train"] == 1


def test_jobs_build_cli_builds_into_the_run_folder_and_records_the_counts(run_dir, ray_session):
    from jobs.build import main

    assert main(["--run", str(run_dir), "--config", str(run_dir / "config.yaml")]) == 0
    built = json.loads((run_dir / "datasets/build.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["accepted"] == len(accepted_rows()), "the run's own counts stay"
    assert report["datasets"]["sphinx"] == built["datasets"]["sphinx"]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "accepted.parquet",
        "config.yaml",
        "datasets",
        "report.json",
    ], "no staging left"
    jsonl = [
        line
        for part in (run_dir / "datasets/transllm/train.jsonl").glob("part-*.jsonl")
        for line in part.read_text().splitlines()
    ]
    assert len(jsonl) == built["datasets"]["transllm"]["train"]


def test_jobs_build_rebuilds_an_older_single_file_run_folder_without_importing_vllm(tmp_path):
    run_dir = fake_run(tmp_path)  # accepted.parquet as one file, as older run folders have it
    script = (
        "import sys\n"
        "from jobs.build import main\n"
        f"code = main(['--run', {str(run_dir)!r}, '--set', 'build.builders=[sphinx, crossin]', "
        "'--set', 'build.sphinx.shots=3', '--set', 'ray.num_cpus=2'])\n"
        # Ray runs the build now; the models stay out of it.
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('vllm', 'torch'))\n"
        "assert not heavy, heavy\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    built = json.loads((run_dir / "datasets/build.json").read_text())
    assert set(built["datasets"]) == {"sphinx", "crossin", "mix"}
    assert built["config"]["sphinx"]["shots"] == 3
    report = json.loads((run_dir / "report.json").read_text())
    assert report["accepted"] == len(make_rows()), "the run's own counts stay"
    assert report["datasets"]["sphinx"]["train"] == built["datasets"]["sphinx"]["train"]
