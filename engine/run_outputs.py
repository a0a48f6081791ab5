"""A finished run's outputs, written from its shards one language at a time.

    <run>/accepted.parquet/<lang>/part-00000.parquet   accepted rows, a Parquet dataset by language
    <run>/rejected.parquet/<lang>/part-00000.parquet   rejected rows (no-language/: unreadable input records)
    <run>/accepted.jsonl, rejected.jsonl                the same rows as JSON lines, appended language by language

`pyarrow.parquet.read_table("<run>/accepted.parquet")`, `datasets.load_dataset("parquet", ...)`,
DuckDB and Polars read either folder whole; every file holds the full row schema (the language
directory is only a name, no column is moved into the path).

How the driver stays small: one streaming pass over the shards sorts rows into a hidden
staging dataset by language (batch by batch, STAGE_BYTES at a time) while it tallies their ids
(IdTally: a count and sums, nothing per row), which must equal the plan's tally; then each
language is finalised on its own (`finalise_language`: its exact duplicates and X-Instruction
budget decided, its rows and JSONL part written, its figures and a bounded sample returned), on
Ray workers when the job passes a Ray map (actors/dataflow/synthesis.py), else in this process. The
driver keeps figures and samples, and copies the JSONL parts into one file a chunk at a time.
The largest thing one process holds is one language's rows, never the run's.

The rows' `output_embedding` (one float16 vector per row, for the near-duplicate step) stays in
the Parquet datasets, where a reader that does not want it skips the column for free and a
later stage may reuse it; the JSONL files and the page's sample leave it out (384 numbers a line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from engine.inputs.plan import _pack_hex, plan_fingerprint
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
COPY_BYTES = 4 * 2**20  # the JSONL parts are copied into one file this much at a time


def dataset_name(status: str) -> str:
    return f"{status}.parquet"


def language_of(directory: str) -> str | None:
    """The language a dataset's directory holds (the inverse of _language_dirs)."""
    return None if directory == NO_LANGUAGE_DIR else directory


class PlanMismatch(RuntimeError):
    pass


def shard_names(folder: RunFolder) -> list[str]:
    """The run's shards (engine/runfolder.py writes them as shards/part-*.parquet), sorted."""
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


@dataclass
class IdTally:
    """A multiset of ids as three numbers: how many, and the sums of the two 40-bit halves of each
    id's 80 bits (a row id's 20 hex characters, which are sha256 bits; any other id is hashed to
    80 bits). Two tallies are equal when the multisets are, and a missing, extra or repeated id
    changes the sums unless 80 random bits cancel out: the check costs nothing per row held.
    `add` takes one Arrow array at a time, so neither the shards' ids nor the plan's are ever
    all in memory."""

    count: int = 0
    high: int = 0
    low: int = 0

    def add(self, ids: pa.Array | pa.ChunkedArray) -> IdTally:
        for chunk in ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]:
            hexed = pc.fill_null(pc.match_substring_regex(chunk, "^[0-9a-f]{20}$"), False)
            packed = _pack_hex(chunk.filter(hexed))
            others = chunk.filter(pc.invert(hexed)).to_pylist()
            if others:
                hashed = [hashlib.blake2b((value or "").encode("utf-8"), digest_size=10).digest() for value in others]
                packed = np.concatenate([packed, np.array(hashed, "S10")])
            raw = np.frombuffer(packed.tobytes(), np.uint8).reshape(-1, 10).astype(np.uint64)
            weights = np.uint64(1) << (np.arange(4, -1, -1, dtype=np.uint64) * np.uint64(8))
            # At most 2^40 each: sums of up to 2^24 ids per chunk stay exact in uint64.
            self.high += int((raw[:, :5] @ weights).sum(dtype=np.uint64))
            self.low += int((raw[:, 5:] @ weights).sum(dtype=np.uint64))
            self.count += len(chunk)
        return self


def plan_tally(planned) -> IdTally:
    """The IdTally of every planned id: of an engine.inputs.plan.PlannedIds (a slice at a time),
    an Arrow array or a list."""
    tally = IdTally()
    if hasattr(planned, "id_chunks"):
        for chunk in planned.id_chunks():
            tally.add(chunk)
        return tally
    return tally.add(
        planned if isinstance(planned, (pa.Array, pa.ChunkedArray)) else pa.array(list(planned), pa.string())
    )


def read_shard_ids(folder: RunFolder) -> pa.ChunkedArray:
    """Every id in the shards (for saying what a mismatch is: the error path only)."""
    chunks = [
        chunk for name in shard_names(folder) for chunk in folder.read_parquet(name, columns=["id"]).column("id").chunks
    ]
    return pa.chunked_array(chunks, pa.string())


def stage_by_language(folder: RunFolder, shard_names: list[str]) -> IdTally:
    """Copy the shards into STAGING/<language>/<n>.parquet, STAGE_BYTES of rows at a time (one file
    per language per flush); returns the IdTally of every row's id. pyarrow's write_dataset would
    do this in one call but holds an open Parquet writer per language, ~20 times the rows' size here."""
    with contextlib.suppress(FileNotFoundError):
        folder.fs.delete_dir(folder.path(STAGING))
    tally = IdTally()
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
            pq.write_table(
                pa.concat_tables(pieces),
                folder.path(f"{STAGING}/{directory}/{flushes:06d}.parquet"),
                filesystem=folder.fs,
            )
        pending, flushes = [], flushes + 1
        # else the pool keeps what each flush freed, and the peak creeps up with the run
        pa.default_memory_pool().release_unused()

    for name in shard_names:
        table = _conform(folder.read_parquet(name))
        tally.add(table.column("id"))
        pending.append(table)
        if sum(t.nbytes for t in pending) >= STAGE_BYTES:
            flush()
    if pending:
        flush()
    return tally


def _language_dirs(table: pa.Table) -> pa.ChunkedArray:
    part = pc.fill_null(table.column("lang"), NO_LANGUAGE_DIR)
    return pc.if_else(pc.equal(part, ""), NO_LANGUAGE_DIR, part)


def _conform(table: pa.Table) -> pa.Table:
    """A shard written before a column was added gets it as nulls; the rest cast to SCHEMA."""
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in SCHEMA
    ]
    return table if table.schema == SCHEMA else pa.Table.from_arrays(columns, names=SCHEMA.names).cast(SCHEMA)


def list_dirs(folder: RunFolder, name: str) -> list[str]:
    selector = pafs.FileSelector(folder.path(name), allow_not_found=True)
    return sorted(info.base_name for info in folder.fs.get_file_info(selector) if info.type == pafs.FileType.Directory)


def read_dataset(folder: RunFolder, name: str, columns: list[str] | None = None) -> pa.Table:
    """A dataset folder (or a single file) read with the row schema: a dataset with no rows, or a
    file of an older run missing a newer column, still gives every column."""
    return ds.dataset(folder.path(name), schema=SCHEMA, format="parquet", filesystem=folder.fs).to_table(
        columns=columns
    )


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


def jsonl_part(directory: str, status: str) -> str:
    """A language's JSONL lines of one status, staged until finalise joins them ('_': not a Parquet file)."""
    return f"{STAGING}/{directory}/_{status}.jsonl"


def write_language(folder: RunFolder, table: pa.Table, directory: str) -> dict[str, int]:
    """One language's rows: its Parquet files in each status's dataset and its staged JSONL parts.
    Returns the rows written per status."""
    written = {}
    for status in STATUSES:
        part = table.filter(pc.equal(table.column("status"), status))
        written[status] = part.num_rows
        for number, start in enumerate(range(0, part.num_rows, ROWS_PER_FILE)):
            name = f"{dataset_name(status)}/{directory}/part-{number:05d}.parquet"
            folder.write_parquet(name, part.slice(start, ROWS_PER_FILE), row_group_size=ROWS_PER_GROUP)
        if part.num_rows:
            with folder.fs.open_output_stream(folder.path(jsonl_part(directory, status))) as out:
                for start in range(0, part.num_rows, JSONL_CHUNK):
                    rows = without_vectors(part.slice(start, JSONL_CHUNK)).to_pylist()
                    out.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8"))
    return written


LanguageStep = Callable[[pa.Table], pa.Table]
"""One language's table (sorted by (seed_id, id)) in, the same rows out, some now rejected. A step
may keep counts in a `stats` Counter: what one language's finalise added is handed back with its
figures (a step runs as a copy on a Ray worker) and the driver sums them (`Finalised.stats`)."""


@dataclass
class LanguageDone:
    """What finalising one language hands back: small whatever the language's size."""

    lang: str | None
    figures: RunFigures
    sample: list[dict]
    written: dict[str, int]
    stats: Counter


def finalise_language(
    directory: str, folder: RunFolder, steps: list[LanguageStep], seed_clusters: dict[str, int] | None, sample_cap: int
) -> LanguageDone:
    """One staged language: its rows in a fixed order, the steps, its outputs written."""
    table = read_dataset(folder, f"{STAGING}/{directory}")
    # A deterministic order, whatever order the shards were written in.
    table = table.take(pc.sort_indices(table, [("seed_id", "ascending"), ("id", "ascending")]))
    stats: Counter = Counter()
    for step in steps:
        before = Counter(getattr(step, "stats", None) or {})
        table = step(table)
        stats.update(Counter(getattr(step, "stats", None) or {}) - before)
    written = write_language(folder, table, directory)
    sample = Sample(sample_cap)
    sample.add(table)
    log.info("finalised %s: %d rows", directory, table.num_rows)
    return LanguageDone(language_of(directory), RunFigures.of(table, seed_clusters), sample.rows, written, stats)


def join_jsonl(folder: RunFolder, directories: list[str]) -> None:
    """accepted.jsonl and rejected.jsonl from the languages' staged parts, in language order,
    copied COPY_BYTES at a time."""
    for status in STATUSES:
        with folder.open_output(f"{status}.jsonl") as out:
            for directory in directories:
                name = jsonl_part(directory, status)
                if not folder.exists(name):
                    continue
                with folder.fs.open_input_stream(folder.path(name)) as part:
                    while chunk := part.read(COPY_BYTES):
                        out.write(chunk)


@dataclass
class Finalised:
    figures: RunFigures
    sample: Sample
    languages: list[str | None]
    stats: Counter = field(default_factory=Counter)


LanguageMap = Callable[[Callable[[str], LanguageDone], list[str]], Iterable[LanguageDone]]


def finalise_outputs(
    folder: RunFolder,
    planned,
    steps: list[LanguageStep],
    seed_clusters: dict[str, int] | None = None,
    sample_cap: int = 50,
    map_languages: LanguageMap | None = None,
) -> Finalised:
    """Check the shards against the plan, then write every language's rows after `steps`
    (dedup, budget); returns the merged figures and the page's sample. `map_languages(fn,
    directories)` runs `fn` on each staged language and yields the results in order (the job's
    runs them as Ray tasks: actors/dataflow/synthesis.py); without it they run here, one by one."""
    found = stage_by_language(folder, shard_names(folder))
    if found != plan_tally(planned):
        folder.fs.delete_dir(folder.path(STAGING))
        check_plan(read_shard_ids(folder), planned)  # says what differs
        raise PlanMismatch(f"the shards hold {found.count} ids, the plan {len(planned)}, and they are not the same ids")
    remove_outputs(folder)
    directories = list_dirs(folder, STAGING)
    work = partial(finalise_language, folder=folder, steps=steps, seed_clusters=seed_clusters, sample_cap=sample_cap)
    figures, sample, stats, written, languages = RunFigures(), Sample(sample_cap), Counter(), Counter(), []
    for done in (map_languages or map)(work, directories):
        languages.append(done.lang)
        figures = figures + done.figures
        sample.rows += done.sample
        stats.update(done.stats)
        written.update(done.written)
    join_jsonl(folder, directories)
    for status in STATUSES:
        if not written[status]:  # the dataset exists (an object store has no empty folders) and holds the schema
            folder.write_parquet(f"{dataset_name(status)}/{NO_ROWS}", SCHEMA.empty_table())
    with contextlib.suppress(FileNotFoundError):  # absent when the run has no rows
        folder.fs.delete_dir(folder.path(STAGING))
    return Finalised(figures, sample, languages, stats)


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
        yield language_of(directory), pa.concat_tables(parts)
