"""Plan which seeds each language translates (sPhinX per-language sampling).

Each language draws its own sample, sized by its resource tier, so different languages see
different seeds. The sample depends only on (plan seed, language, the seed list in order), so the
same config always gives the same plan, and adding a language leaves the other languages' samples
unchanged (adding, removing or reordering seeds draws every sample anew).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from engine.languages import Language
from engine.records import row_id
from engine.seeds import Seed


def language_rng(plan_seed: int, lang: str) -> random.Random:
    digest = hashlib.sha256(f"{plan_seed}:{lang}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sample_for_language(seeds: Sequence[Seed], lang: str, quota: int, plan_seed: int) -> list[Seed]:
    if quota >= len(seeds):
        return list(seeds)
    rng = language_rng(plan_seed, lang)
    chosen = sorted(rng.sample(range(len(seeds)), quota))
    return [seeds[i] for i in chosen]


def build_plan(
    seeds: Sequence[Seed],
    languages: Sequence[Language],
    mode: str,
    quotas: dict[str, int],
    plan_seed: int,
    recipe: str,
    prompt_version: str,
) -> list[dict]:
    """One task row per (seed, language), columns as engine.records.TASK_COLUMNS."""
    tasks = []
    for language in languages:
        chosen = list(seeds) if mode == "all" else sample_for_language(seeds, language.code, quotas[language.tier], plan_seed)
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
