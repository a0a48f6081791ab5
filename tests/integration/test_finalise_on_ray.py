"""Finalise's languages as Ray tasks (actors/dataflow/synthesis.py), the way a job that runs Ray
finalises: the same files and report as finalising in the driver, language by language, and the
near-duplicate counts of the copies of the step that ran on the workers come back."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from engine.records import ACCEPTED, REJECTED
from tests.unit.test_finalise_streaming import fabricated_rows, run_finalise

pytestmark = pytest.mark.integration


def test_finalise_on_ray_writes_what_the_driver_writes(tmp_path, caplog):
    import logging

    import ray

    rows = fabricated_rows(300, seed=4)
    local = run_finalise(tmp_path / "local", rows, shard_rows=40)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        with caplog.at_level(logging.INFO):
            remote = run_finalise(tmp_path / "ray", rows, shard_rows=40, shuffle=2)
    finally:
        ray.shutdown()
    # The fabricated rows carry no output vectors: each language's step copy counted that on a worker.
    assert any("near-duplicate outputs not checked in 4 language(s)" in r.getMessage() for r in caplog.records)
    assert remote == local and local["adds_up"] and local["reject_reasons"]["duplicate_of"] > 0
    for name in ("accepted.jsonl", "rejected.jsonl", "report.md"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    for status in (ACCEPTED, REJECTED):
        assert pq.read_table(tmp_path / "local" / f"{status}.parquet").equals(
            pq.read_table(tmp_path / "ray" / f"{status}.parquet")
        )
    assert not (tmp_path / "ray/.by-language").exists()
