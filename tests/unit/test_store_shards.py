"""Ring (a): finished batches are coalesced into bounded shards; resume reads ids with Arrow; the
same store works on a real S3-compatible server (moto, 127.0.0.1)."""

from __future__ import annotations

import uuid

import pyarrow as pa

from engine.inputs.plan import TaskPlan, build_task_plan, plan_fingerprint
from engine.inputs.seeds import Seed
from engine.languages import resolve_languages
from engine.records import SCHEMA, to_table
from engine.runfolder import RowStore, RunFolder, new_shard_name, write_shard
from tests.unit.test_plan import seeds_table
from tests.unit.test_store_report import done_ids, read_all


def rows(*ids: str) -> pa.Table:
    return to_table([{"id": i, "seed_id": i, "recipe": "sphinx", "lang": "fr", "status": "accepted"} for i in ids])


def test_batches_coalesce_until_the_row_bound(tmp_path):
    store = RowStore(tmp_path, shard_rows=5, shard_seconds=1e9)
    written = [store.add(rows(f"a{i}", f"b{i}"), now=0.0) for i in range(6)]  # 12 rows, 2 at a time
    assert [shard is not None for shard in written] == [False, False, True, False, False, True]
    assert len(store.shards()) == 2 and store.pending.rows == 0
    store.add(rows("last"), now=0.0)
    assert len(store.shards()) == 2, "a partial shard waits"
    assert store.flush() is not None and store.flush() is None
    sizes = sorted(store.folder.read_parquet(name).num_rows for name in store.shard_names())
    assert sizes == [1, 6, 6]
    assert read_all(store).schema == SCHEMA and read_all(store).num_rows == 13


def test_a_slow_trickle_is_written_after_shard_seconds(tmp_path):
    store = RowStore(tmp_path, shard_rows=10_000, shard_seconds=60)
    assert store.add(rows("a"), now=100.0) is None
    assert store.add(rows("b"), now=159.0) is None
    assert store.add(rows("c"), now=160.0) is not None, "the first row waited 60 s"
    assert done_ids(store) == {"a", "b", "c"}


def test_done_ids_come_back_as_one_arrow_array(tmp_path):
    store = RowStore(tmp_path)
    store.write(rows("a", "b"))
    store.write(rows("c"))
    done = store.done_id_array()
    assert isinstance(done, pa.ChunkedArray) and sorted(done.to_pylist()) == ["a", "b", "c"]
    assert len(RowStore(tmp_path / "empty").done_id_array()) == 0


def test_a_shard_written_again_under_its_name_replaces_itself(tmp_path):
    # The writer's Ray task may be retried after its worker died having written the shard: the
    # name comes from the driver, so the retry must leave one copy of each id, not two.
    store = RowStore(tmp_path)
    name = new_shard_name()
    assert write_shard(store.folder, rows("a", "b"), name) == name
    write_shard(store.folder, rows("a", "b"), name)
    assert store.shard_names() == [name] and sorted(store.done_id_array().to_pylist()) == ["a", "b"]
    assert store.clean_partial() == 0


def plan_of(count: int, codes: list[str]) -> TaskPlan:
    seeds = [Seed(f"s{i}", f"Do {i}", "", f"Done {i}", f"f:{i}") for i in range(count)]
    return build_task_plan(
        seeds_table(seeds), resolve_languages(codes), "all", {"high": 1, "mid": 1, "low": 1}, 0, "sphinx", "v1"
    )


def ids_of(plan: TaskPlan) -> pa.ChunkedArray:
    """Every row id of the plan, a slice at a time as the job derives them."""
    return pa.chunked_array(list(plan.id_chunks()), pa.string())


def test_resume_is_an_anti_join_on_ids():
    plan = plan_of(20, ["fr", "de"])
    done = pa.chunked_array([ids_of(plan).slice(0, 7), ids_of(plan).slice(30, 3)])
    todo = plan.without(done)
    assert todo.num_rows == 30
    assert set(ids_of(todo).to_pylist()) == set(ids_of(plan).to_pylist()) - set(done.to_pylist())
    assert todo.tasks().column("src_instruction").to_pylist()[0] == "Do 7", "text comes from the seed table"
    assert plan.without(pa.chunked_array([], pa.string())) is plan


def test_fingerprint_is_the_same_from_a_list_or_arrow():
    plan = plan_of(30, ["fr", "ja", "sw"])
    ids = ids_of(plan).to_pylist()
    assert plan_fingerprint(ids_of(plan)) == plan_fingerprint(ids) == plan_fingerprint(list(reversed(ids)))
    assert plan_fingerprint(ids[:-1]) != plan_fingerprint(ids)


def test_store_on_s3(s3_env):
    folder = RunFolder(f"s3://{s3_env['BUCKET']}/run-{uuid.uuid4().hex[:6]}")
    store = RowStore(folder, shard_rows=3)
    for i in range(4):
        store.add(rows(f"x{i}"))
    store.flush()
    assert len(store.shards()) == 2 and store.clean_partial() == 0
    assert sorted(RowStore(folder).done_id_array().to_pylist()) == ["x0", "x1", "x2", "x3"]
    assert all(str(shard).startswith(s3_env["BUCKET"] + "/") for shard in store.shards())
