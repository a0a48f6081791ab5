"""Parse model output into fields. Never raises on model output: a value or a reason."""

from __future__ import annotations

import json
import re

from engine.reasons import make_reason

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _first_object(text: str, start: int = 0) -> tuple[str | None, str | None, int]:
    """The first balanced {...} in text from `start` (strings respected) or a reason; and where it ends."""
    start = text.find("{", start)
    if start < 0:
        return None, make_reason("parse_no_json"), len(text)
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start : index + 1], None, index + 1
    return None, make_reason("parse_truncated"), len(text)


def _loads(candidate: str) -> dict | None:
    try:
        data = json.loads(candidate)
    except RecursionError:  # thousands of nested brackets: a looping model, not an answer
        return None
    except json.JSONDecodeError:
        # Models often emit raw newlines inside strings; JSON forbids them, strict=False allows.
        try:
            data = json.loads(candidate, strict=False)
        except (json.JSONDecodeError, RecursionError):
            return None
    return data if isinstance(data, dict) else None


def _first_json_object(text: str) -> tuple[dict | None, str | None]:
    """The first {...} of text that is valid JSON; chatter such as "{here}" before it is skipped."""
    position, reason = 0, make_reason("parse_no_json")
    while position < len(text):
        candidate, why, position = _first_object(text, position)
        if candidate is None:  # no (further) object: the reason of what came before, unless cut off
            return None, why if why == make_reason("parse_truncated") or reason == make_reason(
                "parse_no_json"
            ) else reason
        data = _loads(candidate)
        if data is not None:
            return data, None
        reason = make_reason("parse_invalid_json")
    return None, reason


def _take(data: dict, keys: list[str]) -> tuple[dict[str, str] | None, str | None]:
    fields = {}
    for key in keys:
        if key not in data:
            return None, make_reason("parse_missing_key", key)
        if not isinstance(data[key], str):
            return None, make_reason("parse_not_string", key)
        fields[key] = data[key]
    return fields, None


def parse_fields(text: str | None, keys: list[str]) -> tuple[dict[str, str] | None, str | None]:
    """Find the JSON object in a reply (bare, fenced, or wrapped in chatter) and take `keys` from it.

    Reasons: parse_empty, parse_no_json, parse_truncated, parse_invalid_json,
    parse_missing_key:<k>, parse_not_string:<k>.
    """
    if text is None or not text.strip():
        return None, make_reason("parse_empty")
    fenced = _FENCE.search(text)
    # The fence first; then the whole reply, since a fence may also sit *inside* a bare JSON
    # answer (an output that shows a ```json example```).
    scopes = [fenced.group(1), text] if fenced else [text]
    reason = None
    for scope in scopes:
        data, why = _first_json_object(scope)
        if data is not None:
            fields, why = _take(data, keys)
            if fields is not None:
                return fields, None
        if reason in (None, make_reason("parse_no_json"), make_reason("parse_truncated")):
            reason = why
    return None, reason
