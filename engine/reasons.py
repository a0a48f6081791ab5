"""Every reason a row can be rejected for, and every reason a draft can fail, in one list.

A reason is written `name` or `name:detail` (`span_missing:[[2]]`, `wrong_language:pt`); the name
is what the report counts. Code never spells a reason by hand: it calls `make_reason(name, detail)`,
which refuses a name that is not listed here, and tests/unit/test_reasons.py fails on any reason a
check, parser or row machine can return that this list does not hold.

`retry` says whether drafting again can fix it; `feedback` is what the drafting model is then told
(placeholders: {field} {language} {detail} {keys} {reason}; None = resend the request unchanged).
Where each reason arises: docs/architecture.md, "Where a row's fate is decided".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    name: str
    meaning: str  # one line for people: the report legend and the HTML page's tooltip
    retry: bool  # a new draft (with feedback) can fix it
    feedback: str | None = None  # what the drafting model is told before it retries


_PARSE = "Your reply was not a JSON object with exactly the keys {keys}. Reply with that JSON object only."

REASONS: dict[str, Reason] = {
    reason.name: reason
    for reason in (
        # The model's reply as text (engine/text/spans.py).
        Reason("parse_empty", "the reply was empty", True, _PARSE),
        Reason("parse_no_json", "the reply held no JSON object", True, _PARSE),
        Reason(
            "parse_truncated",
            "the reply's JSON object was cut off",
            True,
            "Your reply was cut off. Reply with a shorter, complete JSON object.",
        ),
        Reason("parse_invalid_json", "the reply's JSON object did not parse", True, _PARSE),
        Reason("parse_missing_key", "the reply's JSON object lacked a key (detail: the key)", True, _PARSE),
        Reason("parse_not_string", "a key's value was not a string (detail: the key)", True, _PARSE),
        # Protected spans (engine/text/spans.py).
        Reason(
            "span_missing",
            "a protected span's marker was missing or altered (detail: the marker)",
            True,
            "Marker {detail} was missing or changed. Copy every marker like [[1]] exactly once, unchanged.",
        ),
        Reason(
            "span_duplicated",
            "a marker appeared more than once (detail: the marker)",
            True,
            "Marker {detail} appeared more than once. Copy every marker exactly once.",
        ),
        Reason(
            "span_unknown",
            "a marker that was not in the source (detail: the marker)",
            True,
            "You wrote a marker {detail} that was not in the input. Use only the markers of the input.",
        ),
        # Deterministic checks on one field (engine/text/checks.py).
        Reason("empty", "the field was blank", True, "The {field} was empty. Translate every field."),
        Reason(
            "degenerate",
            "the field loops: repeated n-grams or a run of one token",
            True,
            "The {field} repeated itself. Translate it once, without repetition.",
        ),
        Reason(
            "length_ratio",
            "the field was far longer or shorter than its source, in characters weighted by script (detail: the ratio)",
            True,
            "The {field} was much longer or shorter than the source. "
            "Translate it faithfully, nothing added or left out.",
        ),
        Reason(
            "untranslated",
            "the field repeats its English source",
            True,
            "The {field} was left in English. Translate it into {language}.",
        ),
        Reason(
            "wrong_language",
            "language ID read another language (detail: its label)",
            True,
            "The {field} was not in {language}. Translate it into {language}.",
        ),
        Reason(
            "low_language_confidence",
            "language ID was unsure of the language (detail: its confidence)",
            True,
            "The {field} did not read clearly as {language}. Write it entirely in {language}.",
        ),
        Reason(
            "wrong_script",
            "too few letters in the language's script (detail: the script)",
            True,
            "The {field} was not written in the {language} script.",
        ),
        # Adequacy (engine/text/adequacy.py): does the translation mean what the source means?
        Reason(
            "low_similarity",
            "a field's cross-lingual embedding similarity to its source was under the threshold (detail: field:cosine)",
            True,
            "The {field} did not keep the meaning of the source. "
            "Translate it faithfully: nothing added, left out or changed.",
        ),
        Reason(
            "numbers_changed",
            "the numbers in a field's prose differ from its source's (detail: the field)",
            True,
            "The {field} changed, dropped or added a number. Keep every number of the source exactly.",
        ),
        Reason(
            "sentence_count",
            "a field has more or fewer sentences than its source (detail: field:source->translation)",
            True,
            "The {field} has a different number of sentences than the source. Translate every sentence, adding none.",
        ),
        # The optional round trip (engine/rows/round_trip.py), once the loop has kept a version.
        Reason(
            "round_trip",
            "the kept version, translated back to English, was under quality.round_trip_min_chrf (detail: field:chrF)",
            False,
        ),
        Reason(
            "round_trip_failed",
            "a back-translation request failed or did not fit, so the round trip could not be scored "
            "(detail: the field)",
            False,
        ),
        Reason(
            "instruction_length", "an X-Instruction instruction outside 10-400 characters (detail: its length)", True
        ),
        Reason(
            "instruction_placeholder",
            "an X-Instruction instruction holding a template slot such as [insert instruction] or {location} "
            "(detail: the slot)",
            True,
        ),
        # The generator (engine/rows/refine.py).
        Reason("too_long", "the prompt plus the answer budget does not fit the model's context", False),
        Reason("generation_error", "the request failed after the backend's retries (detail: the cause)", True),
        # The judge (engine/rows/judge.py, engine/rows/refine.py).
        Reason("judge_empty", "the judge's reply was empty (one score, not a row)", False),
        Reason("judge_out_of_range", "the judge's score was outside 0-2 (one score, not a row)", False),
        Reason("judge_unparsed", "no judge reply could be read", False),
        Reason(
            "judge_below_threshold",
            "the best version's mean judge score was under refine.reject_below (detail: the mean)",
            False,
        ),
        Reason("judge_bad", "the judge found the instruction does not fit the text", False),
        Reason("judge_medium", "the judge found the pair only partly fitting (refine.accept_medium is off)", False),
        # Before any model call (engine/inputs, engine/text/checks.py, engine/recipes.py).
        Reason("bad_record", "an input record could not be read (detail: what was wrong)", False),
        Reason("seed_not_english", "a seed's instruction clearly is not English (detail: its label)", False),
        Reason("not_a_target_language", "an X-Instruction text in a language the config does not target", False),
        # Qualification before spending (engine/qualify.py, jobs/synthesize.py).
        Reason(
            "translator_unqualified",
            "the language's translator accepted under qualify.min_accept of its probe rows, "
            "so the rest of its plan was not run (detail: language:translator)",
            False,
        ),
        # Selection (engine/selection).
        Reason("duplicate_of", "an exact or near duplicate of an earlier seed or output (detail: its id)", False),
        Reason(
            "near_duplicate_of",
            "an accepted output whose embedding is as close as dedup.output_near_threshold "
            "to an earlier accepted output of its language (detail: kept id:cosine)",
            False,
        ),
        Reason("diversity_budget", "left out by X-Instruction's per-language diversity budget", False),
    )
}

# Feedback for a reason listed without its own: the reason itself, in words the model can read.
GENERIC_FEEDBACK = "Your translation was rejected ({reason}). Try again."


def make_reason(name: str, detail: object = None) -> str:
    """`name` or `name:detail`; an unlisted name is a programming error and raises KeyError."""
    if name not in REASONS:
        raise KeyError(f"unknown reject reason {name!r}: add it to engine/reasons.py REASONS")
    return name if detail is None else f"{name}:{detail}"


def reason_kind(reason: str | None) -> str:
    """The reason's name: what the report counts ('span_missing:[[3]]' → 'span_missing')."""
    return (reason or "").split(":", 1)[0]


def lookup(reason: str | None) -> Reason | None:
    """The listed entry of a reason string, or None for a reason this list does not hold."""
    return REASONS.get(reason_kind(reason))


def meaning(reason: str | None) -> str:
    entry = lookup(reason)
    return entry.meaning if entry else "not a listed reason"


def retry_makes_sense(reason: str) -> bool:
    entry = lookup(reason)
    return entry is not None and entry.retry


def feedback_text(reason: str, field: str | None, language_name: str, keys: list[str]) -> str:
    """What the drafting model is told after `reason` (a failed request is resent unchanged by
    engine/rows/refine.py, without feedback)."""
    entry = lookup(reason)
    template = entry.feedback if entry and entry.feedback else GENERIC_FEEDBACK
    detail = reason.partition(":")[2]
    return template.format(
        keys=", ".join(keys), detail=detail, field=field or "answer", language=language_name, reason=reason
    )
