"""The SIMULATED generator: a stand-in for the LLM that sleeps a fixed latency per request and
answers with a translation-shaped JSON built from the request (English words swapped for French
ones, markers kept), or a judge score of 1 of 2 so that every valid row is rewritten.

A SIMULATION of the orchestration, not of a model: every row still goes through the real row
state machine (spans, parsing, fastText validation), the real TranslateActor batching and the
real Ray Data pool of jobs.synthesize.translate_dataset. Here: the generator, the translate actor
over it (SimulatedTranslateActor, the pool's actor class), and a Ray Data stage over it in place
of a ray.data.llm processor (simulated_generate).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import zlib

import pyarrow as pa

from benchmarks.harness import collect
from benchmarks.workload import TimedTranslateActor, bench_config
from engine.config import Config
from engine.protocols import Completion, GenParams

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
    """engine.protocols.Generator that sleeps `latency_s` per request, then answers with
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


def simulated_config(spec: dict, latency_s: float, **kwargs) -> Config:
    """bench_config over the simulated generator. The adequacy gate's similarity is off: the
    simulated text is French words, not a translation, and the gate would reject every row; its
    number and sentence checks still run."""
    return bench_config(spec, model_name=simulated_model_name(latency_s), adequacy=False, **kwargs)


def spec_config(spec: dict, **kwargs) -> Config:
    """bench_config for `spec`; with spec['latency_s'] set, over the simulated generator."""
    latency_s = spec.get("latency_s")
    return bench_config(spec, **kwargs) if latency_s is None else simulated_config(spec, latency_s, **kwargs)


def is_simulated(config: Config) -> bool:
    return config.model.name.startswith(SIMULATED_PREFIX)


class SimulatedTranslateActor(TimedTranslateActor):
    """TimedTranslateActor over a FixedLatencyGenerator: the latency comes from model.name
    (simulated_model_name), so it travels in the config like any model choice. Everything else
    (language ID, the checks, the row machine) is the actor's own construction."""

    @staticmethod
    def make_generator(config: Config):
        return FixedLatencyGenerator(simulated_latency(config.model.name), config.model.name)


class SimulatedStage:
    """A Ray Data stage in place of a ray.data.llm processor for simulated runs: the fixed-latency
    generator on every row of a batch at once. Reads key, messages, sampling_params; writes key,
    text, prompt_tokens, completion_tokens."""

    def __init__(self, latency_s: float):
        self.generator = FixedLatencyGenerator(latency_s)

    async def __call__(self, batch: pa.Table):
        async def one(row: dict) -> dict:
            schema = (row["sampling_params"].get("structured_outputs") or {}).get("json")
            done = await self.generator.generate(row["messages"], GenParams(json_schema=json.loads(schema) if schema else None))
            return {"key": row["key"], "text": done.text, "prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens}

        yield pa.Table.from_pylist(list(await asyncio.gather(*(one(row) for row in batch.to_pylist()))))


def simulated_generate(config: Config, rows: list[dict], latency_s: float) -> tuple[list[dict], dict]:
    """What benchmarks.raydata.raydata_generate returns, from one SimulatedStage actor with the
    config's batch size and batches in flight."""
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
