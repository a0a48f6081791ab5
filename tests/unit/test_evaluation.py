"""engine/training/evaluation.py: held-out prompts, the answer judge's messages, language fidelity and the
other aggregates, the report in JSON-able form, Markdown, text lines and PNG bars."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.training import evaluation as E
from engine.rows.judge import parse_score

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_prompts_are_five_per_language_in_fr_es_de():
    path = ROOT / "data" / "eval" / "prompts.jsonl"
    prompts = E.parse_prompt_lines(path.read_text(encoding="utf-8").splitlines(), str(path))
    assert Counter(p["lang"] for p in prompts) == {"fr": 5, "es": 5, "de": 5}
    assert len({p["id"] for p in prompts}) == 15 and {p["source"] for p in prompts} == {"file"}


def test_shipped_prompts_are_in_their_language():
    fasttext = pytest.importorskip("fasttext")
    from actors.models import resolve_model

    model = fasttext.load_model(resolve_model("lid176"))
    path = ROOT / "data" / "eval" / "prompts.jsonl"
    for p in E.parse_prompt_lines(path.read_text(encoding="utf-8").splitlines(), str(path)):
        labels, _ = model.predict(p["prompt"], k=1)
        assert labels[0] == f"__label__{p['lang']}", p


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"f\.jsonl:2: not JSON"),
        (json.dumps({"lang": "fr"}), r"f\.jsonl:2: needs non-empty string fields \['prompt'\]"),
        (json.dumps({"lang": "", "prompt": "x"}), r"\['lang'\]"),
        (json.dumps({"lang": "fr", "prompt": 3}), r"\['prompt'\]"),
    ],
)
def test_bad_prompt_lines_name_file_and_line(line, message):
    with pytest.raises(ValueError, match=message):
        E.parse_prompt_lines([json.dumps({"lang": "fr", "prompt": "ok"}), line], "f.jsonl")


def test_blank_lines_are_skipped_and_missing_ids_are_made_up():
    prompts = E.parse_prompt_lines(["", json.dumps({"lang": "fr", "prompt": "Bonjour ?"}), "  "], "f.jsonl")
    assert prompts == [{"id": "f.jsonl:2", "lang": "fr", "prompt": "Bonjour ?", "source": "file"}]


def rows(n_per_lang: dict[str, int]) -> list[dict]:
    return [{"id": f"{lang}{i}", "lang": lang, "prompt": f"p{i}"} for lang, n in n_per_lang.items() for i in range(n)]


def test_sampling_caps_each_language_reproducibly():
    data = rows({"fr": 10, "de": 3})
    first = E.sample_per_language(data, 4, seed=0)
    assert Counter(r["lang"] for r in first) == {"fr": 4, "de": 3}
    assert first == E.sample_per_language(list(reversed(data)), 4, seed=0)  # input order does not matter
    assert E.sample_per_language(data, 4, seed=1) != first
    assert {r["lang"] for r in E.sample_per_language(data, 4, 0, languages={"de"})} == {"de"}
    assert E.sample_per_language(data, 0, 0) == []


def test_answer_judge_names_the_language_and_reuses_the_judge_parser():
    messages = E.answer_judge_messages("language", "fr", "Bonjour ?", "Hello!")
    assert "French" in messages[0]["content"] and "Judge one thing only" in messages[0]["content"]
    assert messages[1]["content"] == "Request:\nBonjour ?\n\nAnswer:\nHello!"
    assert E.answer_judge_messages("helpfulness", "xx", "q", "a")[0]["content"].count("xx") >= 1  # unknown code: shown as is
    assert parse_score("language", '{"feedback": "ok", "score": 2}').score == 2.0


def item(lang: str, base_lid: str, tuned_lid: str, source: str = "file", **extra) -> dict:
    return {"lang": lang, "source": source, "base_lid": base_lid, "finetuned_lid": tuned_lid, **extra}


ITEMS = [
    item("fr", "en", "fr", base_judge={"language": 0.0}, finetuned_judge={"language": 2.0}),
    item("fr", "fr", "fr", base_judge={"language": 2.0}, finetuned_judge={"language": None}),
    item("de", "en", "en", source="validation", base_judge={"language": 1.0}, finetuned_judge={"language": 1.0}),
    item("de", "de", "und", source="validation"),
]


def test_fidelity_is_the_share_of_answers_in_the_prompt_language():
    assert E.fidelity(ITEMS, "base") == {
        "de": {"answers": 2, "in_language": 1, "share": 0.5},
        "fr": {"answers": 2, "in_language": 1, "share": 0.5},
    }
    assert E.fidelity(ITEMS, "finetuned")["fr"]["share"] == 1.0
    assert E.overall_fidelity(ITEMS, "finetuned") == {"answers": 4, "in_language": 2, "share": 0.5}
    assert E.overall_fidelity([], "base") == {}


def test_judge_means_skip_unreadable_scores():
    means = E.judge_means(ITEMS, "finetuned", ["language"])
    assert means == {"de": {"language": 1.0}, "fr": {"language": 2.0}}
    assert E.judge_means([item("es", "es", "es")], "base", ["language"]) == {"es": {"language": None}}


def test_mean_loss_is_per_token():
    assert E.mean_loss({"fr": [6.0, 3], "de": [1.0, 0]}) == {"fr": 2.0}


def report() -> dict:
    losses = {"base": {"fr": 2.0, "de": 2.5}, "finetuned": {"fr": 1.5, "de": 2.0}}
    return E.build_report("t", {"base": "b", "finetuned": "f"}, ITEMS, losses, ["language"], 12.34)


def test_report_puts_both_models_side_by_side_per_language():
    r = report()
    assert json.loads(json.dumps(r)) == r
    assert r["languages"]["fr"] == {
        "prompts": 2,
        "base": {"fidelity": 0.5, "judge": {"language": 1.0}, "loss": 2.0},
        "finetuned": {"fidelity": 1.0, "judge": {"language": 2.0}, "loss": 1.5},
    }
    assert r["overall_fidelity"]["base"]["share"] == 0.5
    assert r["by_source"]["validation"]["finetuned"]["de"]["share"] == 0.0
    assert r["seconds"] == 12.3


def test_text_lines_and_markdown_show_every_language_and_the_delta():
    lines = E.fidelity_lines(report())
    assert lines[1].split() == ["de", "2", "0.50", "0.00", "-0.50"]
    assert lines[2].split() == ["fr", "2", "0.50", "1.00", "0.50"]
    assert lines[3].split() == ["all", "4", "0.50", "0.50", "0.00"]
    md = E.render_markdown(report())
    assert "| fr | 2 | 0.50 | 1.00 | 1.00 | 2.00 | 2.000 | 1.500 |" in md
    assert "Sources: file (2), validation (2)" in md


def test_report_without_judge_or_loss_renders_dashes():
    r = E.build_report("t", {"base": "b", "finetuned": "f"}, ITEMS[:1], None, [], 1.0)
    assert r["languages"]["fr"]["base"]["loss"] is None
    assert "| fr | 1 | 0.00 | 1.00 | – | – |" in E.render_markdown(r)


def test_plots_are_pngs_and_missing_data_is_skipped():
    pngs = E.plots(report())
    assert set(pngs) == {"fidelity.png", "loss.png", "judge-language.png"}
    assert all(png.startswith(b"\x89PNG") for png in pngs.values())
    bare = E.build_report("t", {"base": "b", "finetuned": "f"}, ITEMS, None, [], 1.0)
    assert set(E.plots(bare)) == {"fidelity.png"}
