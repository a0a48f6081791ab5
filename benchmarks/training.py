"""What Ray Train costs: the same fine-tuning loop (`actors.engines.trainer.run_loop`) on the same data and
worker count, once under Ray Train (Ray Data shards, ray.train.report) and once launched directly
(torch.multiprocessing spawn, gloo, no Ray), one after the other in one run.

    .venv/bin/python -m benchmarks.training [--workers 2] [--steps 8] [--stage 2] [--out benchmarks/results]

`python -m benchmarks.run --suite training` runs the arms alternated instead (direct, Ray Train,
direct beside Ray, Ray Train on 4 KiB pages, direct, ...: `training_pairs` rounds, every launch in a
process of its own), so the machine's load drifts over all arms alike; it reports each arm's median
tokens/s with its spread and the 1-minute load before and after every launch.

The third arm is the direct launch again while a local Ray session holds as many idle Ray worker
processes as a Ray Train run keeps beside its ranks: what idle Ray processes alone cost a full node.
The fourth is Ray Train with the job's CPU worker default turned off (torch's allocator on
transparent huge pages, engine.training.loop.CPU_WORKER_ENV): what that default is worth. Setting
every Ray process but the ranks to SCHED_IDLE did not close Ray Train's gap; the ranks' page faults on
each step's fresh memory were it (benchmarks/results/training-probe-2026-12-07.md).

Reports training tokens/s over the steady steps (the first `--warmup` steps left out: they pay for
the data pipeline's start and the first allocation), and wall time from launch to exported model.
The data: the project's English seeds as prompt/completion rows (or --dataset, a jobs.build folder).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from benchmarks.harness import RESULTS, ROOT, SEEDS, case_main, load_average, ratio, save_json


def seed_dataset(folder: Path) -> Path:
    """<folder>/train.parquet from data/seeds/english_seeds.jsonl (instruction + input → output)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for line in SEEDS.read_text(encoding="utf-8").splitlines():
        seed = json.loads(line)
        prompt = seed["instruction"] + (f"\n\n{seed['input']}" if seed.get("input") else "")
        rows.append({"id": seed["id"], "lang": "en", "prompt": prompt, "completion": seed["output"]})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "train.parquet")
    return folder


def config(args, dataset: Path, out: Path, worker_env: dict | None = None):
    from engine.config import parse_as
    from engine.training.config import FinetuneConfig

    demo = __import__("yaml").safe_load((ROOT / "configs/finetune-demo.yaml").read_text())
    demo["run"] = {"name": "bench", "output_dir": str(out)}
    demo["data"].update(dataset=str(dataset), max_length=args.max_length, shuffle_buffer=64)
    demo["train"].update(max_steps=args.steps, log_every=1, checkpoint_every=10_000, keep_checkpoints=1)
    demo["scaling"]["num_workers"] = args.workers
    if worker_env is not None:
        demo["scaling"]["worker_env"] = worker_env
    demo["deepspeed"].update(train_micro_batch_size_per_gpu=args.micro_batch, gradient_accumulation_steps=1)
    demo["deepspeed"]["zero_optimization"]["stage"] = args.stage
    return parse_as(FinetuneConfig, demo, "benchmark").with_absolute_paths()


def steady(metrics: list[dict], warmup: int) -> dict:
    kept = [m for m in metrics if m["step"] > warmup]
    tokens, seconds = sum(m["tokens"] for m in kept), sum(m["seconds"] for m in kept)
    return {
        "steps_measured": len(kept),
        "tokens": int(tokens),
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "seconds_per_step": round(seconds / len(kept), 2) if kept else None,
        "final_loss": round(metrics[-1]["loss"], 4),
    }


class ListSink:
    """run_loop's sink without Ray: rank 0 appends metrics to a JSONL file; checkpoints go to a temp folder."""

    def __init__(self, path: Path):
        self.path = path

    def report(self, metrics: dict) -> None:
        import torch.distributed as dist

        if dist.get_rank() == 0:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(metrics) + "\n")

    def checkpoint(self, metrics: dict, save) -> None:
        self.report(metrics)
        with tempfile.TemporaryDirectory() as folder:  # same work as the Ray run's checkpoint
            save(folder)


def direct_worker(rank: int, world: int, port: int, cfg_data: dict, max_steps: int, metrics_path: str) -> None:
    """One rank of the plain launch: the same tokenisation, an equal contiguous shard, the same loop."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        DS_ACCELERATOR="cpu",
        OMP_NUM_THREADS="1",
    )
    import pyarrow.parquet as pq
    import torch
    import torch.distributed as dist

    from actors.engines.trainer import load_tokenizer, run_loop
    from engine.training import loop as T
    from engine.training.config import FinetuneConfig

    torch.set_num_threads(1)  # as Ray gives a 1-CPU worker
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = FinetuneConfig.model_validate(cfg_data)
    table = pq.read_table(Path(cfg.data.dataset) / "train.parquet").to_pylist()
    columns, _ = T.tokenized_columns(load_tokenizer(cfg.model.name), table, cfg.data.max_length, cfg.data.packing)
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    per = len(rows) // world
    mine = rows[rank * per : (rank + 1) * per]
    micro = T.resolve_deepspeed_config(cfg.deepspeed, 1)["train_micro_batch_size_per_gpu"]

    def epoch_batches(epoch: int):
        order = list(mine)
        random.Random(T.epoch_seed(cfg.train.seed, epoch, rank)).shuffle(order)
        for start in range(0, len(order) - micro + 1, micro):
            yield order[start : start + micro]

    run_loop(cfg, max_steps, epoch_batches, ListSink(Path(metrics_path)))
    dist.destroy_process_group()


def run_direct(cfg, out: Path) -> dict:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics_path = out / "metrics.jsonl"
    started = time.perf_counter()
    mp.start_processes(
        direct_worker,
        args=(cfg.scaling.num_workers, port, cfg.model_dump(mode="json"), cfg.train.max_steps, str(metrics_path)),
        nprocs=cfg.scaling.num_workers,
        start_method="spawn",
    )
    return {"wall_seconds": round(time.perf_counter() - started, 1), "metrics": read_metrics(metrics_path)}


def run_ray(cfg) -> dict:
    from jobs.finetune import finetune

    started = time.perf_counter()
    finetune(cfg)
    return {
        "wall_seconds": round(time.perf_counter() - started, 1),
        "metrics": read_metrics(Path(cfg.run.output_dir) / "metrics.jsonl"),
    }


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- arms alternated (benchmarks.run --suite training)

DEFAULTS = {"workers": 2, "steps": 8, "warmup": 2, "stage": 2, "micro_batch": 2, "max_length": 256}
ARMS = {  # arm → case
    "deepspeed_direct": "direct",
    "ray_train": "ray",
    "direct_beside_ray": "beside_ray",
    "ray_train_small_pages": "ray_small_pages",
}
# The last arm is Ray Train with the job's CPU worker default turned off (torch's CPU allocator on 4 KiB
# pages, engine.training.loop.CPU_WORKER_ENV): what that default is worth, measured in the same rounds.
SMALL_PAGES = {"THP_MEM_ALLOC_ENABLE": "0"}

# Ray worker processes a 2-worker Ray Train run keeps beside its two ranks during the steady steps
# (ray 2.x, counted with ps): TrainController, SynchronizationActor, PlacementGroupCleaner,
# PreemptionWatcher, DatasetManager, _AutoscalingCoordinatorActor, _StatsActor, SplitCoordinator
# and one idle worker. The control arm holds as many.
RAY_TRAIN_SIDE_PROCESSES = 9


@contextlib.contextmanager
def idle_ray_processes(count: int, num_cpus: int):
    """A fresh local Ray session holding `count` Ray worker processes that do nothing (idle actors
    topping up the workers Ray starts on its own); yields how many it holds."""
    import psutil
    import ray

    from benchmarks.harness import start_local_ray

    def workers() -> int:
        return sum(1 for p in psutil.Process().children(recursive=True) if p.name().startswith("ray::"))

    @ray.remote(num_cpus=0)
    class Idle:
        def ready(self) -> bool:
            return True

    start_local_ray({"num_cpus": num_cpus})
    try:
        actors = []
        while workers() < count:  # an actor may take a worker Ray had started idle: count again after each
            actors.append(Idle.remote())
            ray.get(actors[-1].ready.remote())
        yield workers()
    finally:
        ray.shutdown()


def launch_case(spec: dict, arm: str) -> dict:
    """One launch of `arm` on the English seeds, in this process (Runner.case gives it its own)."""
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    args = SimpleNamespace(**{**DEFAULTS, **spec})
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        dataset, out = seed_dataset(Path(tmp) / "data"), Path(tmp) / arm
        out.mkdir()
        cfg = config(args, dataset, out, SMALL_PAGES if arm == "ray_train_small_pages" else None)
        load_before, beside = load_average(), {}
        if arm in ("ray_train", "ray_train_small_pages"):
            run = run_ray(cfg)
        elif arm == "direct_beside_ray":
            with idle_ray_processes(spec.get("idle_ray_processes", RAY_TRAIN_SIDE_PROCESSES), args.workers) as held:
                beside = {"idle_ray_processes": held}
                run = run_direct(cfg, out)
        else:
            run = run_direct(cfg, out)
        return {
            "arm": arm,
            "wall_seconds": run["wall_seconds"],
            **steady(run["metrics"], args.warmup),
            **beside,
            "load_average_1m": [load_before[0], load_average()[0]],
        }


CASES = {case: (lambda spec, arm=arm: launch_case(spec, arm)) for arm, case in ARMS.items()}


def spread(values: list[float]) -> dict:
    """Median, min, max and the interquartile range (inclusive quartiles) of `values`."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "iqr": None}
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    return {
        "n": len(values),
        "median": round(statistics.median(values), 2),
        "min": values[0],
        "max": values[-1],
        "iqr": [round(q1, 2), round(q3, 2)],
    }


def suite(sizes: dict, runner) -> dict:
    """Direct DeepSpeed, Ray Train, direct beside Ray and Ray Train on 4 KiB pages alternated,
    `training_pairs` rounds of one launch each, ABCDABCD...; per arm the median tokens/s over the
    steady steps with min, max and IQR, and per round each arm's ratio to the direct launch of that round."""
    spec = {
        **DEFAULTS,
        "steps": sizes.get("training_steps", DEFAULTS["steps"]),
        "max_length": sizes.get("training_max_length", DEFAULTS["max_length"]),
    }
    # the first step pays for the data pipeline's start
    spec["warmup"] = min(DEFAULTS["warmup"], max(1, spec["steps"] // 4))
    runs, pairs = [], sizes.get("training_pairs", 3)
    for pair in range(pairs):
        for arm, case in ARMS.items():
            result = runner.case("benchmarks.training", case, spec)
            runs.append({"order": len(runs), "pair": pair, "arm": arm, **result})
    rounds = [{run["arm"]: run for run in runs if run["pair"] == pair} for pair in range(pairs)]

    def per_round(arm: str, base: str) -> dict:
        return spread(
            [
                ratio(r[arm]["tokens_per_s"], r[base]["tokens_per_s"])
                for r in rounds
                if "error" not in r[arm] and "error" not in r[base]
            ]
        )

    arms = {}
    for arm in ARMS:
        mine = [run for run in runs if run["arm"] == arm and "error" not in run]
        arms[arm] = {
            "launches": len(mine),
            "tokens_per_s": spread([run["tokens_per_s"] for run in mine]),
            "seconds_per_step": spread([run["seconds_per_step"] for run in mine]),
            "wall_seconds": spread([run["wall_seconds"] for run in mine]),
            "load_average_1m_before": spread([run["load_average_1m"][0] for run in mine]),
        }
    direct, ray_train, beside, small_pages = (arms[arm]["tokens_per_s"]["median"] for arm in ARMS)
    return {
        "workload": {
            **spec,
            "model": "smollm2-135m-instruct (fp32 training)",
            "order": "ABCD...: " + ", ".join(r["arm"] for r in runs),
            "data": "the English seeds as prompt/completion rows",
        },
        "runs": runs,
        "arms": arms,
        "ratios": {
            "ray_train_over_direct_median_tokens_per_s": ratio(ray_train, direct),
            "ray_train_over_direct_per_pair": per_round("ray_train", "deepspeed_direct"),
            "beside_ray_over_direct_median_tokens_per_s": ratio(beside, direct),
            "beside_ray_over_direct_per_pair": per_round("direct_beside_ray", "deepspeed_direct"),
            "ray_train_over_beside_ray_per_pair": per_round("ray_train", "direct_beside_ray"),
            "small_pages_over_direct_median_tokens_per_s": ratio(small_pages, direct),
            "small_pages_over_direct_per_pair": per_round("ray_train_small_pages", "deepspeed_direct"),
            "ray_train_over_small_pages_per_pair": per_round("ray_train", "ray_train_small_pages"),
        },
        "notes": [
            "tokens/s over the steady steps (the first `warmup` steps left out); wall: launch to exported model",
            "each launch in a process of its own, one at a time; the same config, data, workers and ZeRO stage in "
            "every arm",
            "direct beside Ray: the direct launch while a local Ray session holds idle Ray worker processes, as many "
            f"as Ray Train keeps beside its ranks ({RAY_TRAIN_SIDE_PROCESSES}; each launch records how many it held)",
            "Ray Train, 4 KiB pages: the Ray Train arm with scaling.worker_env THP_MEM_ALLOC_ENABLE=0, the job's CPU "
            "default (torch's allocator on transparent huge pages) turned off",
            "load: the 1-minute load average before and after each launch (other work on the machine is the main "
            "noise)",
        ],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per launch")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of tokens/s")
    parser.add_argument("--stage", type=int, default=2, choices=(2, 3))
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--dataset", help="a jobs.build dataset folder (default: the English seeds)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        dataset = Path(args.dataset) if args.dataset else seed_dataset(Path(tmp) / "data")
        results = {}
        for name, launch in (("deepspeed_direct", run_direct), ("ray_train", None)):
            out = Path(tmp) / name
            out.mkdir()
            cfg = config(args, dataset, out)
            load_before = os.getloadavg()[0]  # other work on the machine: the main source of noise here
            run = launch(cfg, out) if launch else run_ray(cfg)
            results[name] = {
                "wall_seconds": run["wall_seconds"],
                **steady(run["metrics"], args.warmup),
                "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            }
            print(name, json.dumps(results[name]), flush=True)
    direct, ray_run = results["deepspeed_direct"], results["ray_train"]
    report = {
        "benchmark": "training",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only (gloo, DeepSpeed CPU accelerator)",
        "model": "smollm2-135m-instruct (fp32 training)",
        "workers": args.workers,
        "zero_stage": args.stage,
        "micro_batch": args.micro_batch,
        "max_length": args.max_length,
        "steps": args.steps,
        "warmup_steps_excluded": args.warmup,
        **results,
        "ray_over_direct_tokens_per_s": round(ray_run["tokens_per_s"] / direct["tokens_per_s"], 3)
        if direct["tokens_per_s"]
        else None,
        "ray_over_direct_wall": round(ray_run["wall_seconds"] / direct["wall_seconds"], 2),
    }
    save_json(report, args.out, f"training-{report['date']}")
    return report


if __name__ == "__main__":
    # Ray and spawn pickle by module name: run the importable module's functions, not __main__'s.
    from benchmarks import training as module

    if "--case" in sys.argv:
        case_main(module.CASES)
    else:
        module.main()
