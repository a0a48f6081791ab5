"""A `ray.data.llm` vLLM processor as the comparisons run it: rows in its format, one processor per
call with its own engine (released before the call returns), and the answers back in ours.
"""

from __future__ import annotations

import json
import time

from actors.engines.vllm_generator import cpu_capability, engine_env, host_engine_kwargs
from benchmarks.harness import collect, end_processes
from engine.config import Config
from engine.protocols import GenParams

STAGE_CPUS = 0.25  # per ray.data.llm CPU stage: together they fit the CPU the engine leaves


def raydata_row(key: str, messages: list[dict], params: GenParams) -> dict:
    """A processor's input row for one request of the engine's (messages, GenParams)."""
    sampling = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.json_schema:
        # A string, not a dict: Arrow would merge the schemas of different rows into one struct.
        sampling["structured_outputs"] = {"json": json.dumps(params.json_schema), "disable_any_whitespace": True}
    return {"key": key, "messages": messages, "sampling_params": sampling}


def raydata_rows(asks) -> list[dict]:
    """The processor's input rows for a chain stage's requests: [(key, engine.rows.refine.Ask)]."""
    return [raydata_row(key, ask.messages, ask.params) for key, ask in asks]


def _raydata_request(row: dict) -> dict:
    return {"key": row["key"], "messages": row["messages"], "sampling_params": row["sampling_params"]}


def _raydata_answer(row: dict) -> dict:
    """Ours, plus when the answer left the engine stage and how long the engine had it (the
    stage's time_taken_llm: from the request's submission to its last token)."""
    return {
        "key": row["key"],
        "text": row["generated_text"],
        "prompt_tokens": int(row["num_input_tokens"]),
        "completion_tokens": int(row["num_generated_tokens"]),
        "done_at": time.time(),
        "llm_s": float(row.get("time_taken_llm") or 0.0),
    }


def engine_phases(answers: list[dict], started: float, end_to_end_s: float) -> dict:
    """A processor's engine start told apart from its steady state: the first request reached
    the engine when the earliest (done_at - llm_s) says, so everything before it (processor
    build, CPU stages' and engine actor's start, model load) is start, and the rest steady state."""
    first_request = min(answer["done_at"] - answer["llm_s"] for answer in answers)
    engine_start = max(0.0, first_request - started)
    steady = max(0.0, end_to_end_s - engine_start)
    return {
        "engine_start_s": round(engine_start, 2),
        "steady_s": round(steady, 2),
        # The stage ends no sooner than its longest request; the engine's requests in flight on average.
        "longest_request_s": round(max(answer["llm_s"] for answer in answers), 2),
        "mean_in_flight": round(sum(answer["llm_s"] for answer in answers) / steady, 1) if steady else None,
    }


def raydata_generate(config: Config, rows: list[dict]) -> tuple[list[dict], dict]:
    """One ray.data.llm vLLM processor over `rows` (raydata_row): its own engine, started here and
    released when the dataset is done. Same engine arguments, batch size and batches in flight as
    babelforge, the engine on a 1-CPU bundle without metrics (STACK.md). Its CPU stages (chat
    template, tokenize, detokenize, pre/postprocess) get STAGE_CPUS each: at their default of one
    CPU each, two of them take both CPUs of a 2-CPU cluster and the engine actor never starts."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from actors.engines.models import resolve_model

    started = time.time()
    processor = build_processor(
        vLLMEngineProcessorConfig(
            model_source=resolve_model(config.model.name),
            # this host: benchmarks run on one machine
            engine_kwargs=host_engine_kwargs(config.model.engine_kwargs, cpu_capability()),
            batch_size=config.compute.batch_size,
            concurrency=1,
            max_concurrent_batches=config.compute.batches_in_flight,
            log_engine_metrics=False,
            placement_group_config={"bundles": [{"CPU": config.compute.num_cpus_per_actor}]},
            runtime_env={"env_vars": engine_env(config.compute.engine_threads)},
            **{
                stage: {"num_cpus": STAGE_CPUS}
                for stage in ("chat_template_stage", "tokenize_stage", "detokenize_stage")
            },
        ),
        preprocess=_raydata_request,
        postprocess=_raydata_answer,
        preprocess_map_kwargs={"num_cpus": STAGE_CPUS},
        postprocess_map_kwargs={"num_cpus": STAGE_CPUS},
    )
    built = time.time()
    answers, timing = collect(processor(ray.data.from_items(rows)), started)
    timing.update(engine_phases(answers, started, timing["end_to_end_s"]))
    released = time.time()
    left = wait_for_engines_gone()
    return answers, {
        "build_s": round(built - started, 2),
        **timing,
        "release_s": round(time.time() - released, 2),
        "engines_killed": left,
    }


def engine_processes() -> list:
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "EngineCore" in child.name() or "VLLM::" in " ".join(child.cmdline()[:1]):
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_for_engines_gone(grace_s: float = 60.0) -> int:
    """Block until no vLLM engine process started under this one is left (Ray tears a finished
    stage's actors down asynchronously), so the next stage never runs beside an old engine; kills
    what is left after `grace_s` and returns how many that was."""
    return len(end_processes(engine_processes, grace_s))
