"""A run folder and its row store (`RowStore`: the Parquet shards of generated rows, the section at
the end). A run folder lives on any pyarrow filesystem: a local path or a URI (s3://bucket/prefix, gs://…,
hdfs://…), with the one write rule the engine relies on: a file is visible whole or not at all.

- Local: written to a hidden temporary beside the target, fsync'd, renamed into place, and the
  folder fsync'd, so a killed job leaves either the whole file or none (plus a temporary that
  `clean_partial` removes).
- Object stores: an object appears only when its upload completes (a single PUT, or the final
  step of a multipart upload), so the final key is written directly; an interrupted upload is
  never listed. The bytes are staged in memory (spilling to a local temporary file past 64 MiB)
  and uploaded only once the writer finished, so an exception or a kill mid-write uploads nothing
  and leaves an older version of the file as it was.

S3 settings come from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_DEFAULT_REGION / AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 for an
S3-compatible server), which pyarrow's S3FileSystem reads itself, or from the URI's query string
(s3://bucket/prefix?endpoint_override=host:port&scheme=http, keys as s3://KEY:SECRET@bucket/…).
`display` drops the query and the user part, so a credential given there never reaches a log line.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from engine.records import SCHEMA

TEMP_SUFFIX = ".tmp"
SPOOL_BYTES = 64 << 20  # an object-store file is staged in memory up to this, then on local disk
UPLOAD_CHUNK = 8 << 20


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


class RunFolder:
    """Files under one root: names are relative ("plan.json", "shards/part-….parquet")."""

    def __init__(self, location: str | Path, filesystem: pafs.FileSystem | None = None):
        text = str(location)
        if filesystem is not None:
            self.fs, self.root = filesystem, text.rstrip("/")
        elif is_uri(text):
            self.fs, root = pafs.FileSystem.from_uri(text)
            self.root = root.rstrip("/")
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(text).resolve())
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        # What a person reads in messages: the location as given, without a query string.
        self.display = _without_secrets(text) if is_uri(text) else self.root

    @classmethod
    def of(cls, location: RunFolder | str | Path) -> RunFolder:
        """`location` as it is when it already is a RunFolder, else the folder at that path or URI."""
        return location if isinstance(location, RunFolder) else cls(location)

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"RunFolder({self.display!r})"

    def path(self, name: str = "") -> str:
        """The filesystem path of `name` (for pyarrow / Ray Data calls that take `filesystem=`)."""
        return f"{self.root}/{name.strip('/')}" if name else self.root

    def local_path(self, name: str = "") -> Path | None:
        """`name` as a local Path, or None on an object store."""
        return Path(self.path(name)) if self.local else None

    def child(self, name: str) -> RunFolder:
        """A folder inside this one, on the same filesystem."""
        sub = RunFolder(self.path(name), self.fs)
        sub.display = f"{self.display.rstrip('/')}/{name.strip('/')}"
        return sub

    # -- reading -------------------------------------------------------------------------------
    def exists(self, name: str = "") -> bool:
        return self.fs.get_file_info(self.path(name)).type != pafs.FileType.NotFound

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self.path(name)) as stream:
            return stream.read()

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def read_parquet(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(name), columns=columns, filesystem=self.fs)

    def list(self, prefix: str = "", suffix: str = "", recursive: bool = False) -> list[str]:
        """Names of the files in folder `prefix` (relative to this folder), sorted; hidden names
        (temporaries, '.'-prefixed) are left out. A missing folder lists as empty."""
        selector = pafs.FileSelector(self.path(prefix), allow_not_found=True, recursive=recursive)
        names = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            relative = info.path[len(self.root) :].lstrip("/")
            if any(part.startswith(".") for part in relative.split("/")) or not relative.endswith(suffix):
                continue
            names.append(relative)
        return sorted(names)

    # -- writing -------------------------------------------------------------------------------
    def makedirs(self, name: str = "") -> None:
        self.fs.create_dir(self.path(name), recursive=True)

    @contextlib.contextmanager
    def open_output(self, name: str) -> Iterator[io.RawIOBase]:
        """A binary stream whose file appears whole at `name` when the block ends, or not at all
        if it raises (or the process dies)."""
        if not self.local:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
                yield spool
                spool.seek(0)
                with self.fs.open_output_stream(self.path(name)) as stream:
                    shutil.copyfileobj(spool, stream, UPLOAD_CHUNK)
            return
        final = Path(self.path(name))
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
        try:
            with open(staging, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, final)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.open_output(name) as stream:
            stream.write(data)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode("utf-8"))

    def write_parquet(self, name: str, table: pa.Table, **options) -> None:
        with self.open_output(name) as stream:
            pq.write_table(table, stream, **options)

    def clean_partial(self, prefix: str = "") -> int:
        """Remove temporaries a killed local writer left in folder `prefix`; returns how many.
        (An object store keeps no partial objects to clean.)"""
        if not self.local:
            return 0
        folder = Path(self.path(prefix))
        stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}")] if folder.is_dir() else []
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


def _without_secrets(uri: str) -> str:
    """scheme://[user[:secret]@]host/path?query → scheme://host/path."""
    scheme, rest = uri.split("://", 1)
    rest = rest.split("?", 1)[0]
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(descriptor)


# ----------------------------------------------------------------------------------------------------
# The run folder's row store: Parquet shards written whole-or-not-at-all as work completes, on
# a local disk or any pyarrow filesystem (engine.runfolder).
#
# Finished batches are coalesced into shards of bounded size (ShardBuffer): a shard is written
# once it holds `shard_rows` rows or its first row waited `shard_seconds`, whichever comes first
# (and at the end of the run, or when the run stops on an error). A shard is written atomically
# (engine.runfolder), so a killed job leaves whole shards only: a rerun trusts every
# `part-*.parquet` it finds and skips their ids. What a kill loses is the rows in flight: those in
# the actors and those buffered, at most `shard_rows` rows or `shard_seconds` of work.
#
# The generation stage buffers references to blocks and has Ray workers write the shards
# (actors/dataflow/synthesis.py), so the driver never reads a generated row; RowStore.add buffers tables
# by the same rule, for callers that hold their rows themselves.
#
# Resume reads only the shards' id columns, into one Arrow array (`done_id_array`): a million
# finished ids are ~30 MB of Arrow buffers, not a Python set of strings.
# ----------------------------------------------------------------------------------------------------


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
        self.folder = RunFolder.of(run_dir)
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
