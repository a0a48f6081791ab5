"""The optional round-trip check: an accepted translation, translated back to English by the same
generator, must still read like its source (chrF, sacrebleu).

    accepted version ─▶ back-translate each field (concurrently, greedy) ─▶ chrF vs the source ─┬▶ accepted
                                                                                                └▶ rejected round_trip:<field>:<chrf>

It runs once, after the refinement loop has settled (engine/rows/refine.py), and is not retried:
a failing version has already been through every draft and rewrite the config allows.

Protected spans (code, math, URLs, placeholders) are removed from both texts before scoring. The
back-translation request carries the translation with its markers ([[1]]), as the draft did, so
the model does not have to copy code faithfully twice; and spans are byte-identical between
source and translation by construction (span integrity is checked before), so leaving them in
would only raise the score of code-heavy fields whatever their prose says. A field with too few
letters left (quality.min_letters, as for similarity), or kept identical to its source (an input
the task operates on), is not scored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cache

from engine.config import Config
from engine.protocols import GenParams, Generator
from engine.reasons import make_reason
from engine.rows.drafting import Ledger
from engine.rows.prompts import load_template
from engine.text.adequacy import letter_count, visible_text

BACKTRANSLATE_VERSION = "backtranslate.v1"
PHASE = "round_trip"  # the ledger's phase: tokens_round_trip


@dataclass(frozen=True)
class RoundTripField:
    """One field to send back: its name, the English source (restored) and the translation with
    its span markers, as the model wrote it."""

    field: str
    source: str
    translation: str


@cache
def _chrf():
    from sacrebleu.metrics import CHRF  # pure Python; imported on first use so engine/ loads fast

    return CHRF()  # chrF: character 6-grams, beta 2 (sacrebleu's default, as in WMT)


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence chrF (0-100) of the back-translation against the English source, spans removed from both."""
    return float(_chrf().sentence_score(visible_text(hypothesis), [visible_text(reference)]).score)


def backtranslate_messages(text: str, language_name: str, version: str = BACKTRANSLATE_VERSION) -> list[dict]:
    return [
        {"role": "system", "content": load_template(version).format(language=language_name)},
        {"role": "user", "content": text},
    ]


def scored_fields(fields: list[RoundTripField], min_letters: int) -> list[RoundTripField]:
    """The fields worth a request: prose on both sides, and not kept as the source wrote it."""
    chosen = []
    for item in fields:
        source, translation = visible_text(item.source), visible_text(item.translation)
        if source != translation and min(letter_count(source), letter_count(translation)) >= min_letters:
            chosen.append(item)
    return chosen


def verdict(scores: dict[str, float | None], threshold: float) -> tuple[str | None, str | None]:
    """(reason, field): a failed request first, then the weakest field under the threshold."""
    for field, score in scores.items():
        if score is None:
            return make_reason("round_trip_failed", field), field
    if not scores:
        return None, None
    field = min(scores, key=scores.__getitem__)
    if scores[field] < threshold:
        return make_reason("round_trip", f"{field}:{scores[field]:.1f}"), field
    return None, None


class RoundTrip:
    """Back-translates a kept version and decides on it; returns (reason, field, row columns)."""

    def __init__(self, config: Config, generator: Generator):
        self.generator, self.quality, gen = generator, config.quality, config.generation
        self.max_tokens, self.factor = gen.max_tokens, gen.max_tokens_factor
        self.params = GenParams(temperature=0.0, top_p=1.0, repetition_penalty=gen.repetition_penalty)  # greedy

    async def __call__(self, fields: list[RoundTripField], language_name: str, ledger: Ledger) -> tuple[str | None, str | None, dict]:
        chosen = scored_fields(fields, self.quality.min_letters)
        scores = await asyncio.gather(*(self._score(f, language_name, ledger) for f in chosen))
        by_field = {f.field: score for f, score in zip(chosen, scores)}
        reason, failed_field = verdict(by_field, self.quality.round_trip_min_chrf)
        read = [score for score in by_field.values() if score is not None]
        return reason, failed_field, {"round_trip_chrf": min(read) if read else None}

    async def _score(self, item: RoundTripField, language_name: str, ledger: Ledger) -> float | None:
        """chrF of one field's back-translation; None when the request failed or did not fit."""
        messages = backtranslate_messages(item.translation, language_name)
        budget = int(self.factor * self.generator.count_tokens(item.translation)) + 64
        params = GenParams(self.params.temperature, self.params.top_p, min(self.max_tokens, budget), self.params.repetition_penalty)
        completion = await self.generator.generate(messages, params)
        ledger.book(PHASE, completion)
        if completion.finish_reason not in ("stop", "length"):  # a cut-off reply is scored as it is
            return None
        return chrf(completion.text.strip(), item.source)
