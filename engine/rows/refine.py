"""The one refinement loop every recipe runs, row by row, as a state machine of steps.

    screen ─▶ prepare ─▶ draft until valid ─┬▶ rejected (last draft, reason, field)
                                            └▶ judge ─▶ rewrite ─▶ draft until valid ─▶ judge …
                                                 ─▶ best version ─▶ verdict ─▶ round trip

A recipe (engine/rows/translate.py, engine/rows/xinstruct.py) brings what differs: its prompts,
its checks and its judge rubric (the `Recipe` protocol below). Everything else is here, once.
A check beyond a recipe's own (the adequacy gate) is an engine.protocols.ExtraCheck that the loop
runs itself, after `Recipe.check` passed. A recipe that offers `round_trip_fields` (translation)
may have its accepted version checked once more by the optional round trip (quality.round_trip,
engine/rows/round_trip.py).

The loop never calls a model. One row is a `RowState`; `RefinementLoop.start(task)` makes it,
`next_requests(state)` says what the row needs answered now (its `Ask`s: one draft or rewrite, the
judge's requests, the back-translations) and `advance(state, replies)` takes their answers
(engine.protocols.Completion, in the order asked) and moves the row on: checks a draft, retries
it with its failure as feedback, judges, rewrites, keeps the best version, decides. Once
`state.done`, `state.row` is the finished row (engine.records.SCHEMA columns).
Two drivers run these steps:
- `RefinementLoop.__call__(task)`: one row as a coroutine against the Generator (and the machine
  translator), as TranslateActor runs its rows. Rows run as independent coroutines, so an engine
  with continuous batching sees every in-flight request of every row at once: while some rows are
  being judged, others are drafting;
- benchmarks/refinement_chain.py: every row in stages, each stage one batch of the requests that
  all rows need at the same step (a ray.data.llm processor per stage).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, Protocol, TypeVar

from engine.config import Config
from engine.languages import Language
from engine.protocols import (
    ERROR,
    TOO_LONG,
    CheckResult,
    Completion,
    ExtraCheck,
    Generator,
    GenParams,
    MachineTranslator,
)
from engine.reasons import make_reason, retry_makes_sense
from engine.records import ACCEPTED, REJECTED
from engine.rows.round_trip import RoundTrip, RoundTripField
from engine.text.spans import translate_fields

# ----------------------------------------------------------------------------------------------------
# What the row state machine (engine/rows/refine.py) keeps of one row's drafts: the ledger of
# what it spent and why its drafts failed, a valid draft, the conversation a retry sends, and the
# thread its checks run on.
#
# A draft is generated, checked, and on failure retried with the failure as feedback, up to a
# number of attempts. Token use is booked per phase (draft, judge, rewrite, round_trip) so the
# report can show what refinement and the round-trip check cost.
# ----------------------------------------------------------------------------------------------------


@cache
def checks_thread() -> ThreadPoolExecutor:
    """The one thread a process runs its drafts' checks on. A check can take a while (the
    adequacy gate encodes every field: 10-200 ms on one core); off the event loop, the other
    rows keep submitting requests meanwhile. One thread: checks run one at a time, as on the
    loop, so a check's model and counters need no locks."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="draft-checks")


@dataclass
class Ledger:
    """Everything a row spent and every reason a draft failed, in order."""

    prompt_tokens: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"draft": 0, "judge": 0, "rewrite": 0, "round_trip": 0})
    attempts: int = 0  # draft and rewrite requests
    reasons: list[str] = field(default_factory=list)
    last_output: dict = field(default_factory=dict)  # the last readable draft, kept on rejected rows
    last_field: str | None = None  # the field the last reason is about (None: the whole reply)

    def book(self, phase: str, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.tokens[phase] += completion.completion_tokens

    def fail(self, reason: str, failed_field: str | None = None, output: dict | None = None) -> None:
        self.reasons.append(reason)
        self.last_field = failed_field
        self.last_output = output or self.last_output

    def columns(self) -> dict:
        return {
            "attempts": self.attempts,
            "attempt_reasons": list(self.reasons),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": sum(self.tokens.values()),
            "tokens_draft": self.tokens["draft"],
            "tokens_judge": self.tokens["judge"],
            "tokens_rewrite": self.tokens["rewrite"],
            "tokens_round_trip": self.tokens["round_trip"],
        }


@dataclass(frozen=True)
class Draft:
    text: str  # the model's answer as written (sentinels and all): what a rewrite builds on
    output: dict  # restored fields plus validation columns
    author: str = "llm"  # who wrote it: "llm", or "mt" (a machine-translation draft)


def retry_messages(messages: list[dict], reply: str, feedback: dict) -> list[dict]:
    """The conversation a retry sends: the failed reply as the assistant's turn, then the feedback
    on it (a new list; `messages` is left as it was)."""
    return messages + [{"role": "assistant", "content": reply}, feedback]


F = TypeVar("F")  # a recipe's facts: what its check and judge need of one request


@dataclass(frozen=True)
class Request(Generic[F]):
    """One row's drafting request, as its recipe prepared it."""

    task: dict
    language: Language
    messages: list[dict]  # the first draft's conversation
    params: GenParams  # drafts and rewrites alike
    facts: F  # the recipe's own dataclass (translate.TranslationFacts, xinstruct.InstructionFacts)
    columns: dict = field(default_factory=dict)  # recipe columns every row of this task carries


@dataclass(frozen=True)
class Judgement:
    """One judged version."""

    value: float | None  # what the best-version rule compares; None: no judge reply could be read
    scores: list[dict]  # {"round", "criterion", "score"} records for the row
    settled: bool  # a rewrite would not help: good enough, or beyond repair
    notes: Any = None  # what the rewrite prompt tells the model (the recipe reads it)


@dataclass(frozen=True)
class Version:
    value: float | None
    round: int  # 0 = the first valid draft
    draft: Draft


class Recipe(Protocol):
    """What a recipe brings to the loop: prompts, checks, judge rubric."""

    draft_version: str  # prompt template version of the draft
    judge_version: str  # prompt template version of the judge
    judge_params: GenParams

    def screen(self, task: dict) -> CheckResult:
        """Before any model call: a reason rejects the task unseen; its columns go into the row."""

    def prepare(self, task: dict, count_tokens) -> Request: ...

    def check(self, request: Request, text: str) -> CheckResult:
        """A draft's text → the recipe's own verdict, its columns the row's output fields. Never raises."""

    def checked_fields(self, request: Request, output: dict) -> tuple[dict[str, str], dict[str, str]]:
        """What an added check sees of a draft that passed `check`: (source fields, draft fields)."""

    def feedback(self, request: Request, reason: str, failed_field: str | None) -> dict: ...

    def judge_messages(self, request: Request, draft: Draft) -> list[list[dict]]:
        """One conversation per judge request (one per criterion, or one for the pair)."""

    def read_judgement(self, replies: list[str | None], round_no: int) -> Judgement: ...

    def rewrite_message(self, request: Request, judgement: Judgement) -> dict: ...

    def reject_reason(self, value: float) -> str | None:
        """The verdict on the best version's (readable) value: None accepts."""

    def output(self, request: Request, draft: Draft) -> dict:
        """The row's output columns for a kept version."""

    # Optional (translation has them; the loop skips the round trip for a recipe without):
    # round_trip_version: str, the back-translation prompt's version, and
    # round_trip_fields(request, draft) -> list[engine.rows.round_trip.RoundTripField];
    # machine_fields(request) -> dict[str, str], the protected fields a machine translator drafts
    # (markers in place), whose translation, as a JSON object, `check` reads like a model's answer,
    # and machine_keeps(sentence) -> bool, the sentences it must leave as written.


# What a row waits for (RowState.phase).
MACHINE = "machine"  # the machine translator's draft
DRAFT, REWRITE, JUDGE, ROUND_TRIP = "draft", "rewrite", "judge", "round_trip"
DONE = "done"


@dataclass(frozen=True)
class Ask:
    """One request a row needs answered: `messages` with `params` for the LLM, or, with
    `machine_fields` set, those protected fields for the machine translator (its answer is their
    translation as a JSON object; a failure of the translator is an ERROR completion)."""

    phase: str  # draft, rewrite, judge or round_trip: what the ledger books its tokens as
    messages: list[dict]
    params: GenParams
    round: int = 0  # the rewrite round it belongs to (0: the first draft and its judgement)
    attempt: int = 1  # of a draft or rewrite: which attempt
    machine_fields: dict[str, str] | None = None


@dataclass
class RowState:
    """One row on its way through the loop; `row` holds its columns so far, and once `phase` is
    DONE, the finished row."""

    task: dict
    row: dict
    by_machine: bool = False  # the machine translator drafts first
    phase: str = DONE
    request: Request | None = None
    ledger: Ledger = field(default_factory=Ledger)
    messages: list[dict] = field(default_factory=list)  # what the next draft or rewrite sends
    attempt: int = 1
    attempts_left: int = 0
    current: Draft | None = None  # the latest valid version
    versions: list[Version] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)
    round: int = 0  # rewrites started
    back: list[RoundTripField] = field(default_factory=list)  # the fields being back-translated

    @property
    def done(self) -> bool:
        return self.phase == DONE


def judge_reply(completion: Completion) -> str | None:
    """The judge's text, or None where the request failed or did not fit."""
    return completion.text if completion.finish_reason in ("stop", "length") else None


def should_rewrite(judgement: Judgement, round_no: int, rounds: int) -> bool:
    return round_no < rounds and not judgement.settled


def rewrite_request(recipe: Recipe, request: Request, current: Draft, judgement: Judgement) -> list[dict]:
    """The first draft's conversation, the current version as the model's answer, then the judge's notes."""
    return request.messages + [
        {"role": "assistant", "content": current.text},
        recipe.rewrite_message(request, judgement),
    ]


def best_version(versions: list[Version]) -> Version:
    """Best value wins; among equals the earlier version (a rewrite must earn its place). An
    unreadable judgement counts below every score. Invalid rewrites never become versions."""
    return max(versions, key=lambda v: (-1.0 if v.value is None else v.value, -v.round))


def final_verdict(recipe: Recipe, best: Version) -> str | None:
    """None accepts; else the reject reason of the kept version."""
    if best.value is None:
        return make_reason("judge_unparsed")
    return recipe.reject_reason(best.value)


def estimate_tokens(text: str) -> int:
    """Tokens of a text where no LLM tokenizer is loaded (a machine-translation-only actor): about 4 characters each."""
    return len(text) // 4 + 1


class RefinementLoop:
    """The row state machine of one recipe (see the module's docstring): `start`, `next_requests`,
    `advance`, and `__call__`, the coroutine that drives them for one task row.

    `generator` is the LLM (None where no language, judge or round trip needs it; a driver that
    sends the requests itself may pass any object with model_name, backend and count_tokens);
    `machine`, the machine translator that drafts the languages config.translators routes to "mt"
    (None: none); `checks` run, in order, on a draft that passed the recipe's own check.
    A machine draft is one attempt; with judging on, a failed one goes to the LLM with its failure
    as feedback, for the attempts left, and a valid one is judged and rewritten by the LLM (post-
    editing) like any draft. The row's `translator` says who wrote the kept version: llm, mt, or
    mt+llm (the LLM's repair or rewrite of a machine draft). `prompt_version` goes into every row
    (engine.recipes.prompt_version computes it)."""

    def __init__(
        self,
        recipe: Recipe,
        config: Config,
        generator: Generator | None,
        prompt_version: str,
        checks: Sequence[ExtraCheck] = (),
        machine: MachineTranslator | None = None,
    ):
        self.recipe, self.config, self.generator, self.machine = recipe, config, generator, machine
        self.prompt_version, self.checks = prompt_version, tuple(checks)
        self.count_tokens = generator.count_tokens if generator is not None else estimate_tokens
        wanted = config.quality.round_trip and getattr(recipe, "round_trip_version", None) is not None
        self.round_trip = RoundTrip(config, self.count_tokens) if wanted else None

    # ---------------------------------------------------------------- the steps

    def start(self, task: dict) -> RowState:
        """The row's state before any request: screened (a screened-out row is already done) and prepared."""
        by_machine = self.drafts_by_machine(task["lang"])
        state = RowState(
            task, {**task, **self.provenance(by_machine, None), "prompt_version": self.prompt_version}, by_machine
        )
        reason, failed_field, screened = self.recipe.screen(task)
        state.row.update(screened)
        if reason is not None:
            self._close(state, reason, failed_field)
            return state
        state.request = self.recipe.prepare(task, self.count_tokens)
        state.row.update(state.request.columns)
        state.messages = state.request.messages
        state.phase = MACHINE if by_machine else DRAFT
        state.attempts_left = 1 if by_machine else self.config.validation.max_attempts
        return state

    def next_requests(self, state: RowState) -> list[Ask]:
        """What the row needs answered before it can move on (nothing once it is done)."""
        request = state.request
        if state.phase == MACHINE:
            return [Ask(DRAFT, request.messages, request.params, machine_fields=self.recipe.machine_fields(request))]
        if state.phase in (DRAFT, REWRITE):
            return [Ask(state.phase, state.messages, request.params, state.round, state.attempt)]
        if state.phase == JUDGE:
            return [
                Ask(JUDGE, messages, self.recipe.judge_params, state.round)
                for messages in self.recipe.judge_messages(request, state.current)
            ]
        if state.phase == ROUND_TRIP:
            return [
                Ask(ROUND_TRIP, *self.round_trip.request(item, request.language.name), state.round)
                for item in state.back
            ]
        return []

    def advance(self, state: RowState, replies: Sequence[Completion]) -> None:
        """The answers to next_requests(state), in its order: the row moves on (the checks of a
        draft run here: a driver may call this off its event loop, see `checked_step`)."""
        if state.phase == MACHINE:
            self._machine_drafted(state, replies[0])
        elif state.phase in (DRAFT, REWRITE):
            self._drafted(state, replies[0])
        elif state.phase == JUDGE:
            self._judged(state, list(replies))
        elif state.phase == ROUND_TRIP:
            for reply in replies:
                state.ledger.book(ROUND_TRIP, reply)
            self._close(state, *self.round_trip.decide(state.back, list(replies)))
        else:
            raise ValueError(f"row {state.task['id']} is done: it takes no replies")

    @staticmethod
    def checked_step(state: RowState) -> bool:
        """Whether advance(state, …) runs checks (a draft's: the adequacy gate encodes texts)."""
        return state.phase in (MACHINE, DRAFT, REWRITE)

    # ---------------------------------------------------------------- the coroutine driver

    async def __call__(self, task: dict) -> dict:
        """One task row to its finished row: every step's requests sent at once, a draft's
        checks run on the check thread (engine.rows.refine.checks_thread), off the event loop."""
        state = self.start(task)
        while not state.done:
            replies = await asyncio.gather(*(self.answer(state, ask) for ask in self.next_requests(state)))
            if self.checked_step(state):
                await asyncio.get_running_loop().run_in_executor(checks_thread(), self.advance, state, replies)
            else:
                self.advance(state, replies)
        return state.row

    async def answer(self, state: RowState, ask: Ask) -> Completion:
        if ask.machine_fields is None:
            return await self.generator.generate(ask.messages, ask.params)
        language = state.request.language
        try:
            fields, _ = await translate_fields(
                ask.machine_fields, lambda units: self.machine.translate(units, language), self.recipe.machine_keeps
            )
        except Exception as error:  # noqa: BLE001 - a model failure is the row's reason, not the job's end
            return Completion(f"mt {type(error).__name__}: {error}", 0, 0, ERROR)
        return Completion(json.dumps(fields, ensure_ascii=False), 0, 0, "stop")

    # ---------------------------------------------------------------- transitions

    def check(self, request: Request, text: str) -> CheckResult:
        """The recipe's check, then the added checks in order; the first reason stops them. The
        columns of every check that ran are kept."""
        reason, failed_field, output = self.recipe.check(request, text)
        if reason is not None or not self.checks:
            return CheckResult(reason, failed_field, output)
        source, drafted = self.recipe.checked_fields(request, output)
        columns = dict(output)
        for extra in self.checks:
            reason, failed_field, more = extra(source, drafted, request.language)
            columns.update(more)
            if reason is not None:
                return CheckResult(reason, failed_field, columns)
        return CheckResult(None, None, columns)

    def _drafted(self, state: RowState, completion: Completion) -> None:
        """A draft or rewrite came back: valid, retried with feedback, or the phase failed."""
        ledger = state.ledger
        ledger.book(state.phase, completion)
        ledger.attempts += 1
        failed_field, output = None, {}
        if completion.finish_reason == TOO_LONG:
            reason = make_reason("too_long")  # not retried: a retry only makes the prompt longer
        elif completion.finish_reason == ERROR:
            reason = make_reason("generation_error", completion.text)[:200]
        else:
            reason, failed_field, output = self.check(state.request, completion.text)
            if reason is None:
                self._valid(state, Draft(completion.text, output))
                return
        ledger.fail(reason, failed_field, output)
        state.attempts_left -= 1
        if state.attempts_left > 0 and retry_makes_sense(reason):
            if completion.finish_reason != ERROR:  # a failed request is sent again as it was
                feedback = self.recipe.feedback(state.request, reason, failed_field)
                state.messages = retry_messages(state.messages, completion.text, feedback)
            state.attempt += 1
        else:
            self._invalid(state)

    def _machine_drafted(self, state: RowState, completion: Completion) -> None:
        """The machine translator's draft, checked like a model's. A failed one goes to the LLM
        (llm_repairs) as its failed answer, with the failure as feedback; a translator that
        failed or wrote nothing leaves the LLM a fresh draft."""
        ledger, request = state.ledger, state.request
        ledger.attempts += 1
        text = ""
        if completion.finish_reason == ERROR:
            ledger.fail(make_reason("generation_error", completion.text)[:200])
        else:
            text = completion.text
            reason, failed_field, output = self.check(request, text)
            if reason is None:
                self._valid(state, Draft(text, output, "mt"))
                return
            ledger.fail(reason, failed_field, output)
        if not self.llm_repairs(ledger):
            self._invalid(state)
            return
        feedback = self.recipe.feedback(request, ledger.reasons[-1], ledger.last_field)
        state.messages = retry_messages(request.messages, text, feedback) if text else request.messages
        state.phase, state.attempt, state.attempts_left = DRAFT, 2, self.config.validation.max_attempts - 1
        state.row.update(self.provenance(True, Draft("", {})))  # mt+llm, whatever the LLM's draft becomes

    def _valid(self, state: RowState, draft: Draft) -> None:
        state.current = draft
        if state.phase == REWRITE or self.config.refine.rounds > 0:
            state.phase = JUDGE
            return
        state.row.update(self.provenance(state.by_machine, draft))
        state.row.update(self.recipe.output(state.request, draft))
        self._settle(state, draft, None)

    def _invalid(self, state: RowState) -> None:
        """Every attempt failed: a first draft rejects the row, keeping its last draft; a rewrite
        ends the rounds (an invalid rewrite never replaces a valid version)."""
        if state.phase == REWRITE:
            self._conclude(state)
            return
        ledger = state.ledger
        state.row.update(ledger.last_output)
        self._close(state, ledger.reasons[-1], ledger.last_field)

    def _judged(self, state: RowState, replies: list[Completion]) -> None:
        for reply in replies:
            state.ledger.book(JUDGE, reply)
        judgement = self.recipe.read_judgement([judge_reply(reply) for reply in replies], state.round)
        state.scores += judgement.scores
        state.versions.append(Version(judgement.value, state.round, state.current))
        if not should_rewrite(judgement, state.round, self.config.refine.rounds):
            self._conclude(state)
            return
        state.messages = rewrite_request(self.recipe, state.request, state.current, judgement)
        state.round += 1
        state.phase, state.attempt, state.attempts_left = REWRITE, 1, self.config.validation.max_attempts

    def _conclude(self, state: RowState) -> None:
        """The rounds are over: the best version is kept, and judged."""
        best = best_version(state.versions)
        state.row.update(self.provenance(state.by_machine, best.draft))
        state.row.update(
            {
                **self.recipe.output(state.request, best.draft),
                "scores": state.scores,
                "rounds": state.round,
                "best_round": best.round,
            }
        )
        self._settle(state, best.draft, final_verdict(self.recipe, best))

    def _settle(self, state: RowState, kept: Draft, reason: str | None) -> None:
        """The loop's verdict; a version it accepted goes on to the round trip (when on)."""
        if reason is None and self.round_trip is not None:
            state.back = self.round_trip.chosen(self.recipe.round_trip_fields(state.request, kept))
            if state.back:
                state.phase = ROUND_TRIP
                return
            self._close(state, *self.round_trip.decide([], []))
            return
        self._close(state, reason, None)

    def _close(
        self, state: RowState, reason: str | None, failed_field: str | None, columns: dict | None = None
    ) -> None:
        """The row's fate: its columns, what it spent, its status."""
        state.row.update(columns or {})
        state.row.update(state.ledger.columns())
        state.row.update(status=ACCEPTED if reason is None else REJECTED, reason=reason, reason_field=failed_field)
        state.phase = DONE

    # ---------------------------------------------------------------- who drafts

    def drafts_by_machine(self, lang: str) -> bool:
        return self.machine is not None and self.config.translator_for(lang) == "mt"

    def llm_repairs(self, ledger: Ledger) -> bool:
        """Whether the LLM takes over a failed machine draft: only with judging on (the LLM is
        then at hand as post-editor), attempts left, and a failure that a new draft can fix."""
        return (
            self.generator is not None
            and self.config.refine.rounds > 0
            and self.config.validation.max_attempts > 1
            and retry_makes_sense(ledger.reasons[-1])
        )

    def provenance(self, by_machine: bool, kept: Draft | None) -> dict:
        """Who wrote the row: `model` and `backend` of the kept version's author (for a rejected
        row, of its last draft), `mt_model` wherever the machine translator drafted."""
        mt_model = self.machine.model_name if by_machine else None
        if by_machine and (kept is None or kept.author == "mt"):
            return {"model": mt_model, "backend": self.machine.backend, "mt_model": mt_model, "translator": "mt"}
        backend = self.generator.backend if self.generator is not None else self.config.model.backend
        return {
            "model": self.config.model.name,
            "backend": backend,
            "mt_model": mt_model,
            "translator": "mt+llm" if by_machine else "llm",
        }
