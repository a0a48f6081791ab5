"""Selective translation of one example: the translation recipe of the refinement loop.

    draft ─▶ parse ─▶ restore spans ─▶ validate ─┬▶ (retry with feedback) ─▶ rejected
                                                 └▶ judge ─▶ rewrite ─▶ validate ─▶ judge … ─▶ best version

The loop itself is engine/rows/refine.py; this file holds what translation brings to it: the
prompt, the span-protected request, the checks and the judge's criteria.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.config import Config
from engine.languages import get_language
from engine.protocols import CheckResult, GenParams, LanguageIdentifier, passed
from engine.reasons import make_reason
from engine.rows.judge import (
    JUDGE_VERSION,
    judge_messages,
    judge_params,
    judge_schema,
    mean_score,
    parse_score,
    rewrite_message,
)
from engine.rows.prompts import FIELDS, TRANSLATE_VERSION, answer_schema, feedback_message, translate_messages
from engine.rows.refine import Draft, Judgement, Request
from engine.rows.round_trip import BACKTRANSLATE_VERSION, RoundTripField
from engine.text.checks import validate_translation
from engine.text.spans import SENTINEL_RE, parse_fields, protect_many, restore, strip_sentinels

# How sure language ID must be that a source sentence is not English before the machine
# translator leaves it as written: an English sentence full of names or terms can read as
# another language at lower confidence, and translating it is the safe error.
KEEP_CONFIDENCE = 0.8


@dataclass(frozen=True)
class TranslationFacts:
    """What the check and the judge need of one translation request."""

    source: dict[str, str]  # every field of the English source (empty ones as "")
    keys: list[str]  # the fields with text: what the model translates and is checked on
    spans: list[str]  # the protected spans, marker n is spans[n - 1]
    expected: dict[str, set[int]]  # per field, the markers its translation must carry
    protected: dict[str, str]  # per field, the source with markers in place of its spans


class TranslationRecipe:
    """Prompts, checks and judge rubric of selective translation (see engine.rows.refine.Recipe)."""

    draft_version = TRANSLATE_VERSION
    judge_version = JUDGE_VERSION
    round_trip_version = BACKTRANSLATE_VERSION  # quality.round_trip

    def __init__(self, config: Config, langid: LanguageIdentifier):
        self.config, self.langid = config, langid
        gen = config.generation
        self.params = GenParams(gen.temperature, gen.top_p, gen.max_tokens, gen.repetition_penalty)
        self.judge_params = judge_params(judge_schema, config.model.structured_output)

    def screen(self, task: dict) -> CheckResult:
        return passed()

    def prepare(self, task: dict, count_tokens) -> Request:
        """Protect the spans, build the prompt, size the answer budget from the source's tokens."""
        language = get_language(task["lang"])
        source = {field: task[f"src_{field}"] or "" for field in FIELDS}
        protected, spans, _ = protect_many([source[field] for field in FIELDS])
        protected_fields = dict(zip(FIELDS, protected))
        keys = [field for field in FIELDS if source[field]]
        expected = {field: {int(n) for n in SENTINEL_RE.findall(protected_fields[field])} for field in keys}
        messages = translate_messages(protected_fields, language.name)
        budget = int(self.config.generation.max_tokens_factor * count_tokens(messages[-1]["content"])) + 64
        params = replace(
            self.params,
            max_tokens=min(self.params.max_tokens, budget),
            json_schema=answer_schema(keys) if self.config.model.structured_output else None,
        )
        facts = TranslationFacts(
            source, keys, list(spans), expected, {field: protected_fields[field] for field in keys}
        )
        return Request(task, language, messages, params, facts, {"protected_spans": list(spans)})

    def check(self, request: Request[TranslationFacts], text: str) -> CheckResult:
        """Parse, restore every span, validate field by field. A failed draft keeps what it wrote."""
        facts = request.facts
        keys, spans, expected, source = facts.keys, facts.spans, facts.expected, facts.source
        fields, reason = parse_fields(text, keys)
        if fields is None:
            return CheckResult(reason, None, {})
        restored, failure = {}, None
        for field in keys:
            restored[field], why = restore(fields[field], spans, expected[field])
            if why is not None:
                restored[field] = fields[field]  # kept as the model wrote it, markers and all
                failure = failure or (why, field)
        output = {field: restored.get(field, "") for field in FIELDS}
        if failure is not None:
            return CheckResult(failure[0], failure[1], output)
        shown = {k: source[k] for k in keys}
        verdict = validate_translation(shown, restored, fields, request.language, self.langid, self.config.validation)
        output.update(lid_label=verdict.lid_label, lid_confidence=verdict.lid_confidence, lid_method=verdict.lid_method)
        return CheckResult(verdict.reason, verdict.field, output)

    def checked_fields(self, request: Request[TranslationFacts], output: dict) -> tuple[dict[str, str], dict[str, str]]:
        """The English source and the restored translation, field by field (the fields with text)."""
        keys = request.facts.keys
        return {k: request.facts.source[k] for k in keys}, {k: output[k] for k in keys}

    def machine_fields(self, request: Request[TranslationFacts]) -> dict[str, str]:
        """The fields a machine translator drafts: the source's, markers in place of its spans."""
        return request.facts.protected

    def machine_keeps(self, sentence: str) -> bool:
        """A sentence the machine translator leaves as written: one that language ID confidently
        reads as another language than English, i.e. the text a task operates on (the French
        sentence a grammar answer explains). The LLM's prompt asks it to keep those; an MT model
        cannot be asked, so they never reach it."""
        prose = strip_sentinels(sentence)
        if sum(ch.isalpha() for ch in prose) < self.config.validation.langid_min_chars:
            return False
        label, confidence = self.langid.predict(prose)
        return label != "en" and confidence >= KEEP_CONFIDENCE

    def feedback(self, request: Request[TranslationFacts], reason: str, failed_field: str | None) -> dict:
        return feedback_message(reason, failed_field, request.language.name, request.facts.keys)

    def judge_messages(self, request: Request[TranslationFacts], draft: Draft) -> list[list[dict]]:
        keys, source = request.facts.keys, request.facts.source
        translated = {field: draft.output[field] for field in keys}
        shown = {field: source[field] for field in keys}
        return [judge_messages(c, request.language.name, shown, translated) for c in self.config.refine.criteria]

    def read_judgement(self, replies: list[str | None], round_no: int) -> Judgement:
        judged = [parse_score(c, reply) for c, reply in zip(self.config.refine.criteria, replies)]
        mean = mean_score(judged)
        scores = [{"round": round_no, "criterion": s.criterion, "score": s.score} for s in judged]
        return Judgement(mean, scores, mean is not None and mean >= self.config.refine.rewrite_below, judged)

    def rewrite_message(self, request: Request, judgement: Judgement) -> dict:
        return rewrite_message(judgement.notes, request.language.name)

    def reject_reason(self, value: float) -> str | None:
        return make_reason("judge_below_threshold", f"{value:.2f}") if value < self.config.refine.reject_below else None

    def output(self, request: Request, draft: Draft) -> dict:
        return draft.output

    def round_trip_fields(self, request: Request[TranslationFacts], draft: Draft) -> list[RoundTripField]:
        """Each translated field as the model wrote it, span markers and all (engine/rows/round_trip.py
        says why), next to its English source. The kept version passed the parse, so it parses again."""
        keys, source = request.facts.keys, request.facts.source
        fields, _ = parse_fields(draft.text, keys)
        return [RoundTripField(field, source[field], fields[field]) for field in keys] if fields else []
