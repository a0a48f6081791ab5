"""The plan of a synthesis run on Ray: seeds read and selected on Ray Data, (seed, language)
tasks planned, the run folder made or checked against the plan, the rows decided before any model
call written, and the qualification probe that decides which languages run the rest of their plan.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from actors.dataflow.generation import generate
from actors.dataflow.ray_session import init_ray
from actors.dataflow.seed_reading import SeedReader
from actors.dataflow.seed_selection import SeedSelector
from engine.config import Config, redacted
from engine.inputs.plan import PlannedIds, TaskPlan, plan_fingerprint
from engine.recipes import RunPlan, plan_run, prompt_version, recipe_spec
from engine.records import decided_row, to_table
from engine.runfolder import RunFolder
from engine.store import RowStore

log = logging.getLogger("babelforge.synthesize")


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
    planned_ids = (
        plan.planned_ids()
    )  # derived a slice at a time: the driver holds seed indices, never per-language text
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
        for task in tasks.tasks(
            start, step
        ).to_pylist():  # its id is the decided row's: the same seed, language, recipe, version
            seed_id, recipe, lang = task.pop("seed_id"), task.pop("recipe"), task.pop("lang")
            rows.append(decided_row(seed_id, recipe, version, unqualified_reason(config, lang), lang, **task))
        planned.store.write(to_table(rows))
    log.info("%d planned rows of languages that did not qualify written as rejected", tasks.num_rows)
