"""Finalise's languages as Ray tasks (engine/run_outputs.py: `finalise_outputs(..., map_languages=ray_map)`).

Each task reads one staged language, runs the steps (dedup, budget), writes that language's
Parquet files and JSONL part and returns its figures and sample: the driver never holds a
language's rows, a worker holds one language at a time. Tasks reserve one CPU each: they start
after the generation pool has let its CPUs go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


def run_one(fn: Callable, item):
    return fn(item)


def ray_map(fn: Callable, items: list) -> Iterator:
    """fn(item) for every item on Ray, results in the items' order. `fn` goes to the object store
    once (it carries the steps and the seeds' cluster labels), not once per task."""
    import ray

    remote = ray.remote(num_cpus=1)(run_one)
    shared = ray.put(fn)
    refs = [remote.remote(shared, item) for item in items]
    for ref in refs:
        yield ray.get(ref)
