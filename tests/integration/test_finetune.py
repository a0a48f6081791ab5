"""jobs.finetune end to end on local Ray: 2 CPU workers, DeepSpeed ZeRO-2 and ZeRO-3 on SmolLM2-135M,
a kill after a checkpoint and the resumed rerun, and the exported folder loaded by transformers
and by vLLM. Each run is a few steps of micro-batch 1 at 128 tokens: minutes on 2 cores."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.builders.example import EXAMPLE_SCHEMA, make_example
from tests.integration.conftest import ROOT, write_config

pytestmark = pytest.mark.integration

STEPS = 4
PAIRS = {
    "fr": [
        ("Quelle est la capitale de la France ?", "La capitale de la France est Paris."),
        ("Combien font deux plus trois ?", "Deux plus trois font cinq."),
        ("Nomme un animal qui vit dans la mer.", "Le dauphin vit dans la mer."),
        ("Que boit-on au petit-déjeuner ?", "On boit souvent du café ou du thé."),
    ],
    "es": [
        ("¿Cuál es la capital de España?", "La capital de España es Madrid."),
        ("¿Cuánto es cuatro más cinco?", "Cuatro más cinco es nueve."),
        ("Nombra una fruta tropical.", "El mango es una fruta tropical."),
        ("¿Qué estación viene después del invierno?", "Después del invierno viene la primavera."),
    ],
    "de": [
        ("Was ist die Hauptstadt von Deutschland?", "Die Hauptstadt von Deutschland ist Berlin."),
        ("Wie viel ist sieben minus zwei?", "Sieben minus zwei ist fünf."),
        ("Nenne einen Wochentag.", "Der Montag ist ein Wochentag."),
        ("Welche Farbe hat Gras?", "Gras ist grün."),
    ],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A built dataset made with jobs.build's own make_example: the builders' exact columns."""
    folder = tmp_path_factory.mktemp("ft-data") / "sphinx"
    folder.mkdir()
    rows = [
        make_example("sphinx", "0-shot", prompt, completion, [{"id": f"{lang}{i}", "seed_id": f"seed-{i}"}], lang, lang)
        for lang, pairs in PAIRS.items()
        for i, (prompt, completion) in enumerate(pairs)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA), folder / "train.parquet")
    pq.write_table(pa.Table.from_pylist(rows[::4], schema=EXAMPLE_SCHEMA), folder / "validation.parquet")
    return folder


def finetune_config(out: Path, dataset: Path, stage: int, checkpoint_every: int) -> dict:
    return {
        "run": {"name": f"it-zero{stage}", "output_dir": str(out)},
        "data": {"dataset": str(dataset), "max_length": 128, "shuffle_buffer": 16},
        "train": {"max_steps": STEPS, "log_every": 1, "checkpoint_every": checkpoint_every, "keep_checkpoints": 1},
        "scaling": {"num_workers": 2, "use_gpu": False, "resources_per_worker": {"CPU": 1}},
        # Constant learning rate (no warmup): each of the few steps moves the weights.
        "deepspeed": {
            "train_micro_batch_size_per_gpu": 1,
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": stage},
            "optimizer": {"type": "AdamW", "params": {"lr": 2.0e-4, "torch_adam": True}},
        },
        "ray": {"num_cpus": 3},
    }


def launch(config: Path, log: Path) -> subprocess.Popen:
    # Its own session, so the kill below takes the driver and the Ray cluster it started, nothing else.
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.finetune", "--config", str(config)],
        cwd=ROOT,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONUNBUFFERED": "1"},
    )


def registered_step(storage: Path) -> int | None:
    """The step of the latest checkpoint Ray Train has registered (its own bookkeeping file)."""
    snapshot = storage / "checkpoint_manager_snapshot.json"
    try:
        latest = json.loads(snapshot.read_text())["latest_checkpoint_result"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None
    return latest["metrics"]["step"] if latest else None


def wait_for_no_train_workers(timeout_s: float) -> None:
    import psutil

    def train_workers() -> list:
        found = []
        for proc in psutil.process_iter():
            try:
                if "RayTrainWorker" in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    deadline = time.monotonic() + timeout_s
    while train_workers() and time.monotonic() < deadline:
        time.sleep(0.5)


def metrics_lines(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def zero2(tmp_path_factory, dataset):
    """ZeRO-2, checkpoint every 2 steps, killed (SIGKILL, whole session) once step 2 is registered, rerun."""
    root = tmp_path_factory.mktemp("ft-zero2")
    out, log = root / "out", root / "log.txt"
    config = write_config(root / "config.yaml", finetune_config(out, dataset, stage=2, checkpoint_every=2))
    storage = out / "ray" / "it-zero2"
    first = launch(config, log)
    deadline = time.monotonic() + 900
    while registered_step(storage) is None and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.25)
    try:
        os.killpg(first.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended by itself: the assertion below says how
    first.wait(60)
    # The killed run's train workers can outlive its session by a moment (Ray's worker processes are
    # not all in it) and finish the step they were in: wait for them, so that the lines of the first
    # run are counted before the rerun starts writing.
    wait_for_no_train_workers(60)
    killed_at = registered_step(storage)
    assert killed_at == 2, (
        f"expected a kill right after the step-2 checkpoint, got {killed_at}:\n{log.read_text()[-3000:]}"
    )
    before = len(metrics_lines(out))
    second = launch(config, log)
    assert second.wait(900) == 0, log.read_text()[-5000:]
    lines = metrics_lines(out)
    return {"out": out, "storage": storage, "log": log.read_text(), "first": lines[:before], "second": lines[before:]}


@pytest.fixture(scope="module")
def zero3(tmp_path_factory, dataset):
    root = tmp_path_factory.mktemp("ft-zero3")
    out, log = root / "out", root / "log.txt"
    config = write_config(root / "config.yaml", finetune_config(out, dataset, stage=3, checkpoint_every=STEPS))
    run = launch(config, log)
    assert run.wait(900) == 0, log.read_text()[-5000:]
    return {"out": out, "storage": out / "ray" / "it-zero3", "metrics": metrics_lines(out)}


def changed_tensors(export: Path) -> tuple[int, int]:
    from safetensors.torch import load_file

    from actors.engines.models import resolve_model

    base = load_file(Path(resolve_model("smollm2-135m-instruct")) / "model.safetensors")
    tuned = load_file(export / "model.safetensors")
    assert set(base) == set(tuned), "the export has the base model's tensors, tied weights stored once"
    return sum(int(not (base[k] == tuned[k]).all()) for k in base), len(base)


def test_zero2_run_trains_checkpoints_and_resumes_where_it_was_killed(zero2):
    first, second = zero2["first"], zero2["second"]
    assert [m["step"] for m in first][:2] == [1, 2]
    assert "resumed at step 2 (epoch 0, micro-batch 2)" in zero2["log"]
    assert [m["step"] for m in second] == [3, 4], "the rerun continues the step count, it does not start over"
    assert all(math.isfinite(m["loss"]) and m["tokens_per_s"] > 0 for m in first + second)
    latest = zero2["storage"] / "checkpoint_step0000004"
    assert registered_step(zero2["storage"]) == STEPS
    assert (latest / "train_state.json").exists() and (latest / "latest").read_text().strip() == "ds"
    assert {p.name for p in (latest / "ds").iterdir()} >= {
        "mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    }
    assert not (zero2["storage"] / "checkpoint_step0000002").exists(), "keep_checkpoints: 1 deletes the older one"
    changed, total = changed_tensors(zero2["out"] / "model")
    assert changed > total // 2, f"only {changed} of {total} tensors moved"


def test_zero3_run_trains_and_writes_a_sharded_checkpoint(zero3):
    assert [m["step"] for m in zero3["metrics"]] == [1, 2, 3, 4]
    assert all(math.isfinite(m["loss"]) for m in zero3["metrics"])
    shards = {p.name for p in (zero3["storage"] / "checkpoint_step0000004" / "ds").iterdir()}
    assert {f"zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt" for r in (0, 1) for kind in ("model", "optim")} <= shards
    changed, total = changed_tensors(zero3["out"] / "model")
    assert changed > total // 2, f"only {changed} of {total} tensors moved"


def test_resumed_run_sees_the_same_data_order_as_an_uninterrupted_one(zero2, zero3):
    # Same data, seed and workers: the data order does not depend on the ZeRO stage, so the
    # uninterrupted ZeRO-3 run is the reference for the killed-and-resumed ZeRO-2 run.
    reference = {m["step"]: m["digests"] for m in zero3["metrics"]}
    resumed = {m["step"]: m["digests"] for m in zero2["first"][:2] + zero2["second"]}
    assert resumed == reference


def test_export_loads_in_transformers_with_tied_weights_and_chat_template(zero2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = zero2["out"] / "model"
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Bonjour"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        logits = model(**ids).logits
    assert torch.isfinite(logits).all()


VLLM_SCRIPT = """
import json, os, sys
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
if __name__ == "__main__":
    from vllm import LLM, SamplingParams
    llm = LLM(model=sys.argv[1], enforce_eager=True, max_model_len=512)
    messages = [{"role": "user", "content": "Quelle est la capitale de la France ?"}]
    out = llm.chat([messages], SamplingParams(max_tokens=16, temperature=0))
    print("RESULT " + json.dumps({"text": out[0].outputs[0].text, "tokens": len(out[0].outputs[0].token_ids)}))
"""


def test_vllm_loads_the_zero3_export_and_generates(zero3, tmp_path):
    # A subprocess: vLLM spawns its engine core, which needs a __main__ guard.
    script = tmp_path / "generate.py"
    script.write_text(VLLM_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(zero3["out"] / "model")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["tokens"] > 0 and out["text"].strip()


def test_real_chat_template_masks_the_prompt_exactly_as_inference_sees_it():
    from transformers import AutoTokenizer

    from actors.engines.models import resolve_model
    from engine.training.loop import IGNORE_INDEX, tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
    messages = [{"role": "user", "content": "Quelle est la capitale de la France ?"}]
    ex = tokenize_example(tokenizer, messages, "Paris.", 256)
    prompt = tokenizer.encode(
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), add_special_tokens=False
    )
    assert ex["input_ids"][: len(prompt)] == prompt
    assert tokenizer.decode([i for i in ex["labels"] if i != IGNORE_INDEX]) == "Paris.<|im_end|>\n"
