"""The LLM judge: one criterion per request, temperature 0, short rubrics (in the spirit of
METAL), parsed robustly. A judge's score is a signal next to the deterministic checks, never the
only gate: rows reach the judge only after they passed validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.protocols import GenParams
from engine.reasons import make_reason
from engine.rows.prompts import load_template
from engine.text.spans import parse_fields

JUDGE_VERSION = "judge.v1"
REWRITE_VERSION = "rewrite.v1"
SCALE = (0, 2)

# criterion → (name in the prompt, rubric). Our words; 0–2 as METAL.
CRITERIA = {
    "adequacy": (
        "whether the meaning is preserved",
        "2 = same meaning, nothing added or lost; 1 = a minor loss, addition or shift; "
        "0 = a different meaning, or not a translation.",
    ),
    "fluency": (
        "whether the translation is natural, grammatical {language}",
        "2 = natural and correct; 1 = understandable but awkward or with errors; "
        "0 = broken, repetitive, or not {language}.",
    ),
    "preservation": (
        "whether what had to stay unchanged stayed unchanged",
        "Code, numbers, formulas, URLs, names and any text the task operates on (a sentence to translate or correct) "
        "must stay exactly as in the source. "
        "2 = all kept; 1 = a minor change; 0 = something that had to stay was translated or altered.",
    ),
}

_NUMBER = re.compile(r"score\W{0,5}(-?\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeScore:
    criterion: str
    score: float | None  # None: the judge's answer could not be read
    feedback: str
    problem: str | None  # judge_empty, judge_unparsed, judge_out_of_range


def judge_params(schema: Callable[[], dict], structured: bool) -> GenParams:
    """Every judge request: greedy, short, its answer constrained to `schema` where the backend can."""
    return GenParams(0.0, 1.0, 128, 1.0, schema() if structured else None)


def judge_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "feedback": {"type": "string", "maxLength": 300},
            "score": {"type": "integer", "enum": [0, 1, 2]},
        },
        "required": ["feedback", "score"],
        "additionalProperties": False,
    }


def judge_messages(criterion: str, language: str, source: dict[str, str], translated: dict[str, str]) -> list[dict]:
    name, rubric = CRITERIA[criterion]
    system = load_template(JUDGE_VERSION).format(
        language=language, criterion=name.format(language=language), rubric=rubric.format(language=language)
    )
    user = (
        f"English source:\n{json.dumps(source, ensure_ascii=False, indent=1)}\n\n"
        f"{language} translation:\n{json.dumps(translated, ensure_ascii=False, indent=1)}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_score(criterion: str, text: str | None) -> JudgeScore:
    """Read {"feedback", "score"} from a judge's reply: JSON, chatty JSON, or 'Score: 2' prose."""
    if text is None or not text.strip():
        return JudgeScore(criterion, None, "", make_reason("judge_empty"))
    fields, _ = parse_fields(text, ["score"])
    raw, feedback = None, ""
    if fields is None:
        try:  # parse_fields wants strings; a number is the usual case
            start, end = text.index("{"), text.rindex("}") + 1
            data = json.loads(text[start:end], strict=False)
            raw, feedback = data.get("score"), str(data.get("feedback", ""))
        except (ValueError, AttributeError):
            match = _NUMBER.search(text)
            raw = match.group(1) if match else None
    else:
        raw = fields["score"]
    try:
        score = float(raw)
    except (TypeError, ValueError):
        return JudgeScore(criterion, None, feedback, make_reason("judge_unparsed"))
    if not SCALE[0] <= score <= SCALE[1]:
        return JudgeScore(criterion, None, feedback, make_reason("judge_out_of_range"))
    return JudgeScore(criterion, score, feedback.strip(), None)


def mean_score(scores: list[JudgeScore]) -> float | None:
    read = [s.score for s in scores if s.score is not None]
    return sum(read) / len(read) if read else None


def rewrite_message(scores: list[JudgeScore], language: str) -> dict:
    lines = []
    for s in scores:
        if s.score is not None and s.score < SCALE[1]:
            note = f": {s.feedback}" if s.feedback and s.feedback.lower() != "none" else ""
            lines.append(f"- {s.criterion} {s.score:g}/{SCALE[1]}{note}")
    verdicts = "\n".join(lines) or "- the translation can be more faithful and natural"
    return {"role": "user", "content": load_template(REWRITE_VERSION).format(language=language, verdicts=verdicts)}


LABELS = {"good": 2.0, "medium": 1.0, "bad": 0.0}


def label_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "feedback": {"type": "string", "maxLength": 300},
            "label": {"type": "string", "enum": list(LABELS)},
        },
        "required": ["feedback", "label"],
        "additionalProperties": False,
    }


def parse_label(text: str | None) -> tuple[str | None, str, str | None]:
    """(label, feedback, problem) from a pair judge's reply; the label is good / medium / bad."""
    if text is None or not text.strip():
        return None, "", make_reason("judge_empty")
    fields, _ = parse_fields(text, ["label"])
    if fields is not None:
        label = fields["label"].strip().lower()
        feedback = ""
        extra, _ = parse_fields(text, ["feedback"])
        if extra is not None:
            feedback = extra["feedback"]
    else:
        found = re.search(r"\b(good|medium|bad)\b", text, re.IGNORECASE)
        label, feedback = (found.group(1).lower() if found else None), ""
    if label not in LABELS:
        return None, feedback, make_reason("judge_unparsed")
    return label, feedback.strip(), None
