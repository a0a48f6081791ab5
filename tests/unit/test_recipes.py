"""Ring (a): the recipe registry (engine/recipes.py) is the one place that maps `recipe:` to code,
and every row decided before a model call has an id by one convention (engine.records.decided_row)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config import parse_config
from engine.recipes import RECIPES, plan_run, prompt_version, recipe_spec
from engine.records import decided_row, row_id

ROOT = Path(__file__).resolve().parents[2]


def test_no_recipe_branch_outside_the_registry():
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("engine", "actors", "jobs")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "engine/recipes.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"config\.recipe\s*[!=]=", line)
    ]
    assert not found, f"ask engine.recipes.recipe_spec(config) instead of comparing config.recipe: {found}"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_the_config_accepts_is_registered(name):
    config = parse_config({"recipe": name, "seeds": {"paths": ["x.jsonl"]}, "languages": {"targets": ["fr"]}})
    spec = recipe_spec(config)
    assert spec.name == name and spec.recipe.draft_version in prompt_version(config)


def test_a_decided_row_has_the_id_its_task_would_have():
    assert decided_row("s1", "sphinx", "translate.v1", "translator_unqualified", "fr")["id"] == row_id(
        "s1", "fr", "sphinx", "translate.v1"
    )
    seed_level = decided_row("s1", "sphinx", "translate.v1", "seed_not_english:fr", source="seeds.jsonl:1")
    assert seed_level["id"] == row_id("s1", "", "sphinx", "translate.v1") and seed_level["lang"] is None
    assert (seed_level["status"], seed_level["source"]) == ("rejected", "seeds.jsonl:1")


def test_bad_records_are_decided_rows_of_the_run(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text(
        '{"id": "ok-1", "instruction": "Say hi.", "output": "Hi."}\n{"id": "bad-1", "instruction": 3}\n',
        encoding="utf-8",
    )
    config = parse_config({"seeds": {"paths": [str(path)], "on_bad_record": "skip"}, "languages": {"targets": ["fr"]}})
    plan = plan_run(config)
    [bad] = plan.decided
    assert bad["id"] == row_id("bad-1", "", "sphinx", prompt_version(config)) and bad["reason"].startswith("bad_record")
