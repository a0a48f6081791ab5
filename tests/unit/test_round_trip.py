"""Rings (a) and (b): the optional round-trip check (engine/rows/round_trip.py): chrF scoring with
spans removed, the verdict, and the check in the refinement loop with a small fake generator
(accept above the threshold, reject below with its reason and field, tokens booked, off by
default: no extra requests)."""

from __future__ import annotations

import asyncio
import json

import pytest

from engine.config import QualityConfig, parse_config
from engine.protocols import ERROR, Completion
from engine.reasons import REASONS
from engine.recipes import prompt_version, row_machine
from engine.records import ACCEPTED, REJECTED, SCHEMA, to_table
from engine.report.counts import render_markdown
from engine.report.samples import render_fate
from engine.rows.round_trip import RoundTripField, chrf, scored_fields, verdict
from tests.unit.test_store_report import build_report
from tests.unit.test_translate_state_machine import FakeGenerator, FakeLangId, make_task

THRESHOLD = QualityConfig().round_trip_min_chrf

# The basis of the default threshold (engine/config.py QualityConfig.round_trip_min_chrf): English
# back-translations written by hand, as a faithful translator would word them, of correct and of
# wrong candidates in tests/data/adequacy_pairs.jsonl (correct: fr-001, fr-005, fr-009, fr-010,
# fr-011, fr-012, ...; nonsense and other seeds: fr-006, fr-032, fr-034, fr-037, fr-040, de-032,
# de-036; wrong meaning: fr-023, fr-029, fr-035).
CORRECT = [
    (
        "For one person the recipe needs 300 ÷ 4 = 75 g of flour. For six people you need 6 × 75 = 450 g.",
        "For one person, the recipe calls for 300 ÷ 4 = 75 g of flour. For six people, you need 6 × 75 = 450 g.",
    ),
    ("Rewrite this sentence so that it sounds more formal.", "Rewrite this sentence so that it seems more formal."),
    (
        "The Mona Lisa was painted by Leonardo da Vinci in the early 16th century. It hangs in the Louvre Museum "
        "in Paris, where it is protected behind glass and seen by millions of visitors every year.",
        "The Mona Lisa was painted by Leonardo da Vinci at the beginning of the 16th century. "
        "It is on display at the Louvre museum in Paris, "
        "where it is protected behind a pane of glass and seen every year by millions of visitors.",
    ),
    (
        "Subtract 7 from both sides: $3x = 15$. Then divide both sides by 3: $x = 5$. Check: $3 \\cdot 5 + 7 = 22$.",
        "Subtract 7 from both sides: $3x = 15$. Next divide both sides by 3: $x = 5$. "
        "Verification: $3 \\cdot 5 + 7 = 22$.",
    ),
    ("Find the derivative of $f(x) = x^3 + 2x^2 - 5x$.", "Find the derivative of $f(x) = x^3 + 2x^2 - 5x$."),
    (
        "Who painted the Mona Lisa, and where can it be seen today?",
        "Who painted the Mona Lisa, and where can one see it today?",
    ),
    ("Why is the sky blue during the day?", "Why is the sky blue in the daytime?"),
    ("What are some simple ways to fall asleep faster?", "What are some easy ways to get to sleep more quickly?"),
    ("Calculate the area of a circle with a radius of 4 cm.", "Compute the area of a circle whose radius is 4 cm."),
    (
        "A recipe for 4 people uses 300 g of flour. How much flour is needed for 6 people?",
        "A recipe for 4 people uses 300 g of flour. How much flour do you need for 6 people?",
    ),
    (
        "Keep a regular sleep schedule, even on weekends. "
        "Avoid caffeine after midday and put screens away about an hour before bed.",
        "Keep regular sleeping hours, even at the weekend. "
        "Avoid caffeine after noon and put away screens about an hour before going to bed.",
    ),
]
NONSENSE_OR_OTHER_SEED = [
    (
        "Find the derivative of $f(x) = x^3 + 2x^2 - 5x$.",
        "Find the neighbourhood of $f(x) = x^3 + 2x^2 - 5x$ so that it becomes the beginning of the 30/45/60 edition.",
    ),
    ("What are some simple ways to fall asleep faster?", "Is it better to stretch before or after sport?"),
    (
        "Calculate the area of a circle with a radius of 4 cm.",
        "A train travels 240 km in 3 hours. At the same speed, how long will it take to travel 400 km?",
    ),
    (
        "Why is the sky blue during the day?",
        "The side of the sky is the colour of the morning that turns with the side of the sky.",
    ),
    (
        "A recipe for 4 people uses 300 g of flour. How much flour is needed for 6 people?",
        "The flour of the people is put at 300 to become a recipe of next week.",
    ),
    (
        "A recipe for 4 people uses 300 g of flour. How much flour is needed for 6 people?",
        "The flour people are stirred around 300 so that the recipe gets the week.",
    ),
    ("Why is the sky blue during the day?", "The side of the sky is the side of the sky."),
]


# What the default lets through, for the record: chrF compares wording, so a rewrite that changes
# the meaning in the source's own words, or word salad built from them, scores like a translation.
# The similarity gate and the judge are the checks for these.
LET_THROUGH = [
    ("Why is the sky blue during the day?", "The sky of the day is the side that stands blue in the sky of the side."),
    ("Rewrite this sentence so that it sounds more formal.", "Rewrite this sentence so that it seems less formal."),
    ("Why is the sky blue during the day?", "The sky is blue during the day."),
    (
        "The Mona Lisa was painted by Leonardo da Vinci in the early 16th century. It hangs in the Louvre Museum "
        "in Paris, where it is protected behind glass and seen by millions of visitors every year.",
        "The Mona Lisa was painted by Leonardo da Vinci at the beginning of the 16th century. "
        "It is kept in the storerooms of the Louvre museum in Paris, and visitors can no longer see it.",
    ),
]


@pytest.mark.parametrize("source, back", CORRECT)
def test_default_threshold_keeps_faithful_back_translations(source, back):
    assert chrf(back, source) >= THRESHOLD


@pytest.mark.parametrize("source, back", NONSENSE_OR_OTHER_SEED)
def test_default_threshold_stops_nonsense_and_other_seeds(source, back):
    assert chrf(back, source) < THRESHOLD


@pytest.mark.parametrize("source, back", LET_THROUGH)
def test_what_the_default_lets_through(source, back):
    assert chrf(back, source) >= THRESHOLD


def test_spans_are_removed_from_both_sides():
    source = "Run `pip install --upgrade babelforge-engine` and then restart the shell."
    # The same prose around a mangled or missing copy of the code scores as if the code were not there.
    assert chrf("Run [[1]] and then restart the shell.", source) == pytest.approx(100.0)
    assert chrf("Run `pip install babelforge` and then restart the shell.", source) == pytest.approx(100.0)
    # Code kept while the prose is lost does not lift the score.
    assert chrf("`pip install --upgrade babelforge-engine` the weather is nice", source) < THRESHOLD


@pytest.mark.parametrize(
    "source, translation, scored",
    [
        ("Explain what a loop does in Python.", "Explique ce que fait une boucle en Python.", True),
        ("Solve $x^2 = 4$.", "Résous [[1]].", False),  # too few letters once the formula is gone
        ("She sells sea shells by the sea shore.", "She sells sea shells by the sea shore.", False),  # kept as it was
        ("See `ls -la` for the file list here.", "Voir [[1]] pour la liste des fichiers ici.", True),
        ("", "", False),
        # The source decides, in script-fair units (as the gate): a short Chinese translation is scored,
        # and so is one that lost its prose.
        ("Summarise this paragraph.", "总结这段话。", True),
        ("Write a haiku about the rain.", "[[1]]", True),
    ],
)
def test_which_fields_are_scored(source, translation, scored):
    chosen = scored_fields([RoundTripField("input", source, translation)], min_letters=12)
    assert bool(chosen) is scored


@pytest.mark.parametrize(
    "scores, expected",
    [
        ({}, (None, None)),
        ({"instruction": 80.0, "output": 60.0}, (None, None)),
        ({"instruction": 80.0, "output": 20.04}, ("round_trip:output:20.0", "output")),
        ({"instruction": 10.0, "output": 20.0}, ("round_trip:instruction:10.0", "instruction")),
        ({"instruction": 90.0, "output": None}, ("round_trip_failed:output", "output")),
    ],
)
def test_verdict(scores, expected):
    assert verdict(scores, 35.0) == expected


def test_reasons_are_listed_and_not_retried():
    assert not REASONS["round_trip"].retry and not REASONS["round_trip_failed"].retry


SOURCE = (
    "Explain briefly what a Python list comprehension does.",
    "It builds a new list from an iterable in one expression.",
)
DRAFT = json.dumps(
    {
        "instruction": "Explique brièvement ce que fait la compréhension de liste en Python.",
        "output": "Elle construit une nouvelle liste à partir de la séquence en une seule expression.",
    }
)
GOOD_BACK = {
    "Explique": "Explain briefly what a list comprehension does in Python.",
    "Elle": "It builds a new list from an iterable in a single expression.",
}


def is_back_translation(messages) -> bool:
    return messages[0]["content"].startswith("You translate French text into English")


def scripted(back: dict[str, str | Completion]):
    """Drafts get DRAFT; a back-translation request gets back[first word of the text it carries]."""

    def reply(messages):
        if not is_back_translation(messages):
            return Completion(DRAFT, 60, 40, "stop")
        answer = back[messages[-1]["content"].split()[0]]
        return answer if isinstance(answer, Completion) else Completion(answer, 30, 12, "stop")

    return FakeGenerator(reply)


def machine(generator, rounds=0, **quality):
    config = parse_config(
        {
            "seeds": {"paths": ["unused.jsonl"]},
            "languages": {"targets": ["fr"]},
            "refine": {"rounds": rounds},
            "validation": {"max_attempts": 1},
            "quality": quality,
        }
    )
    return row_machine(config, generator, FakeLangId())


def run(translator, task=None):
    return asyncio.run(translator(task or make_task(*SOURCE)))


def test_off_by_default_sends_no_back_translation():
    generator = scripted(GOOD_BACK)
    row = run(machine(generator))
    assert row["status"] == ACCEPTED
    assert len(generator.requests) == 1 and not any(is_back_translation(m) for m, _ in generator.requests)
    assert row["tokens_round_trip"] == 0 and row.get("round_trip_chrf") is None
    assert row["prompt_version"] == "translate.v1"


def test_accepts_above_the_threshold_and_books_its_tokens():
    generator = scripted(GOOD_BACK)
    row = run(machine(generator, round_trip=True))
    assert row["status"] == ACCEPTED and row["reason"] is None
    back = [(m, p) for m, p in generator.requests if is_back_translation(m)]
    assert len(back) == 2  # one request per translated field
    assert {m[-1]["content"] for m, _ in back} == {json.loads(DRAFT)["instruction"], json.loads(DRAFT)["output"]}
    assert all(p.temperature == 0.0 and p.json_schema is None for _, p in back)  # greedy, plain text
    assert row["tokens_round_trip"] == 2 * 12 and row["tokens_draft"] == 40
    assert row["completion_tokens"] == 40 + 24 and row["prompt_tokens"] == 60 + 2 * 30
    assert THRESHOLD <= row["round_trip_chrf"] < 100
    expected_weakest = min(chrf(GOOD_BACK["Explique"], SOURCE[0]), chrf(GOOD_BACK["Elle"], SOURCE[1]))
    assert row["round_trip_chrf"] == pytest.approx(expected_weakest)
    assert (
        row["prompt_version"]
        == "translate.v1+backtranslate.v1"
        == prompt_version(machine(generator, round_trip=True).config)
    )


def test_back_translations_are_in_flight_together():
    generator = scripted(GOOD_BACK)
    run(machine(generator, round_trip=True))
    assert generator.peak_in_flight == 2


def test_rejects_below_the_threshold_with_reason_and_field():
    generator = scripted({**GOOD_BACK, "Elle": "The weather of the week is a colour of the morning."})
    row = run(machine(generator, round_trip=True))
    assert row["status"] == REJECTED and row["reason_field"] == "output"
    name, field, score = row["reason"].split(":")
    assert (name, field) == ("round_trip", "output") and float(score) < THRESHOLD
    assert row["round_trip_chrf"] == pytest.approx(float(score), abs=0.05)
    assert row["output"] == json.loads(DRAFT)["output"]  # a rejected row keeps what it wrote
    assert row["tokens_round_trip"] == 24


def test_threshold_comes_from_the_config():
    row = run(machine(scripted(GOOD_BACK), round_trip=True, round_trip_min_chrf=99.0))
    assert row["status"] == REJECTED and row["reason"].startswith("round_trip:")


def test_a_failed_back_translation_rejects_the_row():
    generator = scripted({**GOOD_BACK, "Explique": Completion("engine died", 0, 0, ERROR)})
    row = run(machine(generator, round_trip=True))
    assert (row["status"], row["reason"], row["reason_field"]) == (
        REJECTED,
        "round_trip_failed:instruction",
        "instruction",
    )
    assert row["round_trip_chrf"] is not None  # the other field was scored


def test_a_row_the_loop_rejected_is_not_round_tripped():
    def reply(messages):
        if is_back_translation(messages):
            raise AssertionError("no round trip for a rejected row")
        return Completion("not json at all", 60, 40, "stop")

    row = run(machine(FakeGenerator(reply), round_trip=True))
    assert row["status"] == REJECTED and row["reason"].startswith("parse_")
    assert row["tokens_round_trip"] == 0


def test_after_judging_the_kept_version_is_round_tripped():
    def reply(messages):
        if messages[0]["content"].startswith("You review a translation"):
            return Completion(json.dumps({"feedback": "none", "score": 2}), 80, 5, "stop")
        if is_back_translation(messages):
            return Completion(GOOD_BACK[messages[-1]["content"].split()[0]], 30, 12, "stop")
        return Completion(DRAFT, 60, 40, "stop")

    row = run(machine(FakeGenerator(reply), rounds=1, round_trip=True))
    assert row["status"] == ACCEPTED and row["tokens_judge"] == 3 * 5 and row["tokens_round_trip"] == 24
    assert row["prompt_version"] == "translate.v1+judge.v1+backtranslate.v1"


def test_xinstruction_ignores_it():
    config = parse_config(
        {
            "recipe": "xinstruction",
            "seeds": {"paths": ["unused.jsonl"]},
            "languages": {"targets": ["fr"]},
            "quality": {"round_trip": True},
        }
    )
    assert "backtranslate" not in prompt_version(config)


def test_report_and_sample_browser_show_it():
    rows = [
        run(machine(scripted(GOOD_BACK), round_trip=True)),
        run(
            machine(scripted({**GOOD_BACK, "Elle": "A colour of the morning."}), round_trip=True),
            make_task(*SOURCE, seed_id="s2"),
        ),
    ]
    assert "round_trip_chrf" in SCHEMA.names and "tokens_round_trip" in SCHEMA.names
    report = build_report(to_table(rows), 2, 0, 1.0, {"run": {"name": "t"}, "recipe": "sphinx", "model": {"name": "m"}})
    assert report["round_trip"] == {"scored_rows": 2, "rejected_rows": 1, "tokens": 48, "tokens_per_accepted": 48.0}
    assert report["refinement"]["tokens_per_accepted"]["round_trip"] == 48.0
    assert "## Round trip" in render_markdown(report)
    assert f"round-trip chrF {rows[0]['round_trip_chrf']:.1f}" in render_fate("output", rows[0])
