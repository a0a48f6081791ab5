"""PlanSource: the generation stage's input, the plan's task rows made on Ray workers as they stream.

    dataset = plan_dataset(plan, block_rows)       # a TaskPlan, or a table of task rows

The driver puts the plan's index (6 bytes a task: seed index and language code) and the seeds into
the object store once; each read task takes its slice of the index and assembles those task rows
(engine.inputs.plan.assemble_tasks), so no task text is ever made in the driver and the driver
holds no block of task rows.

Why a datasource and not `ray.data.from_arrow(slices)`: Ray Data keeps about 45 KB in the driver
for every block a dataset is made from (measured here: 4,000 blocks of 64 rows, 187 MiB), for the
whole run. The reads reserve no CPU and run at most ASSEMBLY_TASKS at once: taking rows is quick,
and a pool that reserves every CPU (compute.actors x compute.num_cpus_per_actor == the cluster's
CPUs) must still be fed (tests/integration/test_plan_assembly.py).

Block size. Even so, each block costs the driver memory for the rest of the run: every map
operator keeps a BlockStats for each block it outputs (MapOperator._output_blocks_stats), and the
read and the generation pool are two operators. Measured with an echo pool (2 actors,
`python -m benchmarks.block_memory`): 640,000 rows in 10,000 blocks of 64 raised the driver's peak
RSS by 107 MiB (its heap by 83) and took 128 s; 64,000 rows in 1,000 blocks by 25 MiB (heap 21):
~9 KB a block (~7 KB of heap). The same 640,000 rows in 625 blocks of 1,024: 30 MiB, 11 s. So a
plan of more than MAX_BLOCKS blocks is cut into blocks of more batches (block_rows): at most about
MAX_BLOCKS blocks, whatever the plan's size.
Bigger blocks would cost a driver that read them object store pages instead (mapped as it reads
them, resident after they are freed: 157 MiB with 512-row blocks of 3 KB rows against 22 MiB with
64-row ones); the job's driver reads none, Ray tasks write the shards (actors/dataflow/synthesis.py).

Feeding the pool. Ray Data's scheduling loop sees a read finish only at its next step (each step
waits up to 0.1 s for task completions while the pool's calls run), so the reads deliver about
ASSEMBLY_TASKS blocks a step whatever their speed. With one-batch blocks and 2 reads that capped
the pool: 8 simulated actors at 1 s a request (512 rows/s wanted; benchmarks/scaling.py's pool)
got 256 reads in 21.9 s, 187 rows/s, and kept 38% of their rows in flight. So the reads run 4 at
once and, when a plan has at least FEED_BATCHES x 4 batches per actor, a block holds FEED_BATCHES
batches: the same case keeps 97% in flight (benchmarks/results/suite-scaling-2026-12-05.md). One
call is one block (a call returns its rows together), so bigger blocks would leave more finished
rows waiting in a call for its slowest one: with two batches the long-tail case keeps 85% in
flight (one actor at 0.5 s: 98% with one batch a block, 75% with four).
"""

from __future__ import annotations

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from engine.inputs.plan import TaskPlan, assemble_tasks

ASSEMBLY_TASKS = 4  # reads at once
MAX_BLOCKS = 2_048  # blocks of a plan before its blocks grow past FEED_BATCHES batches (~20 MiB of the driver's memory)
FEED_BATCHES = 2  # batches a block at least, once every actor still gets four blocks or more


def block_rows(num_rows: int, batch_size: int, actors: int = 1, max_blocks: int | None = None) -> int:
    """Rows a block of a `num_rows`-row plan for a pool of `actors`: FEED_BATCHES batches (one
    batch when the plan is too small to give every actor four such blocks), or the fewest whole
    batches that keep the plan within `max_blocks` blocks (MAX_BLOCKS)."""
    batches = -(-num_rows // batch_size)
    least = FEED_BATCHES if batches >= FEED_BATCHES * 4 * actors else 1
    return batch_size * max(least, -(-batches // (max_blocks or MAX_BLOCKS)))


def read_block(index, seeds, recipe: str | None, start: int, rows: int) -> list[pa.Table]:
    """One block: the index rows [start, start + rows) as task rows. `index` and `seeds` arrive as
    ObjectRefs (on a worker, zero-copy from its node's object store); without a recipe, `index` is
    a table of task rows already."""
    import ray

    part = ray.get(index).slice(start, rows)
    return [part if recipe is None else assemble_tasks(part, ray.get(seeds), recipe)]


class PlanSource(Datasource):
    """The read tasks of a plan: one block of `block_rows` task rows each, in plan order."""

    def __init__(self, index, seeds, recipe: str | None, num_rows: int, block_rows: int):
        self.index, self.seeds, self.recipe = index, seeds, recipe
        self.num_rows, self.block_rows = num_rows, block_rows

    @property
    def num_blocks(self) -> int:
        return max(1, -(-self.num_rows // self.block_rows))

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context=None
    ) -> list[ReadTask]:
        # The blocks are the plan's slices, whatever parallelism Ray Data asks for.
        index, seeds, recipe = self.index, self.seeds, self.recipe
        tasks = []
        for start in range(0, max(self.num_rows, 1), self.block_rows):  # an empty plan: one empty block
            rows = max(0, min(self.block_rows, self.num_rows - start))
            metadata = BlockMetadata(num_rows=rows, size_bytes=None, input_files=None, exec_stats=None)
            tasks.append(
                ReadTask(lambda start=start, rows=rows: read_block(index, seeds, recipe, start, rows), metadata)
            )
        return tasks


def plan_dataset(tasks: TaskPlan | pa.Table, block_rows: int):
    """The task rows of `tasks` (a TaskPlan, assembled on the workers, or a table of task rows) as
    a Ray dataset of `block_rows`-row blocks."""
    import ray

    if isinstance(tasks, TaskPlan):
        source = PlanSource(ray.put(tasks.index), ray.put(tasks.seeds), tasks.recipe, tasks.num_rows, block_rows)
    else:
        source = PlanSource(ray.put(tasks), None, None, tasks.num_rows, block_rows)
    return ray.data.read_datasource(
        source, num_cpus=0, concurrency=ASSEMBLY_TASKS, override_num_blocks=source.num_blocks
    )
