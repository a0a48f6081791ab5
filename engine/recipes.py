"""Which row state machine, prompt version and plan a recipe uses: the one place that maps
`recipe:` in the config to code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.config import Config
from engine.protocols import Generator, LanguageIdentifier, MachineTranslator
from engine.languages import resolve_languages
from engine.inputs.plan import PlannedIds, TaskPlan, build_task_plan, build_text_task_plan
from engine.records import REJECTED, row_id
from engine.inputs.seeds import LANGUAGE_VERDICT, BadRecord, load_seed_table, load_texts
from engine.rows.validate import seed_language_reason
from engine.rows.refine import ExtraCheck, recipe_version, with_routing
from engine.rows.translate import SelectiveTranslator, TranslationRecipe
from engine.rows.xinstruct import InstructionRecipe, InstructionWriter


def recipe_class(config: Config) -> type:
    """The recipe (prompts, checks, judge rubric) that `recipe:` names; engine.rows.refine runs it."""
    if config.recipe == "xinstruction":
        return InstructionRecipe
    return TranslationRecipe


def prompt_version(config: Config) -> str:
    """Goes into every row's id and provenance: a changed prompt, judge or routing of languages
    to the machine translator means new rows."""
    return with_routing(recipe_version(recipe_class(config), config.refine.rounds, config.quality.round_trip), config)


def row_machine(config: Config, generator: Generator | None, langid: LanguageIdentifier, checks: Sequence[ExtraCheck] = (),
                machine: MachineTranslator | None = None):
    """The refinement loop with the recipe's prompts and checks; `checks` run after the built-in
    ones; `machine` drafts the languages config.translators routes to mt (translation only)."""
    if config.recipe == "xinstruction":
        return InstructionWriter(config, generator, langid, checks)
    return SelectiveTranslator(config, generator, langid, checks, machine)


def quality_checks(config: Config, encoder=None) -> list[ExtraCheck]:
    """The adequacy gate (engine/text/adequacy.py) as checks for row_machine. `encoder` is a
    multilingual engine.protocols.TextEncoder; without one only the deterministic number and
    sentence checks run (translation), and X-Instruction has none."""
    from engine.rows.validate import MAY_STAY_UNCHANGED
    from engine.text.adequacy import AdequacyCheck, InstructionFitCheck

    quality = config.quality
    if config.recipe == "xinstruction":
        return [InstructionFitCheck(encoder, quality)] if encoder is not None and quality.adequacy else []
    return [AdequacyCheck(encoder, quality, MAY_STAY_UNCHANGED)]


@dataclass(frozen=True)
class RunPlan:
    """What a run does: `tasks` for the model (ids and a columnar seed table, no per-language
    text), `decided` rows already rejected without it, and how many input records were read."""

    tasks: TaskPlan
    decided: list[dict]
    read: int

    def planned_ids(self) -> PlannedIds:
        """Every id the run must end with, the tasks' and the decided rows': derived a slice at a
        time where needed (len, plan_fingerprint, id_chunks), never all held by the driver."""
        return PlannedIds(self.tasks, pa.array([row["id"] for row in self.decided], pa.string()))


def plan_run(config: Config, select_seeds=None, langid: LanguageIdentifier | None = None, read_seeds=None) -> RunPlan:
    """The run's plan. select_seeds (actors.seed_selection.SeedSelector, sphinx only): seed table →
    dedup and clusters, applied before planning so no LLM call is spent on a duplicate. langid
    (sphinx only): seeds whose instruction clearly is not English are rejected before planning.
    read_seeds (sphinx only): (paths, on_bad_record, limit) → (seed table, bad records), by
    default load_seed_table in this process; the job's (actors.seed_reading.SeedReader) reads on
    Ray Data and may bring each seed's language verdict as a LANGUAGE_VERDICT column."""
    languages = resolve_languages(config.languages.targets)
    version = prompt_version(config)
    seeds_cfg, plan_cfg = config.seeds, config.plan
    if config.recipe == "xinstruction":
        texts, bad = load_texts(seeds_cfg.paths, seeds_cfg.on_bad_record, seeds_cfg.limit)
        tasks, untargeted = build_text_task_plan(texts, languages, plan_cfg.quotas, plan_cfg.seed, config.recipe, version)
        decided = [{**row, "status": REJECTED} for row in untargeted] + bad_rows(bad, config.recipe)
        return RunPlan(tasks, decided, len(texts) + len(bad))
    seeds, bad = (read_seeds or load_seed_table)(seeds_cfg.paths, seeds_cfg.on_bad_record, seeds_cfg.limit)
    read = seeds.num_rows + len(bad)
    not_english = []
    reasons = None
    if LANGUAGE_VERDICT in seeds.column_names:
        reasons = seeds.column(LANGUAGE_VERDICT).to_pylist()
    elif langid is not None:
        reasons = [seed_language_reason(text, langid) for text in seeds.column("instruction").to_pylist()]
    if reasons is not None:
        rejected = [i for i, reason in enumerate(reasons) if reason]
        not_english = [
            {"id": row_id(row["id"], "en", config.recipe, version), "seed_id": row["id"], "recipe": config.recipe,
             "status": REJECTED, "reason": reasons[i], "source": row["source"], "src_instruction": row["instruction"],
             "src_input": row["input"], "src_output": row["output"]}
            for i, row in zip(rejected, seeds.take(pa.array(rejected, pa.int64())).to_pylist())
        ]
        seeds = seeds.filter(pa.array([not reason for reason in reasons], pa.bool_()))
    selection = select_seeds(seeds) if select_seeds else None
    kept = selection.kept if selection else seeds
    labels = None
    if selection and selection.clusters:
        labels = np.array([selection.clusters[seed_id] for seed_id in kept.column("id").to_pylist()], dtype=np.int64)
        kept = kept.append_column("cluster", pa.array(labels, pa.int64()))  # the row machines carry it into the row
    stratify = labels if selection and selection.stratify else None
    tasks = build_task_plan(kept, languages, plan_cfg.mode, plan_cfg.quotas, plan_cfg.seed, config.recipe, version, stratify)
    duplicates = selection.duplicate_rows(config.recipe) if selection else []
    return RunPlan(tasks, bad_rows(bad, config.recipe) + not_english + duplicates, read)


def plan_tasks(config: Config, select_seeds=None, langid: LanguageIdentifier | None = None) -> tuple[list[dict], list[dict], int]:
    """plan_run with the tasks as Python rows (tasks for the model, rows already decided, inputs
    read), for small callers; the job itself keeps the plan columnar."""
    plan = plan_run(config, select_seeds, langid)
    return plan.tasks.to_pylist(), plan.decided, plan.read


def bad_rows(bad: list[BadRecord], recipe: str) -> list[dict]:
    return [
        {"id": record.id, "seed_id": record.id, "recipe": recipe, "status": REJECTED, "reason": record.reason, "source": record.source}
        for record in bad
    ]
