r"""The end of a run at scale: fabricated rows over 50 languages built (and, with --finalise, first
finalised from shards) by the current code on Ray and, for comparison, by an older commit's
one-process code.

    .venv/bin/python -m benchmarks.build_scale --rows 200000 --arms new,old [--finalise] [--old-commit REV] \
        --out result.json

Each arm runs in a fresh process: wall time of each stage, the driver's peak RSS (VmHWM) and, for
the Ray arm, the largest worker's (benchmarks.harness.RssSampler). The old arm runs that commit's
engine/, jobs/ and actors/ (git archive into a temporary folder) in-process, as its jobs then did.
Without --finalise the rows are written as accepted.parquet and only jobs.build runs (old commit
OLD_COMMIT, the last one-process build); with it they are written as the job's shards and both
arms run finalise and then the build (old commit OLD_FINALISE_COMMIT, whose finalise read every
shard into one table and whose build read every accepted row into one process: the code issue 15
measured). `fabricate_run` and `measure_build` are what a scale suite can call.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD_COMMIT = "208e941"  # the last commit whose jobs.build read every accepted row into one process
OLD_FINALISE_COMMIT = (
    "d123868"  # the last commit whose finalise read every shard into one table (and built in one process)
)
SHARD_ROWS = 5000  # the job's default run.shard_rows


def fabricate_run(run_dir: Path, rows: int, langs: int = 50, seed: int = 0, shards: bool = False) -> dict:
    """A finished run folder's accepted.parquet (a dataset by language) with `rows` rows: each
    language its own sample of seeds (per-language sampling), texts of realistic length. With
    `shards`, the same rows as the job's shards instead (SHARD_ROWS each, languages mixed), with
    planned.json listing their ids, for a finalise to run first."""
    import pyarrow.parquet as pq

    from engine.languages import DEFAULT_TARGETS
    from engine.records import to_table

    codes = list(DEFAULT_TARGETS)[:langs]
    per_lang = rows // len(codes)
    seeds = max(per_lang * 3, 10)
    rng = random.Random(seed)
    words = "the of model data language answer question river bread cloud city number time water light".split()
    text = lambda n: " ".join(rng.choice(words) for _ in range(n))  # noqa: E731
    english, every = {}, []
    for lang in codes:
        chosen = rng.sample(range(seeds), per_lang)
        batch = []
        for s in chosen:
            src = english.setdefault(s, (text(25), text(10) if s % 3 == 0 else "", text(90)))
            batch.append(
                {
                    "id": f"{s:07d}-{lang}",
                    "seed_id": f"seed-{s:07d}",
                    "recipe": "sphinx",
                    "lang": lang,
                    "status": "accepted",
                    "instruction": text(25),
                    "input": text(10) if s % 3 == 0 else "",
                    "output": text(95),
                    "src_instruction": src[0],
                    "src_input": src[1],
                    "src_output": src[2],
                    "model": "fabricated",
                    "prompt_version": "translate.v1",
                    "source": f"seeds.jsonl:{s + 1}",
                }
            )
        if shards:
            every += batch
            continue
        folder = run_dir / "accepted.parquet" / lang
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(to_table(batch), folder / "part-00000.parquet")
    if shards:
        from engine.runfolder import RowStore

        rng.shuffle(every)  # rows finish in no particular order
        store = RowStore(run_dir)
        for start in range(0, len(every), SHARD_ROWS):
            store.write(to_table(every[start : start + SHARD_ROWS]))
        (run_dir / "planned.json").write_text(json.dumps([row["id"] for row in every]))
    config = {
        "run": {"name": "build-scale", "output_dir": str(run_dir)},
        "seeds": {"paths": ["seeds.jsonl"]},
        "languages": {"targets": codes},
        "ray": {"num_cpus": os.cpu_count()},
        "build": {"enabled": True},
    }
    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    return {"rows": per_lang * len(codes), "languages": len(codes), "seeds_pool": seeds}


def measure_build(run_dir: Path, out: Path, finalise: bool = False) -> dict:
    """This process runs the current code once and measures it: jobs.build.build_run, after the
    job's finalise (actors.dataflow.synthesis.finalise, its languages on Ray as the job runs them) with
    `finalise`."""
    from actors.dataflow.ray_session import init_ray
    from actors.dataflow.synthesis import finalise as finalise_run
    from benchmarks.harness import RssSampler
    from engine.config import load_config
    from jobs.build import build_run

    config = load_config(run_dir / "config.yaml", [])
    stages = StageTimes()
    logging.getLogger("babelforge.build").addHandler(stages)
    logging.getLogger("babelforge.build").setLevel(logging.INFO)
    with RssSampler() as sampler:
        if finalise:
            init_ray(config.ray)  # the job has Ray up by its end
            sampler.stage("finalise")
            finalise_run(run_dir, config, json.loads((run_dir / "planned.json").read_text()), 0, 1.0)
        sampler.stage("build")
        summary = build_run(run_dir, config, out)
    examples = {name: entry["train"] + entry["validation"] for name, entry in summary["datasets"].items()}
    if not finalise:
        return {**sampler.stages["build"], "stages_s": stages.times, "examples": examples}
    return {
        "wall_s": round(sum(stage["wall_s"] for stage in sampler.stages.values()), 2),
        "driver_peak_rss_mib": max(stage["driver_peak_rss_mib"] for stage in sampler.stages.values()),
        "stages": sampler.stages,
        "stages_s": stages.times,
        "examples": examples,
    }


class StageTimes(logging.Handler):
    """The build's own stage clock (actors.dataflow.build_pipeline.StageClock), as {stage: seconds}."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.times: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "stage_s"):
            self.times[record.stage] = record.stage_s


OLD_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from engine.config import load_config
from jobs.build import build_run
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return round(int(line.split()[1]) / 1024, 1)
run_dir, out, finalise = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == 'finalise'
config = load_config(run_dir / 'config.yaml', [])
stages = {}
if finalise:
    import pyarrow.parquet as pq
    from engine.records import SCHEMA
    from engine.store import RowStore
    from jobs.synthesize import finalise as finalise_run  # the old commit's module
    # this commit's row schema lacks columns added since (before the clock starts)
    for shard in RowStore(run_dir).shards():
        pq.write_table(pq.read_table(shard).select(SCHEMA.names), shard)
    started = time.perf_counter()
    finalise_run(run_dir, RowStore(run_dir), config, json.loads((run_dir / 'planned.json').read_text()), 0, 1.0)
    stages['finalise'] = round(time.perf_counter() - started, 2)
started = time.perf_counter()
summary = build_run(run_dir, config, out)
stages['build'] = round(time.perf_counter() - started, 2)
print(json.dumps({'wall_s': round(sum(stages.values()), 2),
                  'driver_peak_rss_mib': hwm(),
                  'largest_worker_peak_rss_mib': None,
                  **({'stages_s': stages} if finalise else {}),
                  'examples': {n: e['train'] + e['validation'] for n, e in summary['datasets'].items()}}))
"""

NEW_SCRIPT = """
import json, sys
from pathlib import Path
from benchmarks.build_scale import measure_build
print(json.dumps(measure_build(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == 'finalise')))
"""


def run_arm(arm: str, fabricated: Path, scratch: Path, old_commit: str, finalise: bool) -> dict:
    """One arm in a process of its own, on a copy of the fabricated run folder (finalise writes into it)."""
    import shutil

    run_dir, out = scratch / f"run-{arm}", scratch / f"datasets-{arm}"
    shutil.copytree(fabricated, run_dir)
    what = "finalise" if finalise else "build"
    if arm == "old":
        tree = scratch / "old-tree"
        if not tree.exists():
            tree.mkdir()
            archive = subprocess.run(
                ["git", "archive", old_commit, "engine", "jobs", "actors"], cwd=ROOT, capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        command = [sys.executable, "-c", OLD_SCRIPT, str(tree), str(run_dir), str(out), what]
    else:
        command = [sys.executable, "-c", NEW_SCRIPT, str(run_dir), str(out), what]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{arm} arm failed:\n{result.stderr[-3000:]}")
    # The arm prints its JSON last; Ray may print worker lines on stdout around it.
    printed = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not printed:
        raise RuntimeError(f"{arm} arm printed no result:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    others = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("{")]
    if others:
        print(f"{arm} arm also printed:\n" + "\n".join(others[-20:]), file=sys.stderr)
    shutil.rmtree(run_dir)
    return {"arm": arm, "process_wall_s": round(time.perf_counter() - started, 1), **json.loads(printed[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--langs", type=int, default=50)
    parser.add_argument("--arms", default="new,old")
    parser.add_argument(
        "--finalise", action="store_true", help="fabricate shards and run finalise before the build in both arms"
    )
    parser.add_argument(
        "--old-commit", help=f"the old arm's commit (default {OLD_COMMIT}, with --finalise {OLD_FINALISE_COMMIT})"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="build-scale-") as scratch:
        scratch = Path(scratch)
        run_dir = scratch / "run"
        made = fabricate_run(run_dir, args.rows, args.langs, shards=args.finalise)
        old_commit = args.old_commit or (OLD_FINALISE_COMMIT if args.finalise else OLD_COMMIT)
        results = {
            "command": "python -m benchmarks.build_scale " + " ".join(argv if argv is not None else sys.argv[1:]),
            "fabricated": made,
            "cpus": os.cpu_count(),
            "old_commit": old_commit,
            "finalise": args.finalise,
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "arms": [run_arm(arm, run_dir, scratch, old_commit, args.finalise) for arm in args.arms.split(",")],
        }
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
