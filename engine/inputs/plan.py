"""Plan which seeds each language translates (sPhinX per-language sampling).

Each language draws its own sample, sized by its resource tier, so different languages see
different seeds. The sample depends only on (plan seed, language, the seed list in order), so the
same config always gives the same plan, and adding a language leaves the other languages' samples
unchanged (adding, removing or reordering seeds draws every sample anew).

With seed clusters (select.by: clusters) each language's sample is stratified instead
(engine.cluster.stratified_select): a quota of q covers min(q, k) clusters rather than whatever a
uniform draw happens to hit, and the rest of the quota follows the cluster sizes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

from engine.reasons import make_reason
from engine.selection.cluster import stratified_select
from engine.languages import Language
from engine.records import row_id
from engine.inputs.seeds import Seed


def language_rng(plan_seed: int, lang: str) -> random.Random:
    digest = hashlib.sha256(f"{plan_seed}:{lang}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sample_for_language(seeds: Sequence[Seed], lang: str, quota: int, plan_seed: int) -> list[Seed]:
    if quota >= len(seeds):
        return list(seeds)
    rng = language_rng(plan_seed, lang)
    chosen = sorted(rng.sample(range(len(seeds)), quota))
    return [seeds[i] for i in chosen]


def sample_stratified_for_language(seeds: Sequence[Seed], clusters: Mapping[str, int], lang: str, quota: int, plan_seed: int) -> list[Seed]:
    """Like sample_for_language, stratified over the seeds' clusters (seed id → cluster)."""
    if quota >= len(seeds):
        return list(seeds)
    draw_seed = language_rng(plan_seed, lang).getrandbits(64)
    chosen = stratified_select([clusters[seed.id] for seed in seeds], quota, draw_seed)
    return [seeds[i] for i in chosen]


def build_plan(
    seeds: Sequence[Seed],
    languages: Sequence[Language],
    mode: str,
    quotas: dict[str, int],
    plan_seed: int,
    recipe: str,
    prompt_version: str,
    clusters: Mapping[str, int] | None = None,
) -> list[dict]:
    """One task row per (seed, language), columns as engine.records.TASK_COLUMNS.

    `clusters` (seed id → cluster) makes per-language samples stratified instead of uniform."""
    tasks = []
    for language in languages:
        quota = quotas[language.tier]
        if mode == "all":
            chosen = list(seeds)
        elif clusters is not None:
            chosen = sample_stratified_for_language(seeds, clusters, language.code, quota, plan_seed)
        else:
            chosen = sample_for_language(seeds, language.code, quota, plan_seed)
        for seed in chosen:
            tasks.append(
                {
                    "id": row_id(seed.id, language.code, recipe, prompt_version),
                    "seed_id": seed.id,
                    "recipe": recipe,
                    "lang": language.code,
                    "src_instruction": seed.instruction,
                    "src_input": seed.input,
                    "src_output": seed.output,
                    "source": seed.source,
                }
            )
    return tasks


def build_text_plan(texts, languages: Sequence[Language], quotas: dict[str, int], plan_seed: int, recipe: str, prompt_version: str) -> tuple[list[dict], list[dict]]:
    """X-Instruction: each language samples its own texts by tier quota. Returns (tasks, rows for
    texts whose language is not a target), so that nothing read is lost."""
    by_lang: dict[str, list] = {}
    for text in texts:
        by_lang.setdefault(text.lang, []).append(text)
    targets = {language.code for language in languages}
    tasks = []
    for language in languages:
        pool = by_lang.get(language.code, [])
        chosen = pool if quotas[language.tier] >= len(pool) else [pool[i] for i in sorted(language_rng(plan_seed, language.code).sample(range(len(pool)), quotas[language.tier]))]
        for text in chosen:
            tasks.append({
                "id": row_id(text.id, language.code, recipe, prompt_version), "seed_id": text.id, "recipe": recipe,
                "lang": language.code, "src_instruction": "", "src_input": "", "src_output": text.text, "source": text.source,
            })
    untargeted = [
        {"id": row_id(text.id, text.lang, recipe, prompt_version), "seed_id": text.id, "recipe": recipe, "lang": text.lang,
         "src_output": text.text, "source": text.source, "reason": make_reason("not_a_target_language")}
        for text in texts if text.lang not in targets
    ]
    return tasks, untargeted
