"""Translation throughput on one engine, three ways, with the same model, prompts and sampling:

  (a) raw vLLM: `LLM.generate` over every prompt at once: the single-engine limit;
  (b) babelforge: the job's translation stage (jobs.synthesize.translate_dataset, a Ray Data pool
      of TranslateActor) with refine.rounds 0 and validation.max_attempts 1: one pass;
  (c) Ray Data LLM: a `ray.data.llm` vLLM processor doing the same pass.

And refinement (2 judge → rewrite rounds): babelforge's row state machine on the same pool against
a chain of ray.data.llm processors, translate → judge → rewrite → judge → rewrite → judge, with
the same decisions between stages (engine.rows.judge, the same validation) made in the driver.

Prompts are the project's seeds for one language built exactly as engine.rows.translate does
(protected spans, translate_messages, the per-row token budget, the answer schema). Each case runs
in its own process, one after another (benchmarks.run.run_case), so only one engine exists at a
time and each case's engine and Ray are gone before the next starts.

    .venv/bin/python -m benchmarks.translation --case raw --spec spec.json --result out.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import logging
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import yaml

from actors.vllm_generator import VLLMGenerator, engine_env
from engine.config import Config, parse_config
from engine.protocols import GenParams
from engine.rows.judge import judge_messages, judge_schema, mean_score, parse_score, rewrite_message
from engine.languages import get_language
from engine.text.parse import parse_fields
from engine.inputs.plan import build_plan
from engine.rows.prompts import FIELDS, answer_schema, translate_messages
from engine.recipes import prompt_version
from engine.records import ACCEPTED, REJECTED
from engine.inputs.seeds import load_seeds
from engine.text.spans import SENTINEL_RE, protect_many, restore
from engine.rows.validate import validate_translation

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("babelforge.bench")


# ---------------------------------------------------------------- workload


def bench_config(
    spec: dict, *, rounds: int | None = None, simulated_latency_s: float | None = None, actors: int = 1,
    num_cpus_per_actor: float | None = None, seeds_path: str | None = None, languages=None, run_dir: str | None = None,
) -> Config:
    """configs/demo.yaml narrowed to one pass over one language: mode all, one attempt, no build."""
    demo = yaml.safe_load((ROOT / "configs/demo.yaml").read_text())
    demo["run"] = {"name": "bench", "output_dir": run_dir or "/tmp/babelforge-bench"}
    demo["seeds"] = {"paths": [seeds_path or str(ROOT / "data/seeds/english_seeds.jsonl")]}
    demo["languages"] = {"targets": languages or [spec["lang"]]}
    demo["plan"] = {**demo.get("plan", {}), "mode": "all"}
    demo["refine"] = {"rounds": spec.get("rounds", 0) if rounds is None else rounds}
    demo["validation"] = {**demo.get("validation", {}), "max_attempts": 1}
    demo["compute"] = {
        **demo.get("compute", {}), "actors": actors, "batch_size": spec["batch_size"], "batches_in_flight": spec["batches_in_flight"],
        **({"num_cpus_per_actor": num_cpus_per_actor} if num_cpus_per_actor is not None else {}),
    }
    demo["ray"] = {"num_cpus": spec["num_cpus"]}
    demo["build"] = {"enabled": False}
    for section in ("select", "dedup"):
        demo.pop(section, None)  # selection is the tokens suite's subject, not this one's
    if simulated_latency_s is not None:
        from benchmarks.scaling import simulated_model_name

        demo["model"] = {**demo["model"], "name": simulated_model_name(simulated_latency_s)}
    return parse_config(demo, "benchmarks (configs/demo.yaml narrowed)")


def load_tasks(config: Config, seeds: int | None) -> list[dict]:
    """The first `seeds` seeds of the config's seed file, each into the config's one language."""
    loaded, _ = load_seeds(list(config.seeds.paths), limit=seeds)
    languages = [get_language(code) for code in config.languages.targets]
    return build_plan(loaded, languages, "all", config.plan.quotas, config.plan.seed, config.recipe, prompt_version(config))


def synthetic_tasks(rows: int, lang: str) -> list[dict]:
    """`rows` distinct tasks cycled from the project's seeds (ids carry a counter)."""
    seeds, _ = load_seeds([str(ROOT / "data/seeds/english_seeds.jsonl")])
    tasks = []
    for i in range(rows):
        seed = seeds[i % len(seeds)]
        tasks.append({
            "id": f"sim-{i:08d}", "seed_id": f"{seed.id}-{i}", "recipe": "sphinx", "lang": lang,
            "src_instruction": seed.instruction, "src_input": seed.input, "src_output": seed.output, "source": seed.source,
        })
    return tasks


@dataclass(frozen=True)
class Request:
    """One translation request as engine.translate.SelectiveTranslator builds it."""

    task: dict
    messages: list[dict]
    sampling: dict  # temperature, top_p, max_tokens, repetition_penalty
    schema: dict | None
    keys: list[str]
    spans: tuple
    expected: dict


def build_request(config: Config, task: dict, count_tokens) -> Request:
    """Mirrors the first half of SelectiveTranslator.__call__ (prompt, budget, schema); the suite
    checks that the prompt token counts match babelforge's rows, so a drift shows up."""
    language = get_language(task["lang"])
    source = {field: task[f"src_{field}"] or "" for field in FIELDS}
    protected, spans, _ = protect_many([source[field] for field in FIELDS])
    fields = dict(zip(FIELDS, protected))
    keys = [field for field in FIELDS if source[field]]
    expected = {field: {int(n) for n in SENTINEL_RE.findall(fields[field])} for field in keys}
    messages = translate_messages(fields, language.name)
    gen = config.generation
    budget = int(gen.max_tokens_factor * count_tokens(messages[-1]["content"])) + 64
    sampling = {"temperature": gen.temperature, "top_p": gen.top_p, "max_tokens": min(gen.max_tokens, budget), "repetition_penalty": gen.repetition_penalty}
    return Request(task, messages, sampling, answer_schema(keys) if config.model.structured_output else None, keys, spans, expected)


def check_text(config: Config, request: Request, text: str, langid) -> tuple[str | None, dict]:
    """(reject reason or None, restored fields): SelectiveTranslator's checks, from public parts."""
    fields, reason = parse_fields(text, request.keys)
    if fields is None:
        return reason, {}
    restored = {}
    for field in request.keys:
        restored[field], reason = restore(fields[field], request.spans, request.expected[field])
        if reason is not None:
            return reason, {}
    source = {key: request.task[f"src_{key}"] or "" for key in request.keys}
    verdict = validate_translation(source, restored, fields, get_language(request.task["lang"]), langid, config.validation)
    return verdict.reason, restored


def output_digest(fields: dict) -> str | None:
    return hashlib.sha1(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12] if fields else None


def tokenizer_functions(tokenizer) -> tuple:
    """(prompt_ids, count_tokens) by VLLMGenerator's own code, over any tokenizer."""
    holder = SimpleNamespace(tokenizer=tokenizer)
    return (lambda messages: VLLMGenerator.prompt_ids(holder, messages)), (lambda text: VLLMGenerator.count_tokens(holder, text))


def init_ray(spec: dict) -> float:
    """A fresh local Ray of spec['num_cpus'] CPUs (never a cluster someone else started)."""
    import ray

    started = time.perf_counter()
    for attempt in (1, 2):
        try:
            ray.init(address="local", num_cpus=spec["num_cpus"], include_dashboard=False, log_to_driver=False, configure_logging=False)
            break
        except Exception as error:  # "node timed out during startup": seen on an overloaded machine
            if attempt == 2:
                raise
            log.warning("ray.init failed (%s); once more", error)
            ray.shutdown()
    ray.data.DataContext.get_current().enable_progress_bars = False
    return round(time.perf_counter() - started, 2)


def rate(amount: float, seconds: float | None) -> float | None:
    return round(amount / seconds, 2) if seconds else None


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------- (b) babelforge's stage


def run_translation_stage(config: Config, tasks: list[dict], actor_cls) -> tuple[dict, pa.Table]:
    """jobs.synthesize.translate_dataset with `actor_cls` (a TimedTranslateActor) as the
    pool's actor class; timed from the dataset's start to its last row."""
    from jobs.synthesize import translate_dataset

    started = time.time()
    dataset = translate_dataset(config, pa.Table.from_pylist(tasks), actor_cls)
    tables, arrivals = [], []
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        arrivals.append(time.time())
        tables.append(table)
    table = pa.concat_tables(tables)
    ready = table.column("bench_ready_at").to_pylist()
    done_at = table.column("bench_done_at").to_pylist()
    first_ready, all_ready, last = min(ready), max(ready), arrivals[-1]
    after_all_ready = sum(1 for t in done_at if t >= all_ready)
    window = max(done_at) - all_ready
    timing = {
        "first_ready_s": round(first_ready - started, 2), "all_ready_s": round(all_ready - started, 2),
        "first_row_s": round(arrivals[0] - started, 2), "end_to_end_s": round(last - started, 2),
        "generation_s": round(last - first_ready, 2),
        "rows_per_s_end_to_end": rate(table.num_rows, last - started),
        "rows_per_s_after_ready": rate(table.num_rows, last - first_ready),
        "rows_per_s_after_all_ready": rate(after_all_ready, window) if window > 0 else None,
        "peak_batches_per_actor": max(table.column("bench_peak_batches").to_pylist()),
    }
    return timing, table.drop_columns(["bench_ready_at", "bench_done_at", "bench_peak_batches"])


def case_babelforge(spec: dict) -> dict:
    import ray

    from benchmarks.scaling import SimulatedTranslateActor, TimedTranslateActor

    simulated = spec.get("latency_s") is not None
    config = bench_config(spec, simulated_latency_s=spec.get("latency_s"))
    tasks = load_tasks(config, spec["seeds"])
    ray_init_s = init_ray(spec)
    try:
        timing, table = run_translation_stage(config, tasks, SimulatedTranslateActor if simulated else TimedTranslateActor)
    finally:
        ray.shutdown()
    rows = table.to_pylist()
    generated = sum(row["completion_tokens"] for row in rows)
    return {
        "case": "babelforge", "simulated": simulated, "rows": len(rows), "ray_init_s": ray_init_s, **timing,
        "engine_start_s": timing["first_ready_s"],
        "generated_tokens": generated, "prompt_tokens": sum(row["prompt_tokens"] for row in rows),
        "tokens_per_s_end_to_end": rate(generated, timing["end_to_end_s"]),
        "tokens_per_s_generation": rate(generated, timing["generation_s"]),
        "rows_per_s_generation": timing["rows_per_s_after_ready"],
        "accepted": sum(1 for row in rows if row["status"] == ACCEPTED),
        "judged_rows": sum(1 for row in rows if row["tokens_judge"]),
        "rewritten_rows": sum(1 for row in rows if row["rounds"]),
        "phase_tokens": {phase: sum(row[f"tokens_{phase}"] for row in rows) for phase in ("draft", "judge", "rewrite")},
        "per_row": [
            {
                "seed_id": row["seed_id"], "status": row["status"], "reason": row["reason"], "prompt_tokens": row["prompt_tokens"],
                "completion_tokens": row["completion_tokens"], "rounds": row["rounds"],
                "out": output_digest({k: row[k] for k in FIELDS if row[f"src_{k}"]}) if row["status"] == ACCEPTED else None,
            }
            for row in rows
        ],
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- (a) raw vLLM


def case_raw(spec: dict) -> dict:
    """One vllm.LLM in this process, every prompt in one generate call; validated afterwards."""
    from actors.langid import FastTextLangId
    from actors.models import resolve_model

    config = bench_config(spec)
    os.environ.update(engine_env(config.compute.engine_threads))
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import StructuredOutputsParams

    tasks = load_tasks(config, spec["seeds"])
    started = time.perf_counter()
    llm = LLM(model=resolve_model(config.model.name), **{"disable_log_stats": True, **config.model.engine_kwargs})
    ready = time.perf_counter()
    prompt_ids, count_tokens = tokenizer_functions(llm.get_tokenizer())
    requests = [build_request(config, task, count_tokens) for task in tasks]
    prompts = [TokensPrompt(prompt_token_ids=prompt_ids(r.messages)) for r in requests]
    params = [
        SamplingParams(**r.sampling, structured_outputs=StructuredOutputsParams(json=r.schema, disable_any_whitespace=True) if r.schema else None)
        for r in requests
    ]
    prepared = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    done = time.perf_counter()
    del llm
    gc.collect()
    langid = FastTextLangId(config.validation.langid_model)
    per_row = []
    for request, output in zip(requests, outputs):
        text = output.outputs[0].text
        reason, fields = check_text(config, request, text, langid)
        per_row.append({
            "seed_id": request.task["seed_id"], "status": REJECTED if reason else ACCEPTED, "reason": reason,
            "prompt_tokens": len(output.prompt_token_ids), "completion_tokens": len(output.outputs[0].token_ids),
            "out": None if reason else output_digest(fields),
        })
    generated = sum(row["completion_tokens"] for row in per_row)
    generation_s = done - prepared
    return {
        "case": "raw_vllm", "rows": len(per_row), "engine_start_s": round(ready - started, 2),
        "prepare_s": round(prepared - ready, 2), "generation_s": round(generation_s, 2),
        "end_to_end_s": round(done - started, 2),
        "generated_tokens": generated, "prompt_tokens": sum(row["prompt_tokens"] for row in per_row),
        "tokens_per_s_generation": rate(generated, generation_s), "rows_per_s_generation": rate(len(per_row), generation_s),
        "tokens_per_s_end_to_end": rate(generated, done - started), "rows_per_s_end_to_end": rate(len(per_row), done - started),
        "accepted": sum(1 for row in per_row if row["status"] == ACCEPTED), "per_row": per_row, "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- (c) ray.data.llm


def raydata_row(key: str, messages: list[dict], sampling: dict, schema: dict | None) -> dict:
    params = dict(sampling)
    if schema:
        # A string, not a dict: Arrow would merge the schemas of different rows into one struct.
        params["structured_outputs"] = {"json": json.dumps(schema), "disable_any_whitespace": True}
    return {"key": key, "messages": messages, "sampling_params": params}


def _raydata_request(row: dict) -> dict:
    return {"key": row["key"], "messages": row["messages"], "sampling_params": row["sampling_params"]}


def _raydata_answer(row: dict) -> dict:
    return {
        "key": row["key"], "text": row["generated_text"],
        "prompt_tokens": int(row["num_input_tokens"]), "completion_tokens": int(row["num_generated_tokens"]),
    }


def collect(dataset, started: float) -> tuple[list[dict], dict]:
    rows, arrivals = [], []
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        arrivals.append(time.time())
        rows += table.to_pylist()
    return rows, {"first_row_s": round(arrivals[0] - started, 2), "end_to_end_s": round(arrivals[-1] - started, 2)}


STAGE_CPUS = 0.25  # per ray.data.llm CPU stage: together they fit the CPU the engine leaves


def raydata_generate(config: Config, rows: list[dict]) -> tuple[list[dict], dict]:
    """One ray.data.llm vLLM processor over `rows` (raydata_row): its own engine, started here and
    released when the dataset is done. Same engine arguments, batch size and batches in flight as
    babelforge, the engine on a 1-CPU bundle without metrics (STACK.md). Its CPU stages (chat
    template, tokenize, detokenize, pre/postprocess) get STAGE_CPUS each: at their default of one
    CPU each, two of them take both CPUs of a 2-CPU cluster and the engine actor never starts."""
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from actors.models import resolve_model

    started = time.time()
    processor = build_processor(
        vLLMEngineProcessorConfig(
            model_source=resolve_model(config.model.name),
            engine_kwargs={"disable_log_stats": True, **config.model.engine_kwargs},
            batch_size=config.compute.batch_size,
            concurrency=1,
            max_concurrent_batches=config.compute.batches_in_flight,
            log_engine_metrics=False,
            placement_group_config={"bundles": [{"CPU": config.compute.num_cpus_per_actor}]},
            runtime_env={"env_vars": engine_env(config.compute.engine_threads)},
            **{stage: {"num_cpus": STAGE_CPUS} for stage in ("chat_template_stage", "tokenize_stage", "detokenize_stage")},
        ),
        preprocess=_raydata_request,
        postprocess=_raydata_answer,
        preprocess_map_kwargs={"num_cpus": STAGE_CPUS},
        postprocess_map_kwargs={"num_cpus": STAGE_CPUS},
    )
    built = time.time()
    answers, timing = collect(processor(ray.data.from_items(rows)), started)
    released = time.time()
    left = wait_for_engines_gone()
    return answers, {"build_s": round(built - started, 2), **timing, "release_s": round(time.time() - released, 2), "engines_killed": left}


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
    from benchmarks.run import end_processes

    return len(end_processes(engine_processes, grace_s))


class SimulatedStage:
    """A Ray Data stage in place of a ray.data.llm processor for simulated runs: the fixed-latency
    generator on every row of a batch at once. Reads key, messages, sampling_params; writes key,
    text, prompt_tokens, completion_tokens."""

    def __init__(self, latency_s: float):
        from benchmarks.scaling import FixedLatencyGenerator

        self.generator = FixedLatencyGenerator(latency_s)

    async def __call__(self, batch: pa.Table):
        async def one(row: dict) -> dict:
            schema = (row["sampling_params"].get("structured_outputs") or {}).get("json")
            done = await self.generator.generate(row["messages"], GenParams(json_schema=json.loads(schema) if schema else None))
            return {"key": row["key"], "text": done.text, "prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}

        yield pa.Table.from_pylist(list(await asyncio.gather(*(one(row) for row in batch.to_pylist()))))


def simulated_generate(config: Config, rows: list[dict], latency_s: float) -> tuple[list[dict], dict]:
    import ray

    from jobs.synthesize import actor_pool

    started = time.time()
    dataset = ray.data.from_items(rows).map_batches(
        SimulatedStage, fn_constructor_kwargs={"latency_s": latency_s}, batch_size=config.compute.batch_size,
        batch_format="pyarrow", num_cpus=config.compute.num_cpus_per_actor,
        compute=actor_pool(1, config.compute.batches_in_flight),
    )
    answers, timing = collect(dataset, started)
    return answers, {"build_s": 0.0, **timing}


def driver_requests(config: Config, tasks: list[dict]) -> list[Request]:
    from transformers import AutoTokenizer

    from actors.models import resolve_model
    from benchmarks.scaling import FixedLatencyGenerator, SIMULATED_PREFIX

    if config.model.name.startswith(SIMULATED_PREFIX):
        count_tokens = FixedLatencyGenerator(0).count_tokens
    else:
        _, count_tokens = tokenizer_functions(AutoTokenizer.from_pretrained(resolve_model(config.model.name)))
    return [build_request(config, task, count_tokens) for task in tasks]


def case_raydata(spec: dict) -> dict:
    import ray

    from actors.langid import FastTextLangId

    config = bench_config(spec)
    requests = driver_requests(config, load_tasks(config, spec["seeds"]))
    ray_init_s = init_ray(spec)
    try:
        answers, timing = raydata_generate(config, [raydata_row(str(i), r.messages, r.sampling, r.schema) for i, r in enumerate(requests)])
    finally:
        ray.shutdown()
    langid = FastTextLangId(config.validation.langid_model)
    by_key = {answer["key"]: answer for answer in answers}
    per_row = []
    for i, request in enumerate(requests):
        answer = by_key[str(i)]
        reason, fields = check_text(config, request, answer["text"], langid)
        per_row.append({
            "seed_id": request.task["seed_id"], "status": REJECTED if reason else ACCEPTED, "reason": reason,
            "prompt_tokens": answer["prompt_tokens"], "completion_tokens": answer["completion_tokens"],
            "out": None if reason else output_digest(fields),
        })
    generated = sum(row["completion_tokens"] for row in per_row)
    return {
        "case": "ray_data_llm", "rows": len(per_row), "ray_init_s": ray_init_s, **timing,
        "generated_tokens": generated, "prompt_tokens": sum(row["prompt_tokens"] for row in per_row),
        "tokens_per_s_end_to_end": rate(generated, timing["end_to_end_s"]), "rows_per_s_end_to_end": rate(len(per_row), timing["end_to_end_s"]),
        "accepted": sum(1 for row in per_row if row["status"] == ACCEPTED), "per_row": per_row, "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- refinement as a chain of processors


@dataclass
class ChainRow:
    request: Request
    text: str = ""  # current version as the model wrote it (markers and all)
    fields: dict | None = None  # current version, restored
    versions: list = None  # (mean, round, fields)
    scores: list = None  # last judgement
    rounds: int = 0
    tokens: dict = None
    status: str | None = None
    reason: str | None = None


def refine_chain(config: Config, requests: list[Request], generate, langid) -> tuple[list[ChainRow], list[dict]]:
    """SelectiveTranslator's refinement decisions, stage by stage: every stage is one `generate`
    call (one processor, one engine) over all rows that need it, and the driver decides between."""
    refine, language = config.refine, get_language(config.languages.targets[0])
    judge_sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 128, "repetition_penalty": 1.0}
    judging = judge_schema() if config.model.structured_output else None
    rows = {str(i): ChainRow(r, versions=[], scores=[], tokens={"draft": 0, "judge": 0, "rewrite": 0}) for i, r in enumerate(requests)}
    stages: list[dict] = []

    def run(name: str, batch: list[dict]) -> dict[str, dict]:
        answers, timing = generate(batch)
        stages.append({"stage": name, "requests": len(batch), **timing, "generated_tokens": sum(a["completion_tokens"] for a in answers)})
        return {answer["key"]: answer for answer in answers}

    def accept_version(key: str, answer: dict, phase: str) -> bool:
        row = rows[key]
        row.tokens[phase] += answer["completion_tokens"]
        reason, fields = check_text(config, row.request, answer["text"], langid)
        if reason is not None:
            row.reason = reason
            return False
        row.text, row.fields = answer["text"], fields
        return True

    drafts = run("translate", [raydata_row(k, r.request.messages, r.request.sampling, r.request.schema) for k, r in rows.items()])
    active = []
    for key, row in rows.items():
        if accept_version(key, drafts[key], "draft"):
            active.append(key)
        else:
            row.status = REJECTED
    round_no = 0
    while active:
        asks = []
        for key in active:
            row = rows[key]
            shown = {f: row.request.task[f"src_{f}"] for f in row.request.keys}
            for criterion in refine.criteria:
                asks.append(raydata_row(f"{key}|{criterion}", judge_messages(criterion, language.name, shown, row.fields), judge_sampling, judging))
        judged = run(f"judge {round_no}", asks)
        to_rewrite = []
        for key in active:
            row = rows[key]
            row.scores = [parse_score(c, judged[f"{key}|{c}"]["text"]) for c in refine.criteria]
            row.tokens["judge"] += sum(judged[f"{key}|{c}"]["completion_tokens"] for c in refine.criteria)
            mean = mean_score(row.scores)
            row.versions.append((mean, round_no, row.fields))
            if round_no < refine.rounds and not (mean is not None and mean >= refine.rewrite_below):
                to_rewrite.append(key)
        if not to_rewrite:
            break
        asks = []
        for key in to_rewrite:
            row = rows[key]
            messages = row.request.messages + [{"role": "assistant", "content": row.text}, rewrite_message(row.scores, language.name)]
            asks.append(raydata_row(key, messages, row.request.sampling, row.request.schema))
        rewritten = run(f"rewrite {round_no + 1}", asks)
        round_no += 1
        active = []
        for key in to_rewrite:
            rows[key].rounds = round_no
            if accept_version(key, rewritten[key], "rewrite"):
                active.append(key)  # an invalid rewrite ends the row's rounds; its versions stand
    for row in rows.values():
        if row.status == REJECTED:
            continue
        best_mean, _, best = max(row.versions, key=lambda v: (-1.0 if v[0] is None else v[0], -v[1]))
        row.fields = best
        if best_mean is None:
            row.status, row.reason = REJECTED, "judge_unparsed"
        elif best_mean < refine.reject_below:
            row.status, row.reason = REJECTED, f"judge_below_threshold:{best_mean:.2f}"
        else:
            row.status, row.reason = ACCEPTED, None
    return list(rows.values()), stages


def case_refine_chain(spec: dict) -> dict:
    import ray

    from actors.langid import FastTextLangId

    simulated = spec.get("latency_s") is not None
    config = bench_config(spec, simulated_latency_s=spec.get("latency_s"))
    requests = driver_requests(config, load_tasks(config, spec["seeds"]))
    langid = FastTextLangId(config.validation.langid_model)
    ray_init_s = init_ray(spec)
    if simulated:
        generate = lambda batch: simulated_generate(config, batch, spec["latency_s"])  # noqa: E731
    else:
        generate = lambda batch: raydata_generate(config, batch)  # noqa: E731
    started = time.perf_counter()
    try:
        rows, stages = refine_chain(config, requests, generate, langid)
    finally:
        seconds = time.perf_counter() - started
        ray.shutdown()
    phases = {phase: sum(row.tokens[phase] for row in rows) for phase in ("draft", "judge", "rewrite")}
    generated = sum(phases.values())
    return {
        "case": "ray_data_llm_chain", "simulated": simulated, "rows": len(rows), "ray_init_s": ray_init_s,
        "end_to_end_s": round(seconds, 2), "stages": stages, "engine_starts": 0 if simulated else len(stages),
        "generated_tokens": generated, "phase_tokens": phases,
        "tokens_per_s_end_to_end": rate(generated, seconds), "rows_per_s_end_to_end": rate(len(rows), seconds),
        "accepted": sum(1 for row in rows if row.status == ACCEPTED),
        "judged_rows": sum(1 for row in rows if row.versions),
        "rewritten_rows": sum(1 for row in rows if row.rounds > 0),
        "per_row": [{"seed_id": row.request.task["seed_id"], "status": row.status, "reason": row.reason, "rounds": row.rounds,
                     "completion_tokens": sum(row.tokens.values())} for row in rows],
        "peak_rss_mib": peak_rss_mib(),
    }


CASES = {"raw": case_raw, "babelforge": case_babelforge, "raydata": case_raydata, "refine_chain": case_refine_chain}


# ---------------------------------------------------------------- suites (parent process: no heavy imports)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def agreement(cases: dict) -> dict:
    """Per pair of cases: share of rows with the same generated token count and the same
    accepted output. Greedy decoding of identical prompts should agree; batching can move a few."""
    names = [name for name, case in cases.items() if "per_row" in case]
    result = {}
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a = {row["seed_id"]: row for row in cases[first]["per_row"]}
            b = {row["seed_id"]: row for row in cases[second]["per_row"]}
            common = sorted(set(a) & set(b))
            if not common:
                continue
            pair = {
                "rows": len(common),
                "same_token_count": round(sum(a[s]["completion_tokens"] == b[s]["completion_tokens"] for s in common) / len(common), 3),
                "same_status": round(sum(a[s]["status"] == b[s]["status"] for s in common) / len(common), 3),
            }
            if all("prompt_tokens" in a[s] and "prompt_tokens" in b[s] for s in common):
                pair["same_prompt_tokens"] = round(sum(a[s]["prompt_tokens"] == b[s]["prompt_tokens"] for s in common) / len(common), 3)
            result[f"{first}~{second}"] = pair
    return result


def base_spec(sizes: dict, simulated: bool) -> dict:
    return {
        "lang": sizes.get("lang", "fr"), "batch_size": 16, "batches_in_flight": 4, "num_cpus": 2,
        "latency_s": sizes["latency_s"] if simulated else None,
    }


def translation_suite(sizes: dict, simulated: bool, runner) -> dict:
    spec = {**base_spec(sizes, simulated), "seeds": sizes["seeds"], "rounds": 0}
    cases = {}
    if not simulated:
        cases["raw_vllm"] = runner.case("benchmarks.translation", "raw", spec)
    cases["babelforge"] = runner.case("benchmarks.translation", "babelforge", spec)
    if not simulated:
        cases["ray_data_llm"] = runner.case("benchmarks.translation", "raydata", spec)
    a, b, c = (cases.get(name, {}) for name in ("raw_vllm", "babelforge", "ray_data_llm"))
    return {
        "workload": {"language": spec["lang"], "seeds": sizes["seeds"], "rounds": 0, "max_attempts": 1, "simulated": simulated,
                     "batch_size": spec["batch_size"], "batches_in_flight": spec["batches_in_flight"], "ray_num_cpus": spec["num_cpus"]},
        "cases": cases,
        "ratios": {
            "b_over_a_tokens_per_s_generation": ratio(b.get("tokens_per_s_generation"), a.get("tokens_per_s_generation")),
            "b_over_a_tokens_per_s_end_to_end": ratio(b.get("tokens_per_s_end_to_end"), a.get("tokens_per_s_end_to_end")),
            "b_over_c_tokens_per_s_end_to_end": ratio(b.get("tokens_per_s_end_to_end"), c.get("tokens_per_s_end_to_end")),
            "b_over_a_rows_per_s_generation": ratio(b.get("rows_per_s_generation"), a.get("rows_per_s_generation")),
            "b_over_c_rows_per_s_end_to_end": ratio(b.get("rows_per_s_end_to_end"), c.get("rows_per_s_end_to_end")),
        },
        "agreement": agreement(cases),
        "notes": [
            "(a) generation: one LLM.generate call over every prompt; end to end adds its engine start",
            "(b) end to end: dataset start to last row (Ray init excluded, engine start and validation included); "
            "generation: from the actor's engine being ready to the last row",
            "(c) end to end: processor build and dataset start to last row (Ray init excluded, its engine start included); "
            "validation of its answers runs after the clock stops",
            "same engine arguments and engine environment in all three (actors.vllm_generator.engine_env: "
            "with engine_threads set, the engine is pinned to that many cores)",
            "(b) runs batches_in_flight batches at once per actor (max_concurrent_calls_per_actor): the engine "
            "sees batch_size x batches_in_flight rows, as (a) sees all of them",
        ],
    }


def refinement_suite(sizes: dict, simulated: bool, runner) -> dict:
    spec = {**base_spec(sizes, simulated), "seeds": sizes["refine_seeds"], "rounds": 2}
    cases = {
        "babelforge": runner.case("benchmarks.translation", "babelforge", spec),
        "ray_data_llm_chain": runner.case("benchmarks.translation", "refine_chain", spec),
    }
    b, c = cases["babelforge"], cases["ray_data_llm_chain"]
    return {
        "workload": {"language": spec["lang"], "seeds": spec["seeds"], "rounds": 2, "max_attempts": 1, "simulated": simulated},
        "cases": cases,
        "ratios": {
            "chain_time_over_babelforge_time": ratio(c.get("end_to_end_s"), b.get("end_to_end_s")),
            "babelforge_over_chain_rows_per_s": ratio(b.get("rows_per_s_end_to_end"), c.get("rows_per_s_end_to_end")),
            "babelforge_over_chain_tokens_per_s": ratio(b.get("tokens_per_s_end_to_end"), c.get("tokens_per_s_end_to_end")),
        },
        "agreement": agreement(cases),
        "notes": [
            "both: validation.max_attempts 1, refine.rounds 2, the same judge and rewrite prompts, thresholds and choice of the best version",
            "the chain judges the last rewrite as babelforge does (to pick the best version): up to 6 processors, "
            "run one after another with an engine each, since two engines at once do not fit this machine",
            "end to end excludes Ray init and includes every engine start",
        ],
    }


def case_main(cases: dict) -> None:
    """`--case NAME --spec FILE --result FILE`: run one case in this process (benchmarks.run does)."""
    parser = argparse.ArgumentParser(description="one benchmark case, in its own process")
    parser.add_argument("--case", required=True, choices=sorted(cases))
    parser.add_argument("--spec", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    result = cases[args.case](json.loads(Path(args.spec).read_text()))
    Path(args.result).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    case_main(CASES)
