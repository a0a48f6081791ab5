"""The run folder's row store: Parquet shards written whole-or-not-at-all as work completes, on
a local disk or any pyarrow filesystem (engine.runfolder).

Finished batches are coalesced into shards of bounded size (ShardBuffer): a shard is written
once it holds `shard_rows` rows or its first row waited `shard_seconds`, whichever comes first
(and at the end of the run, or when the run stops on an error). A shard is written atomically
(engine.runfolder), so a killed job leaves whole shards only: a rerun trusts every
`part-*.parquet` it finds and skips their ids. What a kill loses is the rows in flight: those in
the actors and those buffered, at most `shard_rows` rows or `shard_seconds` of work.

The generation stage buffers references to blocks and has Ray workers write the shards
(actors/dataflow/shard_writer.py), so the driver never reads a generated row; RowStore.add buffers tables
by the same rule, for callers that hold their rows themselves.

Resume reads only the shards' id columns, into one Arrow array (`done_id_array`): a million
finished ids are ~30 MB of Arrow buffers, not a Python set of strings.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

from engine.records import SCHEMA
from engine.runfolder import RunFolder

SHARDS = "shards"


def new_shard_name() -> str:
    return f"{SHARDS}/part-{uuid.uuid4().hex}.parquet"


def write_shard(folder: RunFolder, table: pa.Table, name: str | None = None) -> str:
    """Write `table` as shard `name` (a new name by default) of `folder`, whole or not at all;
    returns the name. Writing the same name again replaces the shard: a retried write is safe."""
    name = name or new_shard_name()
    folder.write_parquet(name, table.select(SCHEMA.names).cast(SCHEMA))
    return name


class ShardBuffer:
    """Items (tables, or references to blocks) waiting to become one shard: `add` says when they
    are due, once they hold `shard_rows` rows or the first of them waited `shard_seconds`."""

    def __init__(self, shard_rows: int, shard_seconds: float):
        self.shard_rows, self.shard_seconds = shard_rows, shard_seconds
        self.items: list = []
        self.rows = 0
        self.since: float | None = None

    def add(self, item, rows: int, now: float | None = None) -> bool:
        """Buffer `item` of `rows` rows; True when the buffer is due to be written (take())."""
        now = time.monotonic() if now is None else now
        self.items.append(item)
        self.rows += rows
        if self.since is None:
            self.since = now
        return self.rows >= self.shard_rows or now - self.since >= self.shard_seconds

    def take(self) -> list:
        """The buffered items, oldest first; the buffer is empty afterwards."""
        items, self.items, self.rows, self.since = self.items, [], 0, None
        return items


class RowStore:
    def __init__(self, run_dir: RunFolder | str | Path, shard_rows: int = 5000, shard_seconds: float = 60.0):
        self.folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
        self.folder.makedirs(SHARDS)
        self.shard_rows, self.shard_seconds = shard_rows, shard_seconds
        self.pending = ShardBuffer(shard_rows, shard_seconds)

    def _path(self, name: str = "") -> Path | PurePosixPath:
        path = self.folder.path(name)
        return Path(path) if self.folder.local else PurePosixPath(path)

    def shard_names(self) -> list[str]:
        """Shard names relative to the run folder, sorted."""
        return [
            name for name in self.folder.list(SHARDS, suffix=".parquet") if name.rsplit("/", 1)[-1].startswith("part-")
        ]

    def shards(self) -> list[Path | PurePosixPath]:
        return [self._path(name) for name in self.shard_names()]

    def write(self, table: pa.Table) -> Path | PurePosixPath:
        """Write `table` as one shard now; returns its path on the run folder's filesystem."""
        return self._path(write_shard(self.folder, table))

    def add(self, table: pa.Table, now: float | None = None) -> Path | PurePosixPath | None:
        """Buffer a finished batch; writes the buffer as one shard once it reached shard_rows rows
        or shard_seconds of age. Returns the shard written, if any."""
        if self.pending.add(table.select(SCHEMA.names).cast(SCHEMA), table.num_rows, now):
            return self.flush()
        return None

    def flush(self) -> Path | PurePosixPath | None:
        """Write whatever is buffered as one shard (nothing when the buffer is empty)."""
        tables = self.pending.take()
        return self.write(pa.concat_tables(tables)) if tables else None

    def done_id_array(self) -> pa.ChunkedArray:
        """Every id already written, read from the shards' id columns only."""
        chunks = [
            chunk
            for name in self.shard_names()
            for chunk in self.folder.read_parquet(name, columns=["id"]).column("id").chunks
        ]
        return pa.chunked_array(chunks, pa.string())

    def read_rows(self, ids: pa.Array, columns: list[str]) -> pa.Table:
        """`columns` (and id) of the written rows whose id is in `ids`, a shard at a time: the
        caller holds what it asked for (a probe's rows), never the run."""
        names = ["id", *[name for name in columns if name != "id"]]
        schema = pa.schema([SCHEMA.field(name) for name in names])
        parts = [schema.empty_table()]
        for shard in self.shard_names():
            table = self.folder.read_parquet(shard, columns=names).cast(schema)
            parts.append(table.filter(pc.is_in(table.column("id"), value_set=ids)))
        return pa.concat_tables(parts)

    def clean_partial(self) -> int:
        """Remove temporaries a killed writer left behind; returns how many."""
        return self.folder.clean_partial(SHARDS)
