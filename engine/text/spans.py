"""Keep code, math, URLs and other literal spans out of the translator's hands.

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

import re
from collections.abc import Collection, Sequence
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
