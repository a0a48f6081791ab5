"""Ring (a): CrossIn, QAlign, X-Instruction and TransLLM formats on hand-made rows (CrossIn's mode
shares and size through jobs.build's build, run in one process: tests/local_build.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.builders.crossin import TRANSLATE_INSTRUCTION, crossin_candidates
from engine.builders.pool import build_pool
from engine.builders.qalign import build_qalign
from engine.builders.transllm import build_transllm, language_tag
from engine.builders.xinstruction import build_xinstruction
from engine.config import BuildConfig
from tests.local_build import build_and_read
from tests.unit.test_builders import make_row, make_rows, pool

ALL_MODES = {"en_x": 1.0, "x_en": 1.0, "x_x": 1.0, "translation": 1.0}


def by_mode(examples: list[dict]) -> dict[str, list[dict]]:
    modes: dict[str, list[dict]] = {}
    for example in examples:
        modes.setdefault(example["mode"], []).append(example)
    return modes


def build_crossin(out, modes: dict[str, float], size: int | None, seed: int) -> list[dict]:
    """CrossIn over make_rows() as jobs.build makes it: candidates per seed, each mode cut to its quota."""
    build = BuildConfig(
        builders=("crossin",),
        validation_share=0.0,
        seed=seed,
        crossin={"modes": modes, "size": size},
        mix={"enabled": False},
    )
    return build_and_read(make_rows(), build, out)[1].get("crossin", {}).get("train", [])


def final_answer(completion: str, lang: str) -> str:
    """What a TCoT model's user sees: the text after the language tag that follows <RESPONSE>.
    Anchored on the known tag, not on any tag-like text, so an answer with markup such as `<B>` stays whole."""
    response = completion.find("<RESPONSE>")
    tag = completion.find(language_tag(lang), max(response, 0))
    return completion[tag + len(language_tag(lang)) :].strip() if tag >= 0 else completion.strip()


# --- CrossIn ----------------------------------------------------------------------------------


def test_crossin_en_x_and_x_en_pair_one_seed_and_tag_the_output_language():
    modes = crossin_candidates(pool(), seed=0)
    en_x = next(e for e in modes["en_x"] if e["source_ids"] == ["s03:en", "s03-fr"])
    assert en_x["prompt"] == "[fr] English instruction 3\n\nEnglish input 3"
    assert en_x["completion"] == "fr answer 3"
    assert (en_x["input_lang"], en_x["output_lang"], en_x["lang"]) == ("en", "fr", "fr")
    x_en = next(e for e in modes["x_en"] if e["source_ids"] == ["s05-de", "s05:en"])
    assert x_en["prompt"] == "[en] de instruction 5" and x_en["completion"] == "English answer 5"
    assert (x_en["input_lang"], x_en["output_lang"], x_en["lang"]) == ("de", "en", "de")
    for example in modes["en_x"] + modes["x_en"] + modes["x_x"]:
        assert example["prompt"].startswith(f"[{example['output_lang']}] ")
        assert len({source.split("-")[0].split(":")[0] for source in example["source_ids"]}) == 1, (
            "one seed per example"
        )


def test_crossin_translation_pairs_map_the_x_instruction_to_its_english_original():
    translation = crossin_candidates(pool(), seed=0)["translation"]
    example = next(e for e in translation if e["source_ids"] == ["s07-de", "s07:en"])
    assert example["prompt"] == f"{TRANSLATE_INSTRUCTION}\n\nde instruction 7"
    assert example["completion"] == "English instruction 7"
    assert len(translation) == len(pool().rows)


def test_crossin_x_x_draws_input_and_output_languages_independently():
    # 60 seeds, each in fr, de, ja: four languages per seed with English.
    rows = make_rows({lang: range(60) for lang in ("fr", "de", "ja")})
    x_x = crossin_candidates(build_pool(rows), seed=0)["x_x"]
    assert len(x_x) == len(rows), "as many as the seeds have translations"
    assert len({e["id"] for e in x_x}) == len(x_x), "no pair twice"
    pairs = Counter((e["input_lang"], e["output_lang"]) for e in x_x)
    inputs, outputs = Counter(e["input_lang"] for e in x_x), Counter(e["output_lang"] for e in x_x)
    assert set(inputs) == set(outputs) == {"en", "fr", "de", "ja"}
    assert sum(n for (a, b), n in pairs.items() if a != b and "en" not in (a, b)) > 0, (
        "x -> x' between two non-English languages"
    )
    # Independent uniform draws: every language about a quarter of inputs and of outputs.
    assert all(25 <= n <= 65 for n in (*inputs.values(), *outputs.values())), (inputs, outputs)
    for example in x_x:
        assert example["completion"].startswith(f"{example['output_lang']} answer") or example["output_lang"] == "en"


def test_crossin_mode_shares_and_size(tmp_path):
    p = pool()
    full = by_mode(build_crossin(tmp_path / "full", ALL_MODES, None, 0))
    assert {mode: len(rows) for mode, rows in full.items()} == {mode: len(p.rows) for mode in ALL_MODES}
    weighted = by_mode(build_crossin(tmp_path / "weighted", {"en_x": 2, "x_en": 1, "x_x": 1, "translation": 0}, 20, 0))
    assert {mode: len(rows) for mode, rows in weighted.items()} == {"en_x": 10, "x_en": 5, "x_x": 5}
    # A size beyond what the modes hold is capped, keeping the shares.
    capped = by_mode(build_crossin(tmp_path / "capped", {"en_x": 1, "x_en": 1}, 10_000, 0))
    assert {mode: len(rows) for mode, rows in capped.items()} == {"en_x": len(p.rows), "x_en": len(p.rows)}


def test_crossin_is_deterministic_and_moves_with_the_seed(tmp_path):
    first, again = (
        build_crossin(tmp_path / "first", ALL_MODES, 12, 0),
        build_crossin(tmp_path / "again", ALL_MODES, 12, 0),
    )
    assert first == again
    assert sorted(e["id"] for e in first) != sorted(
        e["id"] for e in build_crossin(tmp_path / "other", ALL_MODES, 12, 1)
    )


# --- QAlign ---------------------------------------------------------------------------------


def test_qalign_stage_one_translates_the_question_into_english():
    questions = build_qalign(pool())["qalign_question"]
    example = next(e for e in questions if e["source_ids"][0] == "s03-fr")
    assert (
        example["prompt"] == "Translate the following sentences from French to English.\nfr instruction 3\n\nfr input 3"
    )
    assert example["completion"] == "English instruction 3\n\nEnglish input 3"
    assert (example["input_lang"], example["output_lang"], example["lang"]) == ("fr", "en", "fr")
    assert "answer" not in example["prompt"] + example["completion"], "questions only"
    ja = next(e for e in questions if e["lang"] == "ja")
    assert ja["prompt"].startswith("Translate the following sentences from Japanese to English.\n")


def test_qalign_stage_two_is_english_instruction_data_one_per_seed():
    p = pool()
    responses = build_qalign(p)["qalign_response"]
    assert len(responses) == len(p.english)
    example = next(e for e in responses if e["seed_id"] == "s06")
    assert (example["prompt"], example["completion"], example["lang"]) == (
        "English instruction 6\n\nEnglish input 6",
        "English answer 6",
        "en",
    )


# --- X-Instruction ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang, name, seed", [("fr", "French", 1), ("de", "German", 5), ("ja", "Japanese", 2)])
def test_xinstruction_asks_in_english_for_an_answer_in_the_language(lang, name, seed):
    examples = build_xinstruction(pool())["xinstruction"]
    example = next(e for e in examples if e["source_ids"][0] == f"s{seed:02d}-{lang}")
    assert example["prompt"] == f"English instruction {seed} Answer in {name}."
    assert example["prompt"].startswith(f"English instruction {seed} Answer in {name}.")
    assert example["completion"] == f"{lang} answer {seed}"
    assert (example["input_lang"], example["output_lang"]) == ("en", lang)


def test_xinstruction_input_stays_english_after_the_directive():
    example = next(e for e in build_xinstruction(pool())["xinstruction"] if e["source_ids"][0] == "s03-fr")
    assert example["prompt"] == "English instruction 3 Answer in French.\n\nEnglish input 3"


def test_xinstruction_generation_rows_are_taken_as_they_are():
    generated = make_row(
        50,
        "fr",
        src_instruction="",
        src_input="",
        src_output="Un texte.",
        instruction="Describe Paris. Answer in French.",
        input="",
        output="Un texte.",
    )
    examples = build_xinstruction(build_pool([generated]))["xinstruction"]
    assert [(e["prompt"], e["completion"], e["source_ids"]) for e in examples] == [
        ("Describe Paris. Answer in French.", "Un texte.", ["s50-fr"])
    ]
    # Builders that need an English original skip such rows instead of inventing one.
    assert build_transllm(build_pool([generated])) == {"transllm": []}
    assert build_qalign(build_pool([generated])) == {"qalign_question": [], "qalign_response": []}


# --- TransLLM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang, tag, seed", [("fr", "<FR>", 0), ("ja", "<JA>", 0), ("de", "<DE>", 6)])
def test_transllm_answers_with_the_translation_chain_of_thought(lang, tag, seed):
    example = next(e for e in build_transllm(pool())["transllm"] if e["source_ids"][0] == f"s{seed:02d}-{lang}")
    assert example["prompt"] == f"{lang} instruction {seed}\n\n{lang} input {seed}"
    expected = (
        f"<EN> English instruction {seed}\n\nEnglish input {seed} "
        f"<RESPONSE> English answer {seed} {tag} {lang} answer {seed}"
    )
    assert example["completion"] == expected
    assert final_answer(example["completion"], lang) == f"{lang} answer {seed}"


def test_transllm_final_answer_keeps_markup_inside_the_answer():
    completion = "<EN> q <RESPONSE> a <FR> Voici <B>gras</B> et <DE>."
    assert final_answer(completion, "fr") == "Voici <B>gras</B> et <DE>."
