"""engine.mt_codes: the target-language codes of NLLB-200, M2M-100 and OPUS-MT Marian models."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.languages import LANGUAGES, Language
from engine.mt_codes import CONVENTIONS, SOURCE_CODES, target_codes

# ISO 15924 script codes of the registry's scripts, as FLORES-200 appends them.
SCRIPT_SUFFIX = {
    "Latin": "Latn",
    "Cyrillic": "Cyrl",
    "Greek": "Grek",
    "Armenian": "Armn",
    "Hebrew": "Hebr",
    "Arabic": "Arab",
    "Devanagari": "Deva",
    "Bengali": "Beng",
    "Tamil": "Taml",
    "Telugu": "Telu",
    "Sinhala": "Sinh",
    "Thai": "Thai",
    "Georgian": "Geor",
    "Ethiopic": "Ethi",
    "Hangul": "Hang",
    "Han": "Hans",
    "Japanese": "Jpan",
}
TARGETS = sorted(code for code in LANGUAGES if code != "en")


@pytest.mark.parametrize("code", TARGETS)
def test_every_language_has_a_flores_code_in_its_script(code):
    language = LANGUAGES[code]
    nllb = target_codes(language, "nllb")[0]
    assert re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", nllb)
    assert nllb.endswith("_" + SCRIPT_SUFFIX[language.script])


@pytest.mark.parametrize(
    "code, expected",
    [
        ("pt", "por_Latn"),
        ("zh", "zho_Hans"),
        ("sw", "swh_Latn"),
        ("ar", "arb_Arab"),
        ("ja", "jpn_Jpan"),
        ("ko", "kor_Hang"),
        ("fa", "pes_Arab"),
        ("ms", "zsm_Latn"),
        ("ne", "npi_Deva"),
        ("az", "azj_Latn"),
        ("et", "est_Latn"),
        ("lv", "lvs_Latn"),
        ("ha", "hau_Latn"),
        ("zu", "zul_Latn"),
        ("xh", "xho_Latn"),
    ],
)
def test_nllb_spot_checks(code, expected):
    assert target_codes(LANGUAGES[code], "nllb")[0] == expected


def test_nllb_codes_are_in_the_nllb_tokenizer_vocabulary():
    # The real list NLLB-200 was trained with, where transformers is installed (it is in the venv).
    nllb = pytest.importorskip("transformers.models.nllb.tokenization_nllb")
    assert {target_codes(LANGUAGES[code], "nllb")[0] for code in TARGETS} <= set(nllb.FAIRSEQ_LANGUAGE_CODES)


@pytest.mark.parametrize(
    "code, convention, expected",
    [
        ("pt", "m2m100", "__pt__"),
        ("zh", "m2m100", "__zh__"),
        ("sw", "m2m100", "__sw__"),
        ("pt", "marian-multi", ">>por<<"),
        ("zh", "marian-multi", ">>zho<<"),
        ("ar", "marian-multi", ">>ara<<"),
        ("pt", "marian", ""),
        ("te", "marian", ""),
    ],
)
def test_other_conventions(code, convention, expected):
    assert target_codes(LANGUAGES[code], convention)[0] == expected


def test_multi_target_alternatives_follow_the_macrolanguage_code():
    assert target_codes(LANGUAGES["zh"], "marian-multi")[:3] == (">>zho<<", ">>zho_Hans<<", ">>cmn_Hans<<")
    assert target_codes(LANGUAGES["pt"], "marian-multi") == (">>por<<",)


def _covered(code: str, convention: str) -> bool:
    try:
        return bool(target_codes(LANGUAGES[code], convention)[0])
    except ValueError:
        return False


@pytest.mark.parametrize("convention", ["nllb", "m2m100", "marian-multi"])
def test_every_language_but_the_known_gaps_is_covered(convention):
    gaps = {code for code in TARGETS if not _covered(code, convention)}
    assert gaps == ({"te"} if convention == "m2m100" else set())


def test_source_codes():
    assert set(SOURCE_CODES) == set(CONVENTIONS)
    assert SOURCE_CODES["nllb"] == "eng_Latn" and SOURCE_CODES["m2m100"] == "__en__"


def test_unknown_convention_names_it_and_the_known_ones():
    with pytest.raises(ValueError, match=r"'opus'.*nllb, m2m100, marian, marian-multi"):
        target_codes(LANGUAGES["pt"], "opus")


def test_unsupported_language_names_the_language_and_the_convention():
    with pytest.raises(ValueError, match=r"'te' \(Telugu\).*'m2m100'"):
        target_codes(LANGUAGES["te"], "m2m100")


@pytest.mark.parametrize("convention", ["nllb", "m2m100", "marian-multi"])
def test_language_outside_the_registry_is_refused(convention):
    klingon = Language("tlh", "Klingon", "Latin", "low", None)
    with pytest.raises(ValueError, match=rf"'tlh' \(Klingon\).*'{convention}'"):
        target_codes(klingon, convention)


def test_imports_no_heavy_library():
    code = "import sys, engine.mt_codes; print(sorted({'ray', 'vllm', 'torch', 'ctranslate2'} & set(sys.modules)))"
    assert (
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout
        == "[]\n"
    )
