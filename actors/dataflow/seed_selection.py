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
import pyarrow.compute as pc

from actors.dataflow.clustering import cluster_dataset, cluster_texts
from engine.config import Config
from engine.inputs.seeds import DEDUP_KEY, Seed, task_texts
from engine.runfolder import RunFolder
from engine.selection.dedup import exact_duplicates, text_key
from engine.selection.dedup_rows import duplicate_rows

log = logging.getLogger("babelforge.select")

CACHE_NAME = "selection.parquet"


@dataclass(frozen=True)
class SeedSelection:
    kept: pa.Table  # seeds left to plan (engine.inputs.seeds.SEED_SCHEMA), in input order
    duplicates: dict[str, str]  # dropped seed id → id of the seed it repeats
    clusters: dict[str, int] | None  # kept seed id → cluster; None when nothing needed embeddings
    k: int  # clusters actually fitted (k is capped by the number of seeds)
    stratify: bool  # plan stratified over clusters (select.by: clusters)
    dropped: pa.Table | None = None  # the duplicate seeds' rows, for duplicate_rows

    def duplicate_rows(self, recipe: str, prompt_version: str) -> list[dict]:
        """One rejected row per dropped seed, in input order (engine.selection.dedup_rows)."""
        if not self.duplicates or self.dropped is None:
            return []
        return duplicate_rows(
            self.duplicates, [Seed(**row) for row in self.dropped.to_pylist()], recipe, prompt_version
        )


def _keys(seeds: pa.Table) -> list[str]:
    if DEDUP_KEY in seeds.column_names:  # computed by the workers that read the seeds
        return seeds.column(DEDUP_KEY).to_pylist()
    return [text_key(i, x) for i, x in zip(seeds.column("instruction").to_pylist(), seeds.column("input").to_pylist())]


def _not_in(seeds: pa.Table, ids) -> pa.Table:
    return seeds.filter(pc.invert(pc.is_in(seeds.column("id"), value_set=pa.array(list(ids), pa.string()))))


class SeedSelector:
    """Callable seed table → SeedSelection, for engine.recipes.plan_run; `save` caches the clusters."""

    def __init__(self, config: Config, start_ray: Callable[[], None]):
        self.config = config
        self.start_ray = start_ray
        self.pending: pa.Table | None = None
        self.selection: SeedSelection | None = None

    def __call__(self, seeds: pa.Table) -> SeedSelection:
        select, dedup = self.config.select, self.config.dedup
        ids = seeds.column("id").to_pylist()
        duplicates = exact_duplicates(ids, _keys(seeds)) if dedup.exact else {}
        del ids
        rest = _not_in(seeds, duplicates) if duplicates else seeds
        if select.by != "clusters" and dedup.near_threshold is None:
            self.selection = SeedSelection(rest, duplicates, None, 0, False, _only(seeds, duplicates))
            return self.selection
        table, k = self._clusters(rest)
        ids, labels, of = (table.column(name).to_pylist() for name in ("id", "cluster", "duplicate_of"))
        near = {row_id: kept for row_id, kept in zip(ids, of) if kept}
        kept = _not_in(rest, near) if near else rest
        clusters = {row_id: label for row_id, label, dup in zip(ids, labels, of) if not dup}
        log.info(
            "selection: %d seeds, %d exact and %d near duplicates, %d clusters",
            seeds.num_rows,
            len(duplicates),
            len(near),
            k,
        )
        dropped = {**duplicates, **near}
        self.selection = SeedSelection(kept, dropped, clusters, k, select.by == "clusters", _only(seeds, dropped))
        return self.selection

    def cache_key(self, seeds: pa.Table) -> str:
        settings = {"select": self.config.select.model_dump(), "near": self.config.dedup.near_threshold}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for seed_id, key in zip(seeds.column("id").to_pylist(), _keys(seeds)):
            digest.update(f"{seed_id}\x1f{key}\n".encode())
        return digest.hexdigest()

    def _clusters(self, seeds: pa.Table) -> tuple[pa.Table, int]:
        key = self.cache_key(seeds)
        folder = RunFolder(self.config.run.output_dir)
        if folder.exists(CACHE_NAME):
            cached = folder.read_parquet(CACHE_NAME)
            meta = cached.schema.metadata or {}
            if meta.get(b"key", b"").decode() == key:
                log.info("clusters from %s (same seeds and settings)", folder.child(CACHE_NAME))
                return cached, int(meta[b"k"])
            log.info("%s was made for other seeds or settings: clustering again", folder.child(CACHE_NAME))
        self.start_ray()
        if hasattr(seeds, "text_dataset"):  # seeds in the object store (actors.dataflow.seed_reading.SeedView)
            table, k = cluster_dataset(
                seeds.text_dataset(), seeds.num_rows, self.config.select, self.config.dedup.near_threshold
            )
        else:
            table, k = cluster_texts(
                seeds.column("id").to_pylist(), task_texts(seeds), self.config.select, self.config.dedup.near_threshold
            )
        self.pending = table.replace_schema_metadata({"key": key, "k": str(k)})
        return table, k

    def save(self, run_dir: RunFolder | str | Path) -> None:
        """Write the clusters computed by this run; call it once the run folder accepted the plan."""
        if self.pending is None:
            return
        folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
        folder.write_parquet(CACHE_NAME, self.pending)  # whole or not at all
        self.pending = None


def _only(seeds: pa.Table, ids) -> pa.Table | None:
    if not ids:
        return None
    return seeds.filter(pc.is_in(seeds.column("id"), value_set=pa.array(list(ids), pa.string())))
