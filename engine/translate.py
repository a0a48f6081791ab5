"""Selective translation of one example: the per-row state machine.

draft → parse → restore spans → validate → (retry with feedback) → accepted | rejected

Rows run as independent coroutines against one shared Generator, so an engine with continuous
batching sees every in-flight request of every row at once; no row waits for another.
"""

from __future__ import annotations

from dataclasses import replace

from engine.config import Config
from engine.generation import ERROR, TOO_LONG, GenParams, Generator, LanguageIdentifier
from engine.languages import get_language
from engine.parse import parse_fields
from engine.prompts import FIELDS, TRANSLATE_VERSION, answer_schema, feedback_message, translate_messages
from engine.records import ACCEPTED, REJECTED
from engine.spans import SENTINEL_RE, protect_many, restore
from engine.validate import validate_translation


class SelectiveTranslator:
    """Reads a task row (engine.records.TASK_COLUMNS); returns a full output row."""

    def __init__(self, config: Config, generator: Generator, langid: LanguageIdentifier):
        self.config = config
        self.generator = generator
        self.langid = langid
        gen = config.generation
        self.params = GenParams(gen.temperature, gen.top_p, gen.max_tokens, gen.repetition_penalty)

    async def __call__(self, task: dict) -> dict:
        language = get_language(task["lang"])
        source = {field: task[f"src_{field}"] or "" for field in FIELDS}
        protected, spans, _ = protect_many([source[field] for field in FIELDS])
        protected_fields = dict(zip(FIELDS, protected))
        keys = [field for field in FIELDS if source[field]]
        expected = {field: {int(n) for n in SENTINEL_RE.findall(protected_fields[field])} for field in keys}
        structured = self.config.model.structured_output
        messages = translate_messages(protected_fields, language.name)
        budget = int(self.config.generation.max_tokens_factor * self.generator.count_tokens(messages[-1]["content"])) + 64
        params = replace(
            self.params,
            max_tokens=min(self.params.max_tokens, budget),
            json_schema=answer_schema(keys) if structured else None,
        )

        row = {
            **task,
            "protected_spans": list(spans),
            "model": self.config.model.name,
            "backend": self.generator.backend,
            "prompt_version": TRANSLATE_VERSION,
        }
        reasons: list[str] = []
        last_output: dict = {}
        prompt_tokens = completion_tokens = 0
        for attempt in range(1, self.config.validation.max_attempts + 1):
            completion = await self.generator.generate(messages, params)
            prompt_tokens += completion.prompt_tokens
            completion_tokens += completion.completion_tokens
            row.update(attempts=attempt, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            if completion.finish_reason == TOO_LONG:
                reasons.append("too_long")
                break  # a retry only makes the prompt longer
            if completion.finish_reason == ERROR:
                reasons.append(f"generation_error:{completion.text}"[:200])
                continue
            reason, field, output = self._check(completion.text, keys, spans, expected, source, language)
            if reason is None:
                return {**row, **output, "status": ACCEPTED, "reason": None, "attempt_reasons": reasons}
            reasons.append(reason)
            last_output = output or last_output  # a rejected row keeps its last readable draft
            messages = messages + [
                {"role": "assistant", "content": completion.text},
                feedback_message(reason, field, language.name, keys),
            ]
        return {**row, **last_output, "status": REJECTED, "reason": reasons[-1], "attempt_reasons": reasons}

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
