"""Scaling and overhead of the orchestration: rows/s of the translation stage with 1, 2, 4, 8 actors,
and the driver's peak memory on a large plan.

SIMULATION OF THE ORCHESTRATION, NOT OF A MODEL. Here the LLM is replaced by the simulated
generator of benchmarks.simulated (a fixed latency, or a long-tailed one of the same mean), so every
row still goes through the real row state machine (spans, parsing, fastText validation), the real
TranslateActor batching and the real Ray Data pool of actors.dataflow.synthesis.translate_dataset.
What it shows: whether the driver and the data path keep up as actors are added; nothing about how
fast any model is.

    .venv/bin/python -m benchmarks.scaling --case scaling --spec spec.json --result out.json
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchmarks.harness import SEEDS, case_main, cpu_seconds, machine_cpu_seconds, peak_rss_mib, start_local_ray
from benchmarks.simulated import LONG_RATIO, LONG_SHARE, TAIL_SEED, SimulatedTranslateActor, simulated_config
from benchmarks.workload import bench_pool, run_translation_stage, synthetic_tasks
from engine.config import Config


def in_flight_figures(reports: list[str | None], limit: int, rows: int, points: int = 240) -> dict:
    """What the simulated generators saw (SimulatedTranslateActor's bench_inflight reports): the
    realised mean latency and requests per row, the mean requests in flight per actor while every
    actor still had rows to start (from the last actor's first request to the first actor's last
    one), completions per second in that window, and the in-flight count per actor over time
    (mean over actors, on a grid of `points` for the plot)."""
    actors: dict[str, dict] = {}
    for text in filter(None, reports):
        report = json.loads(text)
        entry = actors.setdefault(
            report["actor"], {"samples": [], "requests": 0, "latency_total_s": 0.0, "observed_total_s": 0.0}
        )
        if report["samples"]:
            entry["samples"].append(report["samples"])  # in order within a report; reports in any order
        entry["requests"] = max(entry["requests"], report["requests"])
        entry["latency_total_s"] = max(entry["latency_total_s"], report["latency_total_s"])
        entry["observed_total_s"] = max(entry["observed_total_s"], report["observed_total_s"])
    requests = sum(a["requests"] for a in actors.values())
    latency = sum(a["latency_total_s"] for a in actors.values()) / requests
    observed = sum(a["observed_total_s"] for a in actors.values()) / requests
    series = [
        [tuple(sample) for chunk in sorted(a["samples"], key=lambda chunk: chunk[0][0]) for sample in chunk]
        for a in actors.values()
    ]
    starts = [[t for (t, n), (_, before) in zip(s[1:], s[:-1]) if n > before] + [s[0][0]] for s in series]
    fed_from, fed_until = max(min(t) for t in starts), min(max(t) for t in starts)
    window = fed_until - fed_from

    def mean_in_flight(samples: list[tuple]) -> float:
        area, level, last = 0.0, 0, fed_from
        for t, n in samples:
            if t > fed_from:
                area += level * (min(t, fed_until) - last)
                last = min(t, fed_until)
            level = n
            if t >= fed_until:
                break
        return area / window if window > 0 else float("nan")

    finishes = sum(
        1 for s in series for (t, n), (_, before) in zip(s[1:], s[:-1]) if n < before and fed_from <= t <= fed_until
    )
    per_actor = sum(mean_in_flight(s) for s in series) / len(series)
    # The mean over actors of the count in flight on a grid, from the first request to the last finish.
    events = sorted(
        (t, delta)
        for s in series
        for (t, delta) in ((t, n - before) for (t, n), (_, before) in zip(s, [(0, 0)] + s[:-1]))
    )
    begin, end = events[0][0], events[-1][0]
    grid, level, i = [], 0, 0
    for k in range(points + 1):
        at = begin + (end - begin) * k / points
        while i < len(events) and events[i][0] <= at:
            level += events[i][1]
            i += 1
        grid.append([round(at - begin, 3), round(level / len(series), 2)])
    return {
        "realised_mean_latency_s": round(latency, 4),
        "observed_mean_request_s": round(observed, 4),
        "peak_in_flight_per_actor": max(n for s in series for _, n in s),
        "requests_per_row": round(requests / rows, 3),
        "rows_in_flight_limit": limit,
        "fed_window_s": round(window, 2),
        "mean_in_flight_per_actor_while_fed": round(per_actor, 1),
        "in_flight_fill": round(per_actor / limit, 3),
        "rows_per_s_while_fed": round(finishes / window / (requests / rows), 1) if window > 0 else None,
        "in_flight_series": grid,
    }


def case_scaling(spec: dict) -> dict:
    """Rows/s of the real pool with a simulated generator, for each actor count, on one Ray; with
    spec['long_tail'], from the heavy-tailed latency of the same mean (benchmarks.simulated)."""
    import ray

    init_s = start_local_ray(spec)
    cases = []
    try:
        for actors in spec["actors"]:
            config = simulated_config(
                spec,
                spec["latency_s"],
                spec.get("long_tail", False),
                actors=actors,
                # Every count fits the same 2-CPU cluster: what an actor reserves is scheduling only.
                num_cpus_per_actor=min(1.0, spec["num_cpus"] / max(spec["actors"])),
            )
            per_actor_in_flight = config.compute.in_flight_rows
            rows = spec["waves"] * actors * per_actor_in_flight
            tasks = synthetic_tasks(rows, spec["lang"])
            cpu_before, machine_before = cpu_seconds(), machine_cpu_seconds()
            timing, table = run_translation_stage(config, tasks, SimulatedTranslateActor)
            driver_cpu = cpu_seconds() - cpu_before
            machine_busy = (machine_cpu_seconds() - machine_before) / timing["end_to_end_s"] / (os.cpu_count() or 1)
            seen = in_flight_figures(table.column("bench_inflight").to_pylist(), per_actor_in_flight, table.num_rows)
            table = table.drop_columns(["bench_inflight"])
            # Ideal: every actor keeps its limit of rows in flight all the time, at the latencies
            # the requests really had, with as many requests per row as they really made.
            ideal = actors * per_actor_in_flight / seen["realised_mean_latency_s"] / seen["requests_per_row"]
            steady = timing["rows_per_s_after_all_ready"]
            # While fed, by Little's law: rows/s = rows in flight / time a row takes as observed.
            # (Finishes counted in the window favour short requests when the tail is long.)
            fed = (
                actors
                * seen["mean_in_flight_per_actor_while_fed"]
                / seen["observed_mean_request_s"]
                / seen["requests_per_row"]
            )
            cases.append(
                {
                    "actors": actors,
                    "rows": table.num_rows,
                    **timing,
                    "ideal_rows_per_s": round(ideal, 1),
                    "efficiency_vs_ideal": round(steady / ideal, 3) if steady else None,
                    "efficiency_while_fed": round(fed / ideal, 3),
                    "driver_cpu_s": round(driver_cpu, 2),
                    "driver_cpu_share": round(driver_cpu / timing["end_to_end_s"], 3),
                    # The machine's CPU use over the case (every process, other sessions included): near
                    # 1.0 the case measures the cores, not the pool.
                    "machine_cpu_busy": round(machine_busy, 3),
                    "accepted": table.column("status").to_pylist().count("accepted"),
                    **seen,
                }
            )
    finally:
        ray.shutdown()
    return {
        "ray_init_s": init_s,
        "long_tail": spec.get("long_tail", False),
        "cases": cases,
        "peak_rss_mib": peak_rss_mib(),
    }


def write_synthetic_seeds(path: Path, count: int) -> Path:
    """`count` distinct seeds made from the project's seeds (a counter keeps them distinct)."""
    from engine.inputs.seeds import load_seed_table

    seeds = load_seed_table([str(SEEDS)])[0].to_pylist()
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            seed = seeds[i % len(seeds)]
            record = {
                "id": f"syn-{i:07d}",
                "instruction": f"{seed['instruction']} ({i})",
                "input": seed["input"],
                "output": seed["output"],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def plan_config(spec: dict, work_dir: Path, rows: int) -> Config:
    """A config whose plan has `rows` rows: synthetic seeds × the 50 default languages, mode all."""
    from engine.languages import DEFAULT_TARGETS

    seeds = -(-rows // len(DEFAULT_TARGETS))
    path = write_synthetic_seeds(work_dir / "seeds.jsonl", seeds)
    # One CPU is left to the driver and Ray's services, beside the actors (the reads that assemble
    # the task rows reserve none: actors/dataflow/plan_source.py).
    per_actor = (spec["num_cpus"] - 1) / spec["stream_actors"]
    return simulated_config(
        {**spec, "lang": "fr", "batch_size": spec["stream_batch_size"]},
        spec["stream_latency_s"],
        actors=spec["stream_actors"],
        num_cpus_per_actor=per_actor,
        seeds_path=str(path),
        languages="default50",
        run_dir=str(work_dir / "run"),
    )


def case_plan_memory(spec: dict) -> dict:
    """Driver peak RSS while planning `rows` rows the way jobs.synthesize.run does (plan_run: ids
    and seed indices over one columnar seed table, then the planned ids and their fingerprint);
    with spec['stream'], also a full pass of that plan through the simulated pool (its task rows
    assembled on Ray, as in the job), every shard written to a RowStore, nothing kept in the driver."""
    from engine.inputs.plan import plan_fingerprint
    from engine.recipes import plan_run
    from engine.runfolder import RowStore

    work_dir = Path(spec["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    config = plan_config(spec, work_dir, spec["rows"])
    baseline = peak_rss_mib()
    started = time.perf_counter()
    plan = plan_run(config)
    fingerprint = plan_fingerprint(plan.planned_ids())
    planned_s = time.perf_counter() - started
    result = {
        "rows": plan.tasks.num_rows,
        "languages": len(config.languages.targets),
        "plan_s": round(planned_s, 2),
        "rss_before_plan_mib": baseline,
        "peak_rss_after_plan_mib": peak_rss_mib(),
        "plan_arrow_mib": round((plan.tasks.index.nbytes + plan.tasks.seeds.nbytes) / 2**20, 1),
        "fingerprint": fingerprint[:12],
    }
    if not spec.get("stream"):
        return result
    import ray

    store = RowStore(work_dir / "run", config.run.shard_rows, config.run.shard_seconds)
    start_local_ray(spec)
    try:
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        dataset = bench_pool(config, plan.tasks, SimulatedTranslateActor)
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
        **result,
        "stream_actors": config.compute.actors,
        "stream_batch_size": config.compute.batch_size,
        "stream_latency_s": spec["stream_latency_s"],
        "driver_cpu_share": round(driver_cpu / seconds, 3),
        "streamed_rows": done,
        "accepted": accepted,
        "stream_s": round(seconds, 1),
        "stream_rows_per_s": round(done / seconds, 1),
        "peak_rss_after_stream_mib": peak_rss_mib(),
        "shards": len(store.shards()),
    }


CASES = {"scaling": case_scaling, "plan_memory": case_plan_memory}


def suite(sizes: dict, simulated: bool, runner) -> dict:
    """Runs each case in its own process (so each peak RSS is its own); `runner` is a benchmarks.harness.Runner."""
    spec = {
        "lang": "fr",
        "latency_s": sizes.get("scaling_latency_s", sizes["latency_s"]),
        "actors": sizes["actors"],
        "waves": sizes["waves"],
        "batch_size": 16,
        "batches_in_flight": 4,
        "num_cpus": 2,
        # The memory pass is about the driver, not latency: a short one keeps it quick. Its batches
        # are the 50-language production config's (configs/sphinx-50lang.yaml), not the demo's.
        "stream_actors": 2,
        "stream_latency_s": 0.01,
        "stream_batch_size": 64,
    }
    scaling = runner.case("benchmarks.scaling", "scaling", spec)
    # The same pool and mean latency with the heavy tail real generation lengths have; more waves,
    # so that the end of a run (its last long requests) is not most of it.
    long_tail = runner.case("benchmarks.scaling", "scaling", {**spec, "long_tail": True, "waves": sizes["tail_waves"]})
    memory = {
        "plan_only": runner.case(
            "benchmarks.scaling",
            "plan_memory",
            {**spec, "rows": sizes["plan_rows"], "stream": False, "work_dir": runner.scratch("plan")},
        ),
        "plan_and_stream": runner.case(
            "benchmarks.scaling",
            "plan_memory",
            {**spec, "rows": sizes["stream_rows"], "stream": True, "work_dir": runner.scratch("stream")},
        ),
    }
    return {
        "label": "SIMULATION of the orchestration (fixed-latency generator), not of a model",
        "latency_s": spec["latency_s"],
        "batch_size": spec["batch_size"],
        "batches_in_flight": spec["batches_in_flight"],
        "scaling": scaling,
        "long_tail": long_tail,
        "memory": memory,
        "long_tail_shape": {"long_share": LONG_SHARE, "long_ratio": LONG_RATIO, "seed": TAIL_SEED},
        "notes": [
            "ideal rows/s = actors x rows_in_flight (batch_size x batches_in_flight) / the requests' mean latency / "
            "requests per row: every actor's limit of rows in flight all the time, at the latencies the requests were "
            "given",
            f"long tail: {LONG_SHARE:.0%} of requests take {LONG_RATIO:g}x the others (seeded, fixed per request), "
            "the mean the fixed case's latency",
            "peak batches per actor: the most batches one actor held at once (actors.dataflow.synthesis.actor_pool "
            "allows compute.batches_per_actor: running rows, waiting for a row slot, or held by their last rows)",
            "in flight: requests in the simulated generator per actor, sampled at every start and finish; 'while fed' "
            "is from the last actor's first request to the first actor's last one (every actor had rows to start)",
            "rows/s after all ready: rows finished between the last actor becoming ready and the last batch (with the "
            "long tail this includes the end of the run, when only long requests are left)",
            "efficiency while fed: actors x mean in flight while fed / observed seconds per request / requests per "
            "row, against the ideal (Little's law); rows/s while fed counts finishes in that window",
            "every actor reserves num_cpus / max(actors) CPUs so all counts fit the same cluster; the row machines, "
            "fastText and Ray Data share the machine's cores",
            "machine CPU busy: every process's CPU over the case / its wall time / the machine's cores; the latency is "
            "chosen so that 8 actors' demand (8 x 64 rows in flight / latency) leaves the cores room: at 0.5 s it "
            "asks 1,024 rows/s of 2 cores, more than the row machines, fastText and Ray can do, and measures the cores",
            "peak RSS is the driver process's ru_maxrss (the object store and workers are other processes)",
            "plan_arrow_mib: the plan the driver holds as the job does (index of ids and seed indices, one seed table)",
        ],
    }


if __name__ == "__main__":
    case_main(CASES)
