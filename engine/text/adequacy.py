"""Does a translation say what its source says? Pure scoring and checks, no model inside.

Form checks (language ID, length, repetition) pass fluent nonsense in the right language; these
ask about meaning:
- similarity: cosine between the source field and its translation in a multilingual embedding
  space (the encoder is passed in: engine.protocols.TextEncoder), on the text with protected spans
  (code, math, URLs, placeholders) removed from both sides: they are restored verbatim anyway and
  would only pull the two vectors together;
- numbers: the digit sequences of the prose are the same on both sides (a recipe for 4 people
  stays one for 4 people), read through decimal and thousands separators and non-ASCII digits;
- sentences: a translation keeps roughly the source's sentence count (a dropped or invented
  sentence changes it).
Each returns None or a stable reason string, like engine.text.checks.

The thresholds are per target language and per encoder, fitted on data/calibration by
engine/calibration.py (python -m jobs.calibrate): a verdict is judged against the limits of the
draft's language (`judge_pairs(..., limits)`), None meaning the similarity is recorded but not
gated. Whether a field is scored is its source's call, in script-fair units (`text_units`), so a
short Chinese or Japanese translation is scored like its English source.

A draft that passes also gets its `output_embedding`: the whole example (its translated fields,
spans kept) as one float16 unit vector of the same encoder, which finalise compares within a
language for near-duplicates (engine/selection/dedup.py) without encoding anything again.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.reasons import make_reason
from engine.text.spans import protect, strip_sentinels

# Digits with separators inside: "1,000.50", "1.000,50", "3,5", "10 000" (no-break or thin space
# before a group of exactly three, as French and Russian write thousands), "٣٠٠", "३००".
_NUMBER = re.compile(r"\d+(?:(?:[.,]|[ \u00a0\u202f\u2009](?=\d{3}(?!\d)))\d+)*")
# Sentence ends: . ! ? … and their CJK, Arabic, Devanagari, Ethiopic (። ፧) and Armenian (։) forms,
# or a line break (list items).
_SENTENCE_END = re.compile(r"(?:[.!?…]+[\"'”’»)\]]*(?=\s|$)|[。！？؟۔।॥።፧։]+|\n+)")
# A period right after a digit may end a sentence ("... thế kỷ 16. Bức tranh ...") or not (German
# ordinals: "im 16. Jahrhundert"), so a text's count is a range.
_DIGIT_PERIOD = re.compile(r"(?<=\d)\.(?=\s+\w)")
# Where an English sentence joins two clauses (a semicolon, or a comma and a coordinating conjunction:
# "Who painted the Mona Lisa, and where can it be seen today?"), a translation may write two
# sentences (Chinese: "《蒙娜丽莎》是谁画的？如今在哪里可以看到它？").
_CLAUSE_JOINT = re.compile(r"(?:;|,\s+(?:and|but|or|so|yet)\b)(?=\s+\w)", re.IGNORECASE)
# English number words of a source: a translation may well write them as digits ("six" → "6").
_NUMBER_WORDS = {
    word: str(value)
    for value, words in enumerate(
        (
            "zero",
            "one first once single",
            "two second twice both double pair",
            "three third",
            "four fourth quarter",
            "five fifth",
            "six sixth",
            "seven seventh",
            "eight eighth",
            "nine ninth",
            "ten tenth",
            "eleven eleventh",
            "twelve twelfth dozen",
        )
    )
    for word in words.split()
}
_WORD = re.compile(r"[A-Za-z]+")
# A template slot left in a generated instruction: "[insert instruction]", "{location}", "<topic>".
_SLOT = re.compile(r"\[[A-Za-z][A-Za-z _-]{1,40}\]|\{[A-Za-z_][A-Za-z_ ]{0,40}\}|<[A-Za-z][A-Za-z_ ]{0,40}>")


def visible_text(text: str) -> str:
    """The text a reader sees as prose: protected spans removed, whitespace collapsed."""
    return strip_sentinels(protect(text or "").text)


def letter_count(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch).startswith("L"))


# What counts as "enough text to score" is measured in units of about one English letter, the same
# in every script: letters and combining marks (the vowel signs of the Indic scripts and Thai are
# marks: a word there has about as many letters and signs as in English), a Han character counting
# 2.5, a kana 1.5, a Hangul syllable 2. Measured on the 950 correct pairs of data/calibration (50
# languages; engine.calibration.script_ratios, recorded by jobs.calibrate): English letters of the
# source per letter of the translation, spans removed, per script of the language:
#   Han 2.66 (zh), Hangul 2.05 (ko), Japanese 1.85 (kanji and kana together: kana 1.5 once a kanji
#   counts 2.66), Ethiopic 1.36, Hebrew 1.22, Arabic 1.04, Latin 0.90, Cyrillic 0.91, Georgian
#   0.87, Armenian 0.84, Greek 0.80; the abugidas 1.11-1.54 by letters alone but 0.72-0.98 with
#   their marks (Devanagari 0.95, Bengali 0.97, Sinhala 0.98, Thai 0.88, Telugu 0.85, Tamil 0.72).
# Weights are those ratios rounded down to a half (a weighted count never overstates a text; under
# 1.5 counts 1). With them every script's ratio lies between 0.72 and 1.36 (Han 1.11, Hangul
# 1.06, Japanese 1.05); tests/unit/test_calibration.py holds them to that on the set.
_UNIT_WEIGHTS: tuple[tuple[int, int, float], ...] = (
    (0x1100, 0x11FF, 2.0),  # Hangul jamo
    (0x3040, 0x30FF, 1.5),  # Hiragana, Katakana
    (0x3130, 0x318F, 2.0),  # Hangul compatibility jamo
    (0x31F0, 0x31FF, 1.5),  # Katakana phonetic extensions
    (0x3005, 0x3007, 2.5),  # Han: 々 〆 〇
    (0x3400, 0x4DBF, 2.5),  # Han
    (0x4E00, 0x9FFF, 2.5),
    (0xA960, 0xA97F, 2.0),  # Hangul jamo extended
    (0xAC00, 0xD7FF, 2.0),  # Hangul syllables
    (0xF900, 0xFAFF, 2.5),  # Han compatibility
    (0xFF66, 0xFF9F, 1.5),  # halfwidth Katakana
    (0x20000, 0x323AF, 2.5),  # Han supplementary planes
)


def letter_weight(ch: str) -> float:
    """What one letter counts in `text_units`: 1, or more in a syllabic or logographic script."""
    code = ord(ch)
    if code >= 0x1100:
        for low, high, weight in _UNIT_WEIGHTS:
            if low <= code <= high:
                return weight
    return 1.0


def text_units(text: str) -> float:
    """Letters and combining marks, weighted by script (see _UNIT_WEIGHTS): about the English
    letters the text's meaning would take, so a length limit means the same in every script."""
    return sum(letter_weight(ch) for ch in text if unicodedata.category(ch)[0] in "LM")


def numbers(text: str) -> Counter[str]:
    """The numbers of a text as digit strings, separators dropped: "1,000" == "1.000" == "1000",
    "3.5" == "3,5"; Arabic-Indic, Devanagari and fullwidth digits read as ASCII."""
    found: Counter[str] = Counter()
    for match in _NUMBER.finditer(text):
        digits = "".join(str(unicodedata.digit(ch)) for ch in match.group() if ch.isdigit())
        found[digits.lstrip("0") or "0"] += 1
    return found


def check_numbers(source: str, translation: str) -> str | None:
    """'numbers_changed' when the translation's prose holds a number the source's lacks (a changed
    or invented number), or keeps none of several (both read with protected spans removed).

    One-way on purpose: a source number may legitimately vanish into words or numerals of the
    target ("16th century" → "XVIe siècle", "القرن السادس عشر"), while a digit the source never
    had, as digits or as an English number word ("six people" → "6人分"), is almost always wrong.
    Sets, not counts: a translation may repeat "2" where English says "both of them".

    One number may vanish, not all of several: where the source's prose writes two or more
    different numbers in digits and the translation keeps none of them, it has dropped what the
    source is about ("Solve for x: 3x + 7 = 22.", too short for the similarity gate to judge, paired
    with another seed's translation passed in every language of data/calibration). No correct
    translation there or in tests/data/adequacy_pairs.jsonl (1,140) loses them all."""
    prose = visible_text(source)
    digits = set(numbers(prose))
    words = {_NUMBER_WORDS[word] for word in _WORD.findall(prose.lower()) if word in _NUMBER_WORDS}
    kept = set(numbers(visible_text(translation)))
    changed = bool(kept - digits - words) or (len(digits) >= 2 and not kept & digits)
    return make_reason("numbers_changed") if changed else None


def count_sentences(text: str) -> int:
    """Sentences and list lines of a text: segments between sentence ends that hold a letter."""
    return sum(1 for segment in _SENTENCE_END.split(text) if letter_count(segment) > 0)


def sentence_range(text: str) -> tuple[int, int]:
    """(fewest, most) sentences: a period after a digit read as an ordinal's, then as an end."""
    return count_sentences(_DIGIT_PERIOD.sub("\u2024", text)), count_sentences(text)


# Scripts that end no sentence with a mark (Thai, Lao, Khmer separate sentences with a space): a
# translation in them has no sentence count to compare (on data/calibration, the check rejected 9
# of 19 correct Thai translations before this).
_UNMARKED_SENTENCES = ((0x0E00, 0x0EFF), (0x1780, 0x17FF))


def marks_sentences(text: str) -> bool:
    """Whether a text's sentence ends can be read: most of its letters are not in a script that
    writes no sentence-final mark."""
    letters = [ord(ch) for ch in text if unicodedata.category(ch).startswith("L")]
    unmarked = sum(1 for code in letters if any(low <= code <= high for low, high in _UNMARKED_SENTENCES))
    return unmarked * 2 <= len(letters)


def check_sentence_count(source: str, translation: str, slack: int) -> str | None:
    """'sentence_count:<src>-><out>' when the counts differ by more than `slack` (plus one per eight
    source sentences: long texts are split and joined more freely). Where a period after a digit
    makes a count uncertain, any reading that matches passes; a source sentence that joins two
    clauses (_CLAUSE_JOINT) may become two. A translation in a script that marks no sentence end
    (Thai) is not counted."""
    source, translation = visible_text(source), visible_text(translation)
    if not marks_sentences(translation):
        return None
    (src_low, src_high), (out_low, out_high) = sentence_range(source), sentence_range(translation)
    allowed = slack + src_high // 8
    split = src_high + len(_CLAUSE_JOINT.findall(source))  # each joint split in two
    if out_low - allowed <= split and src_low <= out_high + allowed:
        return None
    return make_reason("sentence_count", f"{src_high}->{out_high}")


@dataclass(frozen=True)
class FieldPair:
    """One field of one example to score: its name, English source and translation (restored)."""

    field: str
    source: str
    translation: str


def scorable(pair: FieldPair, min_letters: float) -> bool:
    """A field is scored by similarity when its source has prose to compare once spans are removed:
    at least `min_letters` script-fair units (text_units). The source says how much meaning there
    is; the translation is scored however short it came out: a 10-character Chinese instruction
    is scored like its English source, and so is a short wrong one (another seed's translation)
    or one that dropped the prose."""
    return text_units(visible_text(pair.source)) >= min_letters


def similarities(encoder, sources: Sequence[str], translations: Sequence[str]) -> list[float]:
    """Row-wise cosine of source i and translation i (both embedded as passages: one meaning,
    two languages, a symmetric comparison), spans removed. Each distinct text is encoded once."""
    if not sources:
        return []
    texts = [visible_text(text) for text in (*sources, *translations)]
    unique = list(dict.fromkeys(texts))
    vectors = encoder.encode_passages(unique)
    row = {text: i for i, text in enumerate(unique)}
    n = len(sources)
    return [float(vectors[row[texts[i]]] @ vectors[row[texts[n + i]]]) for i in range(n)]


def check_similarity(field: str, score: float, threshold: float) -> str | None:
    """'low_similarity:<field>:<score>' below the threshold."""
    return None if score >= threshold else make_reason("low_similarity", f"{field}:{score:.2f}")


@dataclass(frozen=True)
class AdequacyVerdict:
    reason: str | None  # None: every field passed
    field: str | None  # the field that failed
    score: float | None  # the weakest scored field's cosine (None: no field had prose to score)


def field_pairs(
    source: dict[str, str], translated: dict[str, str], may_stay_unchanged: frozenset[str]
) -> list[FieldPair]:
    """The fields the gate looks at: every translated field, except one that may stay as it is
    (the text a task operates on) and did."""
    return [
        FieldPair(field, source[field], text)
        for field, text in translated.items()
        if source.get(field) and not (field in may_stay_unchanged and text == source[field])
    ]


def judge_pairs(pairs: Sequence[FieldPair], scores: dict[str, float], cfg, limits) -> AdequacyVerdict:
    """The verdict from the scored fields (`scores`, by field) and the deterministic checks.
    `limits`: the language's engine.config.SimilarityThresholds (engine.calibration.gate_limits),
    None: the similarity is scored but not gated (the calibration's own scoring, before any threshold).

    Meaning first: a low similarity is the reason when there is one, then changed numbers, then
    the sentence count, each for the first field in order that fails it."""
    weakest = min(scores.values()) if scores else None
    if cfg.adequacy and limits is not None:
        for pair in pairs:
            if pair.field in scores:
                reason = check_similarity(pair.field, scores[pair.field], getattr(limits, pair.field))
                if reason:
                    return AdequacyVerdict(reason, pair.field, weakest)
    for pair in pairs if cfg.check_numbers else ():
        if check_numbers(pair.source, pair.translation):
            return AdequacyVerdict(make_reason("numbers_changed", pair.field), pair.field, weakest)
    for pair in pairs if cfg.check_sentences else ():
        detail = check_sentence_count(pair.source, pair.translation, cfg.sentence_slack)
        if detail:
            return AdequacyVerdict(
                make_reason("sentence_count", f"{pair.field}:{detail.partition(':')[2]}"), pair.field, weakest
            )
    return AdequacyVerdict(None, None, weakest)


def assess(encoder, pairs: Sequence[FieldPair], cfg, limits) -> AdequacyVerdict:
    """Score and judge one example's fields (synchronously: calibration, benchmarks, tests)."""
    scored = [pair for pair in pairs if scorable(pair, cfg.min_letters)] if encoder is not None else []
    values = similarities(encoder, [p.source for p in scored], [p.translation for p in scored])
    return judge_pairs(pairs, {pair.field: value for pair, value in zip(scored, values)}, cfg, limits)


EXAMPLE_FIELDS = ("instruction", "input", "output")


def example_text(fields: dict[str, str]) -> str:
    """What defines a duplicate example: its instruction, input and output together, spans kept
    (two tasks that differ only in a formula or a command are different tasks)."""
    return "\n".join(fields[name] for name in EXAMPLE_FIELDS if fields.get(name))


def embedding_column(vector) -> np.ndarray:
    """One vector as the row's output_embedding value: unit length, float16 (half the bytes of
    float32, a cosine error under 1e-3)."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float16)


class AdequacyCheck:
    """Translation's adequacy gate as an engine.rows.refine.ExtraCheck: similarity (when an
    encoder is given and quality.adequacy is on), numbers and sentence count, field by field.
    Writes the row's `adequacy` column (the weakest field's cosine) and, for a draft that passes
    with an encoder, `output_embedding` (one more passage: the example's text). The thresholds
    are the draft language's (engine.calibration.gate_limits: the run's resolved calibration,
    or an explicit override), looked up once per language."""

    def __init__(self, encoder, cfg, may_stay_unchanged: frozenset[str]):
        self.encoder = encoder if cfg.adequacy else None
        self.cfg, self.may_stay_unchanged = cfg, may_stay_unchanged
        self.seconds = 0.0  # time spent here, for the actor's batch log line
        self._limits: dict[str, object] = {}

    def limits(self, language):
        """The language's thresholds (None: not gated by similarity)."""
        if self.encoder is None:
            return None
        if language.code not in self._limits:
            from engine.calibration import gate_limits

            self._limits[language.code] = gate_limits(self.cfg, language)
        return self._limits[language.code]

    def __call__(
        self, source: dict[str, str], drafted: dict[str, str], language
    ) -> tuple[str | None, str | None, dict]:
        started = time.perf_counter()
        pairs = field_pairs(source, drafted, self.may_stay_unchanged)
        verdict = assess(self.encoder, pairs, self.cfg, self.limits(language))
        columns: dict = {"adequacy": verdict.score}
        text = example_text(drafted)
        if verdict.reason is None and self.encoder is not None and text:
            columns["output_embedding"] = embedding_column(self.encoder.encode_passages([text])[0])
        self.seconds += time.perf_counter() - started
        return verdict.reason, verdict.field, columns


class InstructionFitCheck:
    """X-Instruction's gate as an ExtraCheck: is the English instruction one that the
    target-language text answers? query(instruction) · passage(text), the retrieval direction
    E5 was trained for. The text's vector is kept per text: every draft of a row reuses it, and a
    pair that passes carries it as `output_embedding` (the text is what repeats across pairs)."""

    def __init__(self, encoder, cfg):
        self.encoder, self.cfg = encoder, cfg
        self._passages: dict[str, object] = {}
        self.seconds = 0.0

    def score(self, instruction: str, text: str) -> float:
        if text not in self._passages:
            if len(self._passages) > 4096:
                self._passages.clear()
            self._passages[text] = self.encoder.encode_passages([visible_text(text)])[0]
        return float(self.encoder.encode_queries([instruction])[0] @ self._passages[text])

    def __call__(
        self, source: dict[str, str], drafted: dict[str, str], language
    ) -> tuple[str | None, str | None, dict]:
        slot = _SLOT.search(drafted["instruction"])
        if slot:  # "[insert instruction]" scored 0.80 against a text in the demo: no cosine is needed
            return make_reason("instruction_placeholder", slot.group()), "instruction", {}
        started = time.perf_counter()
        value = self.score(drafted["instruction"], source["output"])
        self.seconds += time.perf_counter() - started
        reason = check_similarity("instruction", value, self.cfg.xinstruct_min_similarity)
        columns: dict = {"adequacy": value}
        if reason is None:
            columns["output_embedding"] = embedding_column(self._passages[source["output"]])
        return reason, "instruction" if reason else None, columns
