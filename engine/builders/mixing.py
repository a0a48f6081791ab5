"""Quotas by ratio and language temperature: CrossIn's modes and the mix of several datasets into
one (actors/dataflow/build_pipeline.py draws the mix's rows by these quotas).

All counts are whole rows apportioned by largest remainder, so quotas add up to the total exactly
and the same inputs always give the same quotas.
"""

from __future__ import annotations

import math

from engine.builders.pool import ENGLISH


def apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split `total` into whole quotas proportional to `weights` (largest remainder, ties by key)."""
    positive = {key: w for key, w in weights.items() if w > 0}
    if not positive or total <= 0:
        return {key: 0 for key in weights}
    scale = total / sum(positive.values())
    exact = {key: w * scale for key, w in positive.items()}
    quotas = {key: math.floor(value) for key, value in exact.items()}
    leftover = total - sum(quotas.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - quotas[k]), k))[:leftover]:
        quotas[key] += 1
    return {key: quotas.get(key, 0) for key in weights}


def feasible_total(available: dict[str, int], weights: dict[str, float]) -> int:
    """The largest total whose quotas by `weights` fit what is available, without repeats."""
    positive = {key: w for key, w in weights.items() if w > 0}
    if not positive:
        return 0
    share = sum(positive.values())
    total = min(math.floor(available.get(key, 0) * share / w + 1e-9) for key, w in positive.items())
    # Rounding can push one quota a row over its availability; step down until all fit.
    while total > 0 and any(q > available.get(k, 0) for k, q in apportion(total, positive).items()):
        total -= 1
    return total


def temperature_weights(counts: dict[str, int], temperature: float) -> dict[str, float]:
    """p(lang) ∝ count^(1/T): T = 1 keeps natural sizes, larger T flattens toward uniform."""
    return {lang: count ** (1.0 / temperature) for lang, count in counts.items() if count > 0}


def language_quotas(
    counts: dict[str, int], total: int, anchor_share: float | None, temperature: float
) -> dict[str, int]:
    others = {lang: n for lang, n in counts.items() if lang != ENGLISH}
    if anchor_share is None or not counts.get(ENGLISH) or not others:
        return apportion(total, temperature_weights(counts, temperature))
    english = round(anchor_share * total)
    return {ENGLISH: english, **apportion(total - english, temperature_weights(others, temperature))}


def mix_quotas(
    available: dict[str, dict[str, int]],
    ratios: dict[str, float],
    size: int | None,
    anchor_share: float | None,
    temperature: float,
) -> dict[tuple[str, str], int]:
    """(dataset, language) -> rows drawn, from the training rows' counts per dataset and language:
    datasets by `ratios`, then languages inside each dataset by the anchor share and temperature."""
    totals = {name: sum(langs.values()) for name, langs in available.items()}
    # An empty dataset cannot take a share: it would make every "most rows" total zero.
    weights = {name: ratios.get(name, 0.0) if ratios else 1.0 for name, rows in totals.items() if rows}
    total = size if size is not None else feasible_total(totals, weights)
    quotas: dict[tuple[str, str], int] = {}
    for name, quota in sorted(apportion(total, weights).items() if weights else ()):
        counts = {lang: n for lang, n in available[name].items() if n}
        for lang, lang_quota in sorted(language_quotas(counts, quota, anchor_share, temperature).items()):
            if lang_quota:
                quotas[(name, lang)] = lang_quota
    return quotas
