"""The build written plainly, in memory, over row dicts: the reference the shipped build
(actors/dataflow/build_pipeline.py) must agree with, example for example and count for count.

It sorts where the shipped build counts: the split holds out the seeds of lowest rank, CrossIn
keeps each mode's candidates of lowest rank, and the mix draws each dataset × language's rows in
rank order. The per-group builders and the quotas are the shipped ones (engine/builders/); what is
written again here is only what the distributed build does with cuts found from counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from engine.builders import MIX, SPLITS
from engine.builders.crossin import BUILDER as CROSSIN
from engine.builders.crossin import crossin_candidates, crossin_quotas
from engine.builders.groups import SEED_BUILDERS
from engine.builders.mixing import mix_quotas
from engine.builders.pool import Pool, build_pool
from engine.builders.ranks import KEEP_ALL, KEEP_NONE, Cut, copies, crossin_rank, mix_rank, seed_rank, validation_count
from engine.builders.retrieval import Embed
from engine.builders.sphinx import BUILDER as SPHINX
from engine.builders.sphinx import sphinx_language
from engine.builders.summary import dataset_entries, make_summary, source_file
from engine.config import BuildConfig


def lowest_cut(candidates: Iterable[tuple[int, str]], quota: int) -> Cut:
    """The cut that keeps exactly the `quota` lowest (rank, key) pairs (all when quota >= their number)."""
    ordered = sorted(candidates)
    if quota <= 0:
        return KEEP_NONE
    if quota >= len(ordered):
        return KEEP_ALL
    return Cut(*ordered[quota - 1])


def split_seeds(seed_ids, validation_share: float, seed: int) -> frozenset[str]:
    """The seeds held out: round(share × seeds) of them (engine.builders.ranks.validation_count),
    those of lowest seed rank."""
    unique = set(seed_ids)
    cut = lowest_cut(((seed_rank(seed, s), s) for s in unique), validation_count(len(unique), validation_share))
    return frozenset(s for s in unique if cut.keeps(seed_rank(seed, s), s))


def build_sphinx(
    pool: Pool,
    validation_seeds,
    shots: int,
    retrieval: str,
    include_english: bool,
    seed: int,
    embed: Embed | None = None,
) -> dict[str, list[dict]]:
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for row in (*pool.rows, *(pool.english.values() if include_english else ())):
        by_lang[row["lang"]].append(row)
    examples = []
    for lang, rows in sorted(by_lang.items()):
        examples.extend(sphinx_language(lang, rows, validation_seeds, shots, retrieval, seed, embed))
    return {SPHINX: examples}


def build_crossin(pool: Pool, modes: dict[str, float], size: int | None, seed: int) -> dict[str, list[dict]]:
    """Each mode keeps its candidates of lowest rank up to its quota."""
    candidates = {mode: rows for mode, rows in crossin_candidates(pool, seed).items() if modes.get(mode, 0) > 0}
    quotas = crossin_quotas({mode: len(rows) for mode, rows in candidates.items()}, modes, size)
    examples = []
    for mode in sorted(candidates):
        cut = lowest_cut(((crossin_rank(seed, mode, e["id"]), e["id"]) for e in candidates[mode]), quotas[mode])
        examples.extend(e for e in candidates[mode] if cut.keeps(crossin_rank(seed, mode, e["id"]), e["id"]))
    return {CROSSIN: examples}


def mix_datasets(
    datasets: dict[str, list[dict]],
    ratios: dict[str, float],
    size: int | None,
    anchor_share: float | None,
    temperature: float,
    seed: int,
) -> list[dict]:
    """Training rows of several datasets drawn by mix_quotas: per dataset × language the rows of
    lowest mix rank, then all of them again and again in rank order (upsampling)."""
    by_lang: dict[str, dict[str, list[dict]]] = {name: defaultdict(list) for name in datasets}
    for name, rows in datasets.items():
        for row in rows:
            by_lang[name][row["lang"]].append(row)
    available = {name: {lang: len(rows) for lang, rows in langs.items()} for name, langs in by_lang.items()}
    drawn = []
    for (name, lang), quota in mix_quotas(available, ratios, size, anchor_share, temperature).items():
        ranked = sorted(by_lang[name].get(lang, []), key=lambda row: (mix_rank(seed, name, lang, row["id"]), row["id"]))
        whole, extra = copies(quota, len(ranked))
        drawn += ranked * whole + ranked[:extra]
    return drawn


@dataclass(frozen=True)
class Built:
    pool: Pool
    validation_seeds: frozenset[str]
    splits: dict[str, dict[str, list[dict]]]
    """dataset name -> {"train": examples, "validation": examples}."""


def run_builder(
    name: str, pool: Pool, validation_seeds, config: BuildConfig, embed: Embed | None
) -> dict[str, list[dict]]:
    if name == SPHINX:
        s = config.sphinx
        return build_sphinx(pool, validation_seeds, s.shots, s.retrieval, s.include_english, config.seed, embed)
    if name == CROSSIN:
        return build_crossin(pool, config.crossin.modes, config.crossin.size, config.seed)
    return SEED_BUILDERS[name](pool)


def build_datasets(accepted: list[dict], config: BuildConfig, embed: Embed | None = None) -> Built:
    """Every configured dataset, split by seed, plus the mix when enabled."""
    pool = build_pool(accepted)
    validation_seeds = split_seeds(pool.seeds, config.validation_share, config.seed)
    splits: dict[str, dict[str, list[dict]]] = {}
    for name in config.builders:
        for dataset, examples in run_builder(name, pool, validation_seeds, config, embed).items():
            splits[dataset] = {split: [] for split in SPLITS}
            for example in examples:
                splits[dataset]["validation" if example["seed_id"] in validation_seeds else "train"].append(example)
    if config.mix.enabled:
        mix = config.mix
        train = mix_datasets(
            {n: s["train"] for n, s in splits.items()},
            mix.ratios,
            mix.size,
            mix.anchor_share,
            mix.temperature,
            config.seed,
        )
        # Validation is not resampled: every held-out row of the mixed datasets, each counted once.
        names = [n for n in splits if not mix.ratios or mix.ratios.get(n, 0) > 0]
        splits[MIX] = {"train": train, "validation": [row for n in names for row in splits[n]["validation"]]}
    return Built(pool, validation_seeds, splits)


def summarise(built: Built, build_config: dict, license: str) -> dict:
    """build.json of the reference build."""
    tally: Counter = Counter()
    for name, splits in built.splits.items():
        for split in SPLITS:
            for row in splits[split]:
                tally[(name, split, row["lang"], row["builder"] or "(none)", row["mode"] or "(none)")] += 1
    repeated = {name: len(s["train"]) - len({row["id"] for row in s["train"]}) for name, s in built.splits.items()}
    provenance = {kind: Counter() for kind in ("models", "prompt_versions", "sources")}
    for row in built.pool.rows:
        provenance["models"][row.get("model") or "(none)"] += 1
        provenance["prompt_versions"][row.get("prompt_version") or "(none)"] += 1
        provenance["sources"][source_file(row.get("source"))] += 1
    held = len(built.validation_seeds)
    return make_summary(
        dataset_entries(dict(tally), list(built.splits), repeated),
        len(built.pool.rows),
        {"train": len(built.pool.seeds) - held, "validation": held},
        {kind: dict(sorted(counts.items())) for kind, counts in provenance.items()},
        build_config,
        license,
    )
