"""`ray job submit` against a Ray head started with `ray start` on 127.0.0.1 (token auth on)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, read_report, tiny_config, write_config

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_cli(*args: str, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    # The node's PATH decides which `python` a submitted entrypoint runs: the project's venv.
    temp_dir = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token", "HOME": os.environ.get("HOME", "/root")}
    env.pop("RAY_ADDRESS", None)
    gcs_port, dashboard_port = free_port(), free_port()
    started = ray_cli(
        "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--num-cpus=2",
        f"--temp-dir={temp_dir}", "--disable-usage-stats", env=env, timeout=180,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield env, f"http://127.0.0.1:{dashboard_port}"
    finally:
        ray_cli("stop", "--force", env=env)


def test_ray_job_submit_runs_the_synthesis_job(ray_head, tmp_path):
    env, address = ray_head
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir, plan={"quotas": {"high": 5, "mid": 3, "low": 2}}, ray={"num_cpus": None})
    # Absolute paths: the job runs on this machine, from the uploaded copy of the working dir.
    config_path = write_config(tmp_path / "config.yaml", config)
    # The head's job agent comes up a little after `ray start` returns; until then the dashboard
    # answers "No available agent to submit job". Retry that answer alone, for a bounded time.
    deadline = time.monotonic() + 120
    while True:
        submitted = ray_cli(
            "job", "submit", f"--address={address}", "--working-dir", ".", "--",
            "python", "-m", "jobs.synthesize", "--config", str(config_path),
            env=env, timeout=900,
        )
        output = submitted.stdout + submitted.stderr
        if "No available agent" not in output or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert submitted.returncode == 0, output[-5000:]
    job_id = re.search(r"raysubmit_\w+", output).group()
    status = ray_cli("job", "status", f"--address={address}", job_id, env=env)
    assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr, status.stdout + status.stderr
    assert "babelforge run" in output, "the job's summary reaches the submitter's terminal"
    report = read_report(run_dir)
    assert report["planned"] == 10
    assert report["planned"] == report["accepted"] + report["rejected"]
    assert json.loads((run_dir / "plan.json").read_text())["rows"] == 10
