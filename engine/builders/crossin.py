"""CrossIn: cross-lingual examples from the index-aligned translations of one seed.

en_x: English instruction, answer in x; x_en: x instruction, English answer; x_x: input and
output languages drawn independently from the seed's languages (English included, so a draw may
also land on one language); translation: the x instruction → its English original. The output
language is named by a tag such as `[zh]` before the instruction.
"""

from __future__ import annotations

import itertools
import random

from engine.builders.example import make_example
from engine.builders.mixing import apportion, feasible_total
from engine.builders.pool import ENGLISH, Pool, query_text

BUILDER = "crossin"
TRANSLATE_INSTRUCTION = "Translate the following text into English."


def tagged(output_lang: str, source: dict) -> str:
    return f"[{output_lang}] {query_text(source)}"


def _answer(row: dict) -> str:
    return (row.get("output") or "").strip()


def _example(mode: str, source: dict, target: dict) -> dict:
    return make_example(
        BUILDER, mode, tagged(target["lang"], source), _answer(target), [source, target], source["lang"], target["lang"]
    )


def crossin_candidates(pool: Pool, seed: int) -> dict[str, list[dict]]:
    """Every example each mode can make; x_x makes as many per seed as the seed has translations."""
    modes: dict[str, list[dict]] = {"en_x": [], "x_en": [], "x_x": [], "translation": []}
    for seed_id, langs in sorted(pool.by_seed.items()):
        english = langs[ENGLISH]
        translated = [langs[code] for code in sorted(langs) if code != ENGLISH]
        for row in translated:
            modes["en_x"].append(_example("en_x", english, row))
            modes["x_en"].append(_example("x_en", row, english))
            prompt = f"{TRANSLATE_INSTRUCTION}\n\n{(row.get('instruction') or '').strip()}"
            completion = (english.get("instruction") or "").strip()
            modes["translation"].append(
                make_example(BUILDER, "translation", prompt, completion, [row, english], row["lang"], ENGLISH)
            )
        # Independent draws of (input, output) language = a uniform draw over the pairs; drawing
        # pairs without replacement keeps one seed from yielding the same example twice.
        pairs = list(itertools.product(sorted(langs), repeat=2))
        rng = random.Random(f"{seed}\x1fcrossin\x1f{seed_id}")
        for source_lang, target_lang in rng.sample(pairs, min(len(translated), len(pairs))):
            modes["x_x"].append(_example("x_x", langs[source_lang], langs[target_lang]))
    return modes


def crossin_quotas(available: dict[str, int], modes: dict[str, float], size: int | None) -> dict[str, int]:
    """Rows per mode from the candidates' counts per mode: the shares of `modes`, capped by `size`."""
    weights = {mode: modes[mode] for mode in available if modes.get(mode, 0) > 0}
    counts = {mode: available[mode] for mode in weights}
    # Never more than a mode has: CrossIn's sizes are caps ("3k, 6k, 15k or the full set").
    total = min(size, feasible_total(counts, weights)) if size else feasible_total(counts, weights)
    return apportion(total, weights)
