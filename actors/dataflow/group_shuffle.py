"""A group-by as one hash shuffle on plain Ray tasks: every group of rows goes to one reducer.

    examples = map_groups(rows, "seed_id", SeedGroup, (build,), SEED_SCHEMA, partitions=4)

    blocks ──split (one task per block)──▶ P pieces each, by a stable hash of the key
    piece i of every block ──reduce i──▶ rows sorted by (key, id), the function once per group

Ray Data's `groupby().map_groups()` sorts the whole dataset first (a sample pass, a range
partition and a merge); a build only needs each group whole in one place, which a hash split
gives in one map and one reduce. The driver holds object refs only; a reducer holds about 1/P of
the rows. Which reducer a group lands on depends on its key alone (crc32, the same in every
process), and within a group rows come sorted by id, so the output does not depend on the number
of blocks or partitions.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

GroupFn = Callable[[list[dict]], list[dict]]
"""One group's rows (sorted by id) in, its output rows out, as Python dicts: the reducer converts
rows and outputs WINDOW_ROWS at a time, not once per group (a build has a group per seed, often of
one or two rows, where a table per group cost ~2 ms)."""
WINDOW_ROWS = 4096


def partition_of(column: pa.ChunkedArray | pa.Array, parts: int) -> np.ndarray:
    """Each row's partition in [0, parts): crc32 of its key's UTF-8 text, computed once per
    distinct key (a block holds many rows of few keys, or one row each of many)."""
    column = pc.fill_null(column, "")  # a missing key is the empty key, in every block
    encoded = pc.dictionary_encode(
        pa.chunked_array([column]) if isinstance(column, pa.Array) else column
    ).combine_chunks()
    per_key = np.fromiter(
        (zlib.crc32(k.encode()) % parts for k in encoded.dictionary.to_pylist()),
        dtype=np.int64,
        count=len(encoded.dictionary),
    )
    return per_key[encoded.indices.to_numpy()] if len(encoded) else np.zeros(0, np.int64)


def split_block(block: pa.Table, key: str, parts: int) -> list[pa.Table]:
    if block.num_rows == 0:  # Ray Data hands empty blocks on, some without columns
        return [block] * parts
    where = partition_of(block.column(key), parts)
    order = np.argsort(where, kind="stable")
    bounds = np.searchsorted(where[order], np.arange(parts + 1))
    ordered = block.take(pa.array(order))
    return [ordered.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i])) for i in range(parts)]


def reduce_groups(key: str, make: Callable[[], GroupFn], schema: pa.Schema, *pieces: pa.Table) -> pa.Table:
    pieces = [p for p in pieces if p.num_rows]
    if not pieces:
        return schema.empty_table()
    table = pa.concat_tables(pieces, promote_options="default")
    table = table.take(pc.sort_indices(table, [(key, "ascending"), ("id", "ascending")]))
    keys = pc.fill_null(table.column(key), "").combine_chunks()  # as partition_of: no key is the empty key
    starts = [
        0,
        *(np.flatnonzero(pc.not_equal(keys[1:], keys[:-1]).to_numpy(zero_copy_only=False)) + 1).tolist(),
        len(table),
    ]
    fn = make()  # once per reducer: a group function may load a model
    tables, outputs, first = [], [], 0
    while first < len(starts) - 1:
        last = first + 1  # whole groups, about WINDOW_ROWS rows (one larger group alone)
        while last < len(starts) - 1 and starts[last + 1] - starts[first] <= WINDOW_ROWS:
            last += 1
        window = table.slice(starts[first], starts[last] - starts[first]).to_pylist()
        for a, b in zip(starts[first:last], starts[first + 1 : last + 1]):
            outputs += fn(window[a - starts[first] : b - starts[first]])
        if len(outputs) >= WINDOW_ROWS:
            tables.append(pa.Table.from_pylist(outputs, schema=schema))
            outputs = []
        first = last
    if outputs:
        tables.append(pa.Table.from_pylist(outputs, schema=schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def map_groups(ds, key: str, fn_class, fn_args: tuple, schema: pa.Schema, partitions: int):
    """`fn_class(*fn_args)(rows)` over every group of `ds`'s rows with the same `key` (a string
    column, null counted as ""; rows sorted by `id` within a group, as dicts); returns a
    materialized dataset of the output rows, made into tables of `schema`. `partitions`: how many reducers (each holds
    ~1/partitions of the rows); the group function is built in each reducer, not the driver."""
    import ray

    split = ray.remote(split_task).options(num_returns=partitions)
    pieces = []
    for block in ds.to_arrow_refs():
        refs = split.remote(block, key, partitions)
        pieces.append(refs if partitions > 1 else [refs])
    reduce = ray.remote(reduce_groups)
    make = partial(fn_class, *fn_args)
    outputs = [
        reduce.remote(key, make, schema, *(block_pieces[i] for block_pieces in pieces)) for i in range(partitions)
    ]
    return ray.data.from_arrow_refs(outputs)


def split_task(block: pa.Table, key: str, parts: int):
    """The remote split: P return values (one object each), or the table itself when P is 1."""
    pieces = split_block(block, key, parts)
    return pieces if parts > 1 else pieces[0]
