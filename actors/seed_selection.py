"""Seed selection before planning: exact and near deduplication, and k-means clusters of the
English instructions for stratified per-language samples (select.by: clusters). No LLM runs here.

The clusters are cached in the run folder (selection.parquet), keyed by the seeds and the select
and dedup settings. A rerun then plans exactly the same rows, so it resumes instead of being
refused as a changed plan, and it skips the embedding, even where other hardware's floating point
would move a borderline seed into another cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.config import Config
from engine.selection.dedup import exact_duplicates
from engine.selection.dedup_rows import seed_key
from engine.inputs.seeds import Seed
from actors.clustering import cluster_texts

log = logging.getLogger("babelforge.select")

CACHE_NAME = "selection.parquet"


@dataclass(frozen=True)
class SeedSelection:
    kept: list[Seed]  # seeds left to plan, in input order
    duplicates: dict[str, str]  # dropped seed id → id of the seed it repeats
    clusters: dict[str, int] | None  # kept seed id → cluster; None when nothing needed embeddings
    k: int  # clusters actually fitted (k is capped by the number of seeds)
    stratify: bool  # plan stratified over clusters (select.by: clusters)


def seed_text(seed: Seed) -> str:
    """What is embedded: the task (instruction and its input), not the answer."""
    return f"{seed.instruction}\n{seed.input}".strip()


class SeedSelector:
    """Callable seeds → SeedSelection, for engine.recipes.plan_tasks; `save` caches the clusters."""

    def __init__(self, config: Config, start_ray: Callable[[], None]):
        self.config = config
        self.start_ray = start_ray
        self.pending: pa.Table | None = None
        self.selection: SeedSelection | None = None

    def __call__(self, seeds: list[Seed]) -> SeedSelection:
        select, dedup = self.config.select, self.config.dedup
        duplicates = exact_duplicates([s.id for s in seeds], [seed_key(s) for s in seeds]) if dedup.exact else {}
        rest = [seed for seed in seeds if seed.id not in duplicates]
        if select.by != "clusters" and dedup.near_threshold is None:
            self.selection = SeedSelection(rest, duplicates, None, 0, False)
            return self.selection
        table, k = self._clusters(rest)
        ids, labels, of = (table.column(name).to_pylist() for name in ("id", "cluster", "duplicate_of"))
        near = {row_id: kept for row_id, kept in zip(ids, of) if kept}
        kept = [seed for seed in rest if seed.id not in near]
        clusters = {row_id: label for row_id, label, dup in zip(ids, labels, of) if not dup}
        log.info("selection: %d seeds, %d exact and %d near duplicates, %d clusters", len(seeds), len(duplicates), len(near), k)
        self.selection = SeedSelection(kept, {**duplicates, **near}, clusters, k, select.by == "clusters")
        return self.selection

    def cache_key(self, seeds: list[Seed]) -> str:
        settings = {"select": self.config.select.model_dump(), "near": self.config.dedup.near_threshold}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for seed in seeds:
            digest.update(f"{seed.id}\x1f{seed_key(seed)}\n".encode())
        return digest.hexdigest()

    def _clusters(self, seeds: list[Seed]) -> tuple[pa.Table, int]:
        key = self.cache_key(seeds)
        path = Path(self.config.run.output_dir) / CACHE_NAME
        if path.exists():
            cached = pq.read_table(path)
            meta = cached.schema.metadata or {}
            if meta.get(b"key", b"").decode() == key:
                log.info("clusters from %s (same seeds and settings)", path)
                return cached, int(meta[b"k"])
            log.info("%s was made for other seeds or settings: clustering again", path)
        self.start_ray()
        table, k = cluster_texts([s.id for s in seeds], [seed_text(s) for s in seeds], self.config.select, self.config.dedup.near_threshold)
        self.pending = table.replace_schema_metadata({"key": key, "k": str(k)})
        return table, k

    def save(self, run_dir: Path) -> None:
        """Write the clusters computed by this run; call it once the run folder accepted the plan."""
        if self.pending is None:
            return
        staging = run_dir / f".{CACHE_NAME}.tmp"
        pq.write_table(self.pending, staging)
        staging.rename(run_dir / CACHE_NAME)
        self.pending = None
