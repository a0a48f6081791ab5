"""ShardWriter: the generation stage's rows written to the run folder by Ray workers, so that the
driver never reads a generated row.

    writer = ShardWriter(folder, shard_rows, shard_seconds, on_written=progress.update)
    for bundle in dataset.iter_internal_ref_bundles():   # references and row counts, not rows
        writer.add(bundle)
    writer.flush()

The driver buffers references to finished blocks by the store's rule (engine.store.ShardBuffer:
`shard_rows` rows or `shard_seconds` of age) and hands each full buffer to a Ray task that
fetches those blocks on its node, writes them as one shard (whole or not at all) and returns
counts. A kill loses what a kill lost before: the rows in the actors, the buffer, and the shard
being written.

Why not iter_batches in the driver: every block the driver reads maps object store pages into it,
and they stay resident after the block is freed (157 MiB for 200,000 rows of 3 KB in 512-row
blocks, `python -m benchmarks.block_memory`), so its RSS grew with the run's size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import ray

from engine.records import ACCEPTED
from engine.runfolder import RunFolder
from engine.store import ShardBuffer, new_shard_name, write_shard

WRITES_IN_FLIGHT = 2  # shards being written at once; a third waits for the oldest


@ray.remote(num_cpus=0)  # a pool that reserves every CPU must still get its rows saved
def write_blocks(root: str, fs, name: str, slices: list[tuple[int, int] | None], *blocks) -> dict:
    """Shard `name` from `blocks` (resolved on this worker, from its node's object store when they
    are there), each cut to its slice; returns the shard's name and counts. The name comes from
    the driver, so a write Ray retries after its worker died replaces the same shard: no id is
    ever saved twice."""
    from ray.data.block import BlockAccessor

    tables = []
    for block, part in zip(blocks, slices):
        table = BlockAccessor.for_block(block).to_arrow()
        tables.append(table if part is None else table.slice(part[0], part[1] - part[0]))
    table = pa.concat_tables(tables)
    write_shard(RunFolder(root, fs), table, name)
    return {
        "shard": name,
        "rows": table.num_rows,
        "accepted": pc.sum(pc.equal(table.column("status"), ACCEPTED)).as_py() or 0,
        "completion_tokens": pc.sum(table.column("completion_tokens")).as_py() or 0,
    }


class ShardWriter:
    """Coalesces block references into shards and has them written by `write_blocks` tasks;
    `on_written(counts)` is called, in order, as each shard is saved."""

    def __init__(
        self,
        folder: RunFolder,
        shard_rows: int,
        shard_seconds: float,
        on_written: Callable[[dict], None],
        in_flight: int = WRITES_IN_FLIGHT,
    ):
        self.folder, self.on_written, self.in_flight = folder, on_written, in_flight
        self.buffer = ShardBuffer(shard_rows, shard_seconds)
        self.writing: deque = deque()

    def add(self, bundle, now: float | None = None) -> None:
        """Buffer a Ray Data RefBundle's blocks; starts a shard's write when the buffer is due."""
        for entry, part in zip(bundle.blocks, bundle.slices or [None] * len(bundle.blocks)):
            span = None if part is None else (part.start_offset, part.end_offset)
            rows = entry.metadata.num_rows if part is None else part.num_rows
            if rows == 0:
                continue  # nothing to save (None: not counted, written all the same)
            if self.buffer.add((entry.ref, span), rows or 0, now):
                self.submit()

    def submit(self) -> None:
        """Start writing what is buffered as one shard (nothing when it is empty); waits for the
        oldest write while more than `in_flight` are running."""
        items = self.buffer.take()
        if items:
            refs, spans = [ref for ref, _ in items], [span for _, span in items]
            self.writing.append(write_blocks.remote(self.folder.root, self.folder.fs, new_shard_name(), spans, *refs))
        while len(self.writing) > self.in_flight:
            self.wait_oldest()

    def wait_oldest(self) -> None:
        counts = ray.get(self.writing.popleft())
        self.on_written(counts)

    def flush(self) -> None:
        """Write what is buffered and wait until every shard started is saved."""
        self.submit()
        while self.writing:
            self.wait_oldest()
