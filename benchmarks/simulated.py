"""The SIMULATED generator: a stand-in for the LLM that sleeps a fixed latency per request and
answers with a translation-shaped JSON built from the request (English words swapped for French
ones, markers kept), or a judge score of 1 of 2 so that every valid row is rewritten.

A SIMULATION of the orchestration, not of a model: every row still goes through the real row
state machine (spans, parsing, fastText validation), the real TranslateActor batching and the
real Ray Data pool of actors.dataflow.synthesis.translate_dataset. Here: the generator, the translate actor
over it (SimulatedTranslateActor, the pool's actor class), and a Ray Data stage over it in place
of a ray.data.llm processor (simulated_generate).
"""

from __future__ import annotations

import asyncio
import json
import os
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


LONG_TAIL = "-longtail"
# The long-tail latency: a seeded mixture, deterministic per request (a hash of its messages).
# Most requests are short; LONG_SHARE of them take LONG_RATIO times as long; the mean is the
# latency the model name gives, so fixed and long-tail cases of one latency do the same work.
LONG_SHARE, LONG_RATIO, TAIL_SEED = 0.05, 20.0, 17


def simulated_model_name(latency_s: float, long_tail: bool = False) -> str:
    """The model name that tells a SimulatedTranslateActor its (mean) latency and its shape; it
    lands in every row's provenance."""
    return f"{SIMULATED_PREFIX}{latency_s:g}s" + (LONG_TAIL if long_tail else "")


def simulated_latency(model_name: str) -> float:
    if not model_name.startswith(SIMULATED_PREFIX):
        raise ValueError(f"not a simulated model name: {model_name!r} (expected {SIMULATED_PREFIX}<seconds>s)")
    return float(model_name.removeprefix(SIMULATED_PREFIX).removesuffix(LONG_TAIL).removesuffix("s"))


def is_long_tail(model_name: str) -> bool:
    return model_name.startswith(SIMULATED_PREFIX) and model_name.endswith(LONG_TAIL)


def long_tail_latency(mean_s: float, messages: list[dict]) -> float:
    """A request's latency from the heavy-tailed mixture of mean `mean_s`: seeded, and the same
    for the same request in every run."""
    key = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()
    draw = zlib.crc32(key, TAIL_SEED) / 2**32
    short = mean_s / (1 - LONG_SHARE + LONG_SHARE * LONG_RATIO)
    return short * LONG_RATIO if draw < LONG_SHARE else short


def simulated_text(text: str) -> str:
    """Every English word → a French word chosen by its hash; markers, digits, punctuation kept."""
    parts = _SENTINEL.split(text)
    return "".join(
        part
        if _SENTINEL.fullmatch(part)
        else _WORD.sub(lambda m: FRENCH[zlib.crc32(m.group().lower().encode()) % len(FRENCH)], part)
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
    """engine.protocols.Generator that sleeps `latency_s` per request (or, with `long_tail`, a
    per-request latency of that mean: long_tail_latency), then answers with `simulated_answer`.
    A SIMULATION of the orchestration, not of a model. Token counts are whitespace words,
    labelled as simulated wherever they are reported.

    It counts what the engine would see: requests in flight, sampled as (wall time, count) at
    every start and finish (`samples`, drained by whoever reports them), requests made and the
    seconds of latency they were given."""

    backend = "simulated"

    def __init__(self, latency_s: float, model_name: str | None = None, long_tail: bool = False):
        self.latency_s, self.long_tail = latency_s, long_tail
        self.model_name = model_name or simulated_model_name(latency_s, long_tail)
        self.in_flight = self.requests = 0
        self.latency_total_s = self.observed_total_s = 0.0
        self.samples: list[tuple[float, int]] = []  # one event loop: no lock needed

    def latency_of(self, messages: list[dict]) -> float:
        return long_tail_latency(self.latency_s, messages) if self.long_tail else self.latency_s

    async def generate(self, messages: list[dict], params: GenParams) -> Completion:
        latency = self.latency_of(messages)
        self.in_flight += 1
        self.requests += 1
        self.latency_total_s += latency
        started = time.time()
        self.samples.append((started, self.in_flight))
        try:
            await asyncio.sleep(latency)
        finally:
            self.in_flight -= 1
            finished = time.time()
            self.observed_total_s += finished - started  # more than latency when the event loop is late
            self.samples.append((finished, self.in_flight))
        text = simulated_answer(messages, params)
        prompt = sum(len(m["content"].split()) for m in messages)
        return Completion(text, prompt, len(text.split()), "stop")

    def drain(self) -> dict:
        """What happened since the last drain: the samples; requests, latency seconds given and
        seconds observed (start to finish) so far."""
        samples, self.samples = self.samples, []
        return {
            "samples": samples,
            "requests": self.requests,
            "latency_total_s": self.latency_total_s,
            "observed_total_s": self.observed_total_s,
        }

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def simulated_config(spec: dict, latency_s: float, long_tail: bool = False, **kwargs) -> Config:
    """bench_config over the simulated generator. The adequacy gate's similarity is off: the
    simulated text is French words, not a translation, and the gate would reject every row; its
    number and sentence checks still run. Every language goes to the simulated generator:
    configs/demo.yaml routes pt to the real machine translator, which would translate the scale
    suite's Portuguese rows on the CPU (it made that suite's generation 2.7x slower, 2026-12-07)."""
    config = bench_config(spec, model_name=simulated_model_name(latency_s, long_tail), adequacy=False, **kwargs)
    return config.model_copy(update={"translators": {"default": "llm"}})


def spec_config(spec: dict, **kwargs) -> Config:
    """bench_config for `spec`; with spec['latency_s'] set, over the simulated generator."""
    latency_s = spec.get("latency_s")
    return bench_config(spec, **kwargs) if latency_s is None else simulated_config(spec, latency_s, **kwargs)


def is_simulated(config: Config) -> bool:
    return config.model.name.startswith(SIMULATED_PREFIX)


class SimulatedTranslateActor(TimedTranslateActor):
    """TimedTranslateActor over a FixedLatencyGenerator: the latency comes from model.name
    (simulated_model_name), so it travels in the config like any model choice. Everything else
    (language ID, the checks, the row machine) is the actor's own construction.

    Each output batch brings back, in its first row's `bench_inflight` (JSON), this actor's
    in-flight samples since its previous batch (FixedLatencyGenerator.drain) and an actor id."""

    @staticmethod
    def make_generator(config: Config):
        name = config.model.name
        return FixedLatencyGenerator(simulated_latency(name), name, is_long_tail(name))

    async def __call__(self, batch: pa.Table):
        async for table in super().__call__(batch):
            report = json.dumps({"actor": f"{os.getpid()}-{id(self)}", **self.generator.drain()})
            yield table.append_column("bench_inflight", pa.array([report] + [None] * (table.num_rows - 1), pa.string()))


class SimulatedStage:
    """A Ray Data stage in place of a ray.data.llm processor for simulated runs: the fixed-latency
    generator on every row of a batch at once. Reads key, messages, sampling_params; writes key,
    text, prompt_tokens, completion_tokens."""

    def __init__(self, latency_s: float):
        self.generator = FixedLatencyGenerator(latency_s)

    async def __call__(self, batch: pa.Table):
        async def one(row: dict) -> dict:
            schema = (row["sampling_params"].get("structured_outputs") or {}).get("json")
            done = await self.generator.generate(
                row["messages"], GenParams(json_schema=json.loads(schema) if schema else None)
            )
            return {
                "key": row["key"],
                "text": done.text,
                "prompt_tokens": done.prompt_tokens,
                "completion_tokens": done.completion_tokens,
            }

        yield pa.Table.from_pylist(list(await asyncio.gather(*(one(row) for row in batch.to_pylist()))))


def simulated_generate(config: Config, rows: list[dict], latency_s: float) -> tuple[list[dict], dict]:
    """What benchmarks.raydata.raydata_generate returns, from one SimulatedStage actor with the
    config's batch size and batches in flight."""
    import ray

    from actors.dataflow.synthesis import actor_pool

    started = time.time()
    dataset = ray.data.from_items(rows).map_batches(
        SimulatedStage,
        fn_constructor_kwargs={"latency_s": latency_s},
        batch_size=config.compute.batch_size,
        batch_format="pyarrow",
        num_cpus=config.compute.num_cpus_per_actor,
        compute=actor_pool(1, config.compute.batches_in_flight),
    )
    answers, timing = collect(dataset, started)
    return answers, {"build_s": 0.0, **timing}
