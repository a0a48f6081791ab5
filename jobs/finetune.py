"""Fine-tune a model on a built dataset with DeepSpeed ZeRO from Ray Train, and export it.

    python -m jobs.finetune --config configs/finetune-demo.yaml [--set train.max_steps=20 ...]

Ray Data reads `<dataset>/<split>.parquet` and tokenises it with the chat template (loss on the
completion only); each Ray Train worker runs `train_func`: DeepSpeed from the `deepspeed:` section,
metrics every `log_every` steps, a sharded checkpoint through `ray.train.report` every
`checkpoint_every` steps, and at the end a consolidated Hugging Face folder (weights + tokenizer)
that transformers and vLLM load. A rerun with the same run name and storage resumes from the latest
checkpoint: same step count, same data order. CPU workers use gloo and DeepSpeed's CPU accelerator.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from actors.engines.trainer import build_dataset, train_func
from engine.cli import job_parser, run_main
from engine.config import ConfigError, load_as
from engine.training import loop as T
from engine.training.config import FinetuneConfig

log = logging.getLogger("babelforge.finetune")


def finetune(cfg: FinetuneConfig) -> dict:
    import ray
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from actors.dataflow.ray_session import init_ray

    cfg = cfg.with_absolute_paths()
    Path(cfg.run.output_dir).mkdir(parents=True, exist_ok=True)
    init_ray(cfg.ray)  # joins ray.address / RAY_ADDRESS (ray job submit) / a running cluster, else starts one
    crowded = T.crowded_cpus_warning(
        cfg.scaling.use_gpu,
        cfg.scaling.num_workers,
        cfg.scaling.resources_per_worker.get("CPU", 1),
        ray.cluster_resources().get("CPU", 0),
    )
    if crowded:
        log.warning(crowded)
    dataset = build_dataset(cfg)
    max_steps = cfg.train.max_steps
    if max_steps is None:
        dataset = dataset.materialize()
        ds = T.resolve_deepspeed_config(cfg.deepspeed, 1)
        max_steps = T.steps_for_epochs(
            dataset.count(),
            cfg.scaling.num_workers,
            ds["train_micro_batch_size_per_gpu"],
            ds["gradient_accumulation_steps"],
            cfg.train.epochs,
        )
    started = time.time()
    trainer = TorchTrainer(
        train_func,
        train_loop_config={"cfg": cfg.model_dump(mode="json"), "max_steps": max_steps},
        torch_config=TorchConfig(backend="nccl" if cfg.scaling.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=cfg.scaling.num_workers,
            use_gpu=cfg.scaling.use_gpu,
            resources_per_worker=cfg.scaling.resources_per_worker,
            placement_strategy=cfg.scaling.placement_strategy,
        ),
        datasets={"train": dataset},
        # preserve_order: each worker's rows, and so a resumed run's data order, are the same every run
        dataset_config=DataConfig(execution_options=ExecutionOptions(preserve_order=True), enable_shard_locality=False),
        run_config=RunConfig(
            name=cfg.run.name,
            storage_path=cfg.storage_path(),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            # set before the worker's first import: torch reads its allocator's settings once, and
            # DeepSpeed picks its accelerator on import
            worker_runtime_env={"env_vars": T.worker_env(cfg.scaling.use_gpu, cfg.scaling.worker_env)},
        ),
    )
    result = trainer.fit()
    summary = {
        "run": cfg.run.name,
        "max_steps": max_steps,
        "metrics": result.metrics,
        "seconds": round(time.time() - started, 1),
        "checkpoint": result.checkpoint.path if result.checkpoint else None,
        "export": cfg.export_path(),
    }
    Path(cfg.run.output_dir, "summary.json").write_text(json.dumps(summary, indent=2))
    log.info(
        "done in %.0fs: loss %.4f at step %s; model at %s",
        summary["seconds"],
        result.metrics.get("loss", float("nan")),
        result.metrics.get("step"),
        summary["export"],
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    def body(args) -> int:
        finetune(load_as(FinetuneConfig, args.config, args.overrides))
        return 0

    parser = job_parser(
        "jobs.finetune",
        __doc__,
        config_help="YAML fine-tuning config (configs/finetune-*.yaml)",
        set_example="train.max_steps=20",
    )
    return run_main(parser, argv, body, [(ConfigError, 2)])


if __name__ == "__main__":
    sys.exit(main())
