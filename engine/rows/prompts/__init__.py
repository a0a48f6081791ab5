"""Prompt templates (files beside this module) and the messages built from them.

Every template has a version; the version goes into every row's provenance and into its id, so
changing a prompt means new rows, never silently mixed ones.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

TRANSLATE_VERSION = "translate.v1"
FIELDS = ("instruction", "input", "output")


@cache
def load_template(version: str) -> str:
    return resources.files(__package__).joinpath(f"{version}.txt").read_text(encoding="utf-8")


def translate_messages(fields: dict[str, str], language_name: str, version: str = TRANSLATE_VERSION) -> list[dict]:
    """System prompt plus the protected source fields as a JSON object (empty fields left out)."""
    payload = {key: fields[key] for key in FIELDS if fields.get(key)}
    return [
        {"role": "system", "content": load_template(version).format(language=language_name)},
        {"role": "user", "content": json.dumps(payload, ensure_ascii=False, indent=1)},
    ]


def answer_schema(keys: list[str]) -> dict:
    """JSON schema of the answer: exactly these string keys."""
    return {
        "type": "object",
        "properties": {key: {"type": "string"} for key in keys},
        "required": list(keys),
        "additionalProperties": False,
    }


# Why a draft failed, in words the model can act on. Keys are reject-reason prefixes.
FEEDBACK = {
    "parse": "Your reply was not a JSON object with exactly the keys {keys}. Reply with that JSON object only.",
    "truncated": "Your reply was cut off. Reply with a shorter, complete JSON object.",
    "span_missing": "Marker {detail} was missing or changed. Copy every marker like [[1]] exactly once, unchanged.",
    "span_duplicated": "Marker {detail} appeared more than once. Copy every marker exactly once.",
    "span_unknown": "You wrote a marker {detail} that was not in the input. Use only the markers of the input.",
    "wrong_language": "The {field} was not in {language}. Translate it into {language}.",
    "low_language_confidence": "The {field} did not read clearly as {language}. Write it entirely in {language}.",
    "wrong_script": "The {field} was not written in the {language} script.",
    "untranslated": "The {field} was left in English. Translate it into {language}.",
    "empty": "The {field} was empty. Translate every field.",
    "length_ratio": "The {field} was much longer or shorter than the source. Translate it faithfully, nothing added or left out.",
    "degenerate": "The {field} repeated itself. Translate it once, without repetition.",
}


def feedback_message(reason: str, field: str | None, language_name: str, keys: list[str]) -> dict:
    kind, _, detail = reason.partition(":")
    if kind == "parse_truncated":
        kind = "truncated"
    elif kind.startswith("parse"):
        kind = "parse"
    template = FEEDBACK.get(kind, "Your translation was rejected ({reason}). Try again.")
    text = template.format(keys=", ".join(keys), detail=detail, field=field or "answer", language=language_name, reason=reason)
    return {"role": "user", "content": text}
