"""The recipe registry: the one place that maps `recipe:` in the config to code.

Each recipe is a `RecipeSpec` in RECIPES: its row machine's recipe (prompts, checks, judge
rubric), its planner, what it needs of the seed reading and selection, its added quality checks
and its own finalise steps. The prompt version that every row id hashes is computed here, once
(`prompt_version`). Everything else asks `recipe_spec(config)` instead of comparing config.recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.config import Config
from engine.inputs.plan import PlannedIds, TaskPlan, build_task_plan, build_text_task_plan
from engine.inputs.seeds import LANGUAGE_VERDICT, BadRecord, load_seed_table, load_texts
from engine.languages import resolve_languages
from engine.protocols import ExtraCheck, Generator, LanguageIdentifier, MachineTranslator, SeedTable, TextEncoder
from engine.records import decided_row
from engine.rows.refine import RefinementLoop
from engine.rows.translate import TranslationRecipe
from engine.rows.xinstruct import InstructionRecipe
from engine.text.checks import MAY_STAY_UNCHANGED, seed_language_reason


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


# A finalise step: one language's rows (or several whole languages') in, the same rows out,
# some perhaps rejected (engine/run_outputs.py runs them).
Step = Callable[[pa.Table], pa.Table]


@dataclass(frozen=True)
class RecipeSpec:
    """What one recipe is, for every stage of the job."""

    name: str
    recipe: type  # engine.rows.refine.Recipe: prompts, checks, judge rubric of the row machine
    # The planner: (config, prompt version, select_seeds, langid, read_seeds) → RunPlan (see plan_run).
    plan: Callable[..., RunPlan]
    records: str  # what its input records are called in the job's log: "seed" or "text"
    reads_seeds: bool  # the job reads the seeds on Ray Data (actors.dataflow.seeds.SeedReader)
    checks_seed_language: bool  # the reader rejects seeds that are not English (validation.seed_language_check)
    selects_seeds: bool  # dedup and clusters of the seeds before planning (actors.dataflow.seeds.SeedSelector)
    # (config, encoder or None) → the checks added to the recipe's own: the adequacy gate (engine/text/adequacy.py).
    quality_checks: Callable[[Config, TextEncoder | None], list[ExtraCheck]]
    # Its gate's similarity thresholds come from the encoder's calibration (engine/calibration.py
    # resolves them per target); X-Instruction's check has a threshold of its own.
    calibrated_gate: bool
    # (config, load_embedder) → finalise steps of this recipe, after the shared dedup steps;
    # load_embedder() gives an encoder with encode(texts) (actors.engines.embed.Embedder), called only when needed.
    finalise_steps: Callable[[Config, Callable[[], object]], list[Step]]


def recipe_spec(config: Config) -> RecipeSpec:
    return RECIPES[config.recipe]


def prompt_version(config: Config) -> str:
    """Goes into every row's id and provenance: the draft prompt's version, plus the judge's when
    judging is on, the back-translation's when the round trip is (for a recipe that has one),
    and the machine translator's part where config.translators routes languages to it: a changed
    prompt, judge, check, backend, model or routing means new rows. It reads the routing, not the
    targets, so a pool given some of the targets writes the plan's version."""
    recipe = recipe_spec(config).recipe
    version = recipe.draft_version if config.refine.rounds == 0 else f"{recipe.draft_version}+{recipe.judge_version}"
    back = getattr(recipe, "round_trip_version", None) if config.quality.round_trip else None
    if back is not None:
        version = f"{version}+{back}"
    if "mt" not in config.translators.values():
        return version
    routes = ",".join(f"{code}={translator}" for code, translator in sorted(config.translators.items()))
    return f"{version}+mt({config.mt.backend}:{config.mt.model}:{routes})"


def row_machine(
    config: Config,
    generator: Generator | None,
    langid: LanguageIdentifier,
    checks: Sequence[ExtraCheck] = (),
    machine: MachineTranslator | None = None,
) -> RefinementLoop:
    """The refinement loop with the recipe's prompts and checks; `checks` run after the recipe's
    own; `machine` drafts the languages config.translators routes to mt (a recipe that can take
    machine drafts: translation)."""
    recipe = recipe_spec(config).recipe(config, langid)
    machine = machine if hasattr(recipe, "machine_fields") else None
    return RefinementLoop(recipe, config, generator, prompt_version(config), checks, machine)


def plan_run(config: Config, select_seeds=None, langid: LanguageIdentifier | None = None, read_seeds=None) -> RunPlan:
    """The run's plan, by the recipe's planner. select_seeds (actors.dataflow.seeds.SeedSelector,
    sphinx only): seed table → dedup and clusters, applied before planning so no LLM call is spent
    on a duplicate. langid (sphinx only): seeds whose instruction clearly is not English are
    rejected before planning. read_seeds (sphinx only): (paths, on_bad_record, limit) → (seed
    table, bad records), by default load_seed_table in this process; the job's
    (actors.dataflow.seeds.SeedReader) reads on Ray Data and may bring each seed's language verdict
    as a LANGUAGE_VERDICT column."""
    return recipe_spec(config).plan(config, prompt_version(config), select_seeds, langid, read_seeds)


def bad_rows(bad: list[BadRecord], recipe: str, version: str) -> list[dict]:
    return [decided_row(record.id, recipe, version, record.reason, source=record.source) for record in bad]


def plan_seeds(config: Config, version: str, select_seeds, langid: LanguageIdentifier | None, read_seeds) -> RunPlan:
    """sPhinX: every seed read, the ones that are not English rejected, the rest selected, then
    sampled per language by tier quota."""
    seeds_cfg, plan_cfg, recipe = config.seeds, config.plan, config.recipe
    seeds: SeedTable
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
            decided_row(
                row["id"],
                recipe,
                version,
                reasons[i],
                source=row["source"],
                src_instruction=row["instruction"],
                src_input=row["input"],
                src_output=row["output"],
            )
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
    languages = resolve_languages(config.languages.targets)
    tasks = build_task_plan(kept, languages, plan_cfg.mode, plan_cfg.quotas, plan_cfg.seed, recipe, version, stratify)
    duplicates = selection.duplicate_rows(recipe, version) if selection else []
    return RunPlan(tasks, bad_rows(bad, recipe, version) + not_english + duplicates, read)


def plan_texts(config: Config, version: str, select_seeds=None, langid=None, read_seeds=None) -> RunPlan:
    """X-Instruction: target-language texts, each language sampling its own by tier quota; a text
    in no target language is a decided row."""
    seeds_cfg, plan_cfg, recipe = config.seeds, config.plan, config.recipe
    texts, bad = load_texts(seeds_cfg.paths, seeds_cfg.on_bad_record, seeds_cfg.limit)
    languages = resolve_languages(config.languages.targets)
    tasks, untargeted = build_text_task_plan(texts, languages, plan_cfg.quotas, plan_cfg.seed, recipe, version)
    decided = [
        decided_row(
            row["seed_id"],
            recipe,
            version,
            row["reason"],
            row["lang"],
            src_output=row["src_output"],
            source=row["source"],
        )
        for row in untargeted
    ]
    return RunPlan(tasks, decided + bad_rows(bad, recipe, version), len(texts) + len(bad))


def translation_checks(config: Config, encoder: TextEncoder | None = None) -> list[ExtraCheck]:
    """The adequacy gate for translation. `encoder` is a multilingual engine.protocols.TextEncoder;
    without one only the deterministic number and sentence checks run."""
    from engine.text.adequacy import AdequacyCheck

    return [AdequacyCheck(encoder, config.quality, MAY_STAY_UNCHANGED)]


def instruction_checks(config: Config, encoder: TextEncoder | None = None) -> list[ExtraCheck]:
    """X-Instruction's gate: does the instruction fit the text (needs the encoder; none without)."""
    from engine.text.adequacy import InstructionFitCheck

    return [InstructionFitCheck(encoder, config.quality)] if encoder is not None and config.quality.adequacy else []


def no_steps(config: Config, load_embedder) -> list[Step]:
    return []


def pair_budget(config: Config, load_embedder) -> list[Step]:
    """X-Instruction's diversification: a language over select.budget_per_language keeps the pairs
    nearest each centroid first, across clusters of its English instructions. The embedder is
    loaded once, and only when a language is over budget."""
    from engine.selection.budget import apply_budget_table

    select = config.select
    held: list = []

    def embed(texts: list[str]):
        if not held:
            held.append(load_embedder())
        return held[0].encode(texts)

    return [
        lambda table: apply_budget_table(
            table, select.budget_per_language, embed, select.clusters, select.sample_size, select.seed
        )
    ]


RECIPES: dict[str, RecipeSpec] = {
    "sphinx": RecipeSpec(
        name="sphinx",
        recipe=TranslationRecipe,
        plan=plan_seeds,
        records="seed",
        reads_seeds=True,
        checks_seed_language=True,
        selects_seeds=True,
        quality_checks=translation_checks,
        calibrated_gate=True,
        finalise_steps=no_steps,
    ),
    "xinstruction": RecipeSpec(
        name="xinstruction",
        recipe=InstructionRecipe,
        plan=plan_texts,
        records="text",
        reads_seeds=False,
        checks_seed_language=False,
        selects_seeds=False,
        quality_checks=instruction_checks,
        calibrated_gate=False,
        finalise_steps=pair_budget,
    ),
}


def quality_checks(config: Config, encoder: TextEncoder | None = None) -> list[ExtraCheck]:
    """The recipe's added checks (the adequacy gate), for row_machine."""
    return recipe_spec(config).quality_checks(config, encoder)
