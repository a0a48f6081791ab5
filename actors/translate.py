"""TranslateActor: the Ray Data stage that owns one engine and runs the row state machines."""

from __future__ import annotations

import asyncio
import logging
import time

import pyarrow as pa

from engine.config import Config
from engine.records import to_table
from engine.translate import SelectiveTranslator

log = logging.getLogger(__name__)


def build_generator(config: Config):
    from actors.vllm_generator import VLLMGenerator

    return VLLMGenerator(config.model.name, config.model.engine_kwargs, config.compute.engine_threads)


class TranslateActor:
    """Reads task columns (engine.records.TASK_COLUMNS); writes every column of engine.records.SCHEMA.

    `__call__` is an async generator, so Ray Data keeps several batches in flight per actor and all
    their rows share the one engine.
    """

    def __init__(self, config_data: dict):
        from actors.langid import FastTextLangId

        config = Config.model_validate(config_data)
        started = time.monotonic()
        self.generator = build_generator(config)
        self.translator = SelectiveTranslator(config, self.generator, FastTextLangId(config.validation.langid_model))
        log.info("translate actor ready in %.1fs", time.monotonic() - started)

    async def __call__(self, batch: pa.Table):
        started = time.monotonic()
        rows = await asyncio.gather(*(self.translator(task) for task in batch.to_pylist()))
        table = to_table(rows)
        tokens = sum(row["completion_tokens"] for row in rows)
        log.info("batch of %d rows in %.1fs, %d generated tokens", len(rows), time.monotonic() - started, tokens)
        yield table
