"""engine/training/loop.py and engine/training/config.py: tokenisation and masking, packing, padding,
DeepSpeed config resolution, step / data-position bookkeeping, the fine-tuning configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError, load_as, parse_as
from engine.training import loop as T
from engine.training.config import EvaluateConfig, FinetuneConfig

ROOT = Path(__file__).resolve().parents[2]


class CharTokenizer:
    """One token per character; a chat template whose prompt is a prefix of the conversation."""

    eos_token = "$"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<{m['role']}>{m['content']}$" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


class RewritingTokenizer(CharTokenizer):
    """A template that changes earlier turns once an answer follows (so the prefix rule fails)."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        if messages[-1]["role"] == "assistant":
            return "#" + super().apply_chat_template(messages, tokenize, add_generation_prompt)
        return super().apply_chat_template(messages, tokenize, add_generation_prompt)


def text(ids):
    return "".join(chr(i) for i in ids)


def test_loss_is_on_the_completion_and_its_end_of_turn_only():
    ex = T.tokenize_example(CharTokenizer(), [{"role": "user", "content": "hi"}], "yo", 64)
    prompt = "<user>hi$<assistant>"
    assert text(ex["input_ids"]) == prompt + "yo$"
    assert ex["labels"][: len(prompt)] == [T.IGNORE_INDEX] * len(prompt)
    assert text(ex["labels"][len(prompt) :]) == "yo$"


def test_template_that_rewrites_earlier_turns_falls_back_to_completion_plus_eos():
    ex = T.tokenize_example(RewritingTokenizer(), [{"role": "user", "content": "hi"}], "yo", 64)
    assert text(ex["input_ids"]) == "<user>hi$<assistant>yo$"
    assert text([i for i in ex["labels"] if i != T.IGNORE_INDEX]) == "yo$"


@pytest.mark.parametrize("max_length, expected", [(22, "yo"), (21, "y"), (20, None), (5, None)])
def test_long_examples_lose_the_end_of_the_completion_or_are_dropped(max_length, expected):
    # The prompt "<user>hi$<assistant>" is 20 characters.
    ex = T.tokenize_example(CharTokenizer(), [{"role": "user", "content": "hi"}], "yo", max_length)
    if expected is None:
        assert ex is None
    else:
        assert len(ex["input_ids"]) == max_length == len(ex["labels"])
        assert text([i for i in ex["labels"] if i != T.IGNORE_INDEX]) == expected


def test_nshot_prompt_trains_only_the_final_response():
    prompt = "### Instruction:\nA\n\n### Response:\nshot answer\n\n### Instruction:\nB"
    ex = T.tokenize_example(CharTokenizer(), [{"role": "user", "content": prompt}], "final", 512)
    assert text([i for i in ex["labels"] if i != T.IGNORE_INDEX]) == "final$"


def test_rows_use_prompt_completion_then_messages():
    assert T.prompt_messages({"prompt": "p", "completion": "c", "messages": []}) == (
        [{"role": "user", "content": "p"}],
        "c",
    )
    chat = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
        ]
    }
    assert T.prompt_messages(chat) == (chat["messages"][:2], "a")
    with pytest.raises(ValueError, match="neither prompt/completion"):
        T.prompt_messages({"id": "x", "messages": [{"role": "user", "content": "u"}]})


def test_tokenize_rows_counts_what_it_drops_and_keeps_lang_and_id():
    rows = [
        {"id": "a", "lang": "fr", "prompt": "p", "completion": "c"},
        {"id": "b", "lang": "de", "prompt": "x" * 100, "completion": "c"},
    ]
    examples, counts = T.tokenize_rows(CharTokenizer(), rows, 40)
    assert [e["id"] for e in examples] == ["a"] and examples[0]["lang"] == "fr"
    assert examples[0]["position_ids"] == list(range(len(examples[0]["input_ids"])))
    assert counts == {"examples": 1, "dropped_prompt_too_long": 1}


def example(n: int, lang: str = "fr", first: int = 1) -> dict:
    return {
        "input_ids": list(range(first, first + n)),
        "labels": [T.IGNORE_INDEX] + list(range(first + 1, first + n)),
        "position_ids": list(range(n)),
        "lang": lang,
        "id": f"{lang}{n}",
    }


def test_packing_keeps_whole_examples_in_order_and_restarts_positions():
    packed = T.pack_examples([example(5), example(4), example(3, "de"), example(9)], max_length=10)
    assert [len(p["input_ids"]) for p in packed] == [9, 3, 9]
    assert packed[0]["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert packed[0]["labels"][5] == T.IGNORE_INDEX  # the second example's prompt stays masked
    assert packed[0]["lang"] == "fr" and packed[0]["id"] == "fr5,fr4"
    assert all(len(p["input_ids"]) == len(p["labels"]) == len(p["position_ids"]) <= 10 for p in packed)


def test_packing_nothing_and_mixed_languages():
    assert T.pack_examples([], 10) == []
    assert T.pack_examples([example(2), example(2, "de")], 10)[0]["lang"] == "mixed"


def test_collate_pads_right_with_its_own_position_run():
    batch = T.collate([example(3), example(5)], pad_id=0)
    assert batch["input_ids"][0] == [1, 2, 3, 0, 0]
    assert batch["labels"][0][3:] == [T.IGNORE_INDEX] * 2
    assert batch["position_ids"][0] == [0, 1, 2, 0, 1]  # padding is a separate block: nothing attends to it
    assert all(len(row) == 5 for rows in batch.values() for row in rows)


def test_tokens_are_counted_before_padding():
    assert T.count_tokens([example(3), example(5)]) == (8, 6)


def test_batch_digest_tells_order_apart():
    a, b = T.collate([example(3), example(5)], 0), T.collate([example(5), example(3)], 0)
    assert T.batch_digest(a) == T.batch_digest(T.collate([example(3), example(5)], 0)) != T.batch_digest(b)


def test_deepspeed_config_fills_defaults_and_autos_without_touching_the_input():
    ds = {
        "train_batch_size": "auto",
        "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": "auto", "warmup_num_steps": "auto"}},
    }
    out = T.resolve_deepspeed_config(ds, max_steps=40)
    assert out["train_micro_batch_size_per_gpu"] == 1 and out["gradient_accumulation_steps"] == 1
    assert "train_batch_size" not in out
    assert out["scheduler"]["params"] == {"total_num_steps": 40, "warmup_num_steps": 4}
    assert ds["scheduler"]["params"]["total_num_steps"] == "auto"


def test_deepspeed_auto_we_cannot_fill_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match=r"deepspeed\.optimizer\.params\.lr"):
        T.resolve_deepspeed_config({"optimizer": {"params": {"lr": "auto"}}}, 10)


@pytest.mark.parametrize(
    "ds, dtype",
    [
        ({}, "float32"),
        ({"bf16": {"enabled": True}}, "bfloat16"),
        ({"fp16": {"enabled": True}}, "float16"),
        ({"bf16": {"enabled": False}}, "float32"),
    ],
)
def test_model_dtype_follows_deepspeed_precision(ds, dtype):
    assert T.model_dtype(ds) == dtype


def test_steps_for_epochs():
    # 36 rows over 2 workers = 18 each; micro-batch 2 → 9 micro-batches; accumulation 2 → 4 steps an epoch.
    assert T.steps_for_epochs(36, 2, 2, 2, epochs=3) == 13
    with pytest.raises(ValueError, match="no optimizer step"):
        T.steps_for_epochs(3, 2, 2, 1, 1)


def test_train_state_round_trips_and_tracks_the_data_position():
    state = T.TrainState()
    for _ in range(3):
        state.after_micro_batch(10)
    state.step = 3
    again = T.TrainState.from_json(state.to_json())
    assert again == state and again.micro_in_epoch == 3 and again.tokens == 30
    again.next_epoch()
    assert (again.epoch, again.micro_in_epoch, again.step) == (1, 0, 3)


def test_epoch_seed_is_stable_and_differs_per_epoch_and_rank():
    seeds = {T.epoch_seed(0, e, r) for e in range(5) for r in range(4)}
    assert len(seeds) == 20 and T.epoch_seed(7, 2, 1) == T.epoch_seed(7, 2, 1)


@pytest.mark.parametrize(
    "step, every, last, due", [(4, 2, 9, True), (3, 2, 9, False), (9, 50, 9, True), (1, 1, 9, True)]
)
def test_is_due(step, every, last, due):
    assert T.is_due(step, every, last) is due


def test_unique_tensors_keeps_the_first_name_of_tied_weights():
    shared, other = object(), object()
    assert list(T.unique_tensors({"embed": shared, "norm": other, "lm_head": shared})) == ["embed", "norm"]


def test_window_metrics_average_loss_and_rate_over_the_group():
    window = T.Window()
    window.add(2.0, [example(3)])
    window.add(4.0, [example(5)])
    assert window.totals() == [6.0, 2.0, 8.0, 6.0]
    metrics = T.Window.metrics([12.0, 4.0, 16.0, 12.0], seconds=2.0)  # two workers' sums
    assert metrics["loss"] == 3.0 and metrics["tokens_per_s"] == 8.0


def test_engine_training_imports_neither_ray_nor_torch():
    code = (
        "import sys, engine.training.loop, engine.training.evaluation, engine.training.config; "
        "print(sorted(m for m in ('ray', 'torch', 'vllm', 'deepspeed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_config_keys_are_errors_with_their_path():
    with pytest.raises(ConfigError, match=r"train\.max_step: unknown key"):
        parse_as(FinetuneConfig, {"data": {"dataset": "d"}, "train": {"max_step": 3}})
    with pytest.raises(ConfigError, match="stage must be 0-3"):
        parse_as(FinetuneConfig, {"data": {"dataset": "d"}, "deepspeed": {"zero_optimization": {"stage": 4}}})
    with pytest.raises(ConfigError, match="prompts needs files"):
        parse_as(EvaluateConfig, {"models": {"finetuned": "m"}})


@pytest.mark.parametrize("name", ["finetune-demo", "finetune-7b-zero3", "finetune-7b-multinode"])
def test_shipped_finetune_configs_load_and_resolve(name):
    cfg = load_as(FinetuneConfig, ROOT / "configs" / f"{name}.yaml", ["train.max_steps=10"])
    ds = T.resolve_deepspeed_config(cfg.deepspeed, 10)
    assert ds["zero_optimization"]["stage"] in (2, 3)
    if name != "finetune-demo":
        assert cfg.scaling.use_gpu and ds["bf16"]["enabled"] and ds["zero_optimization"]["stage"] == 3
        assert cfg.scaling.num_workers * cfg.scaling.resources_per_worker.get("GPU", 1) >= 8


def test_shipped_evaluate_config_loads():
    cfg = load_as(EvaluateConfig, ROOT / "configs" / "evaluate-demo.yaml")
    assert cfg.prompts.files == ("data/eval/prompts.jsonl",)


def test_absolute_paths_leave_uris_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse_as(
        FinetuneConfig, {"data": {"dataset": "ds"}, "run": {"output_dir": "out", "storage_path": "s3://bucket/ray"}}
    )
    resolved = cfg.with_absolute_paths()
    assert resolved.data.dataset == str(tmp_path / "ds")
    assert resolved.export_path() == str(tmp_path / "out" / "model")
    assert resolved.storage_path() == "s3://bucket/ray"


def test_unique_tensors_with_a_storage_identity():
    a, b = {"ptr": 1}, {"ptr": 1}  # two views of one buffer
    assert list(T.unique_tensors({"embed": a, "lm_head": b}, identity=lambda t: t["ptr"])) == ["embed"]


def test_tokenized_columns_are_what_the_loader_reads():
    rows = [
        {"id": "a", "lang": "fr", "prompt": "p", "completion": "c"},
        {"id": "b", "lang": "de", "prompt": "q", "completion": "d"},
    ]
    columns, counts = T.tokenized_columns(CharTokenizer(), rows, 64, packing=True)
    assert set(columns) == set(T.TOKEN_COLUMNS) and len(columns["input_ids"]) == 1 and columns["lang"] == ["mixed"]
    assert counts["examples"] == 2


def test_cpu_training_that_takes_every_cpu_is_warned_about():
    warning = T.crowded_cpus_warning(False, 2, 1, 2.0)
    assert warning and "take all 2 CPUs" in warning and "Leave a core free" in warning
    assert T.crowded_cpus_warning(False, 2, 1, 3.0) is None, "a core left free"
    assert T.crowded_cpus_warning(False, 2, 2, 4.0), "2 workers x 2 CPU fill 4 CPUs"
    assert T.crowded_cpus_warning(True, 8, 1, 8.0) is None, "GPU ranks: the cores are not what they wait on"


def test_cpu_workers_get_huge_page_tensors_unless_configured_otherwise():
    assert T.worker_env(False, {}) == {"DS_ACCELERATOR": "cpu", "THP_MEM_ALLOC_ENABLE": "1"}
    assert T.worker_env(True, {}) == {}, "GPU workers: the job adds nothing"
    assert T.worker_env(False, {"THP_MEM_ALLOC_ENABLE": "0", "X": "y"}) == {
        "DS_ACCELERATOR": "cpu",
        "THP_MEM_ALLOC_ENABLE": "0",
        "X": "y",
    }
    cfg = FinetuneConfig.model_validate({"data": {"dataset": "d"}, "scaling": {"worker_env": {"OMP_NUM_THREADS": "1"}}})
    assert T.worker_env(cfg.scaling.use_gpu, cfg.scaling.worker_env) == {
        "DS_ACCELERATOR": "cpu",
        "THP_MEM_ALLOC_ENABLE": "1",
        "OMP_NUM_THREADS": "1",
    }
