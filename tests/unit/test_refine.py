"""Ring (b): the judge → rewrite loop and X-Instruction's generation mode, with a scripted fake
generator: order of transitions, retries, best-version choice, token booking."""

import asyncio
import json

from engine.config import parse_config
from engine.protocols import Completion
from engine.recipes import row_machine
from engine.records import ACCEPTED, REJECTED
from engine.rows.refine import RefinementLoop
from tests.unit.test_translate_state_machine import FakeGenerator, FakeLangId, make_task

SOURCE = ("Explain the loop in `for i in range(3)` briefly.", "The loop runs the body three times, with i from 0 to 2.")


def answer(instruction: str, output: str) -> str:
    return json.dumps({"instruction": instruction, "output": output})


DRAFTS = [
    answer("Explique la boucle dans [[1]] brièvement.", "La boucle exécute le corps trois fois, avec i de 0 à 2."),
    answer(
        "Explique brièvement la boucle dans [[1]] pour le lecteur.",
        "La boucle exécute le corps trois fois, i allant de 0 à 2.",
    ),
    answer(
        "Explique très brièvement la boucle dans [[1]] ici.",
        "La boucle répète le corps trois fois, i prenant les valeurs 0 à 2.",
    ),
]


def kind(messages: list[dict]) -> str:
    if messages[0]["content"].startswith("You review a translation"):
        return "judge"
    if messages[-1]["content"].startswith("A reviewer checked"):
        return "rewrite"
    return "draft"


def criterion_of(messages) -> str:
    text = messages[0]["content"]
    for name, marker in (
        ("adequacy", "meaning is preserved"),
        ("fluency", "natural, grammatical"),
        ("preservation", "stay unchanged"),
    ):
        if marker in text:
            return name
    raise AssertionError(text)


class ScriptedByRubric(FakeGenerator):
    """Drafts and rewrites come from `drafts` in order; the judge scores the current version
    with `scores[version][criterion]` (2 when not given; a string is sent as the raw reply)."""

    def __init__(self, drafts: list[str], scores: list[dict[str, object]]):
        self.log: list[str] = []
        self.version = -1

        def reply(messages):
            what = kind(messages)
            self.log.append(what)
            if what != "judge":
                self.version += 1
                return Completion(drafts[self.version], 50, 30, "stop")
            value = scores[self.version].get(criterion_of(messages), 2)
            text = value if isinstance(value, str) else json.dumps({"feedback": "fix it", "score": value})
            return Completion(text, 80, 5, "stop")

        super().__init__(reply)


def translator(generator, rounds=2, **refine) -> RefinementLoop:
    config = parse_config(
        {
            "seeds": {"paths": ["unused.jsonl"]},
            "languages": {"targets": ["fr"]},
            "refine": {"rounds": rounds, **refine},
            "validation": {"max_attempts": 1},
        }
    )
    return row_machine(config, generator, FakeLangId())


def run(machine, task):
    return asyncio.run(machine(task))


def test_low_scores_trigger_a_rewrite_then_acceptance():
    gen = ScriptedByRubric(DRAFTS, [{"adequacy": 1}, {}])
    row = run(translator(gen), make_task(*SOURCE))
    assert gen.log == ["draft", "judge", "judge", "judge", "rewrite", "judge", "judge", "judge"]
    assert row["status"] == ACCEPTED
    assert (row["rounds"], row["best_round"]) == (1, 1)
    assert sorted({(s["round"], s["criterion"]) for s in row["scores"]}) == [
        (r, c) for r in (0, 1) for c in ("adequacy", "fluency", "preservation")
    ]
    assert row["instruction"] == "Explique brièvement la boucle dans `for i in range(3)` pour le lecteur."


def test_the_best_valid_version_is_kept_not_the_last():
    gen = ScriptedByRubric(
        DRAFTS, [{"fluency": 1}, {"adequacy": 1, "fluency": 1, "preservation": 1}, {"adequacy": 1, "fluency": 1}]
    )
    row = run(translator(gen, rounds=2), make_task(*SOURCE))
    assert row["rounds"] == 2 and row["best_round"] == 0
    assert row["status"] == ACCEPTED
    assert row["output"] == "La boucle exécute le corps trois fois, avec i de 0 à 2."
    assert len(row["scores"]) == 9


def test_an_invalid_rewrite_never_replaces_a_valid_version():
    broken = answer("Explique la boucle brièvement.", "La boucle exécute le corps trois fois.")  # marker dropped
    gen = ScriptedByRubric([DRAFTS[0], broken], [{"adequacy": 1}, {}])
    row = run(translator(gen), make_task(*SOURCE))
    assert row["status"] == ACCEPTED and row["best_round"] == 0
    assert row["attempt_reasons"] == ["span_missing:[[1]]"]
    assert "`for i in range(3)`" in row["instruction"]


def test_best_version_below_the_floor_is_rejected_with_its_scores():
    gen = ScriptedByRubric(DRAFTS, [{"adequacy": 0, "fluency": 0, "preservation": 1}] * 3)
    row = run(translator(gen, rounds=2), make_task(*SOURCE))
    assert row["status"] == REJECTED
    assert row["reason"] == "judge_below_threshold:0.33"
    assert len(row["scores"]) == 9


def test_unreadable_judge_output_is_recorded_not_raised():
    gen = ScriptedByRubric(DRAFTS, [{c: "no idea" for c in ("adequacy", "fluency", "preservation")}] * 3)
    row = run(translator(gen, rounds=1), make_task(*SOURCE))
    assert row["status"] == REJECTED and row["reason"] == "judge_unparsed"
    assert all(s["score"] is None for s in row["scores"])


def test_rounds_zero_turns_judging_off():
    gen = ScriptedByRubric(DRAFTS, [{}])
    row = run(translator(gen, rounds=0), make_task(*SOURCE))
    assert gen.log == ["draft"] and not row.get("scores") and row["status"] == ACCEPTED
    assert row["prompt_version"] == "translate.v1"


def test_tokens_are_booked_by_phase():
    gen = ScriptedByRubric(DRAFTS, [{"adequacy": 1}, {}])
    row = run(translator(gen), make_task(*SOURCE))
    assert (row["tokens_draft"], row["tokens_rewrite"], row["tokens_judge"]) == (30, 30, 6 * 5)
    assert row["completion_tokens"] == 30 + 30 + 30
    assert row["prompt_version"] == "translate.v1+judge.v1"


# X-Instruction -------------------------------------------------------------------------------

FRENCH_TEXT = "Le pain lève parce que la levure produit du gaz carbonique qui reste piégé dans la pâte."


class XScripted(FakeGenerator):
    def __init__(self, instructions: list[str], labels: list[str]):
        self.log: list[str] = []

        def reply(messages):
            if messages[0]["content"].startswith("You check a pair"):
                self.log.append("judge")
                return Completion(
                    json.dumps({"feedback": "be more specific", "label": labels[self.log.count("judge") - 1]}),
                    60,
                    6,
                    "stop",
                )
            self.log.append("write")
            return Completion(json.dumps({"instruction": instructions[self.log.count("write") - 1]}), 60, 12, "stop")

        super().__init__(reply)


def writer(generator, rounds=2, **refine) -> RefinementLoop:
    config = parse_config(
        {
            "recipe": "xinstruction",
            "seeds": {"paths": ["unused.jsonl"]},
            "languages": {"targets": ["fr"]},
            "refine": {"rounds": rounds, **refine},
            "validation": {"max_attempts": 2},
        }
    )
    return row_machine(config, generator, FakeLangId())


def text_task(text=FRENCH_TEXT, lang="fr"):
    return {
        "id": "t1",
        "seed_id": "txt-1",
        "recipe": "xinstruction",
        "lang": lang,
        "src_instruction": "",
        "src_input": "",
        "src_output": text,
        "source": "t.jsonl:1",
    }


def test_xinstruction_medium_is_rewritten_then_good_is_kept():
    gen = XScripted(
        ["Tell me about bread.", "Why does bread dough rise when it is made with yeast?"], ["medium", "good"]
    )
    row = run(writer(gen), text_task())
    assert gen.log == ["write", "judge", "write", "judge"]
    assert row["status"] == ACCEPTED
    assert row["instruction"] == "Why does bread dough rise when it is made with yeast? Answer in French."
    assert row["output"] == FRENCH_TEXT
    assert [s["score"] for s in row["scores"]] == [1.0, 2.0]


def test_xinstruction_bad_is_rejected():
    gen = XScripted(["Write a poem about the sea."], ["bad"])
    row = run(writer(gen), text_task())
    assert row["status"] == REJECTED and row["reason"] == "judge_bad"


def test_xinstruction_mislabelled_text_is_rejected_before_any_model_call():
    gen = XScripted(["unused"], ["good"])
    row = run(writer(gen), text_task(text="Der Hund und der Mann gehen spazieren.", lang="fr"))
    assert row["status"] == REJECTED and row["reason"] == "wrong_language:de"
    assert gen.log == []


def test_xinstruction_instruction_must_be_english():
    gen = XScripted(["Explique le pain et la levure.", "Why does bread rise with yeast?"], ["good"])
    row = run(writer(gen, rounds=1), text_task())
    assert row["attempt_reasons"] == ["wrong_language:fr"]
    assert row["status"] == ACCEPTED and row["instruction"].startswith("Why does bread rise")
