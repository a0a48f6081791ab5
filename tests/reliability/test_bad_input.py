"""The bad-input matrix of docs/reliability.md: each case is a clear error naming file, line and
field, or (on_bad_record: skip) a rejected row with that reason. No model is needed to decide
either, so these run the real job entry point up to planning, in milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from engine.config import parse_config
from engine.recipes import plan_run
from jobs.synthesize import main

GOOD = {"id": "ok-1", "instruction": "Name three colours.", "input": "", "output": "Red, green and blue."}

CASES = {
    # name: (JSONL line bytes, text the error must contain)
    "malformed_json": (b'{"id": "x", "instruction": "Hi"', "seeds.jsonl:2: malformed JSON"),
    "wrong_type": (
        json.dumps({**GOOD, "id": "x", "instruction": 42}).encode(),
        "seeds.jsonl:2: field 'instruction' must be a string",
    ),
    "null_field": (
        json.dumps({**GOOD, "id": "x", "output": None}).encode(),
        "seeds.jsonl:2: field 'output' is missing or null",
    ),
    "missing_field": (
        json.dumps({"id": "x", "instruction": "Hi there"}).encode(),
        "seeds.jsonl:2: field 'output' is missing or null",
    ),
    "empty_string": (
        json.dumps({**GOOD, "id": "x", "instruction": "   "}).encode(),
        "seeds.jsonl:2: field 'instruction' is empty",
    ),
    "non_utf8": (b'{"id": "x", "instruction": "caf\xe9", "output": "ok"}', "seeds.jsonl:2: not valid UTF-8"),
    "duplicate_id": (json.dumps(GOOD).encode(), "seeds.jsonl:2: field 'id': duplicate seed id 'ok-1'"),
    "not_an_object": (b'["a", "list"]', "seeds.jsonl:2: a record must be an object"),
}


def write_seeds(tmp_path: Path, bad_line: bytes) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + bad_line + b"\n")
    return path


def write_config(tmp_path: Path, seeds: Path, **extra) -> Path:
    config = {
        "run": {"output_dir": str(tmp_path / "run")},
        "seeds": {"paths": [str(seeds)]},
        "languages": {"targets": ["fr"]},
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_record_stops_the_job_naming_file_line_and_field(case, tmp_path, capsys):
    line, expected = CASES[case]
    config = write_config(tmp_path, write_seeds(tmp_path, line))
    assert main(["--config", str(config)]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run" / "shards").exists(), "nothing ran"


@pytest.mark.parametrize("case", sorted(CASES))
def test_on_bad_record_skip_turns_it_into_a_rejected_row(case, tmp_path):
    line, expected = CASES[case]
    seeds = write_seeds(tmp_path, line)
    config = parse_config({"seeds": {"paths": [str(seeds)], "on_bad_record": "skip"}, "languages": {"targets": ["fr"]}})
    plan = plan_run(config)
    tasks, decided, read = plan.tasks.tasks().to_pylist(), plan.decided, plan.read
    assert [task["seed_id"] for task in tasks] == ["ok-1"]
    assert len(decided) == 1 and read == 2
    assert decided[0]["status"] == "rejected"
    assert decided[0]["reason"].startswith("bad_record: ")
    assert expected.split(": ", 1)[1] in decided[0]["reason"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("languages.targets=[fr, xx]", "unknown language code 'xx'"),
        ("languages.targets=[fre]", "did you mean 'fr'"),
        ("validation.langid_treshold=0.5", "validation.langid_treshold: unknown key"),
        ("compute.actors=0", "compute.actors"),
    ],
)
def test_config_mistakes_are_named(override, expected, tmp_path, capsys):
    config = write_config(tmp_path, write_seeds(tmp_path, json.dumps({**GOOD, "id": "ok-2"}).encode()))
    assert main(["--config", str(config), "--set", override]) == 2
    assert expected in capsys.readouterr().err


def test_a_missing_seed_file_is_named(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "nope.jsonl")
    assert main(["--config", str(config)]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_seeds_that_are_not_english_become_rejected_rows(tmp_path):
    from actors.engines.langid import FastTextLangId

    french = {
        "id": "fr-1",
        "instruction": "Expliquez pourquoi le ciel est bleu pendant la journée.",
        "input": "",
        "output": "À cause de la diffusion.",
    }
    formula = {"id": "math-1", "instruction": "Solve for x: 3x + 7 = 22.", "input": "", "output": "x = 5"}
    path = tmp_path / "seeds.jsonl"
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in (GOOD, french, formula)) + "\n", encoding="utf-8"
    )
    config = parse_config({"seeds": {"paths": [str(path)]}, "languages": {"targets": ["de"]}})
    plan = plan_run(config, None, FastTextLangId())
    tasks, decided, read = plan.tasks.tasks().to_pylist(), plan.decided, plan.read
    assert read == 3
    assert sorted(task["seed_id"] for task in tasks) == ["math-1", "ok-1"], (
        "short formulas are too little text to judge"
    )
    assert [(row["seed_id"], row["reason"]) for row in decided] == [("fr-1", "seed_not_english:fr")]
