"""The generation stage: an actor pool of TranslateActor (actors/engines/translate.py) over the
plan's task blocks, its finished rows written to Parquet shards by Ray tasks as they come, with a
progress line per shard; the driver handles references and counts, never the rows.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING

import pyarrow as pa

from actors.dataflow.ray_session import init_ray
from engine.config import Config
from engine.inputs.plan import TaskPlan

if TYPE_CHECKING:
    from actors.dataflow.planning import PlannedRun

log = logging.getLogger("babelforge.synthesize")


class StageFailed(RuntimeError):
    """The generation stage died (its engines could not start or kept dying)."""


def actor_pool(actors: int, batches_per_actor: int, batches_per_call: int = 1):
    """A fixed pool whose actors each hold up to `batches_per_actor` batches at once, in calls of
    `batches_per_call` batches (a big plan's blocks: actors/dataflow/plan_source.py) and at least two calls.
    Ray Data's actors take one call at a time unless max_concurrent_calls_per_actor says otherwise,
    whatever max_tasks_in_flight_per_actor queues up. TranslateActor limits the rows running
    (compute.rows_in_flight); the pool gives it more batches than those rows fill, so that rows
    are always waiting for a slot: a finished row's slot goes to the next row at once, with no
    round trip through Ray Data, and a call held by its slowest row holds no other slot."""
    from ray.data import ActorPoolStrategy

    calls = max(-(-batches_per_actor // batches_per_call), min(batches_per_actor, 2))
    return ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=calls, max_concurrent_calls_per_actor=calls)


def pool_config(config: Config, languages) -> Config:
    """The config the actors get for a stage that translates only `languages`: their targets, so
    an actor loads the LLM or the machine translator only where those languages need it (the
    rows' ids and prompt version do not depend on the targets)."""
    targets = tuple(code for code in config.languages.targets if code in set(languages)) or config.languages.targets
    return config.model_copy(update={"languages": config.languages.model_copy(update={"targets": targets})})


def translate_dataset(config: Config, tasks: pa.Table | TaskPlan):
    """The generation stage over `tasks` (a table of task rows, or a TaskPlan assembled on Ray
    workers: actors/dataflow/plan_source.py): an actor pool of TranslateActor over the task blocks."""
    from actors.engines.translate import TranslateActor

    blocks, size = task_blocks(config, tasks)
    return blocks.map_batches(TranslateActor, **pool_options(config, size))


def task_blocks(config: Config, tasks: pa.Table | TaskPlan):
    """(the tasks as a Ray dataset, rows a block): blocks of several batches, one call each: the
    reads must keep up with the pool, and Ray Data's driver keeps state for every block
    (actors/dataflow/plan_source.py)."""
    import ray

    from actors.dataflow.plan_source import block_rows, plan_dataset

    size = block_rows(tasks.num_rows, config.compute.batch_size, config.compute.actors)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    # An engine that cannot start (bad model path, out of memory) must fail the job, not retry forever.
    ctx.max_consecutive_actor_init_deaths = config.compute.actor_start_attempts
    return plan_dataset(tasks, size), size


def pool_options(config: Config, size: int) -> dict:
    """map_batches' arguments for the generation pool over blocks of `size` rows: its actors get
    the config, the pool's size and calls, and each actor's resources."""
    from actors.engines.vllm_generator import ENGINE_ACTOR_RUNTIME_ENV

    return {
        "fn_constructor_kwargs": {"config_data": json.loads(config.model_dump_json())},
        "batch_size": size,
        "batch_format": "pyarrow",
        "compute": actor_pool(config.compute.actors, config.compute.actor_batches, size // config.compute.batch_size),
        "num_cpus": config.compute.num_cpus_per_actor,
        "num_gpus": config.compute.num_gpus_per_actor or None,
        "resources": config.compute.resources or None,
        "runtime_env": ENGINE_ACTOR_RUNTIME_ENV,  # the actor stops its engine itself (see there)
    }


class Progress:
    """One line (rows saved / planned, accepted, tokens/s, ETA) per shard written, and every
    `every_s` seconds in between, so a long first batch does not look like a hang."""

    def __init__(self, total: int, already: int, every_s: float = 30.0):
        self.total, self.done, self.accepted, self.tokens = total, already, 0, 0
        self.new = 0
        self.started = time.monotonic()
        self.stopped = threading.Event()
        threading.Thread(target=self.tick, args=(every_s,), daemon=True, name="progress").start()

    def tick(self, every_s: float) -> None:
        while not self.stopped.wait(every_s):
            self.log_line()

    def close(self) -> None:
        self.stopped.set()

    def update(self, counts: dict) -> None:
        """A shard saved: its rows, accepted rows and completion tokens (actors/dataflow/shard_writer.py)."""
        self.done += counts["rows"]
        self.new += counts["rows"]
        self.accepted += counts["accepted"]
        self.tokens += counts["completion_tokens"]
        self.log_line()

    def log_line(self) -> None:
        elapsed = time.monotonic() - self.started
        rate = self.new / elapsed if elapsed else 0
        eta = f"{(self.total - self.done) / rate:.0f}s" if rate else "?"
        log.info(
            "rows %d/%d  accepted %d  %.0f tokens/s  elapsed %.0fs  eta %s",
            self.done,
            self.total,
            self.accepted,
            self.tokens / elapsed if elapsed else 0,
            elapsed,
            eta,
        )


def generate(config: Config, planned: PlannedRun, todo: TaskPlan | None = None) -> None:
    """The generation stage over `todo` (by default what is left to do), its rows written to the
    shards as they come (save_rows)."""
    init_ray(config.ray)
    todo = planned.todo if todo is None else todo
    save_rows(config, planned, todo, translate_dataset(pool_config(config, todo.rows_per_language()), todo))


def save_rows(config: Config, planned: PlannedRun, todo: TaskPlan, dataset) -> None:
    """The rows of `dataset` (the generation stage over `todo`) written to the shards as they
    come, by Ray workers: the driver handles references and counts, never the rows."""
    from actors.dataflow.shard_writer import ShardWriter

    total = len(planned.planned_ids)
    progress = Progress(total, total - todo.num_rows if todo is planned.todo else planned.done_rows())
    writer = ShardWriter(planned.folder, config.run.shard_rows, config.run.shard_seconds, progress.update)
    try:
        # References to the pool's output blocks, with their row counts (a Ray Data developer API;
        # iter_batches would fetch every row into this process).
        for bundle in dataset.iter_internal_ref_bundles():
            writer.add(bundle)
        writer.flush()  # the last shard's progress line says the whole plan is done
    except Exception as error:  # Ray wraps the actor's exception; say what it means
        save_finished(writer)
        raise StageFailed(
            f"the generation stage failed: {root_cause(error)}\n"
            f"{progress.done} of {total} rows are saved in {planned.folder}; fix the cause "
            "(model.name, model.engine_kwargs, memory) and rerun the same command to resume."
        ) from error
    finally:
        save_finished(writer)  # finished rows are kept, whatever stopped the loop (Ctrl-C included)
        progress.close()


def save_finished(writer) -> None:
    """Write the finished rows still buffered, on the way out of a failed stage: a shard that
    cannot be written now is logged, and the stage's own error is the one raised."""
    try:
        writer.flush()
    except Exception as error:  # noqa: BLE001 - the caller is already handling the real failure
        log.warning("could not save the last finished rows (a rerun generates them again): %s", root_cause(error))


def root_cause(error: BaseException) -> str:
    """What went wrong, in one line: Ray nests the actor's exception, as text, inside its own."""
    import traceback

    text = "".join(traceback.format_exception(error))
    for marker in ("GeneratorStartError: ", "EngineDeadError: "):
        if marker in text:
            return text[text.rindex(marker) + len(marker) :].splitlines()[0][:600]
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(" ")]
    return (lines[-1] if lines else type(error).__name__)[:600]
