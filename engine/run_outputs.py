"""A finished run's outputs, written from its shards one language at a time.

    <run>/accepted.parquet/<lang>/part-00000.parquet   accepted rows, a Parquet dataset by language
    <run>/rejected.parquet/<lang>/part-00000.parquet   rejected rows (no-language/: unreadable input records)
    <run>/accepted.jsonl, rejected.jsonl                the same rows as JSON lines, appended language by language

`pyarrow.parquet.read_table("<run>/accepted.parquet")`, `datasets.load_dataset("parquet", ...)`,
DuckDB and Polars read either folder whole; every file holds the full row schema (the language
directory is only a name, no column is moved into the path).

How the driver stays small: one streaming pass over the shards sorts rows into a hidden
staging dataset by language (`pyarrow.dataset.write_dataset`, batch by batch) while the ids are
checked against the plan with Arrow set operations; then each language is read alone, its exact
duplicates and X-Instruction budget decided, its rows written, its figures (report counts, plot
inputs) and a bounded sample (the report page's) kept. The largest thing held is one language's
rows, never the run's.

The rows' `output_embedding` (one float16 vector per row, for the near-duplicate step) stays in
the Parquet datasets, where a reader that does not want it skips the column for free and a
later stage may reuse it; the JSONL files and the page's sample leave it out (384 numbers a line).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from engine.inputs.plan import plan_fingerprint
from engine.records import ACCEPTED, REJECTED, SCHEMA
from engine.report.aggregate import RunFigures
from engine.runfolder import RunFolder

log = logging.getLogger("babelforge.outputs")

STATUSES = (ACCEPTED, REJECTED)
NO_LANGUAGE_DIR = "no-language"  # rows decided before a language was assigned
NO_ROWS = "_no-rows.parquet"  # a dataset with no rows: one empty file ('_' names are skipped by readers)
STAGING = ".by-language"  # hidden: RunFolder.list and pyarrow's dataset discovery skip it
ROWS_PER_FILE = 50_000  # rows per Parquet file of an output dataset
ROWS_PER_GROUP = 5_000  # rows per Parquet row group (what one reader batch holds)
JSONL_CHUNK = 500  # rows turned into Python dicts at a time for the JSONL files
NOT_IN_JSONL = ("output_embedding",)  # in the Parquet datasets only (see the module docstring)
STAGE_BYTES = 16 * 2**20  # rows buffered by the staging pass before they are written out by language


def dataset_name(status: str) -> str:
    return f"{status}.parquet"


def language_dir(lang: str | None) -> str:
    return lang or NO_LANGUAGE_DIR


class PlanMismatch(RuntimeError):
    pass


def shard_names(folder: RunFolder) -> list[str]:
    """The run's shards (engine/store.py writes them as shards/part-*.parquet), sorted."""
    return [name for name in folder.list("shards", suffix=".parquet") if name.rsplit("/", 1)[-1].startswith("part-")]


def check_plan(ids: pa.ChunkedArray | pa.Array, planned) -> None:
    """Every planned id exactly once in the shards: Arrow hash set operations, no Python set.
    `planned` may be an engine.inputs.plan.PlannedIds: then the shards' sorted ids are compared
    with the plan's by digest (plan_fingerprint), and the plan's ids are listed only to count a
    mismatch."""
    if hasattr(planned, "id_chunks"):
        if len(ids) == len(planned) and plan_fingerprint(ids) == plan_fingerprint(planned):
            return
        planned = planned.to_arrow()
    planned = planned if isinstance(planned, (pa.Array, pa.ChunkedArray)) else pa.array(planned, pa.string())
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    planned = pc.unique(planned.combine_chunks() if isinstance(planned, pa.ChunkedArray) else planned)
    unique = pc.unique(ids)
    duplicated = len(ids) - len(unique)
    missing = len(planned) - (pc.sum(pc.is_in(planned, value_set=unique)).as_py() or 0)
    extra = len(unique) - (pc.sum(pc.is_in(unique, value_set=planned)).as_py() or 0)
    if duplicated or missing or extra:
        raise PlanMismatch(f"{missing} missing, {extra} unexpected, {duplicated} duplicated ids")


def stage_by_language(folder: RunFolder, shard_names: list[str]) -> pa.ChunkedArray:
    """Copy the shards into STAGING/<language>/<n>.parquet, STAGE_BYTES of rows at a time (one file
    per language per flush); returns every row's id (Arrow). pyarrow's write_dataset would do this
    in one call but holds an open Parquet writer per language, ~20 times the rows' size here."""
    with contextlib.suppress(FileNotFoundError):
        folder.fs.delete_dir(folder.path(STAGING))
    ids: list[pa.Array] = []
    pending: list[pa.Table] = []
    flushes, made = 0, set()

    def flush() -> None:
        nonlocal pending, flushes
        parts = [_language_dirs(table) for table in pending]
        for directory in sorted(set().union(*(pc.unique(part).to_pylist() for part in parts))):
            pieces = [table.filter(pc.equal(part, directory)) for table, part in zip(pending, parts)]
            if directory not in made:
                folder.makedirs(f"{STAGING}/{directory}")
                made.add(directory)
            # Written plainly, not through the atomic, fsync'd path: a killed finalise restages from the shards.
            pq.write_table(pa.concat_tables(pieces), folder.path(f"{STAGING}/{directory}/{flushes:06d}.parquet"), filesystem=folder.fs)
        pending, flushes = [], flushes + 1

    for name in shard_names:
        table = _conform(folder.read_parquet(name))
        ids.extend(table.column("id").chunks)
        pending.append(table)
        if sum(t.nbytes for t in pending) >= STAGE_BYTES:
            flush()
    if pending:
        flush()
    return pa.chunked_array(ids, pa.string())


def _language_dirs(table: pa.Table) -> pa.ChunkedArray:
    part = pc.fill_null(table.column("lang"), NO_LANGUAGE_DIR)
    return pc.if_else(pc.equal(part, ""), NO_LANGUAGE_DIR, part)


def _conform(table: pa.Table) -> pa.Table:
    """A shard written before a column was added gets it as nulls; the rest cast to SCHEMA."""
    columns = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in SCHEMA]
    return table if table.schema == SCHEMA else pa.Table.from_arrays(columns, names=SCHEMA.names).cast(SCHEMA)


def list_dirs(folder: RunFolder, name: str) -> list[str]:
    selector = pafs.FileSelector(folder.path(name), allow_not_found=True)
    return sorted(info.base_name for info in folder.fs.get_file_info(selector) if info.type == pafs.FileType.Directory)


def read_dataset(folder: RunFolder, name: str, columns: list[str] | None = None) -> pa.Table:
    """A dataset folder (or a single file) read with the row schema: a dataset with no rows, or a
    file of an older run missing a newer column, still gives every column."""
    return ds.dataset(folder.path(name), schema=SCHEMA, format="parquet", filesystem=folder.fs).to_table(columns=columns)


def remove_outputs(folder: RunFolder) -> None:
    """Old outputs go before new ones are written (a rerun of finalise starts clean): the
    datasets (or a single-file accepted.parquet of an older run folder) and the JSONL files."""
    for status in STATUSES:
        info = folder.fs.get_file_info(folder.path(dataset_name(status)))
        if info.type == pafs.FileType.Directory:
            folder.fs.delete_dir(info.path)
        elif info.type == pafs.FileType.File:
            folder.fs.delete_file(info.path)


@dataclass
class Sample:
    """The first `cap` accepted and first `cap` rejected rows of each language, in output order:
    exactly what the report page's sample browser picks from a whole run."""

    cap: int
    rows: list[dict] = field(default_factory=list)

    def add(self, table: pa.Table) -> None:
        for status in STATUSES:
            part = table.filter(pc.equal(table.column("status"), status)).slice(0, self.cap)
            self.rows += without_vectors(part).to_pylist()


def without_vectors(table: pa.Table) -> pa.Table:
    return table.drop_columns([name for name in NOT_IN_JSONL if name in table.column_names])


class OutputWriter:
    """accepted/rejected datasets and JSONL files, written a language at a time."""

    def __init__(self, folder: RunFolder, jsonl: bool = True):
        self.folder = folder
        self.stack = contextlib.ExitStack()
        self.jsonl = {status: self.stack.enter_context(folder.open_output(f"{status}.jsonl")) for status in STATUSES} if jsonl else {}
        self.rows = {status: 0 for status in STATUSES}

    def write(self, table: pa.Table, lang: str | None) -> None:
        for status in STATUSES:
            part = table.filter(pc.equal(table.column("status"), status))
            self.rows[status] += part.num_rows
            for number, start in enumerate(range(0, part.num_rows, ROWS_PER_FILE)):
                name = f"{dataset_name(status)}/{language_dir(lang)}/part-{number:05d}.parquet"
                self.folder.write_parquet(name, part.slice(start, ROWS_PER_FILE), row_group_size=ROWS_PER_GROUP)
            if status in self.jsonl:
                for start in range(0, part.num_rows, JSONL_CHUNK):
                    rows = without_vectors(part.slice(start, JSONL_CHUNK)).to_pylist()
                    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                    self.jsonl[status].write(lines.encode("utf-8"))

    def close(self) -> None:
        for status, rows in self.rows.items():
            if not rows:  # the dataset exists (an object store has no empty folders) and holds the schema
                self.folder.write_parquet(f"{dataset_name(status)}/{NO_ROWS}", SCHEMA.empty_table())
        self.stack.close()


LanguageStep = Callable[[pa.Table], pa.Table]


@dataclass
class Finalised:
    figures: RunFigures
    sample: Sample
    languages: list[str | None]


def finalise_outputs(folder: RunFolder, planned, steps: list[LanguageStep],
                     seed_clusters: dict[str, int] | None = None, sample_cap: int = 50) -> Finalised:
    """Check the shards against the plan, then write every language's rows after `steps`
    (dedup, budget: each takes and returns one language's table, sorted by (seed_id, id));
    returns the merged figures and the page's sample."""
    ids = stage_by_language(folder, shard_names(folder))
    try:
        check_plan(ids, planned)
    except PlanMismatch:
        folder.fs.delete_dir(folder.path(STAGING))
        raise
    del ids
    remove_outputs(folder)
    figures, sample, languages = RunFigures(), Sample(sample_cap), []
    writer = OutputWriter(folder)
    try:
        for directory in list_dirs(folder, STAGING):
            table = read_dataset(folder, f"{STAGING}/{directory}")
            # A deterministic order, whatever order the shards were written in.
            table = table.take(pc.sort_indices(table, [("seed_id", "ascending"), ("id", "ascending")]))
            for step in steps:
                table = step(table)
            lang = None if directory == NO_LANGUAGE_DIR else directory
            writer.write(table, lang)
            figures = figures + RunFigures.of(table, seed_clusters)
            sample.add(table)
            languages.append(lang)
            log.info("finalised %s: %d rows", language_dir(lang), table.num_rows)
            del table
    finally:
        writer.close()
    with contextlib.suppress(FileNotFoundError):  # absent when the run has no rows
        folder.fs.delete_dir(folder.path(STAGING))
    return Finalised(figures, sample, languages)


def read_language_groups(folder: RunFolder) -> Iterator[tuple[str | None, pa.Table]]:
    """A finished run folder's rows, accepted and rejected together, one language at a time (in
    the order finalise wrote them). Older run folders with single-file accepted/rejected.parquet
    are read whole and split by language (they were small)."""
    names = [dataset_name(status) for status in STATUSES]
    if any(folder.fs.get_file_info(folder.path(name)).type == pafs.FileType.File for name in names):
        table = pa.concat_tables([folder.read_parquet(name).select(SCHEMA.names).cast(SCHEMA) for name in names])
        langs = table.column("lang")
        for lang in sorted(set(pc.unique(langs).to_pylist()), key=lambda value: (value is None, value or "")):
            mask = pc.is_null(langs) if lang is None else pc.fill_null(pc.equal(langs, lang), False)
            yield lang, table.filter(mask)
        return
    directories = sorted({d for name in names for d in list_dirs(folder, name)})
    for directory in directories:
        parts = [read_dataset(folder, f"{name}/{directory}") for name in names if folder.exists(f"{name}/{directory}")]
        yield (None if directory == NO_LANGUAGE_DIR else directory), pa.concat_tables(parts)
