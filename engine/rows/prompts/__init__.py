"""Prompt templates (files beside this module) and the messages built from them.

Every template has a version; the version goes into every row's provenance and into its id, so
changing a prompt means new rows, never silently mixed ones.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from engine.reasons import feedback_text

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


def feedback_message(reason: str, field: str | None, language_name: str, keys: list[str]) -> dict:
    """Why a translation draft failed, in words the model can act on (texts: engine/reasons.py)."""
    return {"role": "user", "content": feedback_text(reason, field, language_name, keys)}


# X-Instruction's target-language directive, appended to the English instruction.
DIRECTIVE = "Answer in {language}."


def with_directive(instruction: str, language_name: str) -> str:
    return f"{instruction} {DIRECTIVE.format(language=language_name)}"


def without_directive(instruction: str) -> str:
    """The English instruction without its directive: what varies between rows."""
    return instruction.rsplit(" " + DIRECTIVE.split("{", 1)[0], 1)[0]
