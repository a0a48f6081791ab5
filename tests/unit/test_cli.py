"""engine.cli: the parser, logging and exit codes every jobs/*.py main shares."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from engine.cli import exit_code, job_parser, run_main

ROOT = Path(__file__).resolve().parents[2]


class PlanError(RuntimeError):
    pass


class StageError(RuntimeError):
    pass


ERRORS = [((ValueError, PlanError), 2), (StageError, 3)]


def test_parser_takes_a_config_and_repeated_overrides():
    args = job_parser("jobs.x", "Title line.\n\nMore.").parse_args(
        ["--config", "c.yaml", "--set", "a.b=1", "--set", "c=[x]"]
    )
    assert args.config == "c.yaml" and args.overrides == ["a.b=1", "c=[x]"]


def test_required_optional_and_no_config():
    with pytest.raises(SystemExit):
        job_parser("jobs.x", None).parse_args([])
    assert job_parser("jobs.x", None, config="optional").parse_args([]).config is None
    bare = job_parser("jobs.x", None, config="none")
    with pytest.raises(SystemExit):
        bare.parse_args(["--config", "c.yaml"])


def test_description_is_the_docstrings_first_paragraph():
    parser = job_parser("jobs.x", "Fine-tune a model.\n\n    python -m jobs.x ...")
    assert parser.description == "Fine-tune a model." and parser.prog == "python -m jobs.x"


@pytest.mark.parametrize(
    "error, code", [(ValueError("v"), 2), (PlanError("p"), 2), (StageError("s"), 3), (KeyError("k"), None)]
)
def test_first_matching_error_class_gives_the_code(error, code):
    assert exit_code(error, ERRORS) == code


def test_run_main_returns_the_bodys_code_and_maps_listed_errors(capsys):
    parser = job_parser("jobs.x", None)
    assert run_main(parser, ["--config", "c"], lambda args: 1, ERRORS) == 1

    def fails(args):
        raise StageError("the stage died")

    assert run_main(parser, ["--config", "c"], fails, ERRORS) == 3
    assert capsys.readouterr().err.strip() == "error: the stage died"


class RecordingRay:
    """Stands in for the `ray` module: is_initialized/shutdown, and who shut it down."""

    def __init__(self, initialized: bool):
        self.initialized = initialized
        self.shut_down = False

    def is_initialized(self) -> bool:
        return self.initialized

    def shutdown(self) -> None:
        self.shut_down, self.initialized = True, False


@pytest.mark.parametrize("connected_before, left", [(False, True), (True, False)])
def test_a_failed_job_leaves_the_ray_it_connected_to_and_no_other(monkeypatch, capsys, connected_before, left):
    fake = RecordingRay(connected_before)
    monkeypatch.setitem(sys.modules, "ray", fake)

    def connects_then_fails(args):
        fake.initialized = True
        raise StageError("the stage died")

    assert run_main(job_parser("jobs.x", None), ["--config", "c"], connects_then_fails, ERRORS) == 3
    assert fake.shut_down is left
    assert capsys.readouterr().err.strip() == "error: the stage died"


def test_an_unlisted_error_keeps_its_traceback():
    def crashes(args):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_main(job_parser("jobs.x", None), ["--config", "c"], crashes, ERRORS)


def test_every_job_main_uses_the_shared_helper():
    """No job builds its own argparse or logging setup again."""
    for path in sorted((ROOT / "jobs").glob("*.py")):
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "main" in names, path.name
        assert "argparse" not in source and "basicConfig" not in source, path.name
        assert "run_main(" in source and "job_parser(" in source, path.name


def test_engine_cli_imports_nothing_heavy():
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse((ROOT / "engine/cli.py").read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in getattr(node, "names", [])
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(ast.parse((ROOT / "engine/cli.py").read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"ray", "vllm", "torch"}
