"""The generation stage's rows are saved by Ray workers (actors/dataflow/synthesis.py): the driver
buffers references to the pool's blocks and never reads a generated row, so its memory does not
grow with what the run generates. The job's own plan, pool and save_rows() on real Ray, over an
actor that answers every task with a large accepted row (no model: the rows' size is the point).

Before, the driver read every block (iter_batches) and wrote the shards itself; each block it read
mapped object store pages into it that stayed resident (RssShmem): 41 MiB for these 85 MiB of rows,
against 0.3 MiB now (measured on the 2-core machine). That design fails the memory test below."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROW_BYTES = 16_000  # 112 seeds x 50 languages = 5,600 rows: ~90 MB of output
SHARD_ROWS = 1_000
BATCH = 64

SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, threading
    import pyarrow as pa
    from benchmarks.harness import own_rss_mib
    from engine.config import parse_config
    from engine.records import ACCEPTED, SCHEMA
    from actors.dataflow.ray_session import init_ray
    from actors.dataflow.synthesis import plan_job
    from actors.dataflow.synthesis import pool_options, save_rows, task_blocks

    run_dir, row_bytes, shard_rows, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    logging.basicConfig(level=logging.INFO)  # the job's progress lines

    class BigAnswerActor:
        # Every task back as an accepted row with `row_bytes` of output, in the run's schema.
        def __init__(self, config_data):
            self.text = "x" * row_bytes

        def __call__(self, batch):
            rows = batch.num_rows
            columns = {
                f.name: batch.column(f.name).cast(f.type) if f.name in batch.column_names else pa.nulls(rows, f.type)
                for f in SCHEMA
            }
            columns.update(status=pa.array([ACCEPTED] * rows), output=pa.array([self.text] * rows),
                           completion_tokens=pa.array([7] * rows, pa.int64()))
            return pa.table(columns, schema=SCHEMA)

    config = parse_config({
        "seeds": {"paths": ["data/seeds/english_seeds.jsonl"]}, "languages": {"targets": "default50"},
        "plan": {"mode": "all"}, "compute": {"actors": 2, "num_cpus_per_actor": 0.5, "batch_size": batch},
        "ray": {"num_cpus": 2}, "run": {"output_dir": run_dir, "shard_rows": shard_rows, "shard_seconds": 1e9},
    })
    planned = plan_job(config)
    peak, stop = {}, threading.Event()

    def sample():
        while not stop.wait(0.05):
            for field in ("VmRSS", "RssShmem"):
                peak[field] = max(peak.get(field, 0.0), own_rss_mib(field))

    start = {field: own_rss_mib(field) for field in ("VmRSS", "RssShmem")}
    threading.Thread(target=sample, daemon=True).start()
    init_ray(config.ray)
    blocks, size = task_blocks(config, planned.todo)  # the job's generation stage, the big-answer actor in the pool
    save_rows(config, planned, planned.todo, blocks.map_batches(BigAnswerActor, **pool_options(config, size)))
    stop.set()
    print("RESULT " + json.dumps({"planned": len(planned.planned_ids), "start": start, "peak": peak}))
    """
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("saving") / "run"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(run_dir), str(ROW_BYTES), str(SHARD_ROWS), str(BATCH)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return run_dir, json.loads(line.removeprefix("RESULT ")), done.stderr


def test_every_planned_row_is_saved_once_in_shards_of_the_configured_size(generated):
    run_dir, result, log = generated
    shards = sorted((run_dir / "shards").glob("part-*.parquet"))
    tables = [pq.read_table(path, columns=["id", "output", "completion_tokens"]) for path in shards]
    ids = [i for table in tables for i in table.column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == result["planned"] == 5_600
    sizes = [table.num_rows for table in tables]
    # A shard closes at the first block that takes it to SHARD_ROWS: at most one batch over.
    assert (
        all(size <= SHARD_ROWS + BATCH for size in sizes)
        and sum(size >= SHARD_ROWS for size in sizes) >= len(sizes) - 1
    ), sizes
    assert all(len(text) == ROW_BYTES for table in tables for text in table.column("output").to_pylist()[:3])
    assert "rows 5600/5600  accepted 5600" in log, "progress counts come back from the writers"


def test_the_driver_maps_none_of_the_generated_rows(generated):
    _, result, _ = generated
    written_mib = 5_600 * ROW_BYTES / 2**20
    grown = {field: result["peak"][field] - result["start"][field] for field in ("VmRSS", "RssShmem")}
    assert grown["RssShmem"] < 0.1 * written_mib, (
        f"the driver mapped the rows' object store pages: {grown}, {written_mib:.0f} MiB written"
    )
    assert grown["VmRSS"] < 0.5 * written_mib, grown


def test_shards_hold_the_run_schema(generated):
    run_dir, _, _ = generated
    from engine.records import SCHEMA

    shard = next((run_dir / "shards").glob("part-*.parquet"))
    assert pq.read_schema(shard).remove_metadata() == SCHEMA and isinstance(pq.read_table(shard), pa.Table)
