"""Every reason a check, parser or row machine can return is in engine/reasons.py.

Two ways in: (1) nasty inputs through each check, parser and row machine, every reason they
return looked up in the list; (2) a scan of engine/, actors/ and jobs/ source for reason literals
(a `make_reason` name, a string returned by a function or put where a reason goes, or any
`snake_name:` literal), so a reason spelled by hand somewhere new fails here before it ships.
"""

import ast
import asyncio
import json
import re
from pathlib import Path

import pytest

from engine.config import ValidationConfig, parse_config
from engine.inputs.plan import build_text_task_plan
from engine.inputs.seeds import Text, load_seed_table
from engine.languages import get_language
from engine.protocols import ERROR, TOO_LONG, Completion
from engine.reasons import REASONS, feedback_text, lookup, make_reason, meaning, reason_kind
from engine.recipes import row_machine
from engine.rows.judge import parse_label, parse_score
from engine.selection.budget import OVER_BUDGET
from engine.selection.dedup import duplicate_reason
from engine.text import checks
from engine.text.checks import seed_language_reason, validate_translation
from engine.text.spans import parse_fields, restore
from tests.unit.test_refine import text_task
from tests.unit.test_translate_state_machine import FakeGenerator, FakeLangId, make_task

ROOT = Path(__file__).resolve().parents[2]


def assert_listed(reason: str | None) -> None:
    if reason is not None:
        assert lookup(reason) is not None, f"{reason!r} is not in engine/reasons.py REASONS"


# The list itself -----------------------------------------------------------------------------


def test_every_entry_is_complete_and_named_as_its_key():
    for name, entry in REASONS.items():
        assert entry.name == name and re.fullmatch(r"[a-z]+(_[a-z]+)*", name)
        assert entry.meaning.strip() and isinstance(entry.retry, bool)
        if entry.feedback:
            assert entry.retry, f"{name}: feedback for a reason that is never retried"
            feedback_text(make_reason(name, "x"), "output", "French", ["instruction", "output"])  # formats


def test_make_reason_refuses_an_unlisted_name():
    assert make_reason("span_missing", "[[2]]") == "span_missing:[[2]]"
    assert make_reason("empty") == "empty"
    with pytest.raises(KeyError, match="engine/reasons.py"):
        make_reason("too_short")


def test_kind_meaning_and_feedback():
    assert reason_kind("bad_record: field 'id': duplicate") == "bad_record" and reason_kind(None) == ""
    assert "marker" in meaning("span_missing:[[3]]") and meaning("made_up") == "not a listed reason"
    assert feedback_text("parse_truncated", None, "French", ["output"]).startswith("Your reply was cut off")
    assert "output" in feedback_text("parse_missing_key:output", None, "French", ["instruction", "output"])
    assert (
        feedback_text("wrong_language:en", "input", "French", [])
        == "The input was not in French. Translate it into French."
    )
    assert (
        feedback_text("instruction_length:4", None, "French", [])
        == "Your translation was rejected (instruction_length:4). Try again."
    )


# (1) Nasty inputs through each check and parser ------------------------------------------------

NASTY_TEXTS = [
    None,
    "",
    " ",
    "\ufeff\u200b",
    "{",
    "}",
    "{}",
    "[]",
    "null",
    '{"a": 1}',
    '{"output": 3}',
    '{"output": "ok"',
    '```json\n{"x": 1}\n```',
    "Sure! {here} is " + json.dumps({"output": "x"}),
    "[" * 5000,
    "{" * 3000,
    '{"output": "a\nb"}',
    "le le le le le le le le le le le le",
    "ok " * 200,
    "Das ist der Hund und der Mann.",
    "日本語の文章です。" * 3,
    "[[1]] [[1]] [[9]] [[ 2 ]]",
    "Ünïcödé ✓ 🙂",
]


@pytest.mark.parametrize("text", NASTY_TEXTS)
def test_parser_and_checks_return_listed_reasons(text):
    _, reason = parse_fields(text, ["instruction", "output"])
    assert_listed(reason)
    value = text or ""
    for reason in (
        checks.check_empty(value),
        checks.check_degeneration(value),
        checks.check_length_ratio("A source sentence of a fair length.", value, 0.5, 2.0),
        checks.check_untranslated(value, value),
        checks.check_script(value, "Latin"),
        checks.check_script(value, "Japanese"),
        restore(value, ("`x`", "https://a.b"), {1, 2})[1],
        restore(value, ())[1],
        parse_score("adequacy", text).problem,
        parse_label(text)[2],
        seed_language_reason(value, FakeLangId(), min_letters=0),
    ):
        assert_listed(reason)


@pytest.mark.parametrize(
    "predicted, confidence", [("de", 0.99), ("__label__fr", 0.1), ("fr", 0.99), ("yue", 0.5), ("", 0.0)]
)
def test_language_check_returns_listed_reasons(predicted, confidence):
    assert_listed(checks.check_language(predicted, confidence, "fr", 0.5))


@pytest.mark.parametrize(
    "translated",
    [
        {"instruction": "", "output": "x"},
        {"instruction": "Explain the loop in the code now.", "output": "The loop runs three times, from zero to two."},
        {"instruction": "Expliquez la boucle du code.", "output": "la " * 60},
        {"instruction": "Expliquez la boucle du code maintenant.", "output": "La boucle."},
        {
            "instruction": "Expliquez la boucle du code maintenant.",
            "output": "La boucle tourne trois fois, de zéro à deux.",
        },
    ],
)
def test_validation_returns_listed_reasons(translated):
    source = {
        "instruction": "Explain the loop in the code now.",
        "output": "The loop runs three times, from zero to two.",
    }
    verdict = validate_translation(source, translated, translated, get_language("fr"), FakeLangId(), ValidationConfig())
    assert_listed(verdict.reason)
    assert verdict.reason is None or verdict.field in source


def test_inputs_and_selection_return_listed_reasons(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        '{"id": "a", "instruction": "Hi", "output": "Hello"}\nnot json\n'
        '{"id": "a", "instruction": "x", "output": "y"}\n{"id": 3}\n'
    )
    _, bad = load_seed_table([str(seeds)], on_bad_record="skip")
    assert len(bad) == 3
    _, untargeted = build_text_task_plan(
        [Text("t1", "pt", "Olá, tudo bem?", "t.jsonl:1")],
        [get_language("fr")],
        {"high": 1, "mid": 1, "low": 1},
        0,
        "xinstruction",
        "v",
    )
    for reason in (
        [record.reason for record in bad]
        + [row["reason"] for row in untargeted]
        + [duplicate_reason("abc"), OVER_BUDGET]
    ):
        assert_listed(reason)


def test_adequacy_checks_return_listed_reasons():
    adequacy = pytest.importorskip("engine.text.adequacy")
    for reason in (
        adequacy.check_numbers("Buy 4 apples for 3 euros.", "Achetez 5 pommes."),
        adequacy.check_sentence_count("One. Two. Three.", "Un.", 0),
        adequacy.check_similarity("output", 0.1, 0.9),
    ):
        assert reason is not None
        assert_listed(reason)


# (1) Nasty replies through both row machines ---------------------------------------------------

REPLIES = [
    Completion("", 10, 0, "stop"),
    Completion("x", 10, 1, TOO_LONG),
    Completion("HTTP 503", 0, 0, ERROR),
    "no json here",
    '{"instruction": "Expliquez [[1]]."',
    '{"instruction": 7, "output": "x"}',
    '{"output": "Le résultat."}',
    json.dumps({"instruction": "Explain [[1]] and [[2]] please.", "output": "It lists files; run [[3]]."}),
    json.dumps({"instruction": "Expliquez [[1]] et [[1]] [[2]].", "output": "La liste; lancez [[3]]."}),
    json.dumps({"instruction": "Expliquez [[1]] et [[2]] [[7]].", "output": "La liste; lancez [[3]]."}),
    json.dumps({"instruction": "Expliquez la commande [[1]] et la page [[2]].", "output": "la " * 80 + "[[3]]"}),
    json.dumps(
        {
            "instruction": "Expliquez la commande [[1]] et la page [[2]] qui la documente.",
            "output": "La liste des fichiers; lancez [[3]].",
        }
    ),
    '{"instruction": "Why?"}',
    '{"instruction": "Explique le pain et la levure, la pâte."}',
    '{"instruction": "bread bread bread bread bread bread bread bread bread bread bread"}',
    json.dumps({"instruction": "Why does bread dough rise when it is made with yeast?"}),
]
JUDGE_REPLIES = [
    "",
    "no idea",
    '{"feedback": "x", "score": 7}',
    '{"feedback": "x", "score": 0}',
    '{"label": "bad"}',
    '{"label": "medium"}',
    '{"label": "maybe"}',
]
TASK = make_task(
    "Explain what `git status` shows and where https://git-scm.com/docs/git-status documents it.",
    "It lists changed files. Run `git status -s` for a shorter view of the same list.",
)
TEXT_TASK = text_task("Le pain lève parce que la levure produit du gaz carbonique dans la pâte.")


def machines(draft, judge, rounds: int):
    def reply(messages):
        first = messages[0]["content"]
        return judge if first.startswith(("You review a translation", "You check a pair")) else draft

    for recipe, task in (("sphinx", TASK), ("xinstruction", TEXT_TASK)):
        config = parse_config(
            {
                "recipe": recipe,
                "seeds": {"paths": ["x.jsonl"]},
                "languages": {"targets": ["fr"]},
                "refine": {"rounds": rounds},
                "validation": {"max_attempts": 2},
            }
        )
        yield row_machine(config, FakeGenerator(reply), FakeLangId()), task


@pytest.mark.parametrize("judge", JUDGE_REPLIES)
@pytest.mark.parametrize("draft", REPLIES)
def test_row_machines_reject_only_with_listed_reasons(draft, judge):
    for machine, task in machines(draft, judge, rounds=1):
        row = asyncio.run(machine(task))
        for reason in [row["reason"], *row["attempt_reasons"]]:
            assert_listed(reason)
        assert (row["status"] == "rejected") == (row["reason"] is not None)
        if row.get("reason_field") is not None:
            assert row["reason_field"] in ("instruction", "input", "output")


def test_the_mislabelled_text_check_names_the_field():
    machine, task = list(machines("unused", "unused", rounds=0))[1]
    row = asyncio.run(machine({**task, "src_output": "Der Hund und der Mann gehen zusammen spazieren."}))
    assert (row["reason"], row["reason_field"]) == ("wrong_language:de", "output")


# (2) A scan of the source for reasons spelled by hand ------------------------------------------

SHAPE = re.compile(r"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?::|$)")
REASON_NAME = re.compile(r"reason|why|\w+_reason")  # variables that hold one reason
COLON_SHAPE = re.compile(r"([a-z][a-z0-9]*(?:_[a-z0-9]+)+):")


def literal_head(node) -> str | None:
    """A string literal's text, or an f-string's text up to its first placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        head = ""
        for part in node.values:
            if not isinstance(part, ast.Constant):
                break
            head += part.value
        return head
    return None


def alternatives(node):
    """`a if c else b`, `a or b`: each side may be what ends up as the reason."""
    if isinstance(node, ast.IfExp):
        yield from alternatives(node.body)
        yield from alternatives(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from alternatives(value)
    else:
        yield node


def reason_sites(tree):
    """(how strict, node) for every place a reason is written: 'name' must be a listed name,
    'reason' must be a listed reason, 'shaped' must be listed when it looks like one."""
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and node.value is not None:
            for value in node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]:
                yield from (("shaped", v) for v in alternatives(value))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "reason":
                    yield from (("reason", v) for v in alternatives(value))
        elif isinstance(node, ast.keyword) and node.arg == "reason":
            yield from (("reason", v) for v in alternatives(node.value))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and REASON_NAME.fullmatch(t.id.lower()) for t in targets):
                yield from (("reason", v) for v in alternatives(node.value))
        elif isinstance(node, ast.Compare) and "reason" in ast.unparse(node.left):
            yield from (("reason", v) for v in node.comparators)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "make_reason" and node.args:
                yield "name", node.args[0]
            elif name == "fail" and node.args:
                yield from (("reason", v) for v in alternatives(node.args[0]))
            elif node.args and (
                name.endswith(("Verdict", "Score", "Record"))
                or name == "append"
                and "reasons" in ast.unparse(node.func)
            ):
                yield from (("shaped", v) for arg in node.args for v in alternatives(arg))
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and id(node) not in docstrings:
            yield "colon", node


def unlisted_reasons(source: str) -> list[str]:
    found = []
    for how, node in reason_sites(ast.parse(source)):
        text = literal_head(node)
        if text is None or (how == "reason" and not text):
            continue
        if how == "name":
            ok = text in REASONS
        elif how == "reason":
            ok = lookup(text) is not None or text in ("rejected", "accepted")  # a status compared beside a reason
        else:
            match = (COLON_SHAPE if how == "colon" else SHAPE).match(text)
            ok = match is None or match.group(1) in REASONS
        if not ok:
            found.append(f"line {node.lineno}: {text!r}")
    return found


def test_the_scan_catches_reasons_spelled_by_hand():
    source = """
def check_size(text):
    return "too_short" if len(text) < 3 else None

def check_other(text):
    return None, f"made_up:{text}"

row = {"status": "rejected", "reason": "gone_wrong"}
verdict = Verdict(f"odd_case:{1}", "output")
ledger.reasons.append("not_listed")
bad = make_reason("nope")
fine = make_reason("span_missing", "[[1]]")
"""
    found = " ".join(unlisted_reasons(source))
    for name in ("too_short", "made_up", "gone_wrong", "odd_case", "not_listed", "nope"):
        assert name in found
    assert "span_missing" not in found


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(ROOT).as_posix()
        for folder in ("engine", "actors", "jobs")
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "reasons.py"
    ),
)
def test_no_unlisted_reason_is_spelled_in_the_source(path):
    assert unlisted_reasons((ROOT / path).read_text(encoding="utf-8")) == []
