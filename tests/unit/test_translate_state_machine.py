"""Ring (b): the per-row translation state machine, driven by a scripted fake generator.

draft → parse → restore spans → validate → (retry with feedback) → accepted | rejected
"""

import asyncio
import json
import re
from collections.abc import Callable

import pytest

from engine.config import parse_config
from engine.protocols import ERROR, TOO_LONG, Completion, GenParams
from engine.recipes import row_machine
from engine.records import ACCEPTED, REJECTED, TASK_COLUMNS
from engine.rows.prompts import TRANSLATE_VERSION
from engine.rows.refine import RefinementLoop

Reply = Completion | str


class FakeGenerator:
    """A Generator that answers from a script (a list, one reply per request) or a function of
    the request's messages, and records every request it got."""

    model_name = "fake-model"
    backend = "fake"

    def __init__(self, script: list[Reply] | Callable[[list[dict]], Reply]):
        self.script = script
        self.requests: list[tuple[list[dict], GenParams]] = []
        self.in_flight = self.peak_in_flight = 0

    async def generate(self, messages: list[dict], params: GenParams) -> Completion:
        self.requests.append(([dict(m) for m in messages], params))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        await asyncio.sleep(0)  # yield, as a real engine would: other rows get to send theirs
        self.in_flight -= 1
        reply = self.script(messages) if callable(self.script) else self.script[len(self.requests) - 1]
        return reply if isinstance(reply, Completion) else Completion(reply, 100, 20, "stop")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class FakeLangId:
    """Language ID by marker words: a text with a French article is French, else English."""

    MARKERS = {"le": "fr", "la": "fr", "les": "fr", "und": "de", "der": "de"}

    def has_label(self, label: str) -> bool:
        return True

    def predict(self, text: str) -> tuple[str, float]:
        for word in re.findall(r"\w+", text.lower()):
            if word in self.MARKERS:
                return self.MARKERS[word], 0.97
        return "en", 0.99


def make_translator(generator: FakeGenerator, model: dict | None = None, **validation) -> RefinementLoop:
    config = parse_config(
        {
            "seeds": {"paths": ["unused.jsonl"]},
            "languages": {"targets": ["fr"]},
            "model": model or {},
            "validation": validation,
        }
    )
    return row_machine(config, generator, FakeLangId())


def make_task(instruction: str, output: str, input: str = "", lang: str = "fr", seed_id: str = "s1") -> dict:
    return {
        "id": f"row-{seed_id}-{lang}",
        "seed_id": seed_id,
        "recipe": "sphinx",
        "lang": lang,
        "src_instruction": instruction,
        "src_input": input,
        "src_output": output,
        "source": "seeds.jsonl:1",
    }


def answer(**fields: str) -> str:
    return json.dumps(fields, ensure_ascii=False)


def run_rows(script, tasks: list[dict], **validation) -> tuple[list[dict], FakeGenerator]:
    generator = FakeGenerator(script)
    translator = make_translator(generator, **validation)

    async def all_rows():
        return await asyncio.gather(*(translator(task) for task in tasks))

    return asyncio.run(all_rows()), generator


def run_row(script, task: dict | None = None, **validation) -> tuple[dict, FakeGenerator]:
    rows, generator = run_rows(script, [task or CODE_TASK], **validation)
    return rows[0], generator


# A source with inline code and a URL: protected as [[1]] [[2]] (instruction) and [[3]] (output).
CODE_TASK = make_task(
    "Explain what `git status` shows and where https://git-scm.com/docs/git-status documents it.",
    "It lists changed files. Run `git status -s` for a shorter view of the same list.",
)
FR_INSTRUCTION = "Expliquez ce que [[1]] affiche et où la page [[2]] le documente."
FR_OUTPUT = "La commande liste les fichiers modifiés. Lancez [[3]] pour une vue plus courte de la liste."
GOOD = answer(instruction=FR_INSTRUCTION, output=FR_OUTPUT)


def test_valid_first_draft_is_accepted_with_spans_restored_byte_identically():
    row, generator = run_row([GOOD])
    assert row["status"] == ACCEPTED and row["reason"] is None
    assert row["attempts"] == 1 and row["attempt_reasons"] == []
    assert (
        row["instruction"]
        == "Expliquez ce que `git status` affiche et où la page https://git-scm.com/docs/git-status le documente."
    )
    assert (
        row["output"]
        == "La commande liste les fichiers modifiés. Lancez `git status -s` pour une vue plus courte de la liste."
    )
    assert row["input"] == ""
    assert row["protected_spans"] == ["`git status`", "https://git-scm.com/docs/git-status", "`git status -s`"]
    assert (row["lid_label"], row["lid_confidence"], row["lid_method"]) == ("fr", 0.97, "fasttext")
    assert (row["model"], row["backend"], row["prompt_version"]) == ("smollm2-135m-instruct", "fake", TRANSLATE_VERSION)
    assert all(row[column] == CODE_TASK[column] for column in TASK_COLUMNS)
    assert len(generator.requests) == 1


def test_the_model_sees_sentinels_not_the_spans():
    _, generator = run_row([GOOD])
    messages, params = generator.requests[0]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "French" in messages[0]["content"]
    sent = json.loads(messages[1]["content"])
    assert sent == {
        "instruction": "Explain what [[1]] shows and where [[2]] documents it.",
        "output": "It lists changed files. Run [[3]] for a shorter view of the same list.",
    }
    assert "git-scm.com" not in messages[1]["content"]
    assert params.json_schema["required"] == ["instruction", "output"]  # the empty input is left out
    assert 1 <= params.max_tokens <= 512


def test_structured_output_off_sends_no_schema():
    generator = FakeGenerator([GOOD])
    row = asyncio.run(make_translator(generator, model={"structured_output": False})(CODE_TASK))
    assert row["status"] == ACCEPTED
    assert generator.requests[0][1].json_schema is None


def test_invalid_draft_is_retried_with_the_bad_answer_and_feedback():
    bad = answer(instruction="Expliquez ce que [[1]] affiche et où la page le documente.", output=FR_OUTPUT)
    row, generator = run_row([bad, GOOD])
    assert row["status"] == ACCEPTED
    assert row["attempts"] == 2 and row["attempt_reasons"] == ["span_missing:[[2]]"]
    first, second = (messages for messages, _ in generator.requests)
    assert second[: len(first)] == first
    assert second[len(first)] == {"role": "assistant", "content": bad}
    feedback = second[len(first) + 1]
    assert feedback["role"] == "user" and "[[2]]" in feedback["content"]
    assert len(second) == len(first) + 2


def test_after_max_attempts_invalid_drafts_the_row_is_rejected_with_every_reason():
    english = answer(
        instruction="Describe what [[1]] prints and where [[2]] explains it.",
        output="It shows modified files. Use [[3]] to get a shorter view of that list.",
    )
    row, generator = run_row(["I am sorry, I cannot do that.", GOOD.replace("[[1]]", ""), english], max_attempts=3)
    assert row["status"] == REJECTED
    assert row["attempts"] == 3 and len(generator.requests) == 3
    assert row["attempt_reasons"] == ["parse_no_json", "span_missing:[[1]]", "wrong_language:en"]
    assert row["reason"] == "wrong_language:en"
    # A rejected row keeps its last readable draft, spans restored, for a person to look at.
    assert (
        row["instruction"]
        == "Describe what `git status` prints and where https://git-scm.com/docs/git-status explains it."
    )
    assert row["lid_label"] == "en"
    assert len(generator.requests[2][0]) == 2 + 2 * 2  # system, user, then (draft, feedback) twice


@pytest.mark.parametrize(
    "draft, reason",
    [
        ("no JSON here", "parse_no_json"),
        ('{"instruction": "Expliquez ce que [[1]]', "parse_truncated"),
        (answer(instruction=FR_INSTRUCTION), "parse_missing_key:output"),
        (answer(instruction=FR_INSTRUCTION.replace("[[2]]", "[[2]] [[2]]"), output=FR_OUTPUT), "span_duplicated:[[2]]"),
        (answer(instruction=FR_INSTRUCTION + " [[3]]", output=FR_OUTPUT.replace("[[3]]", "")), "span_unknown:[[3]]"),
        (answer(instruction=FR_INSTRUCTION.replace("[[2]]", "[[ 2 ]]"), output=FR_OUTPUT), "span_missing:[[2]]"),
        (answer(instruction=FR_INSTRUCTION, output=" "), "span_missing:[[3]]"),
        (answer(instruction=FR_INSTRUCTION, output=FR_OUTPUT + " Et le reste." * 30), "degenerate"),
        (
            answer(instruction=FR_INSTRUCTION, output=FR_OUTPUT + "".join(f" mot{i}" for i in range(80))),
            "length_ratio:",
        ),
        (answer(instruction="Describe [[1]] and [[2]] in other words please.", output=FR_OUTPUT), "wrong_language:en"),
    ],
)
def test_each_kind_of_bad_draft_is_rejected_with_its_reason(draft, reason):
    row, _ = run_row([draft], max_attempts=1)
    assert row["status"] == REJECTED
    assert row["reason"].startswith(reason)
    assert row["attempt_reasons"] == [row["reason"]]


def test_too_long_is_rejected_without_retry():
    row, generator = run_row([Completion("", 4000, 0, TOO_LONG), GOOD], max_attempts=3)
    assert row["status"] == REJECTED and row["reason"] == "too_long"
    assert row["attempts"] == 1 and len(generator.requests) == 1
    assert row["prompt_tokens"] == 4000


def test_generation_errors_are_retried_then_rejected():
    failures = [Completion("timeout after 60 s", 0, 0, ERROR), Completion("HTTP 503", 0, 0, ERROR)]
    row, generator = run_row(failures)
    assert row["status"] == REJECTED
    assert row["reason"] == "generation_error:HTTP 503"
    assert row["attempt_reasons"] == ["generation_error:timeout after 60 s", "generation_error:HTTP 503"]
    # A failed request says nothing about the draft: the retry is the same request, no feedback.
    assert generator.requests[0][0] == generator.requests[1][0]


def test_a_generation_error_then_a_good_draft_is_accepted():
    row, _ = run_row([Completion("timeout", 0, 0, ERROR), GOOD])
    assert row["status"] == ACCEPTED
    assert row["attempts"] == 2 and row["attempt_reasons"] == ["generation_error:timeout"]


def test_long_error_text_is_cut():
    row, _ = run_row([Completion("x" * 1000, 0, 0, ERROR)], max_attempts=1)
    assert row["reason"].startswith("generation_error:x") and len(row["reason"]) <= 200


GRAMMAR_TASK = make_task(
    "Correct the grammar of the sentence below and explain your change.",
    "The corrected sentence is: She goes to school every day. The verb must agree with the subject.",
    input="She go to school every day.",
)
FR_GRAMMAR_OUTPUT = "La phrase corrigée est : She goes to school every day. Le verbe doit s'accorder avec le sujet."


def test_input_may_stay_identical_to_the_source():
    draft = answer(
        instruction="Corrigez la grammaire de la phrase ci-dessous et expliquez la correction.",
        input=GRAMMAR_TASK["src_input"],
        output=FR_GRAMMAR_OUTPUT,
    )
    row, _ = run_row([draft], GRAMMAR_TASK, max_attempts=1)
    assert row["status"] == ACCEPTED
    assert row["input"] == "She go to school every day."


def test_instruction_may_not_stay_untranslated():
    draft = answer(
        instruction=GRAMMAR_TASK["src_instruction"], input=GRAMMAR_TASK["src_input"], output=FR_GRAMMAR_OUTPUT
    )
    row, generator = run_row([draft], GRAMMAR_TASK, max_attempts=1)
    assert row["status"] == REJECTED and row["reason"] == "untranslated"
    assert generator.requests[0][1].json_schema["required"] == ["instruction", "input", "output"]


def test_token_counts_add_up_over_attempts():
    script = [
        Completion("not json", 100, 30, "stop"),
        Completion("timeout", 150, 0, ERROR),
        Completion(GOOD, 210, 45, "stop"),
    ]
    row, _ = run_row(script, max_attempts=3)
    assert row["status"] == ACCEPTED and row["attempts"] == 3
    assert (row["prompt_tokens"], row["completion_tokens"]) == (460, 75)


def test_token_counts_add_up_on_rejected_rows():
    row, _ = run_row([Completion("no", 100, 5, "stop"), Completion("nope", 120, 7, "stop")])
    assert row["status"] == REJECTED
    assert (row["prompt_tokens"], row["completion_tokens"]) == (220, 12)


def answer_by_content(messages: list[dict]) -> Completion:
    """Translate whatever row asked: the reply depends only on the request."""
    source = json.loads(messages[1]["content"])
    number = re.search(r"\d+", source["instruction"]).group()
    retry = len(messages) > 2
    if number == "7" and not retry:  # one row needs a second draft: it must not disturb others
        return Completion(answer(instruction="oops", output="oops"), 10, 1, "stop")
    return Completion(
        answer(
            instruction=f"Décrivez la chose numéro {number} en une seule phrase.",
            output=f"La chose numéro {number} est petite, ronde et les enfants l'aiment.",
        ),
        10 + int(number),
        int(number),
        "stop",
    )


def test_many_rows_run_concurrently_and_each_gets_its_own_answer():
    tasks = [
        make_task(
            f"Describe thing number {i} in one single sentence.",
            f"Thing number {i} is small, round and loved by children.",
            seed_id=f"s{i}",
        )
        for i in range(20)
    ]
    rows, generator = run_rows(answer_by_content, tasks)
    assert generator.peak_in_flight > 1  # the rows overlapped: no row waited for another to finish
    assert len(generator.requests) == 21
    for i, (task, row) in enumerate(zip(tasks, rows)):
        assert row["id"] == task["id"]
        assert row["status"] == ACCEPTED, row["attempt_reasons"]
        assert row["instruction"] == f"Décrivez la chose numéro {i} en une seule phrase."
        assert row["attempts"] == (2 if i == 7 else 1)
        assert row["completion_tokens"] == (i + 1 if i == 7 else i)
