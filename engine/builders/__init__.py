"""Training sets from a run's accepted rows: one pure builder per method, a split by seed, a mix.

    built = build_datasets(accepted_rows, config.build, embed=None)
    built.splits["sphinx"]["train"]  # list of example dicts (engine/builders/example.py)

Builders never load models: knn retrieval takes an `embed` callable from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.builders.crossin import build_crossin
from engine.builders.mixing import mix_datasets
from engine.builders.pool import Pool, build_pool
from engine.builders.qalign import build_qalign
from engine.builders.retrieval import Embed
from engine.builders.sphinx import build_sphinx
from engine.builders.transllm import build_transllm
from engine.builders.xinstruction import build_xinstruction
from engine.config import BuildConfig

SPLITS = ("train", "validation")
MIX = "mix"


@dataclass(frozen=True)
class Built:
    pool: Pool
    splits: dict[str, dict[str, list[dict]]]
    """dataset name -> {"train": examples, "validation": examples}."""


def run_builder(name: str, pool: Pool, config: BuildConfig, embed: Embed | None) -> dict[str, list[dict]]:
    if name == "sphinx":
        s = config.sphinx
        return build_sphinx(pool, s.shots, s.retrieval, s.include_english, config.seed, embed)
    if name == "crossin":
        return build_crossin(pool, config.crossin.modes, config.crossin.size, config.seed)
    if name == "qalign":
        return build_qalign(pool)
    if name == "xinstruction":
        return build_xinstruction(pool)
    if name == "transllm":
        return build_transllm(pool)
    raise ValueError(f"unknown builder {name!r}")


def split_by_seed(examples: list[dict], pool: Pool) -> dict[str, list[dict]]:
    splits: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for example in examples:
        splits[pool.split_of(example["seed_id"])].append(example)
    return splits


def build_datasets(accepted: list[dict], config: BuildConfig, embed: Embed | None = None) -> Built:
    """Every configured dataset, split by seed, plus the mix when enabled."""
    pool = build_pool(accepted, config.validation_share, config.seed)
    splits: dict[str, dict[str, list[dict]]] = {}
    for name in config.builders:
        for dataset, examples in run_builder(name, pool, config, embed).items():
            splits[dataset] = split_by_seed(examples, pool)
    if config.mix.enabled:
        mix = config.mix
        train = mix_datasets({n: s["train"] for n, s in splits.items()}, mix.ratios, mix.size, mix.anchor_share, mix.temperature, config.seed)
        # Validation is not resampled: every held-out row of the mixed datasets, each counted once.
        names = [n for n in splits if not mix.ratios or mix.ratios.get(n, 0) > 0]
        splits[MIX] = {"train": train, "validation": [row for n in names for row in splits[n]["validation"]]}
    return Built(pool, splits)
