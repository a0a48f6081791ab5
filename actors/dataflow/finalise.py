"""Finalise a synthesis run: the shards checked against the plan, output dedup and the recipe's
finalise steps, accepted / rejected datasets and the report, one language at a time (as Ray tasks
when the job runs Ray: the driver keeps figures and a sample, never the run's rows).
"""

from __future__ import annotations

import json
import logging
import sys
from functools import partial
from pathlib import Path

from actors.dataflow.planning import PlannedRun
from actors.dataflow.seed_selection import SeedSelection
from engine.config import Config, redacted
from engine.recipes import recipe_spec
from engine.report.cluster_plot import plot_clusters
from engine.report.counts import cluster_figures_from, reason_kind, render_markdown, report_from_figures
from engine.report.page import write_report_page
from engine.report.samples import DEFAULT_SAMPLES_PER_LANGUAGE
from engine.run_outputs import PlanMismatch, finalise_outputs
from engine.runfolder import RunFolder
from engine.selection.dedup_rows import NearDuplicateOutputs, reject_duplicate_outputs

log = logging.getLogger("babelforge.synthesize")


def select_embedder(select):
    """The encoder of config.select (a recipe's finalise steps load it only when they need it)."""
    from actors.engines.embed import Embedder

    return Embedder(select.embed_model, select.batch_size, select.device, select.threads)


def language_map():
    """How finalise runs its languages: as Ray tasks when this process runs Ray (each worker holds
    one language's rows), else here, one after another."""
    ray = sys.modules.get("ray")  # not imported: not running either (and not worth importing to ask)
    if ray is None or not ray.is_initialized():
        return None
    from actors.dataflow.finalise_tasks import ray_map

    return ray_map


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
    folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
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
    steps += recipe_spec(config).finalise_steps(
        config, partial(select_embedder, config.select)
    )  # X-Instruction's budget
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
