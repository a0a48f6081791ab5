"""The synthesis job on Ray, stage by stage (jobs/synthesize.py calls them in this order): the plan
(seeds read and selected, tasks planned, the run folder made or checked, decided rows written),
the qualification probe, the generation stage (an actor pool of TranslateActor over the plan's
task blocks, its rows written to shards by Ray tasks as they come) and finalise (outputs and the
report, one language at a time). The driver handles references, ids and counts, never the rows.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from actors.dataflow.ray_session import init_ray
from actors.dataflow.seeds import SeedReader, SeedSelection, SeedSelector
from engine.config import Config, redacted
from engine.inputs.plan import PlannedIds, TaskPlan, plan_fingerprint
from engine.recipes import RunPlan, plan_run, prompt_version, recipe_spec
from engine.records import ACCEPTED, decided_row, to_table
from engine.report.cluster_plot import plot_clusters
from engine.report.counts import cluster_figures_from, reason_kind, render_markdown, report_from_figures
from engine.report.page import write_report_page
from engine.report.samples import DEFAULT_SAMPLES_PER_LANGUAGE
from engine.run_outputs import PlanMismatch, finalise_outputs
from engine.runfolder import RowStore, RunFolder, ShardBuffer, new_shard_name, write_shard
from engine.selection.dedup import NearDuplicateOutputs, reject_duplicate_outputs

log = logging.getLogger("babelforge.synthesize")

# ----------------------------------------------------------------------------------------------------
# The plan of a synthesis run on Ray: seeds read and selected on Ray Data, (seed, language)
# tasks planned, the run folder made or checked against the plan, the rows decided before any model
# call written, and the qualification probe that decides which languages run the rest of their plan.
# ----------------------------------------------------------------------------------------------------


class PlanChanged(RuntimeError):
    pass


def prepare_run_dir(config: Config, planned_ids) -> RunFolder:
    """Create the run folder (a local path or a filesystem URI), or check that an existing one was
    made for the same plan. `planned_ids`: every id the run must end with (list or Arrow array)."""
    folder = RunFolder(config.run.output_dir)
    folder.makedirs()
    fingerprint, rows = plan_fingerprint(planned_ids), len(planned_ids)
    if folder.exists("plan.json"):
        previous = json.loads(folder.read_text("plan.json"))
        if previous["fingerprint"] != fingerprint:
            raise PlanChanged(
                f"{folder} holds a run of a different plan ({previous['rows']} rows, now {rows}): "
                "the seeds, languages, quotas or prompt version changed. Resume with the original config, "
                "or give a new folder with --set run.output_dir=<new folder>."
            )
    else:
        folder.write_text("plan.json", json.dumps({"fingerprint": fingerprint, "rows": rows}))
    folder.write_text("config.resolved.yaml", yaml.safe_dump(redacted(config), sort_keys=False, allow_unicode=True))
    return folder


@dataclass
class PlannedRun:
    """A run folder made (or found) for the config's plan, and what is left to generate."""

    plan: RunPlan
    planned_ids: PlannedIds
    folder: RunFolder
    store: RowStore
    todo: TaskPlan
    selector: SeedSelector | None

    def done_rows(self) -> int:
        return len(self.planned_ids) - self.todo.num_rows


def plan_job(config: Config) -> PlannedRun:
    """Seeds read (on Ray Data), selected and planned; the run folder made or checked against the
    plan; the rows decided before any model call written; the ids already in the shards left out."""
    spec = recipe_spec(config)
    # Dedup and clusters of the seeds (embeddings on Ray) happen before planning: no LLM call yet.
    selector = SeedSelector(config, lambda: init_ray(config.ray)) if spec.selects_seeds else None
    # Seeds read and checked on Ray Data (the language check and dedup keys too): the driver gets
    # ids and small columns, the text stays in the object store until the pipeline assembles tasks.
    reader = SeedReader(config, lambda: init_ray(config.ray)) if spec.reads_seeds else None
    plan = plan_run(config, selector, None, reader)
    log.info("read %d %s records from %s", plan.read, spec.records, ", ".join(config.seeds.paths))
    # derived a slice at a time: the driver holds seed indices, never per-language text
    planned_ids = plan.planned_ids()
    folder = prepare_run_dir(config, planned_ids)
    if selector:
        selector.save(folder)  # a rerun plans the same rows from these clusters, without embedding
    store = RowStore(folder, config.run.shard_rows, config.run.shard_seconds)
    if store.clean_partial():
        log.info("removed partial shards left by an interrupted run")
    done = store.done_id_array()
    todo = plan.tasks.without(done)  # an Arrow anti-join of the plan's ids against the shards' ids
    decided_ids = pa.array([row["id"] for row in plan.decided], pa.string())
    pending_bad = (
        [
            row
            for row, seen in zip(plan.decided, pc.is_in(decided_ids, value_set=done.combine_chunks()).to_pylist())
            if not seen
        ]
        if len(done)
        else plan.decided
    )
    if pending_bad:
        store.write(to_table(pending_bad))
    log.info(
        "plan: %d rows over %d languages; %d already in %s, %d to generate",
        len(planned_ids),
        len(config.languages.targets),
        len(done),
        folder,
        todo.num_rows,
    )
    return PlannedRun(plan, planned_ids, folder, store, todo, selector)


def qualify_languages(config: Config, planned: PlannedRun, dry_run: bool = False) -> tuple[PlannedRun, list]:
    """The probe: the first qualify.probe_rows planned rows of each language, generated (those not
    written yet) and read back; the languages under qualify.min_accept have the rest of their
    plan rejected translator_unqualified, a slice at a time (not in a dry run, which decides
    nothing beyond its probe). Returns the run with what is left to do (the qualified languages'
    other rows) and the verdicts."""
    from engine.qualify import PROBE_COLUMNS, qualify, render_table

    probe = planned.plan.tasks.first_per_language(config.qualify.probe_rows)
    probe_todo = probe.without(planned.store.done_id_array())  # a rerun reads its probe back
    if probe_todo.num_rows:
        log.info(
            "qualification: probing %d rows over %d languages before the rest of the plan",
            probe_todo.num_rows,
            len(probe_todo.rows_per_language()),
        )
        generate(config, planned, probe_todo)
    probe_ids = pa.chunked_array(list(probe.id_chunks()), pa.string()).combine_chunks()
    rows = planned.store.read_rows(probe_ids, PROBE_COLUMNS)
    verdicts = qualify(config, planned.plan.tasks.rows_per_language(), rows)
    for line in render_table(verdicts, config):
        log.info("%s", line)
    rest = planned.todo.without(probe_ids)
    failed = [v.lang for v in verdicts if not v.qualified]
    if failed and not dry_run:
        write_unqualified(planned, rest.for_languages(failed), config)
    todo = rest.for_languages([v.lang for v in verdicts if v.qualified])
    return PlannedRun(
        planned.plan, planned.planned_ids, planned.folder, planned.store, todo, planned.selector
    ), verdicts


def write_unqualified(planned: PlannedRun, tasks: TaskPlan, config: Config) -> None:
    """The planned rows of languages that did not qualify, as rejected rows with their reason,
    a shard of at most run.shard_rows rows at a time (their text assembled a slice at a time)."""
    from engine.qualify import unqualified_reason

    step, version = config.run.shard_rows, prompt_version(config)
    for start in range(0, tasks.num_rows, step):
        rows = []
        # its id is the decided row's: the same seed, language, recipe, version
        for task in tasks.tasks(start, step).to_pylist():
            seed_id, recipe, lang = task.pop("seed_id"), task.pop("recipe"), task.pop("lang")
            rows.append(decided_row(seed_id, recipe, version, unqualified_reason(config, lang), lang, **task))
        planned.store.write(to_table(rows))
    log.info("%d planned rows of languages that did not qualify written as rejected", tasks.num_rows)


# ----------------------------------------------------------------------------------------------------
# The generation stage: an actor pool of TranslateActor (actors/engines/translate.py) over the
# plan's task blocks, its finished rows written to Parquet shards by Ray tasks as they come, with a
# progress line per shard; the driver handles references and counts, never the rows.
# ----------------------------------------------------------------------------------------------------


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
        """A shard saved: its rows, accepted rows and completion tokens (actors/dataflow/synthesis.py)."""
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


# ----------------------------------------------------------------------------------------------------
# ShardWriter: the generation stage's rows written to the run folder by Ray workers, so that the
# driver never reads a generated row.
#
#     writer = ShardWriter(folder, shard_rows, shard_seconds, on_written=progress.update)
#     for bundle in dataset.iter_internal_ref_bundles():   # references and row counts, not rows
#         writer.add(bundle)
#     writer.flush()
#
# The driver buffers references to finished blocks by the store's rule (engine.runfolder.ShardBuffer:
# `shard_rows` rows or `shard_seconds` of age) and hands each full buffer to a Ray task that
# fetches those blocks on its node, writes them as one shard (whole or not at all) and returns
# counts. A kill loses what a kill lost before: the rows in the actors, the buffer, and the shard
# being written.
#
# Why not iter_batches in the driver: every block the driver reads maps object store pages into it,
# and they stay resident after the block is freed (157 MiB for 200,000 rows of 3 KB in 512-row
# blocks, `python -m benchmarks.block_memory`), so its RSS grew with the run's size.
# ----------------------------------------------------------------------------------------------------


WRITES_IN_FLIGHT = 2  # shards being written at once; a third waits for the oldest


def write_blocks(root: str, fs, name: str, slices: list[tuple[int, int] | None], *blocks) -> dict:
    """Shard `name` from `blocks` (resolved on this worker, from its node's object store when they
    are there), each cut to its slice; returns the shard's name and counts. The name comes from
    the driver, so a write Ray retries after its worker died replaces the same shard: no id is
    ever saved twice."""
    from ray.data.block import BlockAccessor

    tables = []
    for block, part in zip(blocks, slices):
        table = BlockAccessor.for_block(block).to_arrow()
        tables.append(table if part is None else table.slice(part[0], part[1] - part[0]))
    table = pa.concat_tables(tables)
    write_shard(RunFolder(root, fs), table, name)
    return {
        "shard": name,
        "rows": table.num_rows,
        "accepted": pc.sum(pc.equal(table.column("status"), ACCEPTED)).as_py() or 0,
        "completion_tokens": pc.sum(table.column("completion_tokens")).as_py() or 0,
    }


class ShardWriter:
    """Coalesces block references into shards and has them written by `write_blocks` tasks;
    `on_written(counts)` is called, in order, as each shard is saved."""

    def __init__(
        self,
        folder: RunFolder,
        shard_rows: int,
        shard_seconds: float,
        on_written: Callable[[dict], None],
        in_flight: int = WRITES_IN_FLIGHT,
    ):
        import ray

        self.folder, self.on_written, self.in_flight = folder, on_written, in_flight
        # A Ray task of no CPU: a pool that reserves every CPU must still get its rows saved.
        self.write_task = ray.remote(num_cpus=0)(write_blocks)
        self.buffer = ShardBuffer(shard_rows, shard_seconds)
        self.writing: deque = deque()

    def add(self, bundle, now: float | None = None) -> None:
        """Buffer a Ray Data RefBundle's blocks; starts a shard's write when the buffer is due."""
        for entry, part in zip(bundle.blocks, bundle.slices or [None] * len(bundle.blocks)):
            span = None if part is None else (part.start_offset, part.end_offset)
            rows = entry.metadata.num_rows if part is None else part.num_rows
            if rows == 0:
                continue  # nothing to save (None: not counted, written all the same)
            if self.buffer.add((entry.ref, span), rows or 0, now):
                self.submit()

    def submit(self) -> None:
        """Start writing what is buffered as one shard (nothing when it is empty); waits for the
        oldest write while more than `in_flight` are running."""
        items = self.buffer.take()
        if items:
            refs, spans = [ref for ref, _ in items], [span for _, span in items]
            self.writing.append(
                self.write_task.remote(self.folder.root, self.folder.fs, new_shard_name(), spans, *refs)
            )
        while len(self.writing) > self.in_flight:
            self.wait_oldest()

    def wait_oldest(self) -> None:
        import ray

        counts = ray.get(self.writing.popleft())
        self.on_written(counts)

    def flush(self) -> None:
        """Write what is buffered and wait until every shard started is saved."""
        self.submit()
        while self.writing:
            self.wait_oldest()


# ----------------------------------------------------------------------------------------------------
# Finalise a synthesis run: the shards checked against the plan, output dedup and the recipe's
# finalise steps, accepted / rejected datasets and the report, one language at a time (as Ray tasks
# when the job runs Ray: the driver keeps figures and a sample, never the run's rows).
# ----------------------------------------------------------------------------------------------------


def select_embedder(select):
    """The encoder of config.select (a recipe's finalise steps load it only when they need it)."""
    from actors.engines.embed import Embedder

    return Embedder(select.embed_model, select.batch_size, select.device, select.threads)


def language_map():
    """How finalise runs its languages: as Ray tasks when this process runs Ray (each worker holds
    one language's rows), else here, one after another."""
    ray = sys.modules.get("ray")  # not imported: not running either (and not worth importing to ask)
    return ray_map if ray is not None and ray.is_initialized() else None


def finalise(
    run_dir: RunFolder | Path,
    config: Config,
    planned_ids,
    bad_records: int,
    seconds: float,
    selection: SeedSelection | None = None,
) -> dict:
    """Check the shards against the plan and write the outputs, the report and its page, one
    language at a time (engine/run_outputs.py): the driver never holds the run's rows."""
    folder = RunFolder.of(run_dir)
    steps = []
    if config.dedup.exact:
        steps.append(reject_duplicate_outputs)  # the same output twice in a language: before building
    near = None
    if config.dedup.output_near_threshold is not None:  # the same output in other words (the gate's vectors)
        if config.quality.adequacy:
            near = NearDuplicateOutputs(config.dedup.output_near_threshold)
            steps.append(near)
        else:
            log.info("near-duplicate outputs not checked: quality.adequacy is off, so rows carry no output_embedding")
    # X-Instruction's budget
    steps += recipe_spec(config).finalise_steps(config, partial(select_embedder, config.select))
    seed_clusters = selection.clusters if selection and selection.clusters else None
    try:
        done = finalise_outputs(folder, planned_ids, steps, seed_clusters, DEFAULT_SAMPLES_PER_LANGUAGE, language_map())
    except PlanMismatch as error:
        raise RuntimeError(f"run folder {folder} does not match its plan: {error}") from error
    if near is not None:
        if done.stats["languages_without_vectors"]:
            log.info(
                "near-duplicate outputs not checked in %d language(s): accepted rows carry no output_embedding "
                "(the adequacy gate makes it; quality.adequacy off?)",
                done.stats["languages_without_vectors"],
            )
        log.info(
            "near-duplicate outputs: %d of %d accepted rows with a vector rejected (cosine >= %.3f)",
            done.stats["rejected"],
            done.stats["compared"],
            near.threshold,
        )
    report = report_from_figures(done.figures, len(planned_ids), bad_records, seconds, redacted(config))
    if seed_clusters:
        report["clusters"] = cluster_figures_from(done.figures, selection.clusters, selection.k)
        folder.write_bytes("plot-clusters.png", plot_clusters(report["clusters"]))
    folder.write_text("report.json", json.dumps(report, indent=2, ensure_ascii=False))
    folder.write_text("report.md", render_markdown(report))
    log.info("report page: %s", write_report_page(folder, report, done.figures, done.sample.rows))
    return report


def finish(config: Config, planned: PlannedRun, seconds: float) -> dict:
    """finalise over the planned run: its bad records counted, its seed selection's clusters."""
    selection = planned.selector.selection if planned.selector else None
    bad_records = sum(1 for row in planned.plan.decided if reason_kind(row["reason"]) == "bad_record")  # not duplicates
    return finalise(planned.folder, config, planned.planned_ids, bad_records, seconds, selection)


# ----------------------------------------------------------------------------------------------------
# Finalise's languages as Ray tasks (engine/run_outputs.py: `finalise_outputs(..., map_languages=ray_map)`).
#
# Each task reads one staged language, runs the steps (dedup, budget), writes that language's
# Parquet files and JSONL part and returns its figures and sample: the driver never holds a
# language's rows, a worker holds one language at a time. Tasks reserve one CPU each: they start
# after the generation pool has let its CPUs go.
# ----------------------------------------------------------------------------------------------------


def run_one(fn: Callable, item):
    return fn(item)


def ray_map(fn: Callable, items: list) -> Iterator:
    """fn(item) for every item on Ray, results in the items' order. `fn` goes to the object store
    once (it carries the steps and the seeds' cluster labels), not once per task."""
    import ray

    remote = ray.remote(num_cpus=1)(run_one)
    shared = ray.put(fn)
    refs = [remote.remote(shared, item) for item in items]
    for ref in refs:
        yield ray.get(ref)
