"""The fine-tuning job's model side: the tokenizer and the chat-formatted, prompt-masked dataset
(tokenised on Ray Data), the model under DeepSpeed ZeRO, the training loop with its checkpoints and
export, and `train_func`, what each Ray Train worker runs (jobs/finetune.py launches it).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import logging
import tempfile
import time
from pathlib import Path

from engine.training import loop as T
from engine.training.config import FinetuneConfig

log = logging.getLogger("babelforge.finetune")


@functools.lru_cache(maxsize=2)
def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    from actors.engines.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(model))


def tokenize_batch(batch, model: str, max_length: int, packing: bool):
    """Ray Data UDF: built example rows → input_ids, labels (prompt masked), position_ids."""
    import pyarrow as pa

    columns, counts = T.tokenized_columns(load_tokenizer(model), batch.to_pylist(), max_length, packing)
    if counts["dropped_prompt_too_long"]:
        log.warning(
            "dropped %d of %d examples: the prompt alone exceeds data.max_length=%d",
            counts["dropped_prompt_too_long"],
            batch.num_rows,
            max_length,
        )
    return pa.table(columns)


def build_dataset(cfg: FinetuneConfig):
    import pyarrow.dataset as pads
    import ray.data

    path = Path(cfg.data.dataset) / f"{cfg.data.split}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: point data.dataset at a folder written by jobs.build")
    present = set(pads.dataset(path, format="parquet").schema.names)  # a file, or the folder of parts jobs.build writes
    columns = [c for c in ("id", "lang", "prompt", "completion", "messages") if c in present]
    return ray.data.read_parquet(str(path.resolve()), columns=columns).map_batches(
        tokenize_batch,
        fn_kwargs={"model": cfg.model.name, "max_length": cfg.data.max_length, "packing": cfg.data.packing},
        batch_size=cfg.data.tokenize_batch_size,
        batch_format="pyarrow",
        num_cpus=cfg.data.num_cpus,
    )


def load_model(cfg: FinetuneConfig, ds_config: dict):
    import torch
    from transformers import AutoModelForCausalLM

    from actors.engines.models import resolve_model

    extra = {"attn_implementation": cfg.model.attn_implementation} if cfg.model.attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(cfg.model.name), dtype=getattr(torch, T.model_dtype(ds_config)), **extra
    )
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    return model


def save_checkpoint(engine, state: T.TrainState, folder: str) -> None:
    """All ranks write their ZeRO shards into one folder; rank 0 adds the data position."""
    engine.save_checkpoint(folder, tag="ds")
    if engine.global_rank == 0:
        Path(folder, "train_state.json").write_text(state.to_json())


def export_model(engine, tokenizer, path: str, dtype_name: str) -> None:
    """Consolidate the weights on rank 0 (ZeRO-3 gathers them layer by layer) and write an HF folder."""
    import pyarrow.fs
    import torch

    if engine.zero_optimization_partition_weights():
        state = engine._zero3_consolidated_16bit_state_dict()  # collective: every rank calls it
    else:
        state = engine.module.state_dict() if engine.global_rank == 0 else None
    if engine.global_rank != 0:
        return
    same = lambda t: (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))  # noqa: E731
    weights = {k: v.detach().to("cpu", getattr(torch, dtype_name)) for k, v in T.unique_tensors(state, same).items()}
    local = path if "://" not in path else tempfile.mkdtemp(prefix="export-")
    engine.module.save_pretrained(local, state_dict=weights)
    config = copy.deepcopy(engine.module.config)
    config.dtype = dtype_name  # save_pretrained wrote the training dtype; the weights are dtype_name
    config.save_pretrained(local)
    tokenizer.save_pretrained(local)
    if local != path:
        pyarrow.fs.copy_files(local, path)
    log.info("exported %s weights to %s", dtype_name, path)


def run_loop(cfg: FinetuneConfig, max_steps: int, epoch_batches, sink, resume_dir: str | None = None) -> T.TrainState:
    """The loop shared by Ray Train and the benchmark's plain DeepSpeed launch (torch.distributed is up).

    epoch_batches(epoch) yields micro-batches (lists of rows) in an order fixed per epoch;
    sink.report(metrics) and sink.checkpoint(metrics, save) publish.
    """
    import deepspeed
    import torch
    import torch.distributed as dist

    deepspeed.init_distributed()  # wraps the process group that Ray Train (or the launcher) set up
    torch.manual_seed(cfg.train.seed)
    ds_config = T.resolve_deepspeed_config(cfg.deepspeed, max_steps)
    if ds_config.get("zero_optimization", {}).get("stage") == 3:  # partition while loading: no rank holds it all
        from transformers.integrations import HfDeepSpeedConfig

        keep_alive = HfDeepSpeedConfig(ds_config)  # noqa: F841
    model = load_model(cfg, ds_config)
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=[p for p in model.parameters() if p.requires_grad], config=ds_config
    )
    tokenizer = load_tokenizer(cfg.model.name)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    state = T.TrainState()
    if resume_dir:
        engine.load_checkpoint(resume_dir, tag="ds")
        state = T.TrainState.from_json(Path(resume_dir, "train_state.json").read_text())
        log.info("resumed at step %d (epoch %d, micro-batch %d)", state.step, state.epoch, state.micro_in_epoch)
    window, digests, started = T.Window(), [], time.perf_counter()
    while state.step < max_steps:
        # Skip what the checkpointed run consumed of this epoch: the order is fixed, so this resumes it.
        batches = itertools.islice(epoch_batches(state.epoch), state.micro_in_epoch, None)
        empty = state.micro_in_epoch == 0
        for rows in batches:
            empty = False
            batch = T.collate(rows, pad_id)
            digests.append(T.batch_digest(batch))
            # no attention_mask: position_ids separate examples and padding
            loss = engine(**{k: torch.tensor(v, device=engine.device) for k, v in batch.items()}).loss
            engine.backward(loss)
            engine.step()
            state.after_micro_batch(window.add(loss.item(), rows))
            if engine.global_steps == state.step:
                continue  # inside a gradient-accumulation window
            state.step = engine.global_steps
            checkpoint = T.is_due(state.step, cfg.train.checkpoint_every, max_steps)
            if checkpoint or T.is_due(state.step, cfg.train.log_every, max_steps):
                totals = torch.tensor(window.totals(), dtype=torch.float64, device=engine.device)
                dist.all_reduce(totals)
                metrics = {
                    "step": state.step,
                    "epoch": state.epoch,
                    "lr": engine.get_lr()[0],
                    "digests": digests,
                    **T.Window.metrics(totals.tolist(), time.perf_counter() - started),
                }
                if engine.global_rank == 0:
                    log.info(
                        "step %d/%d loss %.4f lr %.2e tokens/s %.0f",
                        state.step,
                        max_steps,
                        metrics["loss"],
                        metrics["lr"],
                        metrics["tokens_per_s"],
                    )
                sink.checkpoint(
                    metrics, functools.partial(save_checkpoint, engine, state)
                ) if checkpoint else sink.report(metrics)
                window, digests, started = T.Window(), [], time.perf_counter()
            if state.step >= max_steps:
                break
        else:
            if empty:
                raise RuntimeError(
                    "a worker got no micro-batch in an epoch: more data, fewer workers or a smaller micro-batch"
                )
            state.next_epoch()
    export_model(engine, tokenizer, cfg.export_path(), cfg.export.dtype)
    return state


class RaySink:
    """Publishes through ray.train.report; a local storage folder is written in place (no copy)."""

    def __init__(self, cfg: FinetuneConfig):
        self.cfg, self.local = cfg, "://" not in cfg.storage_path()

    def report(self, metrics: dict) -> None:
        import ray.train

        self.log(metrics)
        ray.train.report(metrics)

    def checkpoint(self, metrics: dict, save) -> None:
        import ray.train
        from ray.train import Checkpoint, CheckpointUploadMode

        self.log(metrics)
        name = f"checkpoint_step{metrics['step']:07d}"
        if self.local:
            folder = Path(self.cfg.storage_path(), self.cfg.run.name, name)
            save(str(folder))
            ray.train.report(
                metrics,
                checkpoint=Checkpoint.from_directory(str(folder)),
                checkpoint_dir_name=name,
                checkpoint_upload_mode=CheckpointUploadMode.NO_UPLOAD,
            )
        else:
            with tempfile.TemporaryDirectory() as folder:
                save(folder)
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder), checkpoint_dir_name=name)

    def log(self, metrics: dict) -> None:
        import ray.train

        if ray.train.get_context().get_world_rank() == 0:  # every step of every attempt, for people and tests
            with open(Path(self.cfg.run.output_dir, "metrics.jsonl"), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(metrics) + "\n")


def train_func(config: dict) -> None:
    """One Ray Train worker: its shard of the tokenised dataset through run_loop."""
    cfg = FinetuneConfig.model_validate(config["cfg"])  # a CPU worker's DS_ACCELERATOR: T.worker_env
    import ray.train

    shard, micro = (
        ray.train.get_dataset_shard("train"),
        T.resolve_deepspeed_config(cfg.deepspeed, 1)["train_micro_batch_size_per_gpu"],
    )
    rank = ray.train.get_context().get_world_rank()

    def epoch_batches(epoch: int):
        shuffle = (
            {
                "local_shuffle_buffer_size": cfg.data.shuffle_buffer,
                "local_shuffle_seed": T.epoch_seed(cfg.train.seed, epoch, rank),
            }
            if cfg.data.shuffle_buffer
            else {}
        )
        for batch in shard.iter_batches(batch_size=micro, batch_format="pyarrow", drop_last=True, **shuffle):
            yield batch.to_pylist()

    checkpoint = ray.train.get_checkpoint()
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as folder:  # local storage: no copy
        run_loop(cfg, config["max_steps"], epoch_batches, RaySink(cfg), resume_dir=folder)
