"""Deterministic checks on one translated field, and the validation of a whole translated example
that runs them field by field (the section at the end: `validate_translation`, `language_check`,
`seed_language_reason`).

Each check returns None when the text passes, or a short stable reason string that becomes the
row's reject reason and a report counter key. Checks never raise on a str input; a bad setting
(an unknown script, low > high) is a run problem and raises ValueError.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

from engine.config import ValidationConfig
from engine.languages import SCRIPTS, Language
from engine.protocols import LanguageIdentifier, SecondOpinionLanguageIdentifier
from engine.reasons import make_reason
from engine.text.adequacy import letter_weight
from engine.text.spans import strip_sentinels

# Characters that render as nothing: models sometimes emit only a BOM or zero-width spaces.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})

_WS = re.compile(r"\s+")
# Code (fenced or inline) and URLs legitimately stay identical under selective translation.
_FENCED = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_EDGE_PUNCT = "\"'`“”‘’«»()[]{}<>.,;:!?¡¿…"
_MIN_WORDS_UNTRANSLATED = 3

_LENGTH_EXEMPT_BELOW = 20  # chars; ratios on tiny strings swing wildly ("OK" -> "D'accord")

_RUN_LIMIT = 10  # the same token or letter this many times in a row is a generation loop
# A letter repeated _RUN_LIMIT times; digits excluded ("一共10000000000元" is a number).
_LETTER_RUN = re.compile(rf"([^\W\d_])\1{{{_RUN_LIMIT - 1},}}")
# Scripts written without spaces between words: degeneration is measured on characters there.
_UNSPACED_SCRIPTS = ("Japanese", "Thai")  # "Japanese" covers Han as well, hence Chinese

# lid.176 answers for a language that should not count as "wrong language". Kept tiny on purpose:
# each pair is a documented confusion of the model, not a linguistic judgement.
#   zh: lid.176 splits Chinese into zh, wuu (Wu) and yue (Cantonese); translated Mandarin in
#       traditional characters or with colloquial particles often comes back as yue/wuu.
#   ms/id: Malay and Indonesian share most vocabulary; lid.176 confuses them on short fields.
#   no/nn: Bokmål and Nynorsk.
LANGUAGE_EQUIVALENTS: dict[str, frozenset[str]] = {
    "zh": frozenset({"zh", "wuu", "yue"}),
    "ms": frozenset({"ms", "id"}),
    "id": frozenset({"id", "ms"}),
    "no": frozenset({"no", "nn"}),
    "nn": frozenset({"nn", "no"}),
}


def _is_blank(text: str) -> bool:
    return all(ch.isspace() or unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text)


def check_empty(text: str) -> str | None:
    """'empty' when the text is blank or only invisible characters."""
    return make_reason("empty") if _is_blank(text) else None


def _normalise(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def _plain_words(text: str) -> list[str]:
    """Plain words (letters, inner apostrophes/hyphens, two letters or more), ignoring code and URLs."""
    text = _INLINE_CODE.sub(" ", _FENCED.sub(" ", text))
    words = []
    for token in text.split():
        # URLs are tested per token: a URL regex over the text backtracks quadratically.
        if "://" in token or token.casefold().startswith("www."):
            continue
        core = token.strip(_EDGE_PUNCT).replace("'", "").replace("-", "")
        if len(core) >= 2 and core.isalpha():
            words.append(core)
    return words


def check_untranslated(source: str, text: str) -> str | None:
    """'untranslated' when the output repeats a source that has real words to translate: three
    words or more, or two of which one is a lower-case word ("Solve for x: 3x + 7 = 22."). Numbers,
    code, URLs and a name ("New York", "Albert Einstein") can legitimately stay identical."""
    if _normalise(source) != _normalise(text):
        return None
    words = _plain_words(source)
    if len(words) >= _MIN_WORDS_UNTRANSLATED or (len(words) == 2 and any(word.islower() for word in words)):
        return make_reason("untranslated")
    return None


def text_length(text: str) -> float:
    """Characters, a Han character counting 2.5, a Hangul syllable 2 and kana 1.5
    (engine.text.adequacy.letter_weight): about the English characters the text's meaning would
    take. A correct Chinese sentence has about a quarter of its English source's characters."""
    return sum(letter_weight(ch) for ch in text.strip())


def check_length_ratio(source: str, text: str, low: float, high: float) -> str | None:
    """'length_ratio:<r>' when text_length(text) / text_length(source) falls outside [low, high]."""
    if not 0 <= low <= high:
        raise ValueError(f"length ratio bounds need 0 <= low <= high, got low={low}, high={high}")
    source_len = text_length(source)
    if source_len < _LENGTH_EXEMPT_BELOW:
        return None
    ratio = text_length(text) / source_len
    if low <= ratio <= high:
        return None
    return make_reason("length_ratio", f"{ratio:.2f}")


_RANGE_CACHE: dict[str, tuple[list[int], list[int]]] = {}


def _sorted_ranges(script: str) -> tuple[list[int], list[int]]:
    if script not in SCRIPTS:
        raise ValueError(f"unknown script {script!r}; known scripts: {', '.join(sorted(SCRIPTS))}")
    if script not in _RANGE_CACHE:
        ranges = sorted(SCRIPTS[script])
        _RANGE_CACHE[script] = ([lo for lo, _ in ranges], [hi for _, hi in ranges])
    return _RANGE_CACHE[script]


def _script_letter_counts(text: str, script: str) -> tuple[int, int]:
    """(letters in script, all letters) of text."""
    starts, ends = _sorted_ranges(script)
    inside = letters = 0
    for ch in text:
        if not unicodedata.category(ch).startswith("L"):
            continue
        letters += 1
        cp = ord(ch)
        i = bisect.bisect_right(starts, cp) - 1
        if i >= 0 and cp <= ends[i]:
            inside += 1
    return inside, letters


def check_script(text: str, script: str, min_share: float = 0.5) -> str | None:
    """'wrong_script:<script>' when under min_share of the letters are in script."""
    inside, letters = _script_letter_counts(text, script)
    if letters == 0 or inside / letters >= min_share:
        return None
    return make_reason("wrong_script", script)


def _is_unspaced(text: str) -> bool:
    letters = sum(1 for ch in text if unicodedata.category(ch).startswith("L"))
    if not letters:
        return False
    unspaced = max(_script_letter_counts(text, s)[0] for s in _UNSPACED_SCRIPTS)
    return unspaced / letters > 0.5


def _has_letter(token: str) -> bool:
    return any(unicodedata.category(ch).startswith("L") for ch in token)


def _word_tokens(text: str) -> list[str]:
    # Punctuation-only tokens (bullets, table pipes, "---") are layout, not content.
    tokens = (t.strip(_EDGE_PUNCT).casefold() for t in text.split())
    return [t for t in tokens if any(ch.isalnum() for ch in t)]


def _repeated_share(tokens: list[str], n: int) -> float:
    """Share of n-grams with a letter that already occurred earlier in the text."""
    # Numbers stay in the grams (they tell "step 1 ..." from "step 2 ..."), but grams of numbers
    # alone are skipped: the rows of a zero matrix repeat by design.
    grams = [
        gram
        for gram in (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        if any(_has_letter(token) for token in gram)
    ]
    if not grams:
        return 0.0
    return (len(grams) - len(set(grams))) / len(grams)


def _longest_letter_run(tokens: list[str]) -> int:
    """Longest run of one token containing a letter ("0 0 0 0 ..." is data, not a loop)."""
    longest = run = 0
    previous = None
    for token in tokens:
        run = run + 1 if token == previous else 1
        previous = token
        if run > longest and _has_letter(token):
            longest = run
    return longest


def check_degeneration(text: str, n: int = 4, max_repeat: float = 0.3) -> str | None:
    """'degenerate' when text loops: too many repeated n-grams, or a token/letter run of 10+."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if _is_unspaced(text):
        if _LETTER_RUN.search(text):
            return make_reason("degenerate")
        tokens = [ch for ch in text if unicodedata.category(ch).startswith("L")]
        n *= 2  # one CJK/Thai character carries less than a word: compare longer grams
    else:
        # Letter runs inside one word are left alone here: "AAAAAAAAAAAA" is a poly-A tail.
        tokens = _word_tokens(text)
        if _longest_letter_run(tokens) >= _RUN_LIMIT:
            return make_reason("degenerate")
    if len(tokens) < 2 * n:
        return None
    return make_reason("degenerate") if _repeated_share(tokens, n) > max_repeat else None


def _bare_label(label: str) -> str:
    return label.strip().removeprefix("__label__").lower()


def check_language(predicted: str, confidence: float, expected: str, threshold: float) -> str | None:
    """'wrong_language:<pred>' or 'low_language_confidence:<c>' from a language-ID answer."""
    predicted, expected = _bare_label(predicted), _bare_label(expected)
    if predicted not in LANGUAGE_EQUIVALENTS.get(expected, frozenset({expected})):
        return make_reason("wrong_language", predicted)
    if confidence < threshold:
        return make_reason("low_language_confidence", f"{confidence:.2f}")
    return None


# ----------------------------------------------------------------------------------------------------
# Validate one translated example, field by field, with the deterministic checks.
# ----------------------------------------------------------------------------------------------------


# The input often *is* the text the task operates on (the sentence to translate or correct):
# selective translation may keep it byte-identical.
MAY_STAY_UNCHANGED = frozenset({"input"})


@dataclass(frozen=True)
class Verdict:
    reason: str | None  # None: every field passed
    field: str | None  # the field that failed
    lid_label: str | None  # weakest field's language-ID answer
    lid_confidence: float | None
    lid_method: str | None  # "fasttext", "lingua"/"cld2" (a second opinion decided), "script", or None


def _letters(text: str) -> int:
    """What language ID needs enough of: letters, not characters. "Trouvez x : 3x + 7 = 22." is 24
    characters but 9 letters, and lid.176 reads such a formula-heavy line as Italian as readily as French."""
    return sum(ch.isalpha() for ch in text)


def language_check(
    text: str, language: Language, langid: LanguageIdentifier, cfg: ValidationConfig
) -> tuple[str | None, str, float, str]:
    """(reason, label, confidence, method): does the text read as `language`? fastText where it
    knows the language and the text is long enough (and a second model, where langid has one, for a
    field fastText rejects), else the share of letters in its script."""
    if language.lid_label and langid.has_label(language.lid_label) and _letters(text) >= cfg.langid_min_chars:
        label, confidence = langid.predict(text)
        reason = check_language(label, confidence, language.lid_label, cfg.langid_threshold)
        if reason is not None and isinstance(langid, SecondOpinionLanguageIdentifier):
            # lid.176 misreads some languages it knows (most Yoruba as Irish, much Swahili as Turkish,
            # Nepali as Hindi): a second model that also knows the first one's answer may accept it instead.
            for second in langid.second_opinions(text, language.lid_label, _bare_label(label)):
                if check_language(*second[:2], language.lid_label, cfg.langid_second_threshold) is None:
                    return None, *second
        return reason, label, confidence, "fasttext"
    reason = check_script(text, language.script, cfg.script_min_share)
    return reason, language.code if reason is None else "?", 1.0 if reason is None else 0.0, "script"


def validate_translation(
    source: dict[str, str],
    translated: dict[str, str],
    protected_output: dict[str, str],
    language: Language,
    langid: LanguageIdentifier,
    cfg: ValidationConfig,
) -> Verdict:
    """`translated` holds restored fields; `protected_output` the model's text with sentinels,
    which is what language ID reads (code and URLs would only confuse it)."""
    weakest: tuple[str | None, float | None, str | None] = (None, None, None)
    for field, text in translated.items():
        src = source[field]
        if text == src and (field in MAY_STAY_UNCHANGED or _not_english(src, langid)):
            continue
        lid_text = strip_sentinels(without_kept_lines(protected_output[field], src, langid))
        lid_text = without_kept_names(lid_text, src, language, cfg.langid_min_chars)
        reason = (
            check_empty(text)
            or check_degeneration(text, cfg.degeneration_ngram, cfg.degeneration_max_repeat)
            or check_length_ratio(src, text, *cfg.length_ratio)
            or check_untranslated(src, text)
        )
        label, confidence, method = None, None, None
        if reason is None and lid_text:
            reason, label, confidence, method = language_check(lid_text, language, langid, cfg)
            if weakest[1] is None or confidence < weakest[1]:
                weakest = (label, confidence, method)
        if reason is not None:
            return Verdict(reason, field, label, confidence, method)
    return Verdict(None, None, *weakest)


def without_kept_lines(output: str, source: str, langid: LanguageIdentifier) -> str:
    """The output less the lines it kept word for word from a source line that is not English:
    the text a task operates on (the French sentence a grammar answer explains) stays as it was,
    and language ID must read the translation around it, not that sentence."""
    # Language ID only for source lines the output repeats: every draft of every row passes here.
    shared = {line.strip() for line in source.splitlines()} & {line.strip() for line in output.splitlines()} - {""}
    foreign = {line for line in shared if _not_english(line, langid)}
    if not foreign:
        return output
    return "\n".join(line for line in output.splitlines() if line.strip() not in foreign)


_TOKEN = re.compile(r"(?<![\w-])\w+(?![\w-])")  # whole words: "Python-dokumentationen" is a Swedish word


def without_kept_names(output: str, source: str, language: Language, min_letters: int) -> str:
    """The output less the names it kept from its source: words the source writes with a capital
    ("JavaScript", "Mona Lisa", "HTML"; not "What") that the output repeats as they are. A name is
    the same in every language, and in a short field it decides the reading: "Hvad er forskellen på
    == og === i JavaScript?" reads as English, and the Latin letters of "JavaScript" outnumber the
    Han characters of "JavaScript 中 == 和 === 有什么区别？" in the script check. In a Latin-script
    target the names stay when taking them out would leave fewer than `min_letters` letters: then
    language ID would give way to the script check, which any few-word English copy passes."""
    names = {
        token
        for token in _TOKEN.findall(source)
        if not token.islower() and token.casefold() not in _ENGLISH_FUNCTION_WORDS and any(c.isalpha() for c in token)
    }
    if not names:
        return output
    reduced = _TOKEN.sub(lambda match: " " if match.group() in names else match.group(), output)
    if reduced == output or (language.script == "Latin" and _letters(reduced) < min_letters):
        return output
    return reduced


# Words that mark a few-word text as English when language ID is unsure of it.
_ENGLISH_FUNCTION_WORDS = frozenset(
    "the of and for with to is are was an this that these what which how why who from by your you it".split()
)


def _not_english(text: str, langid: LanguageIdentifier, confident: float = 0.9) -> bool:
    """A source field that is not English (the answer of a 'translate into French' task) may stay.
    Language ID on a few words is a guess ("Solve for x: 3x + 7 = 22." reads as Italian at 0.82):
    below `confident`, a text half of whose plain words are English function words is English."""
    stripped = strip_sentinels(text)
    if not stripped:
        return False
    label, confidence = langid.predict(stripped)
    if label == "en":
        return False
    if confidence >= confident:
        return True
    words = [word.casefold() for word in _plain_words(stripped)]
    return not words or 2 * sum(word in _ENGLISH_FUNCTION_WORDS for word in words) < len(words)


def seed_language_reason(
    instruction: str, langid: LanguageIdentifier, min_confidence: float = 0.9, min_letters: int = 20
) -> str | None:
    """'seed_not_english:<label>' when a seed's instruction clearly is not English.

    Only the instruction is checked: the input and output of a translation task are legitimately
    in other languages. Short or formula-heavy instructions ("Solve for x: 3x + 7 = 22.") are too
    little text for language ID, so they pass, and only a confident answer rejects.
    """
    from engine.text.spans import protect

    visible = strip_sentinels(protect(instruction).text)
    if _letters(visible) < min_letters:
        return None
    label, confidence = langid.predict(visible)
    if label != "en" and confidence >= min_confidence:
        return make_reason("seed_not_english", label)
    return None
