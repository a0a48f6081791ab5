r"""What a block of the generation stage costs the driver: the job's own plan source and actor pool
(actors.dataflow.plan_source.plan_dataset, actors.dataflow.synthesis.actor_pool) over an echo actor that adds
`--row-bytes` of text to each row, its output saved as the job saves it (actors.dataflow.synthesis: the
driver buffers references, Ray tasks write the shards into a temporary folder) or, with
`--consumer driver`, read into the driver and coalesced there (how the job saved rows before).
No model, no checks: only Ray Data's bookkeeping and the blocks.

    .venv/bin/python -m benchmarks.block_memory --rows 640000 --block-rows 64 --calls 32
    .venv/bin/python -m benchmarks.block_memory --rows 200000 --block-rows 512 --calls 4 --row-bytes 3000 \
        [--consumer driver]

Prints one JSON line: the driver's memory at the start and its peak during the run, sampled every
0.1 s from /proc/self/status: VmRSS, RssAnon (its heap and Arrow buffers), RssShmem (object store
pages it has mapped while reading blocks) and RssFile (libraries). actors/dataflow/plan_source.py
cites it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from benchmarks.harness import own_rss_mib

FIELDS = ("VmRSS", "RssAnon", "RssShmem", "RssFile")


def memory_mib() -> dict[str, float]:
    """This process's resident memory by kind, MiB."""
    return {field: own_rss_mib(field) for field in FIELDS}


class EchoActor:
    """Each task back as an accepted row of the run's schema with `row_bytes` characters of output:
    the generated row's size."""

    def __init__(self, row_bytes: int):
        self.text = "x" * row_bytes

    async def __call__(self, batch):
        import pyarrow as pa

        from engine.records import ACCEPTED, SCHEMA

        rows = batch.num_rows
        columns = {field.name: pa.nulls(rows, field.type) for field in SCHEMA}
        columns.update(
            id=batch.column("id").cast(pa.string()),
            status=pa.array([ACCEPTED] * rows, pa.string()),
            output=pa.array([self.text] * rows, pa.string()),
            completion_tokens=pa.array([1] * rows, pa.int64()),
        )
        yield pa.table(columns, schema=SCHEMA)


def save_with_writer(dataset, shard_rows: int) -> tuple[int, int]:
    """The job's way: references to ShardWriter, shards written by Ray tasks; (rows, blocks)."""
    import tempfile

    from actors.dataflow.synthesis import ShardWriter
    from engine.runfolder import RunFolder

    saved, blocks = [], 0
    with tempfile.TemporaryDirectory(prefix="block-memory-") as folder:
        writer = ShardWriter(RunFolder(folder), shard_rows, 1e9, saved.append)
        for bundle in dataset.iter_internal_ref_bundles():
            blocks += len(bundle.blocks)
            writer.add(bundle)
        writer.flush()
    return sum(counts["rows"] for counts in saved), blocks


def save_in_driver(dataset, shard_rows: int) -> tuple[int, int]:
    """Every block read into the driver and coalesced there into shard-sized tables; (rows, blocks)."""
    import pyarrow as pa

    seen, blocks, pending, pending_rows = 0, 0, [], 0
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        seen, blocks = seen + table.num_rows, blocks + 1
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= shard_rows:
            pa.concat_tables(pending).combine_chunks()
            pending, pending_rows = [], 0
    return seen, blocks


CONSUMERS = {"writer": save_with_writer, "driver": save_in_driver}


def measure(
    rows: int,
    block_rows: int,
    calls: int,
    row_bytes: int,
    shard_rows: int,
    object_store_mib: int | None,
    consumer: str = "writer",
) -> dict:
    import pyarrow as pa
    import ray

    from actors.dataflow.plan_source import plan_dataset
    from actors.dataflow.synthesis import actor_pool

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    if object_store_mib:
        context.execution_options.resource_limits = context.execution_options.resource_limits.copy(
            object_store_memory=object_store_mib * 2**20
        )
    peak: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            for name, value in memory_mib().items():
                peak[name] = max(peak.get(name, 0.0), value)

    tasks = pa.table({"id": pa.array(range(rows), pa.int64())})
    start = memory_mib()
    threading.Thread(target=sample, daemon=True, name="memory").start()
    dataset = plan_dataset(tasks, block_rows).map_batches(
        EchoActor,
        fn_constructor_kwargs={"row_bytes": row_bytes},
        batch_size=block_rows,
        batch_format="pyarrow",
        compute=actor_pool(2, calls),
        num_cpus=0.5,
    )
    started = time.monotonic()
    seen, blocks = CONSUMERS[consumer](dataset, shard_rows)
    seconds = time.monotonic() - started
    stop.set()
    ray.shutdown()
    return {
        "consumer": consumer,
        "rows": rows,
        "rows_seen": seen,
        "blocks": blocks,
        "block_rows": block_rows,
        "calls_per_actor": calls,
        "row_bytes": row_bytes,
        "object_store_limit_mib": object_store_mib,
        "seconds": round(seconds, 1),
        "driver_at_start_mib": start,
        "driver_peak_mib": peak,
        "driver_peak_growth_mib": {name: round(peak.get(name, 0.0) - start.get(name, 0.0), 1) for name in FIELDS},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.block_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=640_000)
    parser.add_argument("--block-rows", type=int, default=64, help="rows a block (and a call): the plan's block size")
    parser.add_argument("--calls", type=int, default=32, help="calls an actor holds at once")
    parser.add_argument("--row-bytes", type=int, default=0, help="text added to each row by the echo actor")
    parser.add_argument("--shard-rows", type=int, default=5000)
    parser.add_argument("--object-store-mib", type=int, default=None, help="cap Ray Data's object store budget")
    parser.add_argument(
        "--consumer",
        choices=sorted(CONSUMERS),
        default="writer",
        help="writer: as the job saves rows (Ray tasks write the shards); driver: every block read into the driver",
    )
    args = parser.parse_args(argv)
    result = measure(
        args.rows, args.block_rows, args.calls, args.row_bytes, args.shard_rows, args.object_store_mib, args.consumer
    )
    print(json.dumps(result), flush=True)
    return 0 if result["rows_seen"] == result["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
