"""Which row state machine, prompt version and plan a recipe uses: the one place that maps
`recipe:` in the config to code."""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import Config
from engine.selection.dedup_rows import duplicate_rows
from engine.protocols import Generator, LanguageIdentifier
from engine.languages import resolve_languages
from engine.inputs.plan import build_plan, build_text_plan
from engine.records import REJECTED, row_id
from engine.inputs.seeds import BadRecord, load_seeds, load_texts
from engine.rows.validate import seed_language_reason
from engine.rows.refine import ExtraCheck, recipe_version
from engine.rows.translate import SelectiveTranslator, TranslationRecipe
from engine.rows.xinstruct import InstructionRecipe, InstructionWriter


def recipe_class(config: Config) -> type:
    """The recipe (prompts, checks, judge rubric) that `recipe:` names; engine.rows.refine runs it."""
    if config.recipe == "xinstruction":
        return InstructionRecipe
    return TranslationRecipe


def prompt_version(config: Config) -> str:
    """Goes into every row's id and provenance: a changed prompt or judge means new rows."""
    return recipe_version(recipe_class(config), config.refine.rounds)


def row_machine(config: Config, generator: Generator, langid: LanguageIdentifier, checks: Sequence[ExtraCheck] = ()):
    """The refinement loop with the recipe's prompts and checks; `checks` run after the built-in ones."""
    if config.recipe == "xinstruction":
        return InstructionWriter(config, generator, langid, checks)
    return SelectiveTranslator(config, generator, langid, checks)


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


def plan_tasks(config: Config, select_seeds=None, langid: LanguageIdentifier | None = None) -> tuple[list[dict], list[dict], int]:
    """(tasks for the model, rows already decided without it, inputs read).

    select_seeds (jobs.seed_selection.SeedSelector, sphinx only): seeds → dedup and clusters,
    applied before planning so no LLM call is spent on a duplicate. langid (sphinx only): seeds
    whose instruction clearly is not English are rejected before planning."""
    languages = resolve_languages(config.languages.targets)
    version = prompt_version(config)
    seeds_cfg, plan_cfg = config.seeds, config.plan
    if config.recipe == "xinstruction":
        texts, bad = load_texts(seeds_cfg.paths, seeds_cfg.on_bad_record, seeds_cfg.limit)
        tasks, untargeted = build_text_plan(texts, languages, plan_cfg.quotas, plan_cfg.seed, config.recipe, version)
        decided = [{**row, "status": REJECTED} for row in untargeted] + bad_rows(bad, config.recipe)
        return tasks, decided, len(texts) + len(bad)
    seeds, bad = load_seeds(seeds_cfg.paths, seeds_cfg.on_bad_record, seeds_cfg.limit)
    read = len(seeds) + len(bad)
    not_english = []
    if langid is not None:
        reasons = {seed.id: seed_language_reason(seed.instruction, langid) for seed in seeds}
        not_english = [
            {"id": row_id(seed.id, "en", config.recipe, version), "seed_id": seed.id, "recipe": config.recipe,
             "status": REJECTED, "reason": reasons[seed.id], "source": seed.source, "src_instruction": seed.instruction,
             "src_input": seed.input, "src_output": seed.output}
            for seed in seeds if reasons[seed.id]
        ]
        seeds = [seed for seed in seeds if not reasons[seed.id]]
    selection = select_seeds(seeds) if select_seeds else None
    kept, clusters = (selection.kept, selection.clusters) if selection else (seeds, None)
    stratified_by = clusters if selection and selection.stratify else None
    tasks = build_plan(kept, languages, plan_cfg.mode, plan_cfg.quotas, plan_cfg.seed, config.recipe, version, stratified_by)
    for task in tasks if clusters else []:
        task["cluster"] = clusters[task["seed_id"]]  # the row machines carry it into the row
    duplicates = duplicate_rows(selection.duplicates, seeds, config.recipe) if selection else []
    return tasks, bad_rows(bad, config.recipe) + not_english + duplicates, read


def bad_rows(bad: list[BadRecord], recipe: str) -> list[dict]:
    return [
        {"id": record.id, "seed_id": record.id, "recipe": recipe, "status": REJECTED, "reason": record.reason, "source": record.source}
        for record in bad
    ]
