"""A run folder on any pyarrow filesystem: a local path or a URI (s3://bucket/prefix, gs://…,
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
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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
