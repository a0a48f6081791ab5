"""TranslateActor: the Ray Data stage that owns one engine and runs the row state machines."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from engine.config import Config
from engine.languages import get_language
from engine.recipes import quality_checks, row_machine
from engine.records import to_table

log = logging.getLogger(__name__)


class GeneratorStartError(RuntimeError):
    """The actor's generator could not start; the message says what to check."""


def started(what: str, build, hint: str):
    """`build()`, or a GeneratorStartError naming `what` could not start, why, and what to check."""
    try:
        return build()
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise GeneratorStartError(f"{what} could not start: {type(error).__name__}: {first} ({hint})") from error


def build_generator(config: Config):
    return started(
        f"the {config.model.backend} generator for model '{config.model.name}'",
        lambda: _build_generator(config),
        "check model.name and model.engine_kwargs; out of memory: lower max_model_len, max_num_seqs "
        "or gpu_memory_utilization / VLLM_CPU_KVCACHE_SPACE",
    )


def _build_generator(config: Config):
    if config.model.backend == "openai":
        from actors.engines.openai_generator import OpenAIGenerator

        return OpenAIGenerator(config.model)
    from actors.engines.vllm_generator import VLLMGenerator

    return VLLMGenerator(config.model.name, config.model.engine_kwargs, config.compute.engine_threads)


def build_machine(config: Config):
    """The machine translator of config.mt, for the languages config.translators routes to it."""
    from actors.engines.machine_translation import build_machine_translator

    return started(
        f"the {config.mt.backend} machine translator '{config.mt.model}'",
        lambda: build_machine_translator(config),
        "check mt.model, mt.tokenizer and translators",
    )


def load_encoder(config: Config):
    """The adequacy gate's multilingual encoder (quality.encoder), or None with the gate off.

    Its checks run on the drafts' check thread (engine.rows.refine.checks_thread), off the
    actor's event loop: the bundled encoder takes about 10 ms a text on one core, a few texts a
    draft, while the other rows keep submitting requests and the engine computes on."""
    if not config.quality.adequacy:
        return None
    from actors.engines.embed import load_embedder

    quality = config.quality
    return load_embedder(quality.encoder, device=quality.encoder_device, threads=quality.encoder_threads)


class RowSlots:
    """At most `limit` rows in flight across every batch an actor holds: a row takes a slot when
    it starts and gives it back when its row machine returns, so a new row (of this batch or the
    next one waiting) starts as soon as any row finishes, not when a whole batch is done. Waiting
    rows start in arrival order (asyncio.Semaphore is first come, first served), so the oldest
    batch is finished first. Every caller must share one event loop (Ray Data runs an actor's
    async calls on one)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.semaphore = asyncio.Semaphore(limit)

    async def row(self, row_machine, task: dict) -> dict:
        async with self.semaphore:
            started = time.monotonic()
            row = await row_machine(task)
            row["seconds"] = time.monotonic() - started
            return row

    async def batch(self, row_machine, tasks: list[dict]) -> list[dict]:
        """Every task's row, in order; they are returned together, as one output block."""
        return list(await asyncio.gather(*(self.row(row_machine, task) for task in tasks)))


class TranslateActor:
    """Reads task columns (engine.records.TASK_COLUMNS); writes every column of engine.records.SCHEMA.

    `__call__` is an async generator on the actor's one event loop. With the pool jobs.synthesize
    builds (actor_pool), Ray Data hands each actor up to compute.batches_per_actor batches at
    once; RowSlots keeps compute.rows_in_flight of their rows running (the engine sees all of
    their requests), and the batches beyond that wait with their rows queued for a slot. Each row
    is a coroutine that drives the row machine's steps against this actor's generator and
    machine translator (engine.rows.refine.RefinementLoop.__call__: next_requests, then advance).
    """

    def __init__(self, config_data: dict):
        from actors.engines.langid import load_langid

        config = Config.model_validate(config_data)
        started = time.monotonic()
        langid = load_langid(config.validation)
        # The second opinions' models load on a thread of their own while the engine starts in its
        # process (LinguaLangId.warm_up: seconds with the GIL held), not at the first field fastText
        # rejects, mid-generation.
        labels = [label for label in (get_language(code).lid_label for code in config.languages.targets) if label]
        with ThreadPoolExecutor(1, thread_name_prefix="langid-warm-up") as warming:
            warmed = warming.submit(langid.warm_up, labels)
            # The LLM only where this pool's languages, the judge or the round trip need it: a pool
            # of machine-translated languages alone starts in seconds, without an engine.
            self.generator = self.make_generator(config) if config.needs_llm() else None
            self.machine = build_machine(config) if config.mt_languages() else None
            self.checks = quality_checks(config, load_encoder(config))
            warmed.result()
        self.translator = row_machine(config, self.generator, langid, self.checks, self.machine)
        self.slots = RowSlots(config.compute.in_flight_rows)
        log.info("translate actor ready in %.1fs", time.monotonic() - started)

    @staticmethod
    def make_generator(config: Config):
        """The actor's generator: what model.backend names. The benchmarks' simulated actor brings its own."""
        return build_generator(config)

    async def __call__(self, batch: pa.Table):
        started, gate = time.monotonic(), sum(check.seconds for check in self.checks)
        rows = await self.slots.batch(self.translator, batch.to_pylist())
        table = to_table(rows)
        tokens = pa.compute.sum(table.column("completion_tokens")).as_py() or 0
        gate = sum(check.seconds for check in self.checks) - gate  # other batches' checks overlap this one's
        # The seconds include the wait for row slots while earlier batches' rows ran.
        log.info(
            "batch of %d rows in %.1fs, %d generated tokens, adequacy gate %.2fs",
            len(rows),
            time.monotonic() - started,
            tokens,
            gate,
        )
        yield table

    def __del__(self):
        if sys.is_finalizing():
            return  # the process is exiting: the engine's atexit hook has stopped it, and imports no longer work
        # Ray Data's teardown hook for a map_batches class: when the pool lets an actor go,
        # MapWorker.__ray_shutdown__ drops the UDF and this stops the engine cleanly (failing
        # that, VLLMGenerator's atexit hook does; see ENGINE_ACTOR_RUNTIME_ENV).
        for held in (getattr(self, "generator", None), getattr(self, "machine", None)):
            shutdown = getattr(held, "shutdown", None)
            if shutdown is not None:
                shutdown()
