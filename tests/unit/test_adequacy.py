"""Ring (a): the adequacy gate's pure parts: numbers, sentence counts, span handling, the verdict."""

import numpy as np
import pytest

from engine.config import QualityConfig, SimilarityThresholds
from engine.text.adequacy import (
    FieldPair,
    assess,
    check_numbers,
    check_sentence_count,
    count_sentences,
    field_pairs,
    numbers,
    scorable,
    visible_text,
)


@pytest.mark.parametrize(
    "source, translation, expected",
    [
        ("A recipe for 4 people uses 300 g of flour.", "Ein Rezept für 4 Personen verwendet 300 g Mehl.", None),
        (
            "A recipe for 4 people uses 300 g of flour.",
            "Ein Rezept für 6 Personen verwendet 300 g Mehl.",
            "numbers_changed",
        ),
        ("It costs 1,000.50 dollars.", "Cela coûte 1 000,50 dollars.", None),  # separators of another locale
        ("It costs 1,000 dollars.", "Es kostet 1.000 Dollar.", None),
        ("Take 3.5 cups.", "Prenez 3,5 tasses.", None),
        ("Add 300 grams.", "أضف ٣٠٠ غرام.", None),  # Arabic-Indic digits
        ("Add 300 grams.", "३०० ग्राम डालें।", None),  # Devanagari digits
        ("Add 300 grams.", "Añade 30 gramos.", "numbers_changed"),
        ("Add 300 grams.", "Añade gramos.", None),  # dropped: maybe in words; the similarity check's business
        ("Painted in the 16th century.", "Peinte au XVIe siècle.", None),
        ("For six people, use one pan.", "6人分には鍋を1つ使います。", None),  # English number words read as digits
        ("For six people, use one pan.", "7人分には鍋を1つ使います。", "numbers_changed"),
        ("Add some sugar.", "Añade 2 cucharadas de azúcar.", "numbers_changed"),  # one invented
        ("Solve $x^2 = 49$ for x.", "Résolvez $x^2 = 49$ pour x.", None),
        ("Solve $x^2 = 49$ for x.", "Résolvez pour x.", None),  # spans are the span check's business
        ("Run `sleep 30` twice: 2 times.", "Exécutez `sleep 30` deux fois : 2 fois.", None),
        ("Chapter 01 of 2", "Chapitre 1 sur 2", None),  # leading zeros
        # several numbers, none kept: what the source is about is gone (another seed's text, say)
        ("Solve for x: 3x + 7 = 22.", "Où se trouve la documentation de Python ?", "numbers_changed"),
        ("Solve for x: 3x + 7 = 22.", "Résolvez pour x : 3x + 7 = 22.", None),
        ("Between 3 and 5 cups.", "Entre 3 et cinq tasses.", None),  # one of them kept
        ("For six people, use 2 pans.", "Pour six personnes, deux poêles.", None),  # one digit only
        ("", "", None),
    ],
)
def test_check_numbers(source, translation, expected):
    assert check_numbers(source, translation) == expected


def test_numbers_counts_digit_strings():
    assert numbers("1,234 and 5 and 5") == {"1234": 1, "5": 2}


@pytest.mark.parametrize(
    "text, count",
    [
        ("One. Two! Three?", 3),
        ("Version 3.5 is out.", 1),  # a decimal point ends nothing
        ("第一句。第二句！第三句？", 3),
        ("पहला वाक्य। दूसरा वाक्य।", 2),
        ("هل هذا سؤال؟ نعم.", 2),
        ("- item one\n- item two\n- item three", 3),
        ('He said "Stop." Then he left.', 2),
        ("", 0),
        ("...", 0),
    ],
)
def test_count_sentences(text, count):
    assert count_sentences(text) == count


def test_sentence_count_check():
    src = "Sort the list. Then print it. Explain why."
    assert check_sentence_count(src, "Triez la liste. Puis affichez-la. Expliquez pourquoi.", 0) is None
    assert check_sentence_count(src, "Triez la liste. Puis affichez-la.", 0) == "sentence_count:3->2"
    assert check_sentence_count(src, "Triez la liste. Puis affichez-la.", 1) is None
    # A period after a digit may be an ordinal's or a sentence's end: either reading may match.
    mona = "It was painted in the 16th century. It hangs in the Louvre."
    assert check_sentence_count(mona, "Sie wurde im 16. Jahrhundert gemalt. Sie hängt im Louvre.", 0) is None
    assert check_sentence_count(mona, "Nó được vẽ vào thế kỷ 16. Nó được treo ở Louvre.", 0) is None
    assert check_sentence_count(mona, "Sie wurde im sechzehnten Jahrhundert gemalt.", 0) == "sentence_count:2->1"
    long = " ".join(f"Sentence {i}." for i in range(8))
    assert check_sentence_count(long, " ".join(f"Phrase {i}." for i in range(7)), 0) is None  # 1 per 8 allowed
    four = "One thing. Two things. Three things. Four things."
    assert check_sentence_count(four, "Une chose. Deux choses. Trois choses.", 0) == "sentence_count:4->3"
    # Two clauses joined in one sentence may become two sentences, not three; the joint adds nothing to a lower count.
    joined = "Who painted the Mona Lisa, and where can it be seen today?"
    assert check_sentence_count(joined, "《蒙娜丽莎》是谁画的？如今在哪里可以看到它？", 0) is None
    assert check_sentence_count(joined, "Wer malte sie? Wo hängt sie? Wer kaufte sie?", 0) == "sentence_count:1->3"
    assert check_sentence_count("Sort it; then print it.", "Triez-la. Puis affichez-la.", 0) is None
    assert check_sentence_count("Sort it, then print it.", "Triez-la. Puis affichez-la.", 0) == "sentence_count:1->2"
    assert check_sentence_count("A, and B. C.", "A.", 0) == "sentence_count:2->1"


def test_visible_text_and_scorable():
    assert visible_text("Use `len(x)` on https://x.y/a") == "Use on"
    assert not scorable(FieldPair("output", "$x = 3$", "$x = 3$"), 12)
    assert scorable(FieldPair("output", "The answer is three apples.", "La réponse est trois pommes."), 12)


def test_unchanged_input_is_exempt():
    source = {"instruction": "Fix the spelling.", "input": "Teh cat sat.", "output": "The cat sat."}
    translated = {"instruction": "Corrigez l'orthographe.", "input": "Teh cat sat.", "output": "The cat sat."}
    assert [p.field for p in field_pairs(source, translated, frozenset({"input"}))] == ["instruction", "output"]


class FakeEncoder:
    """Vectors chosen per text: the test decides each cosine."""

    name = "fake"

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def encode_passages(self, texts):
        rows = np.array([self.vectors[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    encode_queries = encode_passages


# a language's thresholds, as the calibration gives them
LATIN = SimilarityThresholds(instruction=0.88, input=0.84, output=0.84)


def test_verdict_order_and_weakest_score():
    cfg = QualityConfig()
    src, good, bad = (
        "Explain why the sky is blue.",
        "Expliquez pourquoi le ciel est bleu.",
        "Le lado de la ciela est bleu.",
    )
    encoder = FakeEncoder({src: [1, 0], good: [0.95, 0.312], bad: [0.7, 0.714]})
    ok = assess(encoder, [FieldPair("instruction", src, good)], cfg, LATIN)
    assert ok.reason is None and ok.score == pytest.approx(0.95, abs=1e-3)
    low = assess(encoder, [FieldPair("instruction", src, good), FieldPair("output", src, bad)], cfg, LATIN)
    assert (
        low.reason == "low_similarity:output:0.70"
        and low.field == "output"
        and low.score == pytest.approx(0.7, abs=1e-3)
    )
    off = assess(encoder, [FieldPair("output", src, bad)], cfg.model_copy(update={"adequacy": False}), LATIN)
    assert off.reason is None and off.score == pytest.approx(0.7, abs=1e-3)  # the column is filled all the same


def test_numbers_and_sentences_reasons_name_the_field():
    cfg = QualityConfig()
    pairs = [FieldPair("output", "Use 4 eggs. Bake it.", "Utilisez 5 œufs. Faites cuire.")]
    assert assess(None, pairs, cfg, LATIN).reason == "numbers_changed:output"
    pairs = [FieldPair("output", "Use eggs. Bake it.", "Utilisez des œufs.")]
    assert assess(None, pairs, cfg, LATIN).reason == "sentence_count:output:2->1"
