"""Ring (a): parse_fields takes clean, chatty, fenced, broken and empty model output calmly."""

import json

import pytest

from engine.text.spans import parse_fields

KEYS = ["instruction", "output"]
ANSWER = {"instruction": "Nommez trois couleurs primaires.", "output": "Rouge, jaune et bleu."}
CLEAN = json.dumps(ANSWER, ensure_ascii=False)


@pytest.mark.parametrize(
    "text",
    [
        CLEAN,
        json.dumps(ANSWER, ensure_ascii=False, indent=2),
        f"  \n{CLEAN}\n\n",
        f"```json\n{CLEAN}\n```",
        f"```JSON\n{CLEAN}\n```",
        f"```\n{CLEAN}\n```",
        f"Here is the translation:\n```json\n{CLEAN}\n```\nLet me know if you need more.",
        f"Sure! Here is the JSON object: {CLEAN} I hope this helps.",
        f"Voici {{la traduction}} : {CLEAN}",  # braces in the chatter before the object
        f'{CLEAN}\n{{"instruction": "second", "output": "object"}}',
        json.dumps({**ANSWER, "extra": 1, "nested": {"a": [1, {"b": "}"}]}}),
    ],
    ids=[
        "clean",
        "indented",
        "whitespace",
        "fenced-json",
        "fenced-JSON",
        "fenced-bare",
        "fenced-chatty",
        "chatty",
        "chatty-braces",
        "two-objects",
        "extra-keys",
    ],
)
def test_finds_the_answer(text):
    assert parse_fields(text, KEYS) == (ANSWER, None)


@pytest.mark.parametrize(
    "value",
    [
        "Utilisez {x} et } puis {",  # braces inside a string
        'Il a dit "bonjour" \\ puis est parti',  # escaped quote and backslash
        "Montrez ```json\n{}\n``` quand c'est vide",  # a fence *inside* a bare answer
        "Ligne 1\nLigne 2\ttab",
        "😀 emoji et ünïcödé",
        "",
    ],
)
def test_string_values_survive_intact(value):
    text = json.dumps({"instruction": value, "output": "ok"}, ensure_ascii=False)
    assert parse_fields(text, KEYS) == ({"instruction": value, "output": "ok"}, None)


def test_raw_newlines_inside_strings_are_tolerated():
    text = '{"instruction": "Ligne un\nLigne deux", "output": "A\n\tB"}'
    assert parse_fields(text, KEYS) == ({"instruction": "Ligne un\nLigne deux", "output": "A\n\tB"}, None)


def test_takes_only_the_requested_keys():
    assert parse_fields(CLEAN, ["output"]) == ({"output": ANSWER["output"]}, None)


def test_first_of_several_objects_wins():
    text = '{"instruction": "first", "output": "1"} and {"instruction": "second", "output": "2"}'
    assert parse_fields(text, KEYS) == ({"instruction": "first", "output": "1"}, None)


@pytest.mark.parametrize(
    "text, reason",
    [
        (None, "parse_empty"),
        ("", "parse_empty"),
        ("   \n\t", "parse_empty"),
        ("I cannot translate this.", "parse_no_json"),
        ("```json\n```", "parse_no_json"),
        ('{"instruction": "Nommez trois', "parse_truncated"),
        (CLEAN[:-1], "parse_truncated"),
        ('```json\n{"instruction": "Nommez", "output": "Rou', "parse_truncated"),
        ('{"instruction": "a" "output": "b"}', "parse_invalid_json"),
        ("{instruction: 'a', output: 'b'}", "parse_invalid_json"),
        ("{here} is nothing", "parse_invalid_json"),
        ('{"instruction": "a", "output": "b",}', "parse_invalid_json"),
        ('{"output": "b"}', "parse_missing_key:instruction"),
        ('{"instruction": "a"}', "parse_missing_key:output"),
        ("{}", "parse_missing_key:instruction"),
        ('{"instruction": 3, "output": "b"}', "parse_not_string:instruction"),
        ('{"instruction": "a", "output": null}', "parse_not_string:output"),
        ('{"instruction": "a", "output": ["b"]}', "parse_not_string:output"),
        ('{"instruction": {"text": "a"}, "output": "b"}', "parse_not_string:instruction"),
        ('{"a": 1} {"instruction": "x", "output": "y"}', "parse_missing_key:instruction"),
        ('{"instruction": ' + "[" * 5000 + "]" * 5000 + ', "output": "b"}', "parse_invalid_json"),
        ("{" * 3000, "parse_truncated"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, str) or v is None else None,
)
def test_reasons_for_unusable_output(text, reason):
    assert parse_fields(text, KEYS) == (None, reason)


def test_never_raises_on_garbage():
    for text in ["}{", '"', "\\", "```", '{"', "{'}", "\x00{\x00}", "{" + '"' * 101 + "}", "]]]}}}"]:
        fields, reason = parse_fields(text, KEYS)
        assert fields is None and reason.startswith("parse_")
