"""engine.runfolder on the local disk and on a real S3-compatible server (moto, 127.0.0.1)."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from engine.runfolder import RunFolder


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path) -> RunFolder:
    if request.param == "local":
        return RunFolder(tmp_path / "run")
    env = request.getfixturevalue("s3_env")
    return RunFolder(f"s3://{env['BUCKET']}/runs/{uuid.uuid4().hex[:6]}")


def test_bytes_text_parquet_round_trip(folder):
    assert not folder.exists("plan.json")
    folder.write_text("plan.json", '{"rows": 3}')
    folder.write_bytes("shards/a.bin", b"\x00\x01")
    folder.write_parquet("shards/part-1.parquet", pa.table({"id": ["a", "b"]}))
    assert folder.read_text("plan.json") == '{"rows": 3}'
    assert folder.read_bytes("shards/a.bin") == b"\x00\x01"
    assert folder.read_parquet("shards/part-1.parquet").column("id").to_pylist() == ["a", "b"]
    assert folder.exists("plan.json") and folder.exists("shards/part-1.parquet")
    assert folder.list("shards", suffix=".parquet") == ["shards/part-1.parquet"]
    assert folder.list("missing") == []


def test_a_failed_write_leaves_nothing(folder):
    folder.write_text("keep.txt", "old")
    with pytest.raises(RuntimeError):
        with folder.open_output("keep.txt") as stream:
            stream.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert folder.read_text("keep.txt") == "old"
    with pytest.raises(RuntimeError):
        with folder.open_output("never.txt") as stream:
            stream.write(b"x")
            raise RuntimeError
    assert not folder.exists("never.txt")
    assert folder.list() == ["keep.txt"]


def test_local_temporaries_are_hidden_and_cleaned(tmp_path):
    folder = RunFolder(tmp_path)
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / ".part-x.parquet.1234abcd.tmp").write_bytes(b"partial")
    (tmp_path / "shards" / "part-y.parquet").write_bytes(b"whole")
    assert folder.list("shards") == ["shards/part-y.parquet"]
    assert folder.clean_partial("shards") == 1
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["part-y.parquet"]
    assert folder.local_path("shards") == tmp_path / "shards"


def test_display_hides_query_credentials():
    folder = RunFolder("s3://AKIA:SECRET@bucket/prefix?endpoint_override=127.0.0.1:1&scheme=http")
    assert folder.display == "s3://bucket/prefix" and "SECRET" not in repr(folder)
    assert folder.root == "bucket/prefix" and not folder.local and folder.local_path() is None
    assert folder.child("shards").display == "s3://bucket/prefix/shards"
