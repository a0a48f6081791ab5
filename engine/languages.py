"""Registry of the languages babelforge translates into, with their scripts and tiers."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

TIERS = ("high", "mid", "low")
_ALL_TIERS = ("anchor", *TIERS)  # "anchor" is English alone: the source, never a sampled tier

# Code-point ranges (inclusive) of the *letters* of each script. Marks (vowel signs, diacritics)
# are not letters (category M*), so script_share never counts them; ranges may therefore cover a
# whole Unicode block.
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": (
        (0x0041, 0x005A),
        (0x0061, 0x007A),
        (0x00AA, 0x00AA),
        (0x00BA, 0x00BA),
        (0x00C0, 0x024F),  # Latin-1 Supplement letters, Latin Extended-A and -B
        (0x0250, 0x02AF),  # IPA Extensions: ɛ ɔ ŋ in many African orthographies
        (0x1E00, 0x1EFF),  # Latin Extended Additional: Vietnamese, Yoruba dotted vowels
        (0x2C60, 0x2C7F),
        (0xA720, 0xA7FF),
        (0xFF21, 0xFF3A),  # fullwidth forms, which CJK-trained models like to emit
        (0xFF41, 0xFF5A),
    ),
    "Cyrillic": ((0x0400, 0x052F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)),
    "Greek": ((0x0370, 0x03FF), (0x1F00, 0x1FFF)),
    "Armenian": ((0x0530, 0x058F), (0xFB13, 0xFB17)),
    "Hebrew": ((0x0590, 0x05FF), (0xFB1D, 0xFB4F)),
    "Arabic": (
        (0x0600, 0x06FF),
        (0x0750, 0x077F),
        (0x0870, 0x08FF),
        (0xFB50, 0xFDFF),  # presentation forms A
        (0xFE70, 0xFEFF),  # presentation forms B
    ),
    "Devanagari": ((0x0900, 0x097F), (0xA8E0, 0xA8FF)),
    "Bengali": ((0x0980, 0x09FF),),
    "Tamil": ((0x0B80, 0x0BFF), (0x11FC0, 0x11FFF)),
    "Telugu": ((0x0C00, 0x0C7F),),
    "Sinhala": ((0x0D80, 0x0DFF), (0x111E0, 0x111FF)),
    "Thai": ((0x0E00, 0x0E7F),),
    "Georgian": ((0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x2D00, 0x2D2F)),
    "Ethiopic": ((0x1200, 0x139F), (0x2D80, 0x2DDF), (0xAB00, 0xAB2F)),
    "Hangul": (
        (0x1100, 0x11FF),
        (0x3130, 0x318F),
        (0xA960, 0xA97F),
        (0xAC00, 0xD7FF),
        (0xFFA0, 0xFFDF),  # halfwidth jamo
    ),
    "Han": (
        (0x3005, 0x3007),  # 々 〆 〇: iteration and closing marks used inside Han words
        (0x3400, 0x4DBF),
        (0x4E00, 0x9FFF),
        (0xF900, 0xFAFF),
        (0x20000, 0x2FA1F),  # supplementary ideographs and compatibility supplement
        (0x30000, 0x323AF),
    ),
}
# Japanese prose mixes kana and kanji; a "Japanese" check must accept both.
SCRIPTS["Japanese"] = (
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana (with the ー prolonged-sound mark)
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0xFF66, 0xFF9F),  # halfwidth Katakana
    *SCRIPTS["Han"],
)


@dataclass(frozen=True)
class Language:
    """One language: its code, English name, writing script, resource tier and lid.176 label."""

    code: str
    name: str
    script: str
    tier: str
    lid_label: str | None  # None: lid.176 lacks it, so callers fall back to a script check

    def __post_init__(self) -> None:
        if self.script not in SCRIPTS:
            raise ValueError(f"language {self.code!r}: unknown script {self.script!r}")
        if self.tier not in _ALL_TIERS:
            raise ValueError(f"language {self.code!r}: tier must be one of {_ALL_TIERS}")


def _lang(code: str, name: str, script: str, tier: str, lid: bool = True) -> Language:
    return Language(code, name, script, tier, code if lid else None)


_REGISTRY = (
    _lang("en", "English", "Latin", "anchor"),
    # high
    _lang("ar", "Arabic", "Arabic", "high"),
    _lang("de", "German", "Latin", "high"),
    _lang("es", "Spanish", "Latin", "high"),
    _lang("fr", "French", "Latin", "high"),
    _lang("hi", "Hindi", "Devanagari", "high"),
    _lang("id", "Indonesian", "Latin", "high"),
    _lang("it", "Italian", "Latin", "high"),
    _lang("ja", "Japanese", "Japanese", "high"),
    _lang("ko", "Korean", "Hangul", "high"),
    _lang("nl", "Dutch", "Latin", "high"),
    _lang("pl", "Polish", "Latin", "high"),
    _lang("pt", "Portuguese", "Latin", "high"),
    _lang("ru", "Russian", "Cyrillic", "high"),
    _lang("tr", "Turkish", "Latin", "high"),
    _lang("vi", "Vietnamese", "Latin", "high"),
    _lang("zh", "Chinese", "Han", "high"),
    # mid
    _lang("bg", "Bulgarian", "Cyrillic", "mid"),
    _lang("bn", "Bengali", "Bengali", "mid"),
    _lang("ca", "Catalan", "Latin", "mid"),
    _lang("cs", "Czech", "Latin", "mid"),
    _lang("da", "Danish", "Latin", "mid"),
    _lang("el", "Greek", "Greek", "mid"),
    _lang("fa", "Persian", "Arabic", "mid"),
    _lang("fi", "Finnish", "Latin", "mid"),
    _lang("he", "Hebrew", "Hebrew", "mid"),
    _lang("hu", "Hungarian", "Latin", "mid"),
    _lang("ms", "Malay", "Latin", "mid"),
    _lang("ro", "Romanian", "Latin", "mid"),
    _lang("sk", "Slovak", "Latin", "mid"),
    _lang("sv", "Swedish", "Latin", "mid"),
    _lang("th", "Thai", "Thai", "mid"),
    _lang("uk", "Ukrainian", "Cyrillic", "mid"),
    _lang("ur", "Urdu", "Arabic", "mid"),
    # low
    _lang("af", "Afrikaans", "Latin", "low"),
    _lang("am", "Amharic", "Ethiopic", "low"),
    _lang("az", "Azerbaijani", "Latin", "low"),
    _lang("et", "Estonian", "Latin", "low"),
    _lang("hy", "Armenian", "Armenian", "low"),
    _lang("is", "Icelandic", "Latin", "low"),
    _lang("ka", "Georgian", "Georgian", "low"),
    _lang("kk", "Kazakh", "Cyrillic", "low"),
    _lang("lt", "Lithuanian", "Latin", "low"),
    _lang("lv", "Latvian", "Latin", "low"),
    _lang("mr", "Marathi", "Devanagari", "low"),
    _lang("ne", "Nepali", "Devanagari", "low"),
    _lang("si", "Sinhala", "Sinhala", "low"),
    _lang("sw", "Swahili", "Latin", "low"),
    _lang("ta", "Tamil", "Tamil", "low"),
    _lang("te", "Telugu", "Telugu", "low"),
    _lang("yo", "Yoruba", "Latin", "low"),
)
# Not in the default set and absent from lid.176: they exercise the script-check fallback.
_EXTRAS = (
    _lang("ha", "Hausa", "Latin", "low", lid=False),
    _lang("zu", "Zulu", "Latin", "low", lid=False),
    _lang("xh", "Xhosa", "Latin", "low", lid=False),
)

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in (*_REGISTRY, *_EXTRAS)}
DEFAULT_TARGETS: tuple[str, ...] = tuple(lang.code for lang in _REGISTRY if lang.tier != "anchor")


def _suggest(code: str) -> str | None:
    """Closest known code to a mistyped one, also matching English names ("german" -> "de")."""
    by_name = {lang.name.lower(): lang.code for lang in LANGUAGES.values()}
    if code in by_name:
        return by_name[code]
    match = difflib.get_close_matches(code, LANGUAGES, n=1, cutoff=0.6)
    if match:
        return match[0]
    match = difflib.get_close_matches(code, by_name, n=1, cutoff=0.6)
    return by_name[match[0]] if match else None


def _unknown_message(code: object) -> str:
    hint = _suggest(code.strip().lower()) if isinstance(code, str) else None
    did_you_mean = f"; did you mean {hint!r}?" if hint else ""
    return f"unknown language code {code!r}{did_you_mean}"


def get_language(code: str) -> Language:
    """Return the registered language for a code (case and surrounding spaces ignored)."""
    lang = LANGUAGES.get(code.strip().lower()) if isinstance(code, str) else None
    if lang is None:
        known = ", ".join(sorted(LANGUAGES))
        raise ValueError(f"{_unknown_message(code)}; known codes: {known}")
    return lang


def resolve_languages(codes: Iterable[str]) -> list[Language]:
    """Resolve codes in order; report every unknown code and every duplicate in one ValueError."""
    if isinstance(codes, str):
        # Iterating a str would silently yield single letters.
        raise TypeError(f"expected a list of language codes, got the string {codes!r}")
    codes = list(codes)
    unknown = [code for code in codes if not isinstance(code, str) or code.strip().lower() not in LANGUAGES]
    if unknown:
        lines = "; ".join(_unknown_message(code) for code in unknown)
        known = ", ".join(sorted(LANGUAGES))
        raise ValueError(f"{len(unknown)} unknown language code(s): {lines}; known codes: {known}")
    counts = Counter(code.strip().lower() for code in codes)
    duplicates = sorted(code for code, n in counts.items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate language code(s): {', '.join(duplicates)}")
    return [LANGUAGES[code.strip().lower()] for code in codes]
