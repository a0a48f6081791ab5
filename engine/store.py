"""The run folder's row store: Parquet shards written atomically as work completes.

A shard is written to a hidden temporary name and renamed into place, so a killed job leaves
either a whole shard or none: a rerun trusts every `part-*.parquet` it finds and skips their ids.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.records import SCHEMA


class RowStore:
    def __init__(self, run_dir: str | Path):
        self.shard_dir = Path(run_dir) / "shards"
        self.shard_dir.mkdir(parents=True, exist_ok=True)

    def shards(self) -> list[Path]:
        return sorted(self.shard_dir.glob("part-*.parquet"))

    def write(self, table: pa.Table) -> Path:
        table = table.select(SCHEMA.names).cast(SCHEMA)
        final = self.shard_dir / f"part-{uuid.uuid4().hex}.parquet"
        staging = self.shard_dir / f".{final.name}.tmp"
        pq.write_table(table, staging)
        with open(staging, "rb") as handle:
            os.fsync(handle.fileno())
        staging.rename(final)
        return final

    def done_ids(self) -> set[str]:
        ids: set[str] = set()
        for shard in self.shards():
            ids.update(pq.read_table(shard, columns=["id"]).column("id").to_pylist())
        return ids

    def read_all(self) -> pa.Table:
        shards = self.shards()
        if not shards:
            return SCHEMA.empty_table()
        return pa.concat_tables([pq.read_table(shard).cast(SCHEMA) for shard in shards])

    def clean_partial(self) -> int:
        """Remove temporaries a killed writer left behind; returns how many."""
        stale = list(self.shard_dir.glob(".part-*.tmp"))
        for path in stale:
            path.unlink()
        return len(stale)
