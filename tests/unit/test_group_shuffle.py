"""actors.dataflow.group_shuffle without Ray: the split and the reduce that a build's group steps run as tasks."""

from __future__ import annotations

import random
import zlib

import pyarrow as pa
import pytest

from actors.dataflow.group_shuffle import partition_of, reduce_groups, split_block


def rows(n: int, keys: int, seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    ids = [f"row-{i:05d}" for i in range(n)]
    rng.shuffle(ids)
    return pa.table({"id": ids, "seed_id": [f"seed-{rng.randrange(keys)}" for _ in range(n)]})


def test_a_keys_partition_is_the_same_in_any_block_and_process():
    block = rows(500, 40)
    where = partition_of(block.column("seed_id"), 7)
    assert set(where.tolist()) <= set(range(7)) and len(set(where.tolist())) > 1
    by_key = {}
    for key, part in zip(block.column("seed_id").to_pylist(), where.tolist()):
        assert by_key.setdefault(key, part) == part
    # crc32 of the text, not Python's per-process hash: known values stay put
    assert partition_of(pa.array(["seed-1", "seed-2", "en"]), 1000).tolist() == [
        zlib.crc32(k.encode()) % 1000 for k in ("seed-1", "seed-2", "en")
    ]


def test_split_keeps_every_row_once_and_each_key_in_one_piece():
    block = rows(300, 25)
    pieces = split_block(block, "seed_id", 4)
    assert len(pieces) == 4 and sum(p.num_rows for p in pieces) == 300
    assert sorted(id for p in pieces for id in p.column("id").to_pylist()) == sorted(block.column("id").to_pylist())
    homes = [set(p.column("seed_id").to_pylist()) for p in pieces]
    assert all(not (a & b) for i, a in enumerate(homes) for b in homes[i + 1 :])


class Summary:
    """One output row per group: its key, size and ids in the order the group arrived."""

    def __call__(self, group: list[dict]) -> list[dict]:
        ids = [row["id"] for row in group]
        return [{"key": group[0]["seed_id"], "n": len(ids), "ids": ",".join(ids)}]


SCHEMA = pa.schema([("key", pa.string()), ("n", pa.int64()), ("ids", pa.string())])


def test_reduce_sees_each_group_whole_and_sorted_by_id_whatever_the_blocks():
    block = rows(200, 12)
    one = reduce_groups("seed_id", Summary, SCHEMA, block)
    halves = reduce_groups("seed_id", Summary, SCHEMA, block.slice(120), block.slice(0, 120))
    assert one.to_pylist() == halves.to_pylist()
    assert sum(one.column("n").to_pylist()) == 200 and len(one) == len(set(block.column("seed_id").to_pylist()))
    for ids in one.column("ids").to_pylist():
        assert ids.split(",") == sorted(ids.split(","))


def test_an_empty_partition_gives_an_empty_table_of_the_schema_and_builds_nothing():
    built = []

    def make():
        built.append(1)
        return Summary()

    assert reduce_groups("seed_id", make, SCHEMA, rows(0, 1)).schema == SCHEMA and not built


def test_rows_without_a_key_form_one_group_whatever_block_they_come_in():
    first = pa.table({"id": ["a", "b"], "seed_id": ["seed-1", None]})
    second = pa.table({"id": ["c", "d"], "seed_id": [None, "seed-9"]})
    homes = {
        i: {
            p
            for p, piece in enumerate(split_block(block, "seed_id", 5))
            for v in piece.column("seed_id").to_pylist()
            if v is None
        }
        for i, block in enumerate((first, second))
    }
    assert homes[0] == homes[1] and len(homes[0]) == 1
    [home] = homes[0]
    pieces = [split_block(block, "seed_id", 5)[home] for block in (first, second)]
    groups = {row["key"]: row["ids"] for row in reduce_groups("seed_id", Summary, SCHEMA, *pieces).to_pylist()}
    assert groups[None] == "b,c"


def test_an_empty_block_without_columns_splits_into_empty_pieces_the_reducer_ignores():
    pieces = split_block(pa.table({}), "lang", 3)
    assert len(pieces) == 3 and all(p.num_rows == 0 for p in pieces)
    assert reduce_groups("seed_id", Summary, SCHEMA, pieces[0], rows(3, 1)).column("n").to_pylist() == [3]


@pytest.mark.parametrize("window", [1, 5, 17, 4096])
def test_groups_arrive_whole_whatever_the_window_of_rows_converted_at_a_time(monkeypatch, window):
    import actors.dataflow.group_shuffle as shuffle

    block = rows(300, 40, seed=2)
    expected = reduce_groups("seed_id", Summary, SCHEMA, block).to_pylist()
    monkeypatch.setattr(shuffle, "WINDOW_ROWS", window)
    assert reduce_groups("seed_id", Summary, SCHEMA, block).to_pylist() == expected
