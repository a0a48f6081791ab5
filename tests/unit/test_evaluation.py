"""engine/training/evaluation.py: held-out prompts, the answer judge's messages, language fidelity and the
other aggregates, the report in JSON-able form, Markdown, text lines and PNG bars."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.rows.judge import parse_score
from engine.training import evaluation as E

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_prompts_are_five_per_language_in_fr_es_de_pt():
    path = ROOT / "data" / "eval" / "prompts.jsonl"
    prompts = E.parse_prompt_lines(path.read_text(encoding="utf-8").splitlines(), str(path))
    assert Counter(p["lang"] for p in prompts) == {"fr": 5, "es": 5, "de": 5, "pt": 5}
    assert len({p["id"] for p in prompts}) == 20 and {p["source"] for p in prompts} == {"file"}


def test_shipped_prompts_are_in_their_language():
    fasttext = pytest.importorskip("fasttext")
    from actors.engines.models import resolve_model

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
    # unknown code: shown as is
    assert E.answer_judge_messages("helpfulness", "xx", "q", "a")[0]["content"].count("xx") >= 1
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
        "base": {"fidelity": 0.5, "judge": {"language": 1.0}, "loss": 2.0, "consistency": None},
        "finetuned": {"fidelity": 1.0, "judge": {"language": 2.0}, "loss": 1.5, "consistency": None},
        "consistency_n": 0,
    }
    assert r["consistency"] is None  # not measured: no encoder named
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


# Cross-lingual consistency: pairing each prompt with its English version, then aggregating cosines.


def test_shipped_prompts_each_carry_their_english_version():
    path = ROOT / "data" / "eval" / "prompts.jsonl"
    paired = E.pair_with_english(E.parse_prompt_lines(path.read_text(encoding="utf-8").splitlines(), str(path)))
    assert all(p["en_prompt"] == p["en"] and p["en"] != p["prompt"] for p in paired)
    # pt-01..03 ask what fr-01..03 ask: one English question each
    assert len(E.english_questions(paired)) == 17


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"en": ""}, r"f\.jsonl:2: field 'en' \(the prompt in English\) must be a non-empty string, got ''"),
        ({"en": ["Hello"]}, r"f\.jsonl:2: field 'en' .* got \['Hello'\]"),
        ({"seed_id": 7}, r"f\.jsonl:2: field 'seed_id' .* got 7"),
    ],
)
def test_malformed_english_fields_name_file_line_and_field(fields, message):
    with pytest.raises(ValueError, match=message):
        E.parse_prompt_lines(
            [json.dumps({"lang": "fr", "prompt": "ok"}), json.dumps({"lang": "fr", "prompt": "ok", **fields})],
            "f.jsonl",
        )


def test_a_line_that_is_not_an_object_is_named():
    with pytest.raises(ValueError, match=r"f\.jsonl:1: a prompt line is a JSON object, not list"):
        E.parse_prompt_lines(['["fr", "Bonjour"]'], "f.jsonl")


def test_english_fields_are_kept_when_given():
    line = json.dumps({"id": "a", "lang": "fr", "prompt": "Bonjour ?", "en": "Hello?", "seed_id": "s1"})
    assert E.parse_prompt_lines([line], "f.jsonl") == [
        {"id": "a", "lang": "fr", "prompt": "Bonjour ?", "source": "file", "en": "Hello?", "seed_id": "s1"}
    ]


def test_validation_rows_pair_with_the_english_row_of_their_seed():
    split = [
        {"id": "e2", "lang": "en", "seed_id": "s1", "prompt": "What is 2+2? (later id)"},
        {"id": "e1", "lang": "en", "seed_id": "s1", "prompt": "What is 2+2?"},
        {"id": "e3", "lang": "en", "seed_id": "s2", "prompt": "Name a colour."},
        {"id": "e4", "lang": "en", "seed_id": "s4", "prompt": "  "},
        {"id": "f1", "lang": "fr", "seed_id": "s1", "prompt": "Combien font 2+2 ?"},
    ]
    english = E.english_by_seed(split)
    assert english == {"s1": "What is 2+2?", "s2": "Name a colour."}  # lowest id wins; blank prompts are no version
    prompts = E.validation_prompts(
        [
            {"id": "f1", "lang": "fr", "seed_id": "s1", "prompt": "Combien font 2+2 ?"},
            {"id": "d1", "lang": "de", "seed_id": "s2", "prompt": "Nenne eine Farbe."},
            {"id": "d2", "lang": "de", "seed_id": "s3", "prompt": "Kein Englisch."},  # seed without an English row
            {"id": "x1", "lang": "es", "prompt": "Sin semilla."},  # a folder without seed ids
        ]
    )
    paired = {p["id"]: p.get("en_prompt") for p in E.pair_with_english(prompts, english)}
    assert paired == {"f1": "What is 2+2?", "d1": "Name a colour.", "d2": None, "x1": None}
    assert "en_prompt" not in prompts[0]  # copies: the input is left as it was


def test_pairing_prefers_an_explicit_english_field_and_finds_english_prompts_among_the_prompts():
    prompts = [
        {"id": "1", "lang": "fr", "prompt": "Bonjour ?", "en": "Hello?", "seed_id": "s1", "source": "file"},
        {"id": "2", "lang": "es", "prompt": "¿Hola?", "seed_id": "s1", "source": "file"},
        {"id": "3", "lang": "en", "prompt": "Hi there?", "seed_id": "s1", "source": "file"},
    ]
    paired = E.pair_with_english(prompts, {"s1": "Hello from the dataset?"})
    assert [p.get("en_prompt") for p in paired] == [
        "Hello?",
        "Hello from the dataset?",
        None,
    ]  # English prompts are the reference
    assert [p.get("en_prompt") for p in E.pair_with_english(prompts)] == ["Hello?", "Hi there?", None]
    # One English question per distinct English version, shared across languages.
    assert E.english_questions(paired + [{"lang": "de", "en_prompt": "Hello?"}]) == [
        "Hello from the dataset?",
        "Hello?",
    ]


def test_cosines_are_row_wise_and_bounded():
    import numpy as np

    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[3.0, 0.0], [0.0, -1.0], [1.0, 0.0], [1.0, 0.0]])
    got = E.cosines(a, b)
    assert got == pytest.approx([1.0, -1.0, 2**-0.5, 0.0])
    assert all(-1.0 <= c <= 1.0 for c in got)
    with pytest.raises(ValueError, match="one shape"):
        E.cosines(a, b[:2])


PAIRED = [
    {
        "lang": "fr",
        "source": "file",
        "base_lid": "fr",
        "finetuned_lid": "fr",
        "base_consistency": 0.8,
        "finetuned_consistency": 0.9,
    },
    {
        "lang": "fr",
        "source": "file",
        "base_lid": "en",
        "finetuned_lid": "fr",
        "base_consistency": 0.6,
        "finetuned_consistency": 0.7,
    },
    {
        "lang": "de",
        "source": "file",
        "base_lid": "de",
        "finetuned_lid": "de",
        "base_consistency": -0.2,
        "finetuned_consistency": 0.5,
    },
    {"lang": "de", "source": "validation", "base_lid": "de", "finetuned_lid": "de"},  # no English version: not scored
    {"lang": "en", "source": "validation", "base_lid": "en", "finetuned_lid": "en"},
]


def test_consistency_is_a_mean_per_language_over_the_scored_prompts():
    assert E.consistency(PAIRED, "base") == {"de": {"n": 1, "mean": -0.2}, "fr": {"n": 2, "mean": pytest.approx(0.7)}}
    assert E.consistency(PAIRED, "finetuned")["fr"] == {"n": 2, "mean": pytest.approx(0.8)}
    assert E.overall_consistency(PAIRED, "finetuned") == {"n": 3, "mean": pytest.approx(0.7)}
    assert E.overall_consistency(PAIRED[3:], "base") == {} and E.consistency(PAIRED[3:], "base") == {}


def consistency_report() -> dict:
    return E.build_report("t", {"base": "b", "finetuned": "f"}, PAIRED, None, [], 2.0, encoder="multilingual-e5-small")


def test_report_puts_consistency_beside_fidelity_for_both_models():
    r = consistency_report()
    assert json.loads(json.dumps(r)) == r
    fr, de, en = (r["languages"][lang] for lang in ("fr", "de", "en"))
    assert fr["base"]["consistency"] == pytest.approx(0.7) and fr["finetuned"]["consistency"] == pytest.approx(0.8)
    assert (fr["consistency_n"], de["consistency_n"], en["consistency_n"]) == (2, 1, 0)
    assert en["base"]["consistency"] is None and de["base"]["fidelity"] == 1.0
    assert r["consistency"]["encoder"] == "multilingual-e5-small"
    assert r["consistency"]["per_language"]["base"]["de"] == {"n": 1, "mean": -0.2}
    assert r["consistency"]["overall"]["base"] == {"n": 3, "mean": pytest.approx(0.4)}


def test_markdown_and_text_lines_show_consistency_next_to_fidelity():
    r = consistency_report()
    md = E.render_markdown(r)
    header = (
        "| language | prompts | fidelity base | fidelity tuned | pairs "
        "| consistency base | consistency tuned | loss base | loss tuned |"
    )
    assert header in md
    assert "| fr | 2 | 0.50 | 1.00 | 2 | 0.70 | 0.80 | – | – |" in md
    assert "| en | 1 | 1.00 | 1.00 | 0 | – | – | – | – |" in md
    assert "multilingual-e5-small" in md and "Overall consistency: base 0.40, fine-tuned 0.70 over 3 prompts" in md
    lines = E.consistency_lines(r)
    assert [line.split() for line in lines[1:]] == [
        ["de", "1", "-0.20", "0.50", "0.70"],
        ["fr", "2", "0.70", "0.80", "0.10"],
        ["all", "3", "0.40", "0.70", "0.30"],
    ]
    # Not measured: no columns, no lines.
    off = E.build_report("t", {"base": "b", "finetuned": "f"}, PAIRED, None, [], 2.0)
    assert "consistency" not in E.render_markdown(off) and E.consistency_lines(off) == []


def test_consistency_plot_is_drawn_when_measured():
    pngs = E.plots(consistency_report())
    assert set(pngs) == {"fidelity.png", "consistency.png"} and pngs["consistency.png"].startswith(b"\x89PNG")
