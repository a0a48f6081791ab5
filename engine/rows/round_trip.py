"""The optional round-trip check: an accepted translation, translated back to English by the same
generator, must still read like its source (chrF, sacrebleu).

    accepted version ─▶ back-translate each field (concurrently, greedy) ─▶ chrF vs the source
        ─┬▶ accepted
         └▶ rejected round_trip:<field>:<chrf>

It runs once, after the refinement loop has settled (engine/rows/refine.py), and is not retried:
a failing version has already been through every draft and rewrite the config allows.

Protected spans (code, math, URLs, placeholders) are removed from both texts before scoring. The
back-translation request carries the translation with its markers ([[1]]), as the draft did, so
the model does not have to copy code faithfully twice; and spans are byte-identical between
source and translation by construction (span integrity is checked before), so leaving them in
would only raise the score of code-heavy fields whatever their prose says. A field whose source has
too little prose left (quality.min_letters, in the same script-fair units as the similarity gate:
engine.text.adequacy.text_units), or kept identical to its source (an input the task operates on),
is not scored; a translation is scored however short it came out, as in the gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from engine.config import Config
from engine.protocols import CheckResult, Completion, GenParams
from engine.reasons import make_reason
from engine.rows.prompts import load_template
from engine.text.adequacy import text_units, visible_text

BACKTRANSLATE_VERSION = "backtranslate.v1"


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
    """The fields worth a request: a source with prose to compare (script-fair units, as the gate
    counts them), not kept as the source wrote it."""
    chosen = []
    for item in fields:
        source, translation = visible_text(item.source), visible_text(item.translation)
        if source != translation and text_units(source) >= min_letters:
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
    """Back-translation requests for a kept version, and the decision on their answers: the loop
    (engine/rows/refine.py) asks `requests`, sends them together, and hands the answers to `decide`."""

    def __init__(self, config: Config, count_tokens: Callable[[str], int]):
        self.quality, gen = config.quality, config.generation
        self.count_tokens, self.max_tokens, self.factor = count_tokens, gen.max_tokens, gen.max_tokens_factor
        self.repetition_penalty = gen.repetition_penalty

    def chosen(self, fields: list[RoundTripField]) -> list[RoundTripField]:
        return scored_fields(fields, self.quality.min_letters)

    def request(self, item: RoundTripField, language_name: str) -> tuple[list[dict], GenParams]:
        """One field's back-translation: greedy, its answer budget sized from the translation."""
        budget = int(self.factor * self.count_tokens(item.translation)) + 64
        params = GenParams(
            temperature=0.0,
            top_p=1.0,
            max_tokens=min(self.max_tokens, budget),
            repetition_penalty=self.repetition_penalty,
        )
        return backtranslate_messages(item.translation, language_name), params

    def decide(self, chosen: list[RoundTripField], replies: list[Completion]) -> CheckResult:
        """(reason, field, {"round_trip_chrf": the weakest field's chrF}) from each chosen field's
        answer; a failed or cut-off request scores None (a reply cut at its length is scored as it is)."""
        by_field = {
            item.field: chrf(reply.text.strip(), item.source) if reply.finish_reason in ("stop", "length") else None
            for item, reply in zip(chosen, replies)
        }
        reason, failed_field = verdict(by_field, self.quality.round_trip_min_chrf)
        read = [score for score in by_field.values() if score is not None]
        return CheckResult(reason, failed_field, {"round_trip_chrf": min(read) if read else None})
