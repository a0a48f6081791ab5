"""Judge parsers on clean, chatty, out-of-range, empty and malformed outputs."""

import pytest

from engine.rows.judge import mean_score, parse_label, parse_score, rewrite_message


@pytest.mark.parametrize(
    "text, score, problem",
    [
        ('{"feedback": "none", "score": 2}', 2.0, None),
        ('{"feedback":"a word is off","score":1}', 1.0, None),
        ('Sure! Here is my verdict:\n```json\n{"feedback": "fine", "score": 0}\n```\nHope it helps.', 0.0, None),
        ('{"score": "2", "feedback": "ok"}', 2.0, None),
        ("Score: 1. The tense is wrong.", 1.0, None),
        ('{"feedback": "x", "score": 7}', None, "judge_out_of_range"),
        ('{"feedback": "x", "score": -1}', None, "judge_out_of_range"),
        ("", None, "judge_empty"),
        (None, None, "judge_empty"),
        ("   \n", None, "judge_empty"),
        ("I cannot judge this.", None, "judge_unparsed"),
        ('{"feedback": "x", "score": "great"}', None, "judge_unparsed"),
        ('{"feedback": "cut off', None, "judge_unparsed"),
    ],
)
def test_parse_score(text, score, problem):
    result = parse_score("adequacy", text)
    assert result.score == score
    assert result.problem == problem
    assert result.criterion == "adequacy"


def test_parse_score_keeps_feedback():
    assert parse_score("fluency", '{"feedback": " awkward word order ", "score": 1}').feedback == "awkward word order"


def test_mean_ignores_unread_scores():
    scores = [
        parse_score("a", '{"score": 2, "feedback": ""}'),
        parse_score("b", "garbage"),
        parse_score("c", '{"score": 1, "feedback": ""}'),
    ]
    assert mean_score(scores) == 1.5
    assert mean_score([parse_score("a", "")]) is None


def test_rewrite_message_lists_only_what_to_fix():
    scores = [
        parse_score("adequacy", '{"feedback": "lost the second clause", "score": 1}'),
        parse_score("fluency", '{"feedback": "none", "score": 2}'),
    ]
    content = rewrite_message(scores, "French")["content"]
    assert "adequacy 1/2: lost the second clause" in content
    assert "fluency" not in content
    assert "French" in content


@pytest.mark.parametrize(
    "text, label, problem",
    [
        ('{"feedback": "none", "label": "good"}', "good", None),
        ('{"feedback": "ask for steps", "label": "medium"}', "medium", None),
        ('Verdict: {"label": "BAD", "feedback": "unrelated"}', "bad", None),
        ("I would say this is medium quality.", "medium", None),
        ('{"feedback": "x", "label": "excellent"}', None, "judge_unparsed"),
        ("", None, "judge_empty"),
        (None, None, "judge_empty"),
    ],
)
def test_parse_label(text, label, problem):
    got, _feedback, got_problem = parse_label(text)
    assert (got, got_problem) == (label, problem)
