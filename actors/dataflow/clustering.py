"""The Ray side of diversity: embed rows on an actor pool, fit k-means on a bounded sample, assign
every row in parallel, and find near-duplicates within clusters.

The embeddings stay in Ray's object store; the driver only ever holds the fitting sample (at
most select.sample_size rows), the centroids, and (id, cluster, duplicate_of) per row.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.config import SelectConfig
from engine.selection.cluster import assign_clusters, fit_centroids, sample_positions
from engine.selection.dedup import near_duplicates

log = logging.getLogger("babelforge.diversify")

RESULT_SCHEMA = pa.schema(
    [("pos", pa.int64()), ("id", pa.string()), ("cluster", pa.int32()), ("duplicate_of", pa.string())]
)


def embed_dataset(dataset, select: SelectConfig, text_column: str = "text"):
    """`dataset` plus an `embedding` column, computed by a pool of EmbedActor."""
    from ray.data import ActorPoolStrategy

    from actors.engines.embed import EmbedActor

    on_gpu = select.device.startswith("cuda")
    return dataset.map_batches(
        EmbedActor,
        fn_constructor_kwargs={
            "model": select.embed_model,
            "batch_size": select.batch_size,
            "device": select.device,
            "threads": select.threads,
            "text_column": text_column,
        },
        batch_size=select.batch_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=select.actors),
        num_cpus=1,
        num_gpus=1 if on_gpu else None,
    )


def _rows_at(batch: pa.Table, positions: pa.Array) -> pa.Table:
    return batch.filter(pc.is_in(batch.column("pos"), value_set=positions))


def _assign(batch: pa.Table, centroids: np.ndarray) -> pa.Table:
    from actors.engines.embed import arrow_to_vectors

    labels, _ = assign_clusters(arrow_to_vectors(batch.column("embedding")), centroids)
    return batch.append_column("cluster", pa.array(labels, pa.int32()))


def _near_duplicates_in_group(group: pa.Table, threshold: float | None) -> pa.Table:
    from actors.engines.embed import arrow_to_vectors

    # Input order decides which copy survives; a shuffle does not keep it, so restore it here.
    group = group.sort_by("pos")
    ids = group.column("id").to_pylist()
    duplicates = near_duplicates(ids, arrow_to_vectors(group.column("embedding")), threshold) if threshold else {}
    of = pa.array([duplicates.get(row_id) for row_id in ids], pa.string())
    return pa.table([group.column("pos"), group.column("id"), group.column("cluster"), of], schema=RESULT_SCHEMA)


def _collect(dataset) -> pa.Table:
    import ray

    tables = [table for table in ray.get(dataset.to_arrow_refs()) if table.num_rows]
    return pa.concat_tables(tables).sort_by("pos") if tables else RESULT_SCHEMA.empty_table()


def cluster_texts(
    ids: list[str], texts: list[str], select: SelectConfig, near_threshold: float | None
) -> tuple[pa.Table, int]:
    """(table of pos, id, cluster, duplicate_of in input order; k actually used). Needs ray.init()."""
    import ray

    if not ids:
        return RESULT_SCHEMA.empty_table(), 0
    table = pa.table({"pos": pa.array(range(len(ids)), pa.int64()), "id": ids, "text": texts})
    blocks = [table.slice(start, select.batch_size) for start in range(0, table.num_rows, select.batch_size)]
    return cluster_dataset(ray.data.from_arrow(blocks), len(ids), select, near_threshold)


def cluster_dataset(texts, count: int, select: SelectConfig, near_threshold: float | None) -> tuple[pa.Table, int]:
    """cluster_texts over a Ray dataset of (pos, id, text), pos 0..count-1 in input order (e.g.
    actors.dataflow.seeds.SeedView.text_dataset): the texts never pass through the driver."""
    if not count:
        return RESULT_SCHEMA.empty_table(), 0
    started = time.monotonic()
    embedded = embed_dataset(texts, select).drop_columns(["text"]).materialize()

    # Fit on a bounded, deterministic sample, in input order: the same seeds give the same clusters.
    positions = pa.array(sample_positions(count, select.sample_size, select.seed), pa.int64())
    sample = _collect_sample(embedded.map_batches(_rows_at, fn_kwargs={"positions": positions}, batch_format="pyarrow"))
    centroids = fit_centroids(sample, select.clusters, select.seed)
    log.info(
        "embedded %d texts, fitted %d clusters on %d in %.1fs",
        count,
        len(centroids),
        len(sample),
        time.monotonic() - started,
    )

    assigned = embedded.map_batches(_assign, fn_kwargs={"centroids": centroids}, batch_format="pyarrow")
    if near_threshold:
        # A partition per input block at most: Ray's default (200) costs seconds each on small runs.
        partitions = max(1, min(len(centroids), embedded.num_blocks()))
        grouped = assigned.groupby("cluster", num_partitions=partitions).map_groups(
            _near_duplicates_in_group, fn_kwargs={"threshold": near_threshold}, batch_format="pyarrow"
        )
    else:
        grouped = assigned.map_batches(_near_duplicates_in_group, fn_kwargs={"threshold": None}, batch_format="pyarrow")
    result = _collect(grouped)
    log.info("clustered %d texts in %.1fs", result.num_rows, time.monotonic() - started)
    return result, len(centroids)


def _collect_sample(dataset) -> np.ndarray:
    import ray

    from actors.engines.embed import arrow_to_vectors

    tables = [table for table in ray.get(dataset.to_arrow_refs()) if table.num_rows]
    sample = pa.concat_tables(tables).sort_by("pos")
    return arrow_to_vectors(sample.column("embedding"))
