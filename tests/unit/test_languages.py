"""Ring (a): the language registry."""

import re

import pytest

from engine.languages import (
    DEFAULT_TARGETS,
    LANGUAGES,
    SCRIPTS,
    TIERS,
    Language,
    get_language,
    resolve_languages,
)

# Copied from METHODS.md on purpose: the registry must match the documented default set.
METHODS_DEFAULTS = {
    "high": "ar de es fr hi id it ja ko nl pl pt ru tr vi zh".split(),
    "mid": "bg bn ca cs da el fa fi he hu ms ro sk sv th uk ur".split(),
    "low": "af am az et hy is ka kk lt lv mr ne si sw ta te yo".split(),
}
LID176_LABELS = set(
    "af am ar az bg bn ca cs da de el en es et fa fi fr he hi hu hy id is it ja ka kk ko lt lv "
    "mr ms ne nl pl pt ro ru si sk sv sw ta te th tr uk ur vi yo zh".split()
)


def test_default_targets_match_methods_in_order():
    assert DEFAULT_TARGETS == tuple(METHODS_DEFAULTS["high"] + METHODS_DEFAULTS["mid"] + METHODS_DEFAULTS["low"])
    assert len(DEFAULT_TARGETS) == 50
    assert len(set(DEFAULT_TARGETS)) == 50


@pytest.mark.parametrize(("tier", "count"), [("high", 16), ("mid", 17), ("low", 17)])
def test_tier_sizes(tier, count):
    codes = [c for c in DEFAULT_TARGETS if LANGUAGES[c].tier == tier]
    assert codes == METHODS_DEFAULTS[tier]
    assert len(codes) == count


def test_tiers_constant():
    assert TIERS == ("high", "mid", "low")


@pytest.mark.parametrize("code", DEFAULT_TARGETS)
def test_every_default_has_its_lid176_label(code):
    lang = LANGUAGES[code]
    assert lang.lid_label == code
    assert lang.lid_label in LID176_LABELS
    assert lang.tier in TIERS
    assert lang.script in SCRIPTS


def test_english_is_the_anchor_and_not_a_target():
    en = get_language("en")
    assert (en.name, en.script, en.tier, en.lid_label) == ("English", "Latin", "anchor", "en")
    assert "en" not in DEFAULT_TARGETS
    assert [c for c, lang in LANGUAGES.items() if lang.tier == "anchor"] == ["en"]


@pytest.mark.parametrize("code", ["ha", "zu", "xh"])
def test_extras_lack_lid_label(code):
    lang = get_language(code)
    assert lang.lid_label is None
    assert lang.tier == "low"
    assert lang.script == "Latin"
    assert code not in DEFAULT_TARGETS


def test_registry_keys_and_names_are_consistent():
    assert set(LANGUAGES) == {"en", *DEFAULT_TARGETS, "ha", "zu", "xh"}
    assert all(code == lang.code for code, lang in LANGUAGES.items())
    assert all(re.fullmatch(r"[a-z]{2,3}", code) for code in LANGUAGES)
    names = [lang.name for lang in LANGUAGES.values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("code", "script"),
    [
        ("fa", "Arabic"),
        ("ur", "Arabic"),
        ("ar", "Arabic"),
        ("hi", "Devanagari"),
        ("mr", "Devanagari"),
        ("ne", "Devanagari"),
        ("ja", "Japanese"),
        ("zh", "Han"),
        ("ko", "Hangul"),
        ("am", "Ethiopic"),
        ("kk", "Cyrillic"),
        ("az", "Latin"),
        ("yo", "Latin"),
        ("vi", "Latin"),
        ("el", "Greek"),
        ("he", "Hebrew"),
        ("th", "Thai"),
        ("hy", "Armenian"),
        ("ka", "Georgian"),
        ("si", "Sinhala"),
        ("ta", "Tamil"),
        ("te", "Telugu"),
        ("bn", "Bengali"),
    ],
)
def test_scripts(code, script):
    assert get_language(code).script == script


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_ranges_are_valid_and_disjoint(script):
    ranges = sorted(SCRIPTS[script])
    assert all(0 <= lo <= hi <= 0x10FFFF for lo, hi in ranges)
    # checks.py bisects over these ranges, which assumes no overlap
    assert all(prev_hi < lo for (_, prev_hi), (lo, _) in zip(ranges, ranges[1:]))


def test_language_is_frozen():
    with pytest.raises(AttributeError):
        get_language("fr").name = "Français"  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value"), [("script", "Klingon"), ("tier", "medium")])
def test_language_rejects_bad_fields(field, value):
    kwargs = {"code": "xx", "name": "X", "script": "Latin", "tier": "low", "lid_label": None}
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        Language(**kwargs)


@pytest.mark.parametrize("code", ["fr", "FR", " fr ", "Fr"])
def test_get_language_normalises_case_and_spaces(code):
    assert get_language(code) is LANGUAGES["fr"]


@pytest.mark.parametrize(
    ("code", "suggestion"),
    [("fre", "fr"), ("german", "de"), ("Japanese", "ja"), ("swahli", "sw"), ("hindi", "hi")],
)
def test_unknown_code_suggests_close_match(code, suggestion):
    with pytest.raises(ValueError) as info:
        get_language(code)
    message = str(info.value)
    assert f"unknown language code {code!r}" in message
    assert f"did you mean {suggestion!r}" in message
    assert "known codes: af, am, ar" in message


@pytest.mark.parametrize("code", ["qqqqqq", "", "   ", "x" * 10_000, "\x00", None, 42])
def test_unknown_code_without_suggestion(code):
    with pytest.raises(ValueError, match="unknown language code") as info:
        get_language(code)  # type: ignore[arg-type]
    assert "known codes:" in str(info.value)


def test_resolve_languages_keeps_order():
    langs = resolve_languages(["zh", "fr", "ha", "en"])
    assert [lang.code for lang in langs] == ["zh", "fr", "ha", "en"]


def test_resolve_all_defaults():
    assert [lang.code for lang in resolve_languages(DEFAULT_TARGETS)] == list(DEFAULT_TARGETS)


def test_resolve_accepts_any_iterable_and_empty():
    assert [lang.code for lang in resolve_languages(c for c in ("de", "es"))] == ["de", "es"]
    assert resolve_languages([]) == []


def test_resolve_reports_all_unknowns_at_once():
    with pytest.raises(ValueError) as info:
        resolve_languages(["fr", "fre", "klingon", "de", "xx"])
    message = str(info.value)
    assert message.startswith("3 unknown language code(s)")
    for code in ("'fre'", "'klingon'", "'xx'"):
        assert code in message
    assert "did you mean 'fr'" in message


@pytest.mark.parametrize("codes", [["fr", "de", "fr"], ["fr", "FR"], ["fr", " fr"]])
def test_resolve_rejects_duplicates(codes):
    with pytest.raises(ValueError, match="duplicate language code.*fr"):
        resolve_languages(codes)


def test_resolve_lists_every_duplicate():
    with pytest.raises(ValueError, match="duplicate language code\\(s\\): de, fr"):
        resolve_languages(["fr", "de", "fr", "de", "es"])


def test_resolve_rejects_a_bare_string():
    # "fr" iterated would be "f", "r": refuse instead of guessing
    with pytest.raises(TypeError, match="list of language codes"):
        resolve_languages("fr")
