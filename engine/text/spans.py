"""What goes to a translator and what comes back: protected spans (below), prose segments for a
machine-translation model that cannot be told to keep anything (`translate_fields`), and the
parser of a model's JSON reply (`parse_fields`), each in its own section.

Keep code, math, URLs and other literal spans out of the translator's hands.

A model asked to translate "Use `len(x)` on https://x.y/a_(b)" will happily translate the
identifier, "fix" the URL or localise a `%s`. So before translation every span that must not
change is replaced by a numbered sentinel `[[1]]`, `[[2]]`, ... (plain ASCII, which even small
models copy verbatim), and after translation the sentinels are put back. A sentinel that comes
back missing, duplicated, unknown or altered makes the row a reject with a stable reason string;
nothing here raises on text.

Invariants:
- `restore(protect(t).text, protect(t).spans) == (t, None)` for every string `t`: text outside
  spans is never touched, and spans never overlap.
- The only `SENTINEL_RE` matches in a protected text are the sentinels we inserted, because any
  sentinel-looking text of the source is itself protected (kind "sentinel_like").
- Restoration is single-pass, so a restored span containing `[[1]]` is never expanded again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from engine.reasons import make_reason

SENTINEL_RE = re.compile(r"\[\[([0-9]+)\]\]")

# What a model (or a source text) might make of a sentinel: `[[ 3 ]]`, `[[03]]`. Never overlaps
# another match, since `[` cannot occur inside one.
_SENTINEL_LIKE = re.compile(r"\[\[\s*\d+\s*\]\]")

# A fence opens a line; a backtick fence whose line holds more backticks is inline code
# (```x``` here), not a block. Unclosed fences run to the end, as in CommonMark.
_CODE_BLOCK = re.compile(
    r"^[ \t]*(?P<fence>```+(?=[^`\n]*$)|~~~+)[^\n]*"
    r"(?:(?:\n.*?)??\n[ \t]*(?P=fence)[`~]*[ \t]*$|.*\Z)",
    re.MULTILINE | re.DOTALL,
)

# Backtick runs of equal length delimit a code span; kept to one line so a stray backtick used
# as an apostrophe cannot swallow a paragraph.
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)[^\n]+?(?<!`)\1(?!`)")

_MATH_ENVS = (
    r"(?:equation|align|alignat|gather|multline|flalign|eqnarray|math|displaymath"
    r"|split|cases|array|[pbBvV]?matrix|smallmatrix)\*?"
)
# Display delimiters do not nest, so a body never holds its own opener: that stops a run of
# unclosed openers from each scanning to the end of the text (quadratic time).
_MATH = re.compile(
    rf"\\begin\{{(?P<env>{_MATH_ENVS})\}}(?:(?!\\begin\{{(?P=env)\}}).)*?\\end\{{(?P=env)\}}"
    r"|\$\$.+?\$\$"
    r"|\\\[(?:(?!\\\[).)+?\\\]"
    r"|\\\((?:(?!\\\().)+?\\\)"
    # Inline $...$ by Pandoc's rule: no space inside either dollar and no digit right after the
    # closing one, so "costs $5 and $10" and "$20,000-$30,000" stay prose. `\$` is a literal.
    r"|(?<![\\$])\$(?=[^\s$])[^$\n]+?(?<![\s\\])\$(?![\d$])",
    re.DOTALL,
)

# Characters a URL may contain; also excluded are general and CJK punctuation and fullwidth
# forms, so "see http://x.y—or" and "访问http://x.y。" stop at the URL's end.
_URL_CHAR = r"[^\s<>\"'`\[\]{}|\\^\u2000-\u206f\u3000-\u303f\uff00-\uffef]"
_URL = re.compile(rf"(?<![A-Za-z0-9_@.])(?P<prefix>(?i:(?:https?|ftp)://|www\.)){_URL_CHAR}+")
_URL_TRAILING = ".,;:!?*"

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

_PLACEHOLDER = re.compile(
    r"\{\{[^{}\n]*\}\}"  # {{ jinja }}
    r"|\{(?:[A-Za-z_]\w*|\d+)?(?:\.[A-Za-z_]\w*|\[\w+\])*(?:![rsa])?(?::[^{}\s]*)?\}"  # str.format
    # printf: no space flag and never right after a digit, so "50% of" / "50 % of" stay prose;
    # not after another % either, since "%%d" is a literal "%d".
    r"|(?<![\d%])%(?:\([A-Za-z_]\w*\))?[-+#0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[hlL]?[diouxXeEfFgGcrsa]"
)

# Scanned in this order, each kind only in what earlier kinds left bare. "sentinel_like" comes
# last: `x = [[1]]` inside a code block stays part of that block (its text is restored verbatim
# anyway), and any sentinel-looking text still bare afterwards gets protected on its own.
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("code_block", _CODE_BLOCK),
    ("inline_code", _INLINE_CODE),
    ("math", _MATH),
    ("url", _URL),
    ("email", _EMAIL),
    ("placeholder", _PLACEHOLDER),
    ("sentinel_like", _SENTINEL_LIKE),
)


@dataclass(frozen=True)
class Protected:
    text: str  # the text with every protected span replaced by its sentinel
    spans: tuple[str, ...]  # spans[i] is the original text behind sentinel [[i+1]]
    kinds: tuple[str, ...]  # kinds[i] is the kind of spans[i], e.g. "url"


def _sentinel(number: int) -> str:
    return f"[[{number}]]"


def _url_end(match: re.Match[str]) -> int:
    """End of a URL match without trailing sentence punctuation or an unbalanced ")"."""
    url = match.group()
    while url:
        if url[-1] in _URL_TRAILING or (url[-1] == ")" and url.count(")") > url.count("(")):
            url = url[:-1]
        else:
            break
    if len(url) <= len(match.group("prefix")):
        return match.start()  # nothing left after "www." or "http://": not a URL
    return match.start() + len(url)


def _gaps(length: int, claimed: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """The (start, end) stretches of the text not covered by a claimed span."""
    gaps, position = [], 0
    for start, end, _ in claimed:
        if start > position:
            gaps.append((position, start))
        position = end
    if position < length:
        gaps.append((position, length))
    return gaps


def _find_spans(text: str) -> list[tuple[int, int, str]]:
    claimed: list[tuple[int, int, str]] = []
    for kind, pattern in _KINDS:
        found = []
        for gap_start, gap_end in _gaps(len(text), claimed):
            # pos/endpos (not slicing) so lookbehinds still see the real neighbours.
            for match in pattern.finditer(text, gap_start, gap_end):
                end = _url_end(match) if kind == "url" else match.end()
                if end > match.start():
                    found.append((match.start(), end, kind))
        claimed = sorted(claimed + found)
    return claimed


def _protect(text: str, first_number: int) -> tuple[str, list[str], list[str]]:
    pieces, spans, kinds, position = [], [], [], 0
    for start, end, kind in _find_spans(text):
        pieces += [text[position:start], _sentinel(first_number + len(spans))]
        spans.append(text[start:end])
        kinds.append(kind)
        position = end
    pieces.append(text[position:])
    return "".join(pieces), spans, kinds


def protect(text: str) -> Protected:
    """Replace every span that must survive translation by a sentinel, numbered from 1."""
    protected, spans, kinds = _protect(text, 1)
    return Protected(protected, tuple(spans), tuple(kinds))


def protect_many(texts: Sequence[str]) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
    """Protect several fields (instruction, input, output of one example) with ONE shared
    numbering, so sentinels are unique across the fields that go to the model together.
    Returns (protected texts, spans, kinds).

    The numbers in field i are `{int(n) for n in SENTINEL_RE.findall(protected[i])}`: pass that
    as `expected` when restoring the translation of field i.
    """
    protected, spans, kinds = [], [], []
    for text in texts:
        field, field_spans, field_kinds = _protect(text, len(spans) + 1)
        protected.append(field)
        spans += field_spans
        kinds += field_kinds
    return protected, tuple(spans), tuple(kinds)


def restore(text: str, spans: Sequence[str], expected: Collection[int] | None = None) -> tuple[str | None, str | None]:
    """Replace each sentinel in `text` by its span. Returns (restored_text, None) or (None, reason).

    `expected` is the set of sentinel numbers that must occur in THIS text exactly once (for
    protect_many, the numbers that were in this field's source); default: all of 1..len(spans).
    Reasons (stable strings, used as reject reasons): "span_missing:[[3]]",
    "span_duplicated:[[2]]", "span_unknown:[[9]]" (not in expected, out of range, or a variant
    such as "[[02]]"). A sentinel the model altered ("[[ 2]]", "[2]") counts as missing.
    """
    wanted = range(1, len(spans) + 1) if expected is None else expected
    # Looked up by exact text, so "[[03]]" is unknown rather than a stand-in for [[3]].
    number_of = {_sentinel(n): n for n in wanted if 1 <= n <= len(spans)}
    seen: set[int] = set()
    for match in SENTINEL_RE.finditer(text):
        number = number_of.get(match.group())
        if number is None:
            return None, make_reason("span_unknown", match.group())
        if number in seen:
            return None, make_reason("span_duplicated", match.group())
        seen.add(number)
    for number in sorted(wanted):
        if number not in seen:
            return None, make_reason("span_missing", _sentinel(number))
    # A model-made variant such as "[[ 2 ]]" next to the real sentinels is junk in the output.
    for match in _SENTINEL_LIKE.finditer(text):
        if not SENTINEL_RE.fullmatch(match.group()):
            return None, make_reason("span_unknown", match.group())
    # One pass over the model's text: restored spans are never scanned again.
    return SENTINEL_RE.sub(lambda m: spans[number_of[m.group()] - 1], text), None


def strip_sentinels(text: str) -> str:
    """The text with every sentinel (and near variant) removed and whitespace collapsed: what
    language ID should look at."""
    return " ".join(_SENTINEL_LIKE.sub(" ", text).split())


# ----------------------------------------------------------------------------------------------------
# Selective translation for a machine-translation model, which cannot be told to keep anything.
#
# The LLM gets the protected text (`[[1]]` markers in place of code, URLs, math, placeholders)
# and is asked to copy the markers. An MT model is not asked: a field is cut into the prose an MT
# model should see and the literal text it must not (line breaks and indentation, list and heading
# markers, table pipes, sentence gaps), and only the prose goes to the model, a sentence at a time.
# A sentence that holds markers goes whole first, for its grammar; where the model did not give
# every marker back exactly, in order, that sentence goes again in pieces cut at its markers, so
# the markers never pass through the model. The result is the field with its markers in place,
# which the recipe restores and checks like an LLM's answer.
# ----------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------
# Parse model output into fields. Never raises on model output: a value or a reason.
# ----------------------------------------------------------------------------------------------------


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
