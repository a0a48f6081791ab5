"""Selective translation for a machine-translation model, which cannot be told to keep anything.

The LLM gets the protected text (`[[1]]` markers in place of code, URLs, math, placeholders)
and is asked to copy the markers. An MT model is not asked: a field is cut into the prose an MT
model should see and the literal text it must not (line breaks and indentation, list and heading
markers, table pipes, sentence gaps), and only the prose goes to the model, a sentence at a time.
A sentence that holds markers goes whole first, for its grammar; where the model did not give
every marker back exactly, in order, that sentence goes again in pieces cut at its markers, so
the markers never pass through the model. The result is the field with its markers in place,
which the recipe restores and checks like an LLM's answer.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from engine.text.spans import SENTINEL_RE

# A line's literal lead (indentation, then a list, quote or heading marker) and its trailing blanks.
_LINE = re.compile(r"^(?P<lead>[ \t]*(?:(?:[-*+•>]|\d{1,3}[.)]|#{1,6})[ \t]+)?)(?P<body>.*?)(?P<tail>[ \t]*)$")
# Where one sentence ends and the next begins: end punctuation, a closing quote or bracket, blanks.
_SENTENCE_GAP = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"“(\[A-Z0-9])")
# A marker, as one piece (SENTINEL_RE has a group of its own, which re.split would return too).
_MARKER = re.compile(r"(\[\[[0-9]+\]\])")
# A markdown table row: its cells are translated one by one, the pipes kept.
_TABLE_PIPE = re.compile(r"\s*\|\s*")

Translate = Callable[[list[str]], Awaitable[list[str]]]
Keep = Callable[[str], bool]


def has_letters(text: str) -> bool:
    """Whether any letter remains outside the markers: only such text is worth a model call."""
    return any(ch.isalpha() for ch in SENTINEL_RE.sub("", text))


def layout(text: str, keep: Keep | None = None) -> tuple[list[str | int], list[str]]:
    """`text` as a sequence of literal strings and unit numbers, and the units (sentences of
    prose) to translate: joining the parts with each unit number replaced by its unit gives back
    `text` exactly. A sentence `keep` accepts stays literal."""
    parts: list[str | int] = []
    units: list[str] = []

    def piece(fragment: str) -> None:
        if has_letters(fragment) and not (keep and keep(fragment)):
            parts.append(len(units))
            units.append(fragment)
        elif fragment:
            parts.append(fragment)

    def cut(fragment: str, separator: re.Pattern[str]) -> None:
        position = 0
        for gap in separator.finditer(fragment):
            piece(fragment[position : gap.start()])
            parts.append(gap.group())
            position = gap.end()
        piece(fragment[position:])

    for line in re.split(r"(\n)", text):
        if line == "\n":
            parts.append(line)
            continue
        match = _LINE.match(line)
        parts.append(match["lead"])
        body = match["body"]
        if body.startswith("|"):
            cut(body, _TABLE_PIPE)
        else:
            cut(body, _SENTENCE_GAP)
        parts.append(match["tail"])
    return [part for part in parts if part != ""], units


def assemble(parts: list[str | int], translated: list[str]) -> str:
    return "".join(translated[part] if isinstance(part, int) else part for part in parts)


def markers_kept(source: str, translation: str) -> bool:
    """Every marker of the source once, in the same order, and no other."""
    return SENTINEL_RE.findall(source) == SENTINEL_RE.findall(translation)


async def translate_fields(
    fields: dict[str, str], translate: Translate, keep: Keep | None = None
) -> tuple[dict[str, str], int]:
    """Each protected field translated around its markers, the markers kept in place, with one
    call to `translate` for every sentence of every field (and one more for the sentences whose
    markers the model did not keep); returns the fields and how many sentences needed that.
    Sentences `keep` accepts are not translated (the text a task operates on)."""
    layouts = {key: layout(text, keep) for key, text in fields.items()}
    units = [unit for _, field_units in layouts.values() for unit in field_units]
    done = await translate(units) if units else []
    redo = [
        i for i, (unit, out) in enumerate(zip(units, done)) if SENTINEL_RE.search(unit) and not markers_kept(unit, out)
    ]
    if redo:
        cuts = [_cut_at_markers(units[i]) for i in redo]
        pieces = await translate([p for _, cut_units in cuts for p in cut_units])
        position = 0
        for i, (parts, cut_units) in zip(redo, cuts):
            done[i] = assemble(parts, pieces[position : position + len(cut_units)])
            position += len(cut_units)
    result, position = {}, 0
    for key, (parts, field_units) in layouts.items():
        result[key] = assemble(parts, done[position : position + len(field_units)])
        position += len(field_units)
    return result, len(redo)


def _cut_at_markers(unit: str) -> tuple[list[str | int], list[str]]:
    """A sentence as the prose between its markers (each stripped of its surrounding blanks,
    which stay literal) and the markers themselves, literal."""
    parts: list[str | int] = []
    units: list[str] = []
    for fragment in _MARKER.split(unit):
        if SENTINEL_RE.fullmatch(fragment):
            parts.append(fragment)
            continue
        core = fragment.strip()
        lead, tail = fragment[: len(fragment) - len(fragment.lstrip())], fragment[len(fragment.rstrip()) :]
        if has_letters(core):
            parts += [lead, len(units), tail]
            units.append(core)
        else:
            parts.append(fragment)
    return [part for part in parts if part != ""], units
