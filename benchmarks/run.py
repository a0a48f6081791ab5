"""Every benchmark side by side on this machine, with one command:

    .venv/bin/python -m benchmarks.run [--suite translation,refinement,tokens,scaling,cheap] [--quick]

  translation  (a) raw vLLM LLM.generate, (b) babelforge's translation stage, (c) a ray.data.llm processor
  refinement   judge → rewrite rounds, most rows judged and rewritten: babelforge vs a chain of ray.data.llm
               processors
  tokens       generated tokens per accepted example: translate-then-filter vs select-then-translate
  scaling      rows/s with 1, 2, 4, 8 actors (a SIMULATED generator, fixed and long-tailed latency) and driver
               memory on a big plan
  cheap        fastText language ID and MiniLM embeddings: actor pools vs direct calls
  training     direct DeepSpeed, Ray Train, direct beside idle Ray processes, Ray Train on 4 KiB pages,
               alternated: tokens/s, load per run
  adequacy     the adequacy gate on the labelled pairs (benchmarks/adequacy.py): accepted per kind, encoder texts/s
  scale        the job's stages (plan, generation on a SIMULATED generator, finalise, build) at 100k-1M rows:
               time, driver and worker RSS

Writes benchmarks/results/<date>.json, <date>.md (the tables) and <date>-<suite>.png. Every case runs
in its own process, one at a time: only one engine ever exists on the machine, and a case's engine
and Ray are gone before the next case starts. Before measuring it waits (up to --wait-quiet
seconds) for the 1-minute load average to fall to --max-load, and records the load per suite.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.harness import RESULTS, Runner, load_average, machine, wait_for_quiet
from benchmarks.summary import write_report

SUITES = ("translation", "refinement", "tokens", "scaling", "cheap", "adequacy", "training", "scale")

# What each size measures. quick takes about 50 minutes on 2 cores (48 min on 2026-12-07); tiny is for tests.
# latency_s is a generation request's simulated latency; scaling_latency_s the scaling suite's, long enough that
# 8 actors' demand (8 x 64 rows in flight / latency: 512 rows/s at 1 s) leaves 2 cores room for the row machines,
# fastText and Ray, as a real model's would: the pool, not the cores, is what the scaling cases measure.
SIZES = {
    "tiny": {
        "seeds": 3,
        "refine_seeds": 3,
        "refine_rounds": 2,
        "training_pairs": 1,
        "training_steps": 3,
        "training_max_length": 128,
        "latency_s": 0.5,
        "budget": 2,
        "clusters": 2,
        "actors": [1, 2],
        "waves": 4,
        "tail_waves": 2,
        "plan_rows": 2_000,
        "stream_rows": 500,
        "lid_texts": 2_000,
        "lid_actors": [1],
        "embed_sentences": None,
        "adequacy_pairs": 40,
        "ray_defaults_case": False,
        "scale_rows": [3_000],
        "scale_seeds": 1_000,
        "scale_latency_s": 0.01,
        "scale_build_max_rows": 0,
    },
    "quick": {
        "seeds": 48,
        "refine_seeds": 64,
        "refine_rounds": 1,
        "training_pairs": 3,
        "training_steps": 8,
        "training_max_length": 128,
        "latency_s": 0.5,
        "budget": 16,
        "clusters": 8,
        "actors": [1, 2, 4, 8],
        "scaling_latency_s": 1.0,
        "waves": 8,
        "tail_waves": 24,
        "plan_rows": 1_000_000,
        "stream_rows": 20_000,
        "lid_texts": 50_000,
        "lid_actors": [1, 2],
        "embed_sentences": 500,
        "scale_rows": [100_000, 300_000],
        "scale_seeds": 100_000,
        "scale_latency_s": 0.01,
    },
    "full": {
        "seeds": None,
        "refine_seeds": None,
        "refine_rounds": 2,
        "training_pairs": 5,
        "training_steps": 10,
        "training_max_length": 256,
        "latency_s": 0.5,
        "budget": 32,
        "clusters": 16,
        "actors": [1, 2, 4, 8],
        "scaling_latency_s": 1.0,
        "waves": 16,
        "tail_waves": 48,
        "plan_rows": 1_000_000,
        "stream_rows": 1_000_000,
        "lid_texts": 1_000_000,
        "lid_actors": [1, 2],
        "embed_sentences": 3000,
        "scale_rows": [100_000, 300_000, 1_000_000],
        "scale_seeds": 100_000,
        "scale_latency_s": 0.01,
        "scale_build_max_rows": None,
    },
}


def run_suite(name: str, sizes: dict, simulated: bool, runner: Runner, results: dict, out: Path = RESULTS) -> dict:
    from benchmarks import adequacy, cheap_stages, refinement_chain, scale, scaling, tokens, training, translation

    if name == "translation":
        return translation.translation_suite(sizes, simulated, runner)
    if name == "refinement":
        return refinement_chain.refinement_suite(sizes, simulated, runner)
    if name == "tokens":
        return tokens.suite(sizes, simulated, runner, results.get("translation"))
    if name == "scaling":
        return scaling.suite(sizes, simulated, runner)
    if name == "adequacy":
        return adequacy.suite(sizes, runner, out)
    if name == "training":
        return training.suite(sizes, runner)
    if name == "scale":
        return scale.suite(sizes, runner)
    return cheap_stages.suite(sizes, simulated, runner)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default=",".join(SUITES), help=f"comma-separated, from {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about 50 minutes on 2 cores")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: seconds per suite
    # Tests: in these suites (translation, refinement, tokens) the fixed-latency generator stands in for the LLM.
    parser.add_argument("--simulate", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--max-load", type=float, default=3.0, help="1-minute load average to wait for before measuring"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=300.0, help="seconds to wait at most for that load (0: do not wait)"
    )
    parser.add_argument("--case-timeout", type=int, default=1800, help="seconds one case may take")
    parser.add_argument(
        "--scale-rows",
        default="",
        help="planned rows of the scale suite's cases, comma-separated (default: the size's)",
    )
    parser.add_argument(
        "--refine-slots",
        type=int,
        default=None,
        help="the refinement suite's engine sequences at once (max_num_seqs), both arms; default: configs/demo.yaml's",
    )
    args = parser.parse_args(argv)
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; known: {', '.join(SUITES)}")
    simulate = {s.strip() for s in args.simulate.split(",") if s.strip()}
    if simulate - {"translation", "refinement", "tokens"}:
        parser.error("--simulate takes translation, refinement, tokens")
    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = SIZES[size]
    if args.scale_rows:
        sizes = {**sizes, "scale_rows": [int(n) for n in args.scale_rows.split(",")]}
    if args.refine_slots:
        sizes = {**sizes, "refine_slots": args.refine_slots}
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    quiet = wait_for_quiet(args.max_load, args.wait_quiet)
    work_dir = Path(tempfile.mkdtemp(prefix="babelforge-bench-"))
    runner = Runner(work_dir, args.case_timeout)
    print(
        f"benchmarks ({size}{', simulated: ' + ', '.join(sorted(simulate)) if simulate else ''}): {', '.join(suites)}; "
        f"logs in {work_dir / 'logs'}",
        flush=True,
    )
    started = time.perf_counter()
    results: dict = {}
    loads: dict = {}
    for name in SUITES:
        if name not in suites:
            continue
        loads[name] = load_average()
        print(f"{name} (load average {loads[name][0]:.1f})", flush=True)
        suite_started = time.perf_counter()
        try:
            results[name] = run_suite(name, sizes, name in simulate, runner, results, Path(args.out))
        except Exception as error:  # one suite's failure must not lose the others' numbers
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        results[name]["seconds"] = round(time.perf_counter() - suite_started, 1)
        results[name]["load_average_at_end"] = load_average()
    shutil.rmtree(work_dir / "scratch", ignore_errors=True)
    report = {
        "benchmark": "babelforge",
        "date": date.today().isoformat(),
        "command": command,
        "size": size,
        "simulated": sorted(simulate),
        "machine": machine(),
        "quiet_wait": quiet,
        "load_average_at_suite_start": loads,
        "seconds": round(time.perf_counter() - started, 1),
        "suites": results,
    }
    paths = write_report(report, Path(args.out))
    print(f"wrote {', '.join(str(p) for p in paths)} in {report['seconds']:.0f}s", flush=True)
    print((Path(args.out) / f"{report['date']}.md").read_text())
    return report


if __name__ == "__main__":
    main()
