"""Seeds on Ray, before planning: read and checked by Ray Data workers (the text stays in the object
store), then selected: exact and near duplicates dropped and k-means clusters of the English
instructions for stratified per-language samples. No LLM runs here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.dataflow.clustering import cluster_dataset, cluster_texts
from engine.config import Config
from engine.inputs.seeds import (
    DEDUP_KEY,
    LANGUAGE_VERDICT,
    SEED_SCHEMA,
    BadRecord,
    Seed,
    SeedPiece,
    count_piece,
    number_pieces,
    plan_pieces,
    resolve_records,
    task_texts,
    validate_piece,
)
from engine.recipes import recipe_spec
from engine.runfolder import RunFolder
from engine.selection.dedup import duplicate_rows, exact_duplicates, text_key

read_log = logging.getLogger("babelforge.seeds")
select_log = logging.getLogger("babelforge.select")

# ----------------------------------------------------------------------------------------------------
# Seeds read by Ray Data: the files are split into pieces (engine.inputs.seeds.plan_pieces), each
# piece read and checked by a Ray Data worker, and the checked seeds kept in Ray's object store.
#
# The driver receives only small columns per seed (order key, id, whether it is bad, and, when
# asked, its language-ID verdict and dedup key) and decides with them what the sequential reader
# decides (engine.inputs.seeds.resolve_records: duplicates, limit, bad-record ids). The seed text
# stays in the object store: a SeedView names it by block and row, and the pipeline's workers take
# the rows a batch of tasks needs (engine.inputs.plan.assemble_tasks calls SeedView.take).
# ----------------------------------------------------------------------------------------------------


META_COLUMNS = ("ord", "id", "error", "source", "fallback", "named", "fatal")


class SeedView:
    """Seeds held in the object store, in input order, as the planner sees a seed table: `num_rows`,
    `column` (ids and the small columns computed while reading, in the driver), `filter`,
    `append_column` (small columns such as cluster labels, kept in the driver) and `take` (the rows
    with their text, fetched from the blocks; on a worker, zero-copy from the local object store)."""

    def __init__(
        self,
        blocks: list,
        starts: np.ndarray,
        physical: np.ndarray,
        ords: np.ndarray,
        ids: pa.Array,
        hidden: dict[str, pa.Array] | None = None,
        appended: dict[str, pa.Array] | None = None,
    ):
        self.blocks = blocks  # ObjectRefs of the checked blocks (engine.inputs.seeds.VALIDATED_SCHEMA)
        self.starts = starts  # first physical row of each block
        self.physical = physical  # per seed: its row over all blocks
        self.ords = ords  # per seed: its order key (ascending: seeds are in input order)
        self.ids = ids
        self.hidden = hidden or {}  # computed while reading; not part of a task row
        self.appended = appended or {}  # carried into task rows (cluster)

    @property
    def num_rows(self) -> int:
        return len(self.physical)

    def __len__(self) -> int:
        return self.num_rows

    @property
    def column_names(self) -> list[str]:
        return [*SEED_SCHEMA.names, *self.hidden, *self.appended]

    def column(self, name: str):
        if name == "id":
            return self.ids
        if name in self.hidden:
            return self.hidden[name]
        if name in self.appended:
            return self.appended[name]
        return self.take(np.arange(self.num_rows)).column(name)  # text: fetched, for small callers only

    def _subset(self, positions: np.ndarray) -> SeedView:
        take = pa.array(positions, pa.int64())
        return SeedView(
            self.blocks,
            self.starts,
            self.physical[positions],
            self.ords[positions],
            self.ids.take(take),
            {k: v.take(take) for k, v in self.hidden.items()},
            {k: v.take(take) for k, v in self.appended.items()},
        )

    def filter(self, mask) -> SeedView:
        mask = mask.to_numpy(zero_copy_only=False) if hasattr(mask, "to_numpy") else np.asarray(mask)
        return self._subset(np.flatnonzero(mask))

    def append_column(self, name: str, values) -> SeedView:
        return SeedView(
            self.blocks,
            self.starts,
            self.physical,
            self.ords,
            self.ids,
            self.hidden,
            {
                **self.appended,
                name: pa.array(values) if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values,
            },
        )

    def take(self, indices) -> pa.Table:
        """SEED_SCHEMA columns (plus appended ones) of the seeds at `indices`, in that order."""
        import ray

        if hasattr(indices, "to_numpy"):
            indices = indices.to_numpy(zero_copy_only=False)
        indices = np.asarray(indices, dtype=np.int64)
        physical = self.physical[indices]
        block = np.searchsorted(self.starts, physical, side="right") - 1
        order = np.argsort(block, kind="stable")
        needed = np.unique(block)
        tables = ray.get([self.blocks[b] for b in needed]) if len(needed) else []
        parts = []
        for number, table in zip(needed, tables):
            rows = physical[order][block[order] == number] - self.starts[number]
            parts.append(table.select(SEED_SCHEMA.names).take(pa.array(rows, pa.int64())))
        picked = pa.concat_tables(parts) if parts else SEED_SCHEMA.empty_table()
        picked = picked.take(pa.array(np.argsort(order, kind="stable"), pa.int64()))  # back to the order asked
        take = pa.array(indices, pa.int64())
        for name, values in self.appended.items():
            picked = picked.append_column(name, values.take(take))
        return picked

    def to_pylist(self) -> list[dict]:
        table = self.take(np.arange(self.num_rows))
        return table.select(SEED_SCHEMA.names).to_pylist()

    def text_dataset(self):
        """A Ray dataset of (pos, id, text) with text = instruction and input, what the seed
        selection embeds; pos is the seed's position in this view. Built on the workers."""
        import ray

        ords = ray.put(self.ords)
        return ray.data.from_arrow_refs(self.blocks).map_batches(
            _texts_of, fn_kwargs={"ords": ords}, batch_format="pyarrow", num_cpus=0.5
        )


def _texts_of(block: pa.Table, ords) -> pa.Table:
    import ray

    ords = ray.get(ords) if isinstance(ords, ray.ObjectRef) else ords
    if not block.num_rows:  # an empty block has no columns
        return pa.table(
            {"pos": pa.array([], pa.int64()), "id": pa.array([], pa.string()), "text": pa.array([], pa.string())}
        )
    keys = block.column("ord").to_numpy()
    pos = np.searchsorted(ords, keys)
    found = (
        (pos < len(ords)) & (ords[np.minimum(pos, len(ords) - 1)] == keys) if len(ords) else np.zeros(len(keys), bool)
    )
    kept = block.filter(pa.array(found))
    return pa.table(
        {
            "pos": pa.array(pos[found], pa.int64()),
            "id": kept.column("id"),
            "text": pa.array(task_texts(kept), pa.string()),
        }
    )


_LANGID: dict = {}


def _check_piece(batch: pa.Table, language_model: str | None, keys: bool):
    """Ray Data UDF: one piece (a row of SeedPiece fields) → its checked seed tables, with the
    language-ID verdict and dedup key of each good seed when asked."""
    from engine.selection.dedup import text_key
    from engine.text.checks import seed_language_reason

    for fields in batch.to_pylist():
        for table in validate_piece(SeedPiece(**fields)):
            ok = pc.is_null(table.column("error")).to_pylist()
            if language_model:
                if language_model not in _LANGID:
                    from actors.engines.langid import FastTextLangId

                    _LANGID[language_model] = FastTextLangId(language_model)
                langid = _LANGID[language_model]
                text = table.column("instruction").to_pylist()
                table = table.append_column(
                    LANGUAGE_VERDICT,
                    pa.array(
                        [seed_language_reason(t, langid) if good else None for t, good in zip(text, ok)], pa.string()
                    ),
                )
            if keys:
                pairs = zip(table.column("instruction").to_pylist(), table.column("input").to_pylist(), ok)
                table = table.append_column(
                    DEDUP_KEY, pa.array([text_key(i, x) if good else None for i, x, good in pairs], pa.string())
                )
            yield table


def _count_row(row: dict) -> dict:
    lines, records = count_piece(SeedPiece(**{k: v for k, v in row.items() if k != "n"}))
    return {"n": row["n"], "lines": lines, "records": records}


def _meta(block: pa.Table, number: int, extra: tuple[str, ...]) -> pa.Table:
    """The small columns of a checked block, for the driver: source only on bad rows."""
    if not block.num_rows:  # a piece with no records leaves an empty block, without columns
        return _empty_meta(extra)
    error = block.column("error")
    columns = {name: block.column(name) for name in META_COLUMNS if name != "source"}
    columns["source"] = pc.if_else(pc.is_null(error), pa.scalar(None, pa.string()), block.column("source"))
    for name in extra:
        columns[name] = block.column(name)
    columns["block"] = pa.repeat(pa.scalar(number, pa.int64()), block.num_rows)
    columns["row"] = pa.array(np.arange(block.num_rows, dtype=np.int64))
    return pa.table(columns)


def read_seed_view(
    paths,
    on_bad_record: str = "error",
    limit: int | None = None,
    language_model: str | None = None,
    keys: bool = False,
    piece_bytes: int | None = None,
) -> tuple[SeedView, list[BadRecord]]:
    """engine.inputs.seeds.load_seed_table on Ray Data: the same seeds, bad records and errors,
    with the text in the object store. Needs ray.init()."""
    import ray

    pieces = plan_pieces(paths, piece_bytes)
    counts = [(0, 0)] * len(pieces)
    split = [
        n
        for n, piece in enumerate(pieces)
        if piece.kind == "jsonl" and (piece.start or piece.stop < _size_of(pieces, n))
    ]
    if split:  # a file in several pieces: count each piece's lines first, to number the next
        items = [{"n": n, **asdict(pieces[n])} for n in split]
        for row in ray.data.from_items(items, override_num_blocks=len(items)).map(_count_row).take_all():
            counts[row["n"]] = (row["lines"], row["records"])
    pieces = number_pieces(pieces, counts)
    extra = ((LANGUAGE_VERDICT,) if language_model else ()) + ((DEDUP_KEY,) if keys else ())
    checked = (
        ray.data.from_items([asdict(piece) for piece in pieces], override_num_blocks=len(pieces))
        .map_batches(
            _check_piece,
            fn_kwargs={"language_model": language_model, "keys": keys},
            batch_size=1,
            batch_format="pyarrow",
        )
        .materialize()
    )
    blocks = checked.to_arrow_refs()
    meta_of = ray.remote(num_cpus=0)(_meta)
    metas = [
        table
        for table in ray.get([meta_of.remote(ref, number, extra) for number, ref in enumerate(blocks)])
        if table.num_rows
    ]
    sizes = np.zeros(len(blocks), dtype=np.int64)
    for table in metas:
        sizes[table.column("block")[0].as_py()] = table.num_rows
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(blocks) else np.zeros(0, np.int64)
    meta = pa.concat_tables(metas).sort_by("ord") if metas else _empty_meta(extra)

    def source_of(row: int) -> str:
        block, at = meta.column("block")[row].as_py(), meta.column("row")[row].as_py()
        return ray.get(blocks[block]).column("source")[at].as_py()

    kept, bad = resolve_records(meta, on_bad_record, limit, paths, source_of)
    chosen = meta.take(pa.array(kept, pa.int64()))
    physical = (
        starts[chosen.column("block").to_numpy()] + chosen.column("row").to_numpy()
        if len(kept)
        else np.zeros(0, np.int64)
    )
    view = SeedView(
        blocks,
        starts,
        np.asarray(physical, dtype=np.int64),
        chosen.column("ord").to_numpy().astype(np.int64),
        chosen.column("id").combine_chunks(),
        {name: chosen.column(name).combine_chunks() for name in extra},
    )
    read_log.info("read %d seeds (%d bad records) from %d pieces on Ray Data", view.num_rows, len(bad), len(pieces))
    return view, bad


def _size_of(pieces: list[SeedPiece], n: int) -> int:
    """The end of the last piece of piece n's file: its size."""
    return max(piece.stop for piece in pieces if piece.file == pieces[n].file)


def _empty_meta(extra: tuple[str, ...]) -> pa.Table:
    columns = {
        name: pa.array([], pa.int64() if name == "ord" else pa.bool_() if name in ("named", "fatal") else pa.string())
        for name in META_COLUMNS
    }
    columns.update({name: pa.array([], pa.string()) for name in extra})
    columns.update({"block": pa.array([], pa.int64()), "row": pa.array([], pa.int64())})
    return pa.table(columns)


class SeedReader:
    """engine.recipes.plan_run's read_seeds for the job: seeds read on Ray Data (read_seed_view),
    with the seed language check and the dedup keys the config asks for computed on the workers."""

    def __init__(self, config: Config, start_ray: Callable[[], None]):
        self.config = config
        self.start_ray = start_ray

    def __call__(self, paths, on_bad_record: str, limit: int | None) -> tuple[SeedView, list[BadRecord]]:
        self.start_ray()
        validation = self.config.validation
        language_model = (
            validation.langid_model
            if recipe_spec(self.config).checks_seed_language and validation.seed_language_check
            else None
        )
        # the dedup keys also key the cached clusters (actors.dataflow.seeds), so they are always computed
        return read_seed_view(paths, on_bad_record, limit, language_model, keys=True)


# ----------------------------------------------------------------------------------------------------
# Seed selection before planning: exact and near deduplication, and k-means clusters of the
# English instructions for stratified per-language samples (select.by: clusters). No LLM runs here.
#
# The clusters are cached in the run folder (selection.parquet), keyed by the seeds and the select
# and dedup settings. A rerun then plans exactly the same rows, so it resumes instead of being
# refused as a changed plan, and it skips the embedding, even where other hardware's floating point
# would move a borderline seed into another cluster.
# ----------------------------------------------------------------------------------------------------


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
        """One rejected row per dropped seed, in input order (engine.selection.dedup)."""
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
        select_log.info(
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
                select_log.info("clusters from %s (same seeds and settings)", folder.child(CACHE_NAME))
                return cached, int(meta[b"k"])
            select_log.info("%s was made for other seeds or settings: clustering again", folder.child(CACHE_NAME))
        self.start_ray()
        if hasattr(seeds, "text_dataset"):  # seeds in the object store (actors.dataflow.seeds.SeedView)
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
        folder = RunFolder.of(run_dir)
        folder.write_parquet(CACHE_NAME, self.pending)  # whole or not at all
        self.pending = None


def _only(seeds: pa.Table, ids) -> pa.Table | None:
    if not ids:
        return None
    return seeds.filter(pc.is_in(seeds.column("id"), value_set=pa.array(list(ids), pa.string())))
