"""Target-language codes of the machine-translation model families (NLLB-200, M2M-100, OPUS-MT
Marian) for the project's languages, so an MT backend can steer any converted model to the
language a row asks for. Pure Python: importable where no MT library is installed.
"""

from __future__ import annotations

from engine.languages import Language

CONVENTIONS = ("nllb", "m2m100", "marian", "marian-multi")

# FLORES-200 codes as NLLB-200's tokenizer spells them. Where a macrolanguage has several members
# NLLB trained on the standard one: Modern Standard Arabic, Iranian Persian, Standard Malay,
# Swahili (individual), North Azerbaijani, Standard Latvian, Nepali (individual). Estonian is
# est_Latn in NLLB-200 (ekk_Latn is FLORES+'s later spelling, absent from NLLB's vocabulary).
_NLLB = {
    "en": "eng_Latn",
    "ar": "arb_Arab",
    "de": "deu_Latn",
    "es": "spa_Latn",
    "fr": "fra_Latn",
    "hi": "hin_Deva",
    "id": "ind_Latn",
    "it": "ita_Latn",
    "ja": "jpn_Jpan",
    "ko": "kor_Hang",
    "nl": "nld_Latn",
    "pl": "pol_Latn",
    "pt": "por_Latn",
    "ru": "rus_Cyrl",
    "tr": "tur_Latn",
    "vi": "vie_Latn",
    "zh": "zho_Hans",
    "bg": "bul_Cyrl",
    "bn": "ben_Beng",
    "ca": "cat_Latn",
    "cs": "ces_Latn",
    "da": "dan_Latn",
    "el": "ell_Grek",
    "fa": "pes_Arab",
    "fi": "fin_Latn",
    "he": "heb_Hebr",
    "hu": "hun_Latn",
    "ms": "zsm_Latn",
    "ro": "ron_Latn",
    "sk": "slk_Latn",
    "sv": "swe_Latn",
    "th": "tha_Thai",
    "uk": "ukr_Cyrl",
    "ur": "urd_Arab",
    "af": "afr_Latn",
    "am": "amh_Ethi",
    "az": "azj_Latn",
    "et": "est_Latn",
    "hy": "hye_Armn",
    "is": "isl_Latn",
    "ka": "kat_Geor",
    "kk": "kaz_Cyrl",
    "lt": "lit_Latn",
    "lv": "lvs_Latn",
    "mr": "mar_Deva",
    "ne": "npi_Deva",
    "si": "sin_Sinh",
    "sw": "swh_Latn",
    "ta": "tam_Taml",
    "te": "tel_Telu",
    "yo": "yor_Latn",
    "ha": "hau_Latn",
    "zu": "zul_Latn",
    "xh": "xho_Latn",
}

# M2M-100 (418M, 1.2B) names its 100 languages by the ISO 639-1 codes we use; of ours it lacks Telugu.
_M2M100 = frozenset(_NLLB) - {"te"}

# ISO 639-3 codes, the OPUS-MT (Tatoeba) target labels. Macrolanguage codes first, as in most
# multi-target models; some models were trained on member-language labels instead (opus-mt-en-zh
# knows >>cmn_Hans<<, not necessarily >>zho<<), so those follow as alternatives to try in order.
_ISO639_3 = {
    "en": "eng",
    "ar": "ara",
    "de": "deu",
    "es": "spa",
    "fr": "fra",
    "hi": "hin",
    "id": "ind",
    "it": "ita",
    "ja": "jpn",
    "ko": "kor",
    "nl": "nld",
    "pl": "pol",
    "pt": "por",
    "ru": "rus",
    "tr": "tur",
    "vi": "vie",
    "zh": "zho",
    "bg": "bul",
    "bn": "ben",
    "ca": "cat",
    "cs": "ces",
    "da": "dan",
    "el": "ell",
    "fa": "fas",
    "fi": "fin",
    "he": "heb",
    "hu": "hun",
    "ms": "msa",
    "ro": "ron",
    "sk": "slk",
    "sv": "swe",
    "th": "tha",
    "uk": "ukr",
    "ur": "urd",
    "af": "afr",
    "am": "amh",
    "az": "aze",
    "et": "est",
    "hy": "hye",
    "is": "isl",
    "ka": "kat",
    "kk": "kaz",
    "lt": "lit",
    "lv": "lav",
    "mr": "mar",
    "ne": "nep",
    "si": "sin",
    "sw": "swa",
    "ta": "tam",
    "te": "tel",
    "yo": "yor",
    "ha": "hau",
    "zu": "zul",
    "xh": "xho",
}
_MARIAN_ALTERNATIVES = {
    "zh": ("zho_Hans", "cmn_Hans", "cmn"),
    "ar": ("arb",),
    "fa": ("pes",),
    "ms": ("zsm_Latn", "zsm"),
    "sw": ("swh",),
    "az": ("azj", "aze_Latn"),
    "et": ("ekk",),
    "lv": ("lvs",),
    "ne": ("npi",),
}

SOURCE_CODES = {"nllb": "eng_Latn", "m2m100": "__en__", "marian": "", "marian-multi": ""}
# What the Hugging Face tokenizer's `src_lang` takes, which puts SOURCE_CODES' token in the input.
TOKENIZER_SRC_LANG = {"nllb": "eng_Latn", "m2m100": "en"}


def target_codes(language: Language, convention: str) -> tuple[str, ...]:
    """All target codes a model of this convention may know for the language, preferred first."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown MT convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    code = language.code
    if convention == "marian":
        return ("",)  # a single-pair model translates into its one language, untold
    if convention == "nllb" and code in _NLLB:
        return (_NLLB[code],)
    if convention == "m2m100" and code in _M2M100:
        return (f"__{code}__",)
    if convention == "marian-multi" and code in _ISO639_3:
        return tuple(f">>{label}<<" for label in (_ISO639_3[code], *_MARIAN_ALTERNATIVES.get(code, ())))
    raise ValueError(
        f"language {code!r} ({language.name}) has no target code under the {convention!r} "
        "MT convention: that model family does not translate into it"
    )
