"""The one refinement loop every recipe runs, row by row, against a shared Generator.

    screen ─▶ prepare ─▶ draft until valid ─┬▶ rejected (last draft, reason, field)
                                            └▶ judge ─▶ rewrite ─▶ draft until valid ─▶ judge … ─▶ best version ─▶ verdict

A recipe (engine/rows/translate.py, engine/rows/xinstruct.py) brings what differs: its prompts,
its checks and its judge rubric (the `Recipe` protocol below). Everything else is here, once, as
small public functions, so a caller that batches the stages itself (the benchmarks' Ray Data
chain) applies the same rules: `Recipe.prepare`, `Recipe.check`, `judge_requests`,
`read_judgement`, `should_rewrite`, `rewrite_request`, `best_version`, `final_verdict`. A check
beyond a recipe's own (the adequacy gate) is an `ExtraCheck` in the list `row_machine` takes.
A recipe that offers `round_trip_fields` (translation) may have its accepted version checked once
more by the optional round trip (quality.round_trip, engine/rows/round_trip.py).

Rows run as independent coroutines, so an engine with continuous batching sees every in-flight
request of every row at once: while some rows are being judged, others are drafting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.config import Config
from engine.languages import Language
from engine.protocols import GenParams, Generator, MachineTranslator
from engine.reasons import make_reason, retry_makes_sense
from engine.records import ACCEPTED, REJECTED
from engine.rows.drafting import Check, Draft, Ledger, checks_thread, draft_until_valid, retry_messages
from engine.rows.prompts import prompt_version
from engine.rows.round_trip import RoundTrip
from engine.text.segments import translate_fields


# A check added to a recipe's own (the validation step's extension point): it sees a draft that
# passed every built-in check, as (source fields, draft fields, language), and returns
# (reason or None, failing field or None, columns for the row). Its reasons go in engine/reasons.py.
# Translation passes the English source and the restored translation, field by field;
# X-Instruction passes {"output": the text} and {"instruction": the English instruction}.
ExtraCheck = Callable[[dict[str, str], dict[str, str], Language], tuple[str | None, str | None, dict]]


def run_checks(checks: Sequence[ExtraCheck], source: dict[str, str], drafted: dict[str, str], language: Language) -> tuple[str | None, str | None, dict]:
    """The added checks in order; the first reason stops them. Columns of every check run are kept."""
    columns: dict = {}
    for check in checks:
        reason, failed_field, more = check(source, drafted, language)
        columns.update(more)
        if reason is not None:
            return reason, failed_field, columns
    return None, None, columns


@dataclass(frozen=True)
class Request:
    """One row's drafting request, as its recipe prepared it."""

    task: dict
    language: Language
    messages: list[dict]  # the first draft's conversation
    params: GenParams  # drafts and rewrites alike
    facts: dict = field(default_factory=dict)  # what the recipe's check and judge need (keys, spans, source)
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

    def screen(self, task: dict) -> tuple[str | None, str | None, dict]:
        """Before any model call: (reason or None, field, columns for the row)."""

    def prepare(self, task: dict, count_tokens) -> Request: ...

    def check(self, request: Request, text: str) -> tuple[str | None, str | None, dict]:
        """A draft's text → (reason or None, failing field or None, output columns). Never raises."""

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


def recipe_version(recipe: type | Recipe, rounds: int, round_trip: bool = False) -> str:
    """The rows' prompt version; the round trip counts only for a recipe that has one."""
    back = getattr(recipe, "round_trip_version", None) if round_trip else None
    return prompt_version(recipe.draft_version, recipe.judge_version, rounds, back)


def with_routing(version: str, config: Config) -> str:
    """The prompt version with the machine translator's part, where config.translators routes
    languages to it: another backend, model or routing means other rows. It reads the routing,
    not the targets, so a pool given some of the targets writes the plan's version."""
    if "mt" not in config.translators.values():
        return version
    routes = ",".join(f"{code}={translator}" for code, translator in sorted(config.translators.items()))
    return f"{version}+mt({config.mt.backend}:{config.mt.model}:{routes})"


def bind_check(recipe: Recipe, request: Request) -> Check:
    return lambda text: recipe.check(request, text)


async def draft(recipe: Recipe, generator: Generator, messages: list[dict], request: Request, ledger: Ledger,
                attempts: int, phase: str) -> Draft | None:
    """Draft (or rewrite) until the recipe's checks pass; None when every attempt failed."""
    feedback = lambda reason, failed_field: recipe.feedback(request, reason, failed_field)  # noqa: E731
    return await draft_until_valid(generator, messages, request.params, bind_check(recipe, request), feedback, attempts, ledger, phase)


async def machine_draft(recipe: Recipe, machine: MachineTranslator, request: Request, ledger: Ledger) -> tuple[Draft | None, str]:
    """One draft by the machine translator, checked like a model's: (the draft, or None when it
    failed, and its text, which an LLM repair takes as the failed answer). A failure of the
    translator itself is a failed draft (generation_error), never a crashed row."""
    ledger.attempts += 1
    try:
        fields, _ = await translate_fields(recipe.machine_fields(request), lambda units: machine.translate(units, request.language),
                                           recipe.machine_keeps)
    except Exception as error:  # noqa: BLE001 - a model failure is the row's reason, not the job's end
        ledger.fail(make_reason("generation_error", f"mt {type(error).__name__}: {error}")[:200])
        return None, ""
    text = json.dumps(fields, ensure_ascii=False)
    reason, failed_field, output = await asyncio.get_running_loop().run_in_executor(checks_thread(), recipe.check, request, text)
    if reason is None:
        return Draft(text, output, "mt"), text
    ledger.fail(reason, failed_field, output)
    return None, text


def judge_requests(recipe: Recipe, request: Request, version: Draft) -> list[list[dict]]:
    return recipe.judge_messages(request, version)


def judge_reply(completion) -> str | None:
    """The judge's text, or None where the request failed or did not fit."""
    return completion.text if completion.finish_reason in ("stop", "length") else None


def read_judgement(recipe: Recipe, replies: list[str | None], round_no: int) -> Judgement:
    return recipe.read_judgement(replies, round_no)


async def judge(recipe: Recipe, generator: Generator, request: Request, version: Draft, ledger: Ledger, round_no: int) -> Judgement:
    async def one(messages: list[dict]) -> str | None:
        completion = await generator.generate(messages, recipe.judge_params)
        ledger.book("judge", completion)
        return judge_reply(completion)

    replies = await asyncio.gather(*(one(m) for m in judge_requests(recipe, request, version)))
    return read_judgement(recipe, list(replies), round_no)


def should_rewrite(judgement: Judgement, round_no: int, rounds: int) -> bool:
    return round_no < rounds and not judgement.settled


def rewrite_request(recipe: Recipe, request: Request, current: Draft, judgement: Judgement) -> list[dict]:
    """The first draft's conversation, the current version as the model's answer, then the judge's notes."""
    return request.messages + [{"role": "assistant", "content": current.text}, recipe.rewrite_message(request, judgement)]


def best_version(versions: list[Version]) -> Version:
    """Best value wins; among equals the earlier version (a rewrite must earn its place). An
    unreadable judgement counts below every score. Invalid rewrites never become versions."""
    return max(versions, key=lambda v: (-1.0 if v.value is None else v.value, -v.round))


def final_verdict(recipe: Recipe, best: Version) -> str | None:
    """None accepts; else the reject reason of the kept version."""
    if best.value is None:
        return make_reason("judge_unparsed")
    return recipe.reject_reason(best.value)


class RefinementLoop:
    """Reads a task row; returns a full output row (engine.records.SCHEMA columns).

    `generator` is the LLM (None where no language, judge or round trip needs it); `machine`, the
    machine translator that drafts the languages config.translators routes to "mt" (None: none).
    A machine draft is one attempt; with judging on, a failed one goes to the LLM with its failure
    as feedback, for the attempts left, and a valid one is judged and rewritten by the LLM (post-
    editing) like any draft. The row's `translator` says who wrote the kept version: llm, mt, or
    mt+llm (the LLM's repair or rewrite of a machine draft)."""

    def __init__(self, recipe: Recipe, config: Config, generator: Generator | None, machine: MachineTranslator | None = None):
        self.recipe, self.config, self.generator, self.machine = recipe, config, generator, machine
        wanted = config.quality.round_trip and getattr(recipe, "round_trip_version", None) is not None
        self.round_trip = RoundTrip(config, generator) if wanted else None
        self.prompt_version = with_routing(recipe_version(recipe, config.refine.rounds, self.round_trip is not None), config)
        self.count_tokens = generator.count_tokens if generator is not None else estimate_tokens

    def drafts_by_machine(self, lang: str) -> bool:
        return self.machine is not None and self.config.translator_for(lang) == "mt"

    def provenance(self, by_machine: bool, kept: Draft | None) -> dict:
        """Who wrote the row: `model` and `backend` of the kept version's author (for a rejected
        row, of its last draft), `mt_model` wherever the machine translator drafted."""
        mt_model = self.machine.model_name if by_machine else None
        if by_machine and (kept is None or kept.author == "mt"):
            return {"model": mt_model, "backend": self.machine.backend, "mt_model": mt_model, "translator": "mt"}
        backend = self.generator.backend if self.generator is not None else self.config.model.backend
        return {"model": self.config.model.name, "backend": backend, "mt_model": mt_model, "translator": "mt+llm" if by_machine else "llm"}

    async def __call__(self, task: dict) -> dict:
        recipe, refine, attempts = self.recipe, self.config.refine, self.config.validation.max_attempts
        by_machine = self.drafts_by_machine(task["lang"])
        row = {**task, **self.provenance(by_machine, None), "prompt_version": self.prompt_version}
        reason, failed_field, screened = recipe.screen(task)
        row.update(screened)
        if reason is not None:
            return {**row, **Ledger().columns(), "status": REJECTED, "reason": reason, "reason_field": failed_field}
        request = recipe.prepare(task, self.count_tokens)
        row.update(request.columns)
        ledger = Ledger()
        if by_machine:
            current, text = await machine_draft(recipe, self.machine, request, ledger)
            if current is None and self.llm_repairs(ledger):
                # The machine draft with its failure as feedback; a translator that wrote nothing leaves a fresh draft.
                feedback = recipe.feedback(request, ledger.reasons[-1], ledger.last_field)
                messages = retry_messages(request.messages, text, feedback) if text else request.messages
                current = await draft(recipe, self.generator, messages, request, ledger, attempts - 1, "draft")
                row.update(self.provenance(True, current or Draft("", {})))
        else:
            current = await draft(recipe, self.generator, request.messages, request, ledger, attempts, "draft")
        if current is None:
            return {**row, **ledger.last_output, **ledger.columns(), "status": REJECTED, "reason": ledger.reasons[-1],
                    "reason_field": ledger.last_field}
        if refine.rounds == 0:
            row.update(self.provenance(by_machine, current))
            return await self.settle({**row, **recipe.output(request, current)}, request, current, None, ledger)

        versions: list[Version] = []
        scores: list[dict] = []
        round_no = 0
        while True:
            judgement = await judge(recipe, self.generator, request, current, ledger, round_no)
            scores += judgement.scores
            versions.append(Version(judgement.value, round_no, current))
            if not should_rewrite(judgement, round_no, refine.rounds):
                break
            messages = rewrite_request(recipe, request, current, judgement)
            rewritten = await draft(recipe, self.generator, messages, request, ledger, attempts, "rewrite")
            round_no += 1
            if rewritten is None:
                break  # an invalid rewrite never replaces a valid version
            current = rewritten
        best = best_version(versions)
        row.update(self.provenance(by_machine, best.draft))
        done = {**row, **recipe.output(request, best.draft), "scores": scores, "rounds": round_no, "best_round": best.round}
        return await self.settle(done, request, best.draft, final_verdict(recipe, best), ledger)

    def llm_repairs(self, ledger: Ledger) -> bool:
        """Whether the LLM takes over a failed machine draft: only with judging on (the LLM is
        then at hand as post-editor), attempts left, and a failure that a new draft can fix."""
        return (self.generator is not None and self.config.refine.rounds > 0 and self.config.validation.max_attempts > 1
                and retry_makes_sense(ledger.reasons[-1]))

    async def settle(self, done: dict, request: Request, kept: Draft, reason: str | None, ledger: Ledger) -> dict:
        """The row with its fate: the loop's verdict, then, for a version it accepted, the round trip
        (when on), whose tokens the ledger books before its columns are read."""
        failed_field, columns = None, {}
        if reason is None and self.round_trip is not None:
            fields = self.recipe.round_trip_fields(request, kept)
            reason, failed_field, columns = await self.round_trip(fields, request.language.name, ledger)
        status = ACCEPTED if reason is None else REJECTED
        return {**done, **columns, **ledger.columns(), "status": status, "reason": reason, "reason_field": failed_field}


def estimate_tokens(text: str) -> int:
    """Tokens of a text where no LLM tokenizer is loaded (a machine-translation-only actor): about 4 characters each."""
    return len(text) // 4 + 1
