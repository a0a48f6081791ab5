"""Validate one translated example, field by field, with the deterministic checks."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import ValidationConfig
from engine.languages import Language
from engine.protocols import LanguageIdentifier
from engine.reasons import make_reason
from engine.text.checks import (
    check_degeneration,
    check_empty,
    check_language,
    check_length_ratio,
    check_script,
    check_untranslated,
)
from engine.text.spans import strip_sentinels

# The input often *is* the text the task operates on (the sentence to translate or correct):
# selective translation may keep it byte-identical.
MAY_STAY_UNCHANGED = frozenset({"input"})


@dataclass(frozen=True)
class Verdict:
    reason: str | None  # None: every field passed
    field: str | None  # the field that failed
    lid_label: str | None  # weakest field's language-ID answer
    lid_confidence: float | None
    lid_method: str | None  # "fasttext", "script" (model lacks the language or text too short), or None


def language_check(
    text: str, language: Language, langid: LanguageIdentifier, cfg: ValidationConfig
) -> tuple[str | None, str, float, str]:
    """(reason, label, confidence, method): does the text read as `language`? fastText where it
    knows the language and the text is long enough, else the share of letters in its script."""
    # Letters, not characters: "Trouvez x : 3x + 7 = 22." is 24 characters but 9 letters, and
    # lid.176 reads such a formula-heavy line as Italian as readily as French.
    letters = sum(1 for ch in text if ch.isalpha())
    if language.lid_label and langid.has_label(language.lid_label) and letters >= cfg.langid_min_chars:
        label, confidence = langid.predict(text)
        return (
            check_language(label, confidence, language.lid_label, cfg.langid_threshold),
            label,
            confidence,
            "fasttext",
        )
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


def _not_english(text: str, langid: LanguageIdentifier) -> bool:
    """A source field that is not English (the answer of a 'translate into French' task) may stay."""
    stripped = strip_sentinels(text)
    return bool(stripped) and langid.predict(stripped)[0] != "en"


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
    if sum(char.isalpha() for char in visible) < min_letters:
        return None
    label, confidence = langid.predict(visible)
    if label != "en" and confidence >= min_confidence:
        return make_reason("seed_not_english", label)
    return None
