"""What refinement costs: the same seeds translated with `refine.rounds: 0` and `rounds: 2`,
in one process, on one vLLM engine, so the two numbers are comparable.

    .venv/bin/python -m benchmarks.refinement [--seeds 24] [--lang fr] [--out benchmarks/results]

Reports wall time, generated tokens/s, accepted rows, and generated tokens per accepted row by
phase (drafting, judging, rewriting). All rows of a setting run concurrently, as in an actor.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time
from datetime import date

from benchmarks.harness import RESULTS, ROOT, demo_settings, save_json
from engine.config import parse_config
from engine.recipes import plan_run, row_machine
from engine.records import ACCEPTED


def config_for(rounds: int, lang: str, seeds: int) -> dict:
    """configs/demo.yaml into `lang` alone, every one of the first `seeds` seeds (mode all)."""
    demo = demo_settings()
    demo["languages"] = {"targets": [lang]}
    demo["refine"] = {"rounds": rounds}
    demo["seeds"] = {**demo["seeds"], "paths": [str(ROOT / path) for path in demo["seeds"]["paths"]], "limit": seeds}
    demo["plan"] = {**demo["plan"], "mode": "all", "seed": 0}
    return demo


async def measure(machine, tasks: list[dict]) -> dict:
    started = time.perf_counter()
    rows = await asyncio.gather(*(machine(task) for task in tasks))
    seconds = time.perf_counter() - started
    accepted = [row for row in rows if row["status"] == ACCEPTED]
    generated = sum(row["completion_tokens"] for row in rows)

    def per_accepted(column: str) -> float | None:
        return round(sum(row.get(column, 0) for row in rows) / len(accepted), 1) if accepted else None

    return {
        "rows": len(rows),
        "accepted": len(accepted),
        "seconds": round(seconds, 1),
        "generated_tokens": generated,
        "generated_tokens_per_s": round(generated / seconds, 1),
        "prompt_tokens": sum(row["prompt_tokens"] for row in rows),
        "tokens_per_accepted": {phase: per_accepted(f"tokens_{phase}") for phase in ("draft", "judge", "rewrite")},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refinement", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=24, help="seeds translated in each setting")
    parser.add_argument("--lang", default="fr")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from actors.engines.langid import load_langid
    from actors.engines.vllm_generator import VLLMGenerator

    base = parse_config(config_for(0, args.lang, args.seeds))
    langid = load_langid(base.validation)

    async def both() -> dict:
        # One event loop for the engine's whole life: AsyncLLM binds its output handler to it.
        # Prefix caching off: the second setting would otherwise reuse the first one's prompts.
        engine_kwargs = {**base.model.engine_kwargs, "enable_prefix_caching": False}
        generator = VLLMGenerator(base.model.name, engine_kwargs, base.compute.engine_threads)
        results = {}
        try:
            for rounds in (0, 2):
                config = parse_config(config_for(rounds, args.lang, args.seeds))
                tasks = plan_run(config).tasks.tasks().to_pylist()  # the job's plan: the same seeds in both settings
                results[f"rounds_{rounds}"] = await measure(row_machine(config, generator, langid), tasks)
        finally:
            generator.shutdown()
        return results

    results = asyncio.run(both())
    r0, r2 = results["rounds_0"], results["rounds_2"]
    report = {
        "benchmark": "refinement",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, CPU only",
        "model": base.model.name,
        "language": args.lang,
        "seeds": r0["rows"],
        **results,
        "wall_time_ratio_rounds2_over_rounds0": round(r2["seconds"] / r0["seconds"], 2),
        "generated_tokens_ratio": round(r2["generated_tokens"] / max(r0["generated_tokens"], 1), 2),
    }
    save_json(report, args.out, f"refinement-{report['date']}")
    return report


if __name__ == "__main__":
    main()
