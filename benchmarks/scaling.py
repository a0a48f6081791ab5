"""Scaling and overhead of the orchestration: rows/s of the translation stage with 1, 2, 4, 8 actors,
and the driver's peak memory on a large plan.

SIMULATION OF THE ORCHESTRATION, NOT OF A MODEL. Here the LLM is replaced by a generator that
sleeps a fixed latency per request and answers with a translation-shaped JSON built from the
request (English words swapped for French ones, markers kept), so every row still goes through
the real row state machine (spans, parsing, fastText validation), the real TranslateActor batching
and the real Ray Data pool of jobs.synthesize.translate_dataset. What it shows: whether the driver
and the data path keep up as actors are added; nothing about how fast any model is.

    .venv/bin/python -m benchmarks.scaling --case scaling --spec spec.json --result out.json
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import time
import zlib
from pathlib import Path

import pyarrow as pa

from actors.translate import TranslateActor
from engine.config import Config
from engine.protocols import Completion, GenParams

ROOT = Path(__file__).resolve().parents[1]
SIMULATED_PREFIX = "simulated-latency-"

# Common French words: the fake's "translation" maps each English word to one of these, so
# fastText reads the answer as French and the length and repetition checks see prose.
FRENCH = (
    "le la les un une des du et est sont dans pour avec sur par plus mais comme tout cette ces nous vous "
    "ils elles leur très bien faire peut être avoir aussi entre après avant sans sous chaque autre même "
    "encore toujours souvent jamais parce qui quoi où quand comment pourquoi ainsi alors donc enfin déjà "
    "ici temps jour nuit monde maison travail eau feu terre ciel lumière couleur nombre exemple question "
    "réponse idée chose façon partie fois vie ville pays enfant homme femme ami livre école langue mot "
    "phrase texte valeur liste fonction fichier donnée résultat problème solution méthode étape premier "
    "dernier nouveau grand petit bon mauvais simple rapide lent facile difficile important possible "
    "nécessaire général particulier public certain différent propre seul fort faible beaucoup peu assez "
    "trop moins environ pendant depuis contre vers chez selon malgré grâce lorsque puisque tandis "
    "pourtant cependant néanmoins plutôt surtout vraiment seulement presque aujourd'hui demain hier "
    "matin soir semaine année mois heure minute moment histoire raison besoin envie sens forme place "
    "point côté fin début milieu suite ensemble système service projet groupe niveau ordre effet cas"
).split()
_SENTINEL = re.compile(r"(\[\[\d+\]\])")
_WORD = re.compile(r"[A-Za-z]+")


def simulated_model_name(latency_s: float) -> str:
    """The model name that tells a SimulatedTranslateActor its latency; it lands in every row's provenance."""
    return f"{SIMULATED_PREFIX}{latency_s:g}s"


def simulated_latency(model_name: str) -> float:
    if not model_name.startswith(SIMULATED_PREFIX):
        raise ValueError(f"not a simulated model name: {model_name!r} (expected {SIMULATED_PREFIX}<seconds>s)")
    return float(model_name.removeprefix(SIMULATED_PREFIX).removesuffix("s"))


def simulated_text(text: str) -> str:
    """Every English word → a French word chosen by its hash; markers, digits, punctuation kept."""
    parts = _SENTINEL.split(text)
    return "".join(
        part if _SENTINEL.fullmatch(part) else _WORD.sub(lambda m: FRENCH[zlib.crc32(m.group().lower().encode()) % len(FRENCH)], part)
        for part in parts
    )


def _source_fields(messages: list[dict]) -> dict:
    for message in messages:
        if message["role"] == "user":
            try:
                data = json.loads(message["content"])
            except ValueError:
                continue
            if isinstance(data, dict):
                return data
    return {}


def simulated_answer(messages: list[dict], params: GenParams) -> str:
    """A valid answer for the request: a judge score (1 of 2, so rows get rewritten) or the fields."""
    schema = params.json_schema or {}
    if "score" in schema.get("properties", {}):
        return json.dumps({"feedback": "simulated", "score": 1})
    source = _source_fields(messages)
    keys = schema.get("required") or list(source)
    return json.dumps({key: simulated_text(str(source.get(key, ""))) for key in keys}, ensure_ascii=False)


class FixedLatencyGenerator:
    """engine.generation.Generator that sleeps `latency_s` per request, then answers with
    `simulated_answer`. A SIMULATION of the orchestration, not of a model. Token counts are
    whitespace words, labelled as simulated wherever they are reported."""

    backend = "simulated"

    def __init__(self, latency_s: float, model_name: str | None = None):
        self.latency_s = latency_s
        self.model_name = model_name or simulated_model_name(latency_s)

    async def generate(self, messages: list[dict], params: GenParams) -> Completion:
        await asyncio.sleep(self.latency_s)
        text = simulated_answer(messages, params)
        prompt = sum(len(m["content"].split()) for m in messages)
        return Completion(text, prompt, len(text.split()), "stop")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class TimedTranslateActor(TranslateActor):
    """TranslateActor plus, on every output batch, when this actor became ready, when the batch
    finished (wall clock) and how many batches this actor had running at most so far, so a
    benchmark can tell engine start from generation and see the pool's concurrency."""

    ready_at = 0.0
    running = peak_running = 0  # every call runs on the actor's one UDF event loop: no lock needed

    def __init__(self, config_data: dict):
        super().__init__(config_data)
        self.ready_at = time.time()

    async def __call__(self, batch: pa.Table):
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            async for table in super().__call__(batch):
                rows = table.num_rows
                table = table.append_column("bench_ready_at", pa.array([self.ready_at] * rows, pa.float64()))
                table = table.append_column("bench_peak_batches", pa.array([self.peak_running] * rows, pa.int32()))
                yield table.append_column("bench_done_at", pa.array([time.time()] * rows, pa.float64()))
        finally:
            self.running -= 1


class SimulatedTranslateActor(TimedTranslateActor):
    """TimedTranslateActor over a FixedLatencyGenerator: the latency comes from model.name
    (simulated_model_name), so it travels in the config like any model choice."""

    def __init__(self, config_data: dict):
        from actors.langid import FastTextLangId
        from engine.recipes import row_machine

        config = Config.model_validate(config_data)
        self.generator = FixedLatencyGenerator(simulated_latency(config.model.name), config.model.name)
        self.translator = row_machine(config, self.generator, FastTextLangId(config.validation.langid_model))
        self.ready_at = time.time()


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def case_scaling(spec: dict) -> dict:
    """Rows/s of the real pool with a simulated generator, for each actor count, on one Ray."""
    import ray

    from benchmarks.translation import bench_config, init_ray, run_translation_stage, synthetic_tasks

    per_actor_in_flight = spec["batch_size"] * spec["batches_in_flight"]
    init_s = init_ray(spec)
    cases = []
    try:
        for actors in spec["actors"]:
            config = bench_config(
                spec, simulated_latency_s=spec["latency_s"], actors=actors,
                # Every count fits the same 2-CPU cluster: what an actor reserves is scheduling only.
                num_cpus_per_actor=min(1.0, spec["num_cpus"] / max(spec["actors"])),
            )
            rows = spec["waves"] * actors * per_actor_in_flight
            tasks = synthetic_tasks(rows, spec["lang"])
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            timing, table = run_translation_stage(config, tasks, SimulatedTranslateActor)
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            driver_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
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

    seeds, _ = load_seeds([str(ROOT / "data/seeds/english_seeds.jsonl")])
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            seed = seeds[i % len(seeds)]
            record = {"id": f"syn-{i:07d}", "instruction": f"{seed.instruction} ({i})", "input": seed.input, "output": seed.output}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def plan_config(spec: dict, work_dir: Path, rows: int) -> Config:
    """A config whose plan has `rows` rows: synthetic seeds × the 50 default languages, mode all."""
    from benchmarks.translation import bench_config
    from engine.languages import DEFAULT_TARGETS

    seeds = -(-rows // len(DEFAULT_TARGETS))
    path = write_synthetic_seeds(work_dir / "seeds.jsonl", seeds)
    return bench_config(
        {**spec, "lang": "fr", "batch_size": spec["stream_batch_size"]}, simulated_latency_s=spec["stream_latency_s"], actors=spec["stream_actors"],
        num_cpus_per_actor=1.0, seeds_path=str(path), languages="default50", run_dir=str(work_dir / "run"),
    )


def case_plan_memory(spec: dict) -> dict:
    """Driver peak RSS while planning `rows` rows the way jobs.synthesize.run does, up to the Arrow
    table it hands to Ray; with spec['stream'], also a full pass through the simulated pool, every
    shard written to a RowStore, nothing kept in the driver."""
    from engine.recipes import plan_tasks
    from engine.store import RowStore
    from jobs.synthesize import plan_fingerprint

    work_dir = Path(spec["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    config = plan_config(spec, work_dir, spec["rows"])
    baseline = peak_rss_mib()
    started = time.perf_counter()
    tasks, _, _ = plan_tasks(config)
    fingerprint = plan_fingerprint([task["id"] for task in tasks])
    table = pa.Table.from_pylist(tasks)
    planned_s = time.perf_counter() - started
    result = {
        "rows": len(tasks), "languages": len(config.languages.targets), "plan_s": round(planned_s, 2),
        "rss_before_plan_mib": baseline, "peak_rss_after_plan_mib": peak_rss_mib(),
        "plan_table_mib": round(table.nbytes / 2**20, 1), "fingerprint": fingerprint[:12],
    }
    if not spec.get("stream"):
        return result
    import ray

    from benchmarks.translation import init_ray
    from jobs.synthesize import translate_dataset

    del tasks  # the job keeps only the table from here on
    store = RowStore(work_dir / "run")
    init_ray(spec)
    try:
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        dataset = translate_dataset(config, table, SimulatedTranslateActor)
        done = accepted = 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            store.write(batch)
            done += batch.num_rows
            accepted += batch.column("status").to_pylist().count("accepted")
        seconds = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        ray.shutdown()
    driver_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        **result, "stream_actors": config.compute.actors, "stream_batch_size": config.compute.batch_size,
        "stream_latency_s": spec["stream_latency_s"], "driver_cpu_share": round(driver_cpu / seconds, 3),
        "streamed_rows": done, "accepted": accepted, "stream_s": round(seconds, 1),
        "stream_rows_per_s": round(done / seconds, 1), "peak_rss_after_stream_mib": peak_rss_mib(),
        "shards": len(store.shards()),
    }


CASES = {"scaling": case_scaling, "plan_memory": case_plan_memory}


def suite(sizes: dict, simulated: bool, runner) -> dict:
    """Runs each case in its own process (so each peak RSS is its own); `runner` is a benchmarks.run.Runner."""
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
        ],
    }


if __name__ == "__main__":
    from benchmarks.translation import case_main

    case_main(CASES)
