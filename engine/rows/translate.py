"""Selective translation of one example: the per-row state machine.

    draft ─▶ parse ─▶ restore spans ─▶ validate ─┬▶ (retry with feedback) ─▶ rejected
                                                 └▶ judge ─▶ rewrite ─▶ validate ─▶ judge … ─▶ best version

Rows run as independent coroutines against one shared Generator, so an engine with continuous
batching sees every in-flight request of every row at once: while some rows are being judged,
others are drafting. No row waits for another.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from engine.config import Config
from engine.rows.drafting import Draft, Ledger, draft_until_valid
from engine.protocols import GenParams, Generator, LanguageIdentifier
from engine.rows.judge import JUDGE_VERSION, JudgeScore, judge_messages, judge_schema, mean_score, parse_score, rewrite_message
from engine.languages import Language, get_language
from engine.text.parse import parse_fields
from engine.rows.prompts import FIELDS, TRANSLATE_VERSION, answer_schema, feedback_message, translate_messages
from engine.records import ACCEPTED, REJECTED
from engine.text.spans import SENTINEL_RE, protect_many, restore
from engine.rows.validate import validate_translation


class SelectiveTranslator:
    """Reads a task row (engine.records.TASK_COLUMNS); returns a full output row."""

    def __init__(self, config: Config, generator: Generator, langid: LanguageIdentifier):
        self.config = config
        self.generator = generator
        self.langid = langid
        gen = config.generation
        self.params = GenParams(gen.temperature, gen.top_p, gen.max_tokens, gen.repetition_penalty)
        self.judge_params = GenParams(0.0, 1.0, 128, 1.0, judge_schema() if config.model.structured_output else None)
        self.prompt_version = TRANSLATE_VERSION if config.refine.rounds == 0 else f"{TRANSLATE_VERSION}+{JUDGE_VERSION}"

    async def __call__(self, task: dict) -> dict:
        language = get_language(task["lang"])
        source = {field: task[f"src_{field}"] or "" for field in FIELDS}
        protected, spans, _ = protect_many([source[field] for field in FIELDS])
        protected_fields = dict(zip(FIELDS, protected))
        keys = [field for field in FIELDS if source[field]]
        expected = {field: {int(n) for n in SENTINEL_RE.findall(protected_fields[field])} for field in keys}
        messages = translate_messages(protected_fields, language.name)
        budget = int(self.config.generation.max_tokens_factor * self.generator.count_tokens(messages[-1]["content"])) + 64
        params = replace(
            self.params,
            max_tokens=min(self.params.max_tokens, budget),
            json_schema=answer_schema(keys) if self.config.model.structured_output else None,
        )

        def check(text: str) -> tuple[str | None, str | None, dict]:
            return self._check(text, keys, spans, expected, source, language)

        def feedback(reason: str, field: str | None) -> dict:
            return feedback_message(reason, field, language.name, keys)

        ledger = Ledger()
        row = {
            **task,
            "protected_spans": list(spans),
            "model": self.config.model.name,
            "backend": self.generator.backend,
            "prompt_version": self.prompt_version,
        }
        attempts = self.config.validation.max_attempts
        draft = await draft_until_valid(self.generator, messages, params, check, feedback, attempts, ledger, "draft")
        if draft is None:
            return {**row, **ledger.last_output, **ledger.columns(), "status": REJECTED, "reason": ledger.reasons[-1]}
        if self.config.refine.rounds == 0:
            return {**row, **draft.output, **ledger.columns(), "status": ACCEPTED, "reason": None}

        refine = self.config.refine
        versions: list[tuple[float | None, int, Draft]] = []
        scores: list[dict] = []
        current, round_no = draft, 0
        while True:
            judged = await self._judge(current, source, keys, language, ledger)
            scores += [{"round": round_no, "criterion": s.criterion, "score": s.score} for s in judged]
            mean = mean_score(judged)
            versions.append((mean, round_no, current))
            if round_no == refine.rounds or (mean is not None and mean >= refine.rewrite_below):
                break
            rewrite = messages + [{"role": "assistant", "content": current.text}, rewrite_message(judged, language.name)]
            rewritten = await draft_until_valid(self.generator, rewrite, params, check, feedback, attempts, ledger, "rewrite")
            round_no += 1
            if rewritten is None:
                break  # an invalid rewrite never replaces a valid version
            current = rewritten
        # Best mean score wins; among equals the earlier version (a rewrite must earn its place).
        best_mean, best_round, best = max(versions, key=lambda v: (-1.0 if v[0] is None else v[0], -v[1]))
        done = {**row, **best.output, **ledger.columns(), "scores": scores, "rounds": round_no, "best_round": best_round}
        if best_mean is None:
            return {**done, "status": REJECTED, "reason": "judge_unparsed"}
        if best_mean < refine.reject_below:
            return {**done, "status": REJECTED, "reason": f"judge_below_threshold:{best_mean:.2f}"}
        return {**done, "status": ACCEPTED, "reason": None}

    async def _judge(self, draft: Draft, source: dict, keys: list[str], language: Language, ledger: Ledger) -> list[JudgeScore]:
        translated = {field: draft.output[field] for field in keys}
        shown = {field: source[field] for field in keys}

        async def one(criterion: str) -> JudgeScore:
            completion = await self.generator.generate(judge_messages(criterion, language.name, shown, translated), self.judge_params)
            ledger.book("judge", completion)
            return parse_score(criterion, completion.text if completion.finish_reason in ("stop", "length") else None)

        return list(await asyncio.gather(*(one(c) for c in self.config.refine.criteria)))

    def _check(self, text, keys, spans, expected, source, language) -> tuple[str | None, str | None, dict]:
        fields, reason = parse_fields(text, keys)
        if fields is None:
            return reason, None, {}
        restored = {}
        for field in keys:
            restored[field], reason = restore(fields[field], spans, expected[field])
            if reason is not None:
                return reason, field, {}
        verdict = validate_translation(
            {k: source[k] for k in keys}, restored, fields, language, self.langid, self.config.validation
        )
        output = {field: restored.get(field, "") for field in FIELDS}
        output.update(lid_label=verdict.lid_label, lid_confidence=verdict.lid_confidence, lid_method=verdict.lid_method)
        return verdict.reason, verdict.field, output
