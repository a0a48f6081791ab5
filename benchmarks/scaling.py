"""Scaling and overhead of the orchestration: rows/s of the translation stage with 1, 2, 4, 8 actors,
and the driver's peak memory on a large plan.

SIMULATION OF THE ORCHESTRATION, NOT OF A MODEL. Here the LLM is replaced by the fixed-latency
generator of benchmarks.simulated, so every row still goes through the real row state machine
(spans, parsing, fastText validation), the real TranslateActor batching and the real Ray Data pool
of jobs.synthesize.translate_dataset. What it shows: whether the driver and the data path keep up
as actors are added; nothing about how fast any model is.

    .venv/bin/python -m benchmarks.scaling --case scaling --spec spec.json --result out.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.harness import SEEDS, case_main, cpu_seconds, init_ray, peak_rss_mib
from benchmarks.simulated import SimulatedTranslateActor, simulated_config
from benchmarks.workload import run_translation_stage, synthetic_tasks
from engine.config import Config


def case_scaling(spec: dict) -> dict:
    """Rows/s of the real pool with a simulated generator, for each actor count, on one Ray."""
    import ray

    per_actor_in_flight = spec["batch_size"] * spec["batches_in_flight"]
    init_s = init_ray(spec)
    cases = []
    try:
        for actors in spec["actors"]:
            config = simulated_config(
                spec, spec["latency_s"], actors=actors,
                # Every count fits the same 2-CPU cluster: what an actor reserves is scheduling only.
                num_cpus_per_actor=min(1.0, spec["num_cpus"] / max(spec["actors"])),
            )
            rows = spec["waves"] * actors * per_actor_in_flight
            tasks = synthetic_tasks(rows, spec["lang"])
            cpu_before = cpu_seconds()
            timing, table = run_translation_stage(config, tasks, SimulatedTranslateActor)
            driver_cpu = cpu_seconds() - cpu_before
            ideal = actors * per_actor_in_flight / spec["latency_s"]
            steady = timing["rows_per_s_after_all_ready"]
            cases.append({
                "actors": actors, "rows": table.num_rows, **timing,
                "ideal_rows_per_s": round(ideal, 1),
                "efficiency_vs_ideal": round(steady / ideal, 3) if steady else None,
                "driver_cpu_s": round(driver_cpu, 2),
                "driver_cpu_share": round(driver_cpu / timing["end_to_end_s"], 3),
                "accepted": table.column("status").to_pylist().count("accepted"),
            })
    finally:
        ray.shutdown()
    return {"ray_init_s": init_s, "cases": cases, "peak_rss_mib": peak_rss_mib()}


def write_synthetic_seeds(path: Path, count: int) -> Path:
    """`count` distinct seeds made from the project's seeds (a counter keeps them distinct)."""
    from engine.inputs.seeds import load_seeds

    seeds, _ = load_seeds([str(SEEDS)])
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            seed = seeds[i % len(seeds)]
            record = {"id": f"syn-{i:07d}", "instruction": f"{seed.instruction} ({i})", "input": seed.input, "output": seed.output}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def plan_config(spec: dict, work_dir: Path, rows: int) -> Config:
    """A config whose plan has `rows` rows: synthetic seeds × the 50 default languages, mode all."""
    from engine.languages import DEFAULT_TARGETS

    seeds = -(-rows // len(DEFAULT_TARGETS))
    path = write_synthetic_seeds(work_dir / "seeds.jsonl", seeds)
    # The job assembles its task rows in Ray tasks (jobs.synthesize.task_dataset) that need one CPU
    # the pool does not reserve: actors that took every CPU of the cluster would starve them.
    per_actor = (spec["num_cpus"] - 1) / spec["stream_actors"]
    return simulated_config(
        {**spec, "lang": "fr", "batch_size": spec["stream_batch_size"]}, spec["stream_latency_s"], actors=spec["stream_actors"],
        num_cpus_per_actor=per_actor, seeds_path=str(path), languages="default50", run_dir=str(work_dir / "run"),
    )


def case_plan_memory(spec: dict) -> dict:
    """Driver peak RSS while planning `rows` rows the way jobs.synthesize.run does (plan_run: ids
    and seed indices over one columnar seed table, then the planned ids and their fingerprint);
    with spec['stream'], also a full pass of that plan through the simulated pool (its task rows
    assembled on Ray, as in the job), every shard written to a RowStore, nothing kept in the driver."""
    from engine.inputs.plan import plan_fingerprint
    from engine.recipes import plan_run
    from engine.store import RowStore

    work_dir = Path(spec["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    config = plan_config(spec, work_dir, spec["rows"])
    baseline = peak_rss_mib()
    started = time.perf_counter()
    plan = plan_run(config)
    fingerprint = plan_fingerprint(plan.planned_ids())
    planned_s = time.perf_counter() - started
    result = {
        "rows": plan.tasks.num_rows, "languages": len(config.languages.targets), "plan_s": round(planned_s, 2),
        "rss_before_plan_mib": baseline, "peak_rss_after_plan_mib": peak_rss_mib(),
        "plan_arrow_mib": round((plan.tasks.index.nbytes + plan.tasks.seeds.nbytes) / 2**20, 1), "fingerprint": fingerprint[:12],
    }
    if not spec.get("stream"):
        return result
    import ray

    from jobs.synthesize import translate_dataset

    store = RowStore(work_dir / "run", config.run.shard_rows, config.run.shard_seconds)
    init_ray(spec)
    try:
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        dataset = translate_dataset(config, plan.tasks, SimulatedTranslateActor)
        done = accepted = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            store.add(batch)
            done += batch.num_rows
            accepted += batch.column("status").to_pylist().count("accepted")
        store.flush()
        seconds = time.perf_counter() - started
        driver_cpu = cpu_seconds() - cpu_before
    finally:
        ray.shutdown()
    return {
        **result, "stream_actors": config.compute.actors, "stream_batch_size": config.compute.batch_size,
        "stream_latency_s": spec["stream_latency_s"], "driver_cpu_share": round(driver_cpu / seconds, 3),
        "streamed_rows": done, "accepted": accepted, "stream_s": round(seconds, 1),
        "stream_rows_per_s": round(done / seconds, 1), "peak_rss_after_stream_mib": peak_rss_mib(),
        "shards": len(store.shards()),
    }


CASES = {"scaling": case_scaling, "plan_memory": case_plan_memory}


def suite(sizes: dict, simulated: bool, runner) -> dict:
    """Runs each case in its own process (so each peak RSS is its own); `runner` is a benchmarks.harness.Runner."""
    spec = {
        "lang": "fr", "latency_s": sizes["latency_s"], "actors": sizes["actors"], "waves": sizes["waves"],
        "batch_size": 16, "batches_in_flight": 4, "num_cpus": 2,
        # The memory pass is about the driver, not latency: a short one keeps it quick. Its batches
        # are the 50-language production config's (configs/sphinx-50lang.yaml), not the demo's.
        "stream_actors": 2, "stream_latency_s": 0.01, "stream_batch_size": 64,
    }
    scaling = runner.case("benchmarks.scaling", "scaling", spec)
    memory = {
        "plan_only": runner.case(
            "benchmarks.scaling", "plan_memory", {**spec, "rows": sizes["plan_rows"], "stream": False, "work_dir": runner.scratch("plan")}
        ),
        "plan_and_stream": runner.case(
            "benchmarks.scaling", "plan_memory", {**spec, "rows": sizes["stream_rows"], "stream": True, "work_dir": runner.scratch("stream")}
        ),
    }
    return {
        "label": "SIMULATION of the orchestration (fixed-latency generator), not of a model",
        "latency_s": sizes["latency_s"],
        "batch_size": spec["batch_size"], "batches_in_flight": spec["batches_in_flight"],
        "scaling": scaling, "memory": memory,
        "notes": [
            "ideal rows/s = actors x batch_size x batches_in_flight / latency (one request per row: rounds 0, one attempt)",
            "peak batches per actor: the most batches one actor ran at once (jobs.synthesize.actor_pool allows batches_in_flight)",
            "rows/s after all ready: rows finished between the last actor becoming ready and the last batch",
            "every actor reserves num_cpus / max(actors) CPUs so all counts fit the same cluster; the row machines, "
            "fastText and Ray Data share the machine's cores",
            "peak RSS is the driver process's ru_maxrss (the object store and workers are other processes)",
            "plan_arrow_mib: the plan the driver holds as the job does (index of ids and seed indices, one seed table)",
        ],
    }


if __name__ == "__main__":
    case_main(CASES)
