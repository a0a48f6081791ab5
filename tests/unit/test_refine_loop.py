"""Ring (a)/(b): the refinement loop's named pieces, and what both recipes now share: a rejected
row keeps its last draft and names the field its reason is about."""

import asyncio
import json

import pytest

from engine.config import parse_config
from engine.protocols import Completion
from engine.recipes import prompt_version, recipe_spec, row_machine
from engine.records import REJECTED, to_table
from engine.rows.refine import Draft, Judgement, Version, best_version, final_verdict, should_rewrite
from engine.rows.translate import TranslationRecipe
from engine.rows.xinstruct import InstructionRecipe
from tests.unit.test_refine import text_task
from tests.unit.test_translate_state_machine import CODE_TASK, FakeGenerator, FakeLangId


def config(recipe="sphinx", rounds=0, **refine):
    return parse_config(
        {
            "recipe": recipe,
            "seeds": {"paths": ["x.jsonl"]},
            "languages": {"targets": ["fr"]},
            "refine": {"rounds": rounds, **refine},
            "validation": {"max_attempts": 2},
        }
    )


def version(value, round_no):
    return Version(value, round_no, Draft(f"v{round_no}", {}))


@pytest.mark.parametrize(
    "values, kept",
    [
        ([1.0, 2.0], 1),
        ([2.0, 1.0], 0),
        ([1.5, 1.5, 1.5], 0),  # ties keep the earlier version
        ([None, 0.0], 1),  # an unreadable judgement counts below every score
        ([None, None], 0),
        ([0.0, 2.0, 2.0], 1),
    ],
)
def test_best_version_rule(values, kept):
    assert best_version([version(v, i) for i, v in enumerate(values)]).round == kept


def test_final_verdict_of_each_recipe():
    translation, pair = (
        TranslationRecipe(config(reject_below=1.0), FakeLangId()),
        InstructionRecipe(config("xinstruction", accept_medium=False), FakeLangId()),
    )
    assert final_verdict(translation, version(None, 0)) == "judge_unparsed"
    assert final_verdict(translation, version(0.5, 0)) == "judge_below_threshold:0.50"
    assert final_verdict(translation, version(1.0, 0)) is None
    assert [final_verdict(pair, version(v, 0)) for v in (0.0, 1.0, 2.0, None)] == [
        "judge_bad",
        "judge_medium",
        None,
        "judge_unparsed",
    ]


def test_should_rewrite_until_settled_or_out_of_rounds():
    open_, settled = Judgement(1.0, [], False), Judgement(2.0, [], True)
    assert should_rewrite(open_, 0, 2) and should_rewrite(open_, 1, 2)
    assert not should_rewrite(open_, 2, 2) and not should_rewrite(settled, 0, 2)


@pytest.mark.parametrize(
    "recipe, rounds, expected",
    [
        ("sphinx", 0, "translate.v1"),
        ("sphinx", 2, "translate.v1+judge.v1"),
        ("xinstruction", 0, "xinstruct.v1"),
        ("xinstruction", 1, "xinstruct.v1+xjudge.v1"),
    ],
)
def test_one_prompt_version_for_ids_and_rows(recipe, rounds, expected):
    cfg = config(recipe, rounds)
    assert prompt_version(cfg) == expected
    assert row_machine(cfg, FakeGenerator([]), FakeLangId()).prompt_version == expected
    assert recipe_spec(cfg).recipe in (TranslationRecipe, InstructionRecipe)


def test_prepared_request_is_what_the_row_machine_sends():
    generator = FakeGenerator(["not json"] * 2)
    recipe = TranslationRecipe(config(), FakeLangId())
    request = recipe.prepare(CODE_TASK, generator.count_tokens)
    asyncio.run(row_machine(config(), generator, FakeLangId())(CODE_TASK))
    messages, params = generator.requests[0]
    assert messages == request.messages and params == request.params
    assert request.columns["protected_spans"] == [
        "`git status`",
        "https://git-scm.com/docs/git-status",
        "`git status -s`",
    ]


FRENCH_TEXT = "Le pain lève parce que la levure produit du gaz carbonique qui reste piégé dans la pâte."


def test_a_rejected_xinstruction_row_keeps_its_draft_and_names_the_field():
    generator = FakeGenerator([json.dumps({"instruction": "Explique le pain et la levure."})] * 2)
    task = text_task(FRENCH_TEXT)
    row = asyncio.run(row_machine(config("xinstruction", 1), generator, FakeLangId())(task))
    assert (row["status"], row["reason"], row["reason_field"]) == (REJECTED, "wrong_language:fr", "instruction")
    assert row["instruction"] == "Explique le pain et la levure." and row["output"] == FRENCH_TEXT
    assert to_table([row]).column("reason_field").to_pylist() == ["instruction"]


def test_a_translation_row_rejected_for_a_marker_keeps_the_draft_as_written():
    broken = json.dumps(
        {"instruction": "Expliquez ce que [[1]] affiche.", "output": "La liste. Lancez [[3]] pour une vue courte."}
    )
    row = asyncio.run(row_machine(config(), FakeGenerator([broken] * 2), FakeLangId())(CODE_TASK))
    assert (row["reason"], row["reason_field"]) == ("span_missing:[[2]]", "instruction")
    assert row["instruction"] == "Expliquez ce que [[1]] affiche."  # as the model wrote it: the marker shows what broke
    assert row["output"] == "La liste. Lancez `git status -s` pour une vue courte."


def test_a_whole_reply_reason_names_no_field():
    row = asyncio.run(
        row_machine(config(), FakeGenerator([Completion("x", 5, 1, "too_long")]), FakeLangId())(CODE_TASK)
    )
    assert (row["reason"], row["reason_field"]) == ("too_long", None)


def test_an_added_check_runs_after_the_built_in_ones_and_is_retried_with_feedback():
    seen = []

    def meaning_check(source, drafted, language):
        seen.append((sorted(source), sorted(drafted), language.code))
        verdict = None if "trois" in drafted["output"] else ("low_similarity:output:0.10", "output")
        return (*(verdict or (None, None)), {"lid_method": "checked"})

    first = json.dumps(
        {
            "instruction": "Expliquez ce que [[1]] affiche et où la page [[2]] le documente.",
            "output": "La liste. Lancez [[3]] ici.",
        }
    )
    second = json.dumps(
        {
            "instruction": "Expliquez ce que [[1]] affiche et où la page [[2]] le documente.",
            "output": "La liste des trois. Lancez [[3]] ici.",
        }
    )
    generator = FakeGenerator([first, second])
    row = asyncio.run(row_machine(config(), generator, FakeLangId(), checks=[meaning_check])(CODE_TASK))
    assert row["status"] == "accepted" and row["attempt_reasons"] == ["low_similarity:output:0.10"]
    assert row["lid_method"] == "checked"  # the check's columns reach the row
    assert seen[0] == (["instruction", "output"], ["instruction", "output"], "fr")
    feedback = generator.requests[1][0][-1]["content"]
    assert feedback.startswith("The output did not keep the meaning of the source")


def test_an_added_check_sees_xinstructions_instruction_and_text():
    seen = []
    generator = FakeGenerator(
        [json.dumps({"instruction": "Why does bread dough rise when it is made with yeast?"})] * 2
    )
    task = text_task(FRENCH_TEXT)

    def check(source, drafted, language):
        seen.append((source, drafted))
        return "low_similarity:instruction:0.20", "instruction", {}

    row = asyncio.run(row_machine(config("xinstruction"), generator, FakeLangId(), checks=[check])(task))
    assert seen[0] == (
        {"output": FRENCH_TEXT},
        {"instruction": "Why does bread dough rise when it is made with yeast?"},
    )
    assert (row["reason"], row["reason_field"]) == ("low_similarity:instruction:0.20", "instruction")


def test_the_steps_a_driver_sees_draft_judge_rewrite_judge():
    """The row machine's step API, driven by hand: what each step asks, and the row once done."""
    from engine.rows.refine import DRAFT, JUDGE, REWRITE

    good = json.dumps(
        {
            "instruction": "Expliquez ce que [[1]] affiche et où la page [[2]] le documente.",
            "output": "La liste des fichiers modifiés. Lancez [[3]] pour une vue courte de la liste.",
        }
    )
    machine = row_machine(config(rounds=1, criteria=["adequacy"]), FakeGenerator([]), FakeLangId())
    state = machine.start(CODE_TASK)
    seen = []
    while not state.done:
        asks = machine.next_requests(state)
        seen.append([(ask.phase, ask.round, ask.attempt) for ask in asks])
        if asks[0].phase == JUDGE:
            replies = [
                Completion(json.dumps({"feedback": "ok", "score": 1 if ask.round == 0 else 2}), 10, 3, "stop")
                for ask in asks
            ]
        else:
            replies = [Completion("not json" if len(seen) == 1 else good, 10, 20, "stop")]
        machine.advance(state, replies)
    assert seen == [[(DRAFT, 0, 1)], [(DRAFT, 0, 2)], [(JUDGE, 0, 1)], [(REWRITE, 1, 1)], [(JUDGE, 1, 1)]]
    assert machine.next_requests(state) == []
    row = state.row
    assert (row["status"], row["rounds"], row["best_round"], row["attempts"]) == ("accepted", 1, 1, 3)
    assert (row["tokens_draft"], row["tokens_judge"], row["tokens_rewrite"]) == (40, 6, 20)
    with pytest.raises(ValueError):
        machine.advance(state, [])


def test_a_screened_out_task_is_done_before_any_request():
    machine = row_machine(config("xinstruction"), FakeGenerator([]), FakeLangId())
    task = text_task("Der Hund und der Mann gehen zusammen spazieren.")
    state = machine.start(task)
    assert state.done and machine.next_requests(state) == []
    assert (state.row["status"], state.row["reason"], state.row["attempts"]) == (REJECTED, "wrong_language:de", 0)
