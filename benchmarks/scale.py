"""The scale benchmark: the real job's stages (plan → generation → finalise → build) at hundreds of
thousands to a million planned rows over the 50 default languages, with each stage's wall time, the
driver's peak RSS and the largest worker's; and planning the 2.9M-row production plan.

SIMULATED GENERATOR, NOT A MODEL. Generation runs the job's own Ray Data pool
(actors.dataflow.synthesis.translate_dataset) over benchmarks.simulated's fixed-latency generator, whose
"translation" is French words: a benchmark-only lenient validation (SCALE_VALIDATION, stated in the
result) lets those rows through in every language, so finalise and build see accepted rows.
The job is jobs.synthesize.run's own stages, composed here (simulated_job) with the simulated actor
in place of TranslateActor and a marker at each stage's start: plan (the seeds read on Ray Data, the plan,
the run folder and the anti-join against its shards), generation (the actor pool writing shards),
finalise (the languages on Ray workers, the report) and build (jobs.build.build_run). Seed selection
(k-means over embedded seeds) is off.

    .venv/bin/python -m benchmarks.scale --case job --spec spec.json --result out.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.harness import RssSampler, case_main, own_rss_mib
from benchmarks.refinement_chain import BENCH_VALIDATION
from benchmarks.scaling import write_synthetic_seeds
from benchmarks.simulated import SimulatedTranslateActor, simulated_config
from benchmarks.workload import bench_pool
from engine.config import Config
from engine.languages import DEFAULT_TARGETS, resolve_languages
from engine.runfolder import RowStore

# BENCH_VALIDATION (the refinement suite's: no adequacy gate, wide length ratio, language by
# script only) with no script share either: the simulated text is Latin-script French in every
# language. Parsing, span restoration and the untranslated check still run.
SCALE_VALIDATION = {**BENCH_VALIDATION, "validation": {**BENCH_VALIDATION["validation"], "script_min_share": 0.0}}
PRODUCTION_QUOTAS = {"high": 100_000, "mid": 50_000, "low": 25_000}  # configs/sphinx-50lang.yaml
# The build stage runs only up to this many planned rows unless the spec's build_max_rows says
# otherwise (None: always); above it the result says the build was skipped. The tiny size (CI)
# sets 0: tests/integration/test_build_distributed.py runs the build.
BUILD_MAX_ROWS = None


def quota_rows(quotas: dict[str, int], targets=DEFAULT_TARGETS) -> int:
    """The rows a per-language plan with these tier quotas makes over `targets` (the fabricated
    seeds outnumber every quota, so each language takes its whole quota)."""
    return sum(quotas[language.tier] for language in resolve_languages(targets))


def tier_quotas(rows: int) -> dict[str, int]:
    """sPhinX's tier quotas (high : mid : low = 4 : 2 : 1, as 100k/50k/25k) scaled so the 50
    default languages plan about `rows` rows."""
    weight = quota_rows(PRODUCTION_QUOTAS) / PRODUCTION_QUOTAS["low"]  # 115
    low = max(1, round(rows / weight))
    return {"high": 4 * low, "mid": 2 * low, "low": low}


def scale_config(spec: dict, quotas: dict[str, int], seeds_path: str, run_dir: str) -> Config:
    """The simulated job over the 50 default languages: per-language samples by tier quota, exact
    output dedup, the sPhinX LANG 2-shot build (random demonstrations), the production batch size."""
    overrides = {
        **SCALE_VALIDATION,
        "plan": {"mode": "per_language", "quotas": quotas, "seed": 0},
        "dedup": {"exact": True},
        "build": {"enabled": True, "builders": ["sphinx"], "sphinx": {"shots": 2, "retrieval": "random"}},
        "run": {"name": "scale", "output_dir": run_dir, "shard_rows": spec["shard_rows"]},
    }
    # One CPU is left to the driver and Ray's services, beside the actors (the reads that assemble
    # the task rows reserve none: actors/dataflow/plan_source.py).
    per_actor = (spec["num_cpus"] - 1) / spec["actors"]
    return simulated_config(
        {**spec, "lang": "fr", "overrides": overrides},
        spec["latency_s"],
        actors=spec["actors"],
        num_cpus_per_actor=per_actor,
        seeds_path=seeds_path,
        languages="default50",
        run_dir=run_dir,
    )


def seeds_file(spec: dict) -> str:
    path = Path(spec["seeds_path"])
    if not path.exists():
        write_synthetic_seeds(path, spec["seeds"])
    return str(path)


def simulated_job(config: Config, stage) -> dict:
    """jobs.synthesize.run's stages (qualification off) with SimulatedTranslateActor as the pool's
    actor; `stage(name)` is called as each starts. Returns the report."""
    from actors.dataflow.ray_session import init_ray
    from actors.dataflow.synthesis import finish, plan_job, pool_config, save_rows
    from jobs.build import build_run
    from jobs.calibrate import prepare_gate

    started = time.monotonic()
    stage("plan")
    config = prepare_gate(config)  # as the job: the adequacy gate's thresholds (the simulated runs have the gate off)
    planned = plan_job(config)
    if planned.todo.num_rows:
        stage("generation")
        init_ray(config.ray)
        todo = planned.todo
        save_rows(
            config,
            planned,
            todo,
            bench_pool(pool_config(config, todo.rows_per_language()), todo, SimulatedTranslateActor),
        )
    stage("finalise")
    report = finish(config, planned, time.monotonic() - started)
    if config.build.enabled:
        stage("build")
        build_run(planned.folder, config)
        report = json.loads(planned.folder.read_text("report.json"))
    return report


def case_job(spec: dict) -> dict:
    """The job's stages (simulated_job) at spec['rows'] planned rows, each measured as it starts;
    spec['plan_only']: the plan stage alone (actors.dataflow.synthesis.plan_job)."""
    from actors.dataflow.synthesis import plan_job

    work_dir = Path(spec["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    quotas = spec.get("quotas") or tier_quotas(spec["rows"])
    config = scale_config(spec, quotas, seeds_file(spec), str(work_dir / "run"))
    limit = spec.get("build_max_rows", BUILD_MAX_ROWS)
    planned_rows = quota_rows(config.plan.quotas, config.languages.targets)
    skip_build = limit is not None and planned_rows > limit
    if skip_build:
        config = config.model_copy(update={"build": config.build.model_copy(update={"enabled": False})})

    result = {
        "rows_asked": spec["rows"],
        "quotas": quotas,
        "seeds": spec["seeds"],
        "languages": len(config.languages.targets),
        "driver_rss_before_mib": own_rss_mib("VmRSS"),
    }
    import ray

    try:
        with RssSampler(spec.get("sample_s", 0.5)) as rss:
            if spec.get("plan_only"):
                rss.stage("plan")
                planned = plan_job(config)
                result.update(planned=len(planned.planned_ids), to_generate=planned.todo.num_rows)
            else:
                report = simulated_job(config, rss.stage)
                result.update(
                    planned=report["planned"],
                    accepted=report["accepted"],
                    rejected=report["rejected"],
                    adds_up=report["adds_up"],
                    reject_reasons=report.get("reject_reasons"),
                    shards=len(RowStore(config.run.output_dir).shard_names()),
                )
                if skip_build:
                    result["build_skipped"] = f"more than {limit:,} planned rows (build_max_rows)"
                else:
                    result["built"] = {
                        name: {"train": entry["train"], "validation": entry["validation"]}
                        for name, entry in report["datasets"].items()
                        if name != "seeds"
                    }
    finally:
        ray.shutdown()
    result["stages"] = rss.stages
    generation = rss.stages.get("generation")
    if generation:  # a fresh run folder: every planned row is generated (the fabricated seeds have no bad record)
        result["generation_rows_per_s"] = round(result["planned"] / generation["wall_s"], 1)
    return result


CASES = {"job": case_job}
STAGES = ("plan", "generation", "finalise", "build")


def growth(cases: list[dict]) -> dict:
    """Per stage, the driver's peak RSS at the most planned rows over that at the fewest, and
    (under "private") the same for its private memory."""
    ok = sorted((c for c in cases if "stages" in c), key=lambda c: c["planned"])
    if len(ok) < 2:
        return {}
    small, large = ok[0], ok[-1]
    stages = [stage for stage in STAGES if stage in small["stages"] and stage in large["stages"]]

    def grown(field: str) -> dict:
        return {
            stage: round(large["stages"][stage][field] / small["stages"][stage][field] - 1, 3)
            for stage in stages
            if small["stages"][stage].get(field) and large["stages"][stage].get(field)
        }

    return {
        "from_rows": small["planned"],
        "to_rows": large["planned"],
        **grown("driver_peak_rss_mib"),
        "private": grown("driver_peak_private_mib"),
    }


def suite(sizes: dict, runner) -> dict:
    """One case per size in sizes['scale_rows'] (each in its own process, so each peak is its own)
    and the production plan's plan stage; the seeds are written once and shared."""
    scratch = Path(runner.scratch("scale"))
    spec = {
        "num_cpus": 2,
        "actors": 2,
        "batch_size": 64,
        "batches_in_flight": 4,
        "latency_s": sizes["scale_latency_s"],
        "shard_rows": 5000,
        "seeds": sizes["scale_seeds"],
        "seeds_path": str(scratch / "seeds.jsonl"),
        **({"build_max_rows": sizes["scale_build_max_rows"]} if "scale_build_max_rows" in sizes else {}),
    }
    cases = [
        runner.case("benchmarks.scale", "job", {**spec, "rows": rows, "work_dir": str(scratch / f"job-{rows}")})
        for rows in sizes["scale_rows"]
    ]
    production = runner.case(
        "benchmarks.scale",
        "job",
        {
            **spec,
            "rows": quota_rows(PRODUCTION_QUOTAS),
            "quotas": PRODUCTION_QUOTAS,
            "plan_only": True,
            "work_dir": str(scratch / "production"),
        },
    )
    return {
        "label": "the real job's stages over a SIMULATED generator (fixed latency), not a model",
        "languages": len(DEFAULT_TARGETS),
        "seeds": spec["seeds"],
        "latency_s": spec["latency_s"],
        "actors": spec["actors"],
        "batch_size": spec["batch_size"],
        "validation": SCALE_VALIDATION,
        "cases": cases,
        "production_plan": production,
        "driver_growth": growth(cases),
        "notes": [
            "stages of jobs.synthesize.run, marked as each starts: plan (Ray start, the seeds read on Ray Data, the "
            "plan, the run folder and the anti-join against its shards), generation (the job's actor pool over the "
            "simulated generator, shards written as they come), finalise (the languages as Ray tasks, the report and "
            "its page), build (jobs.build.build_run, sPhinX LANG 2-shot, random demonstrations)",
            "driver peak RSS: VmHWM of the driver, reset at each stage's start (it would count object store pages the "
            "driver mapped; Ray tasks write the generated rows, actors/dataflow/synthesis.py, so it maps none); "
            "driver peak private: its RssAnon (heap and Arrow buffers), sampled every 0.5 s; largest worker: the most "
            "RSS any process but the driver and Ray's services reached in the stage (psutil, every 0.5 s; it counts "
            "the object store pages it mapped), and the most private memory (RSS less shared pages: what the process "
            "holds itself)",
            f"seeds: {spec['seeds']:,} fabricated from the project's seeds (benchmarks.scaling.write_synthetic_seeds), "
            "the same for every size; quotas high:mid:low = 4:2:1 scaled to the planned rows; no seed selection "
            "(no embedding, no k-means)",
            "validation for this benchmark only (SCALE_VALIDATION): the simulated text is French words in every "
            "language, so language by script only with no script share, no adequacy gate, wide length ratio; parsing, "
            "spans, untranslated on",
            "production plan: configs/sphinx-50lang.yaml's quotas (100k/50k/25k) over the same seeds, the plan stage "
            "only",
        ],
    }


if __name__ == "__main__":
    case_main(CASES)
