"""The plan's task rows are assembled inside the pipeline (actors/dataflow/plan_source.py): that
step must run even when the generation pool reserves every CPU of the cluster
(compute.actors x compute.num_cpus_per_actor == ray.num_cpus), where a 1-CPU assembly task
waited forever for a core that the pool's actors held. Blocks hold two batches (so the reads keep
up with the pool), a plan of more than MAX_BLOCKS such blocks more, one call each, every task row once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import pyarrow as pa, ray
    from engine.config import parse_config
    from engine.inputs.plan import build_task_plan
    from engine.inputs.seeds import load_seed_table
    from engine.languages import resolve_languages
    from actors.dataflow.synthesis import pool_options, task_blocks

    class EchoActor:
        # A stand-in for the translate actor: no model, the pool's resources are what matter.
        def __init__(self, config_data):
            pass

        def __call__(self, batch):
            return batch

    import sys
    from actors.dataflow import plan_source
    plan_source.MAX_BLOCKS = int(sys.argv[1])
    ray.init(num_cpus=2, include_dashboard=False)
    config = parse_config({
        "seeds": {"paths": ["data/seeds/english_seeds.jsonl"]}, "languages": {"targets": ["fr", "es"]},
        "compute": {"actors": 2, "num_cpus_per_actor": 1, "batch_size": 4}, "ray": {"num_cpus": 2},
    })
    seeds, _ = load_seed_table(config.seeds.paths)
    quotas = {"high": 1, "mid": 1, "low": 1}
    plan = build_task_plan(seeds, resolve_languages(["fr", "es"]), "all", quotas, 0, "sphinx", "v1")
    blocks, size = task_blocks(config, plan)  # the job's generation stage, the echo actor in the pool
    echoed = blocks.map_batches(EchoActor, **pool_options(config, size))
    tables = list(echoed.iter_batches(batch_size=None, batch_format="pyarrow"))
    ids = [i for table in tables for i in table.column("id").to_pylist()]
    print("ROWS", len(ids), len(set(ids)), plan.num_rows, len(tables), max(t.num_rows for t in tables))
    """
)


def run_plan(max_blocks: int) -> tuple[int, int, int, int, int]:
    """(rows out, distinct ids, planned rows, blocks out, rows of the largest block) of the plan
    (112 seeds x fr, es, batch 4: 56 batches) through an echo pool."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(max_blocks)], cwd=ROOT, capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            "the pipeline hung: plan assembly found no free CPU beside a pool that takes them all"
        ) from error
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("ROWS")][-1]
    return tuple(int(n) for n in line.split()[1:])


def test_assembly_runs_when_the_pool_takes_every_cpu():
    rows, distinct, planned, blocks, largest = run_plan(2_048)
    assert rows == distinct == planned == 224
    assert largest == 8 and blocks == 28, (
        "56 batches for 2 actors, within MAX_BLOCKS blocks: FEED_BATCHES (2) batches a block"
    )


def test_a_plan_over_max_blocks_goes_in_blocks_of_several_batches_each_row_once():
    rows, distinct, planned, blocks, largest = run_plan(10)
    assert rows == distinct == planned == 224
    assert largest == 24 and blocks == 10, "56 batches within 10 blocks: 6 batches (24 rows) a block"
