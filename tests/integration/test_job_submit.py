"""The README's "On a Ray cluster" commands, run as written: `ray start --head ...`, then
`RAY_AUTH_MODE=token ray job submit ... python -m jobs.synthesize --config configs/demo.yaml ...`.

The commands are read from README.md itself, so the README cannot drift from what works. Filled in
here, and only these: the head's ports and temp dir (free ones, on 127.0.0.1: other test clusters
may share this machine), the dashboard address the submit command names accordingly, and the run
folder (`--set run.output_dir=` a temporary folder). configs/demo.yaml sets `ray.num_cpus: 2` for
local runs; under `ray job submit` the job joins the cluster and must ignore it (it said
"num_cpus and num_gpus must not be provided" and exited 2 before). The demo plans 72 rows: about
2-3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.cluster.ray_nodes import (
    BIN,
    LocalNode,
    actor_error_lines,
    free_port,
    port_args,
    ray_cli,
    readme_commands,
    replace_option,
    replace_override,
    split_env,
    submit_job,
)
from tests.integration.conftest import ROOT, read_report

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

README_ADDRESS = "http://127.0.0.1:8265"


def readme_start_and_submit() -> tuple[list[str], list[str]]:
    commands = readme_commands("On a Ray cluster")
    starts = [argv for argv in commands if argv[:2] == ["ray", "start"]]
    submits = [argv for argv in commands if split_env(argv)[1][:3] == ["ray", "job", "submit"]]
    assert len(starts) == 1 and len(submits) == 1, commands
    return starts[0], submits[0]


def test_the_readme_shows_a_command_a_reader_can_paste():
    start, submit = readme_start_and_submit()
    env, argv = split_env(submit)
    assert env == {"RAY_AUTH_MODE": "token"}, "Ray 2.60 clusters require the token"
    assert "--head" in start and "--dashboard-host" in start
    assert f"--address={README_ADDRESS}" in argv or argv[argv.index("--address") + 1] == README_ADDRESS
    entry = argv[argv.index("--") + 1 :]
    assert entry[:3] == ["python", "-m", "jobs.synthesize"]
    config = entry[entry.index("--config") + 1]
    assert (ROOT / config).exists(), config
    assert yaml.safe_load((ROOT / config).read_text())["ray"]["num_cpus"], (
        "the shipped demo config keeps its local-mode setting"
    )


@pytest.fixture(scope="module")
def readme_head():
    """The README's `ray start` line, with free ports and a temp dir of its own."""
    start, _ = readme_start_and_submit()
    # Short: a node's Unix sockets live under its temp dir, and AF_UNIX paths end at 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="bfjs-", dir="/tmp"))
    # The node's PATH decides which `python` a submitted entrypoint runs: the project's venv.
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "HOME": os.environ.get("HOME", "/root"),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAY_ADDRESS", None)
    dashboard_port = free_port()
    args = [
        *start[2:],
        f"--port={free_port()}",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={free_port()}",
        *port_args(),
    ]
    head = LocalNode("head", args, env, root / "h")
    try:
        head.start()
        yield env, f"http://127.0.0.1:{dashboard_port}"
    finally:
        head.stop()
        left = [p.pid for p in head.processes()]
        if not left:
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the test cluster still running: {left}"


def test_the_readmes_ray_job_submit_command_runs_the_demo(readme_head, tmp_path):
    env, address = readme_head
    run_dir = tmp_path / "submit-demo"  # the job runs on this machine: an absolute path
    _, submit = readme_start_and_submit()
    readme_env, argv = split_env(submit)
    argv = replace_option(argv, "--address", address)
    argv = replace_override(argv, "run.output_dir", str(run_dir))
    argv[0] = str(BIN / "ray")
    job_id, output = submit_job(argv, {**env, **readme_env}, timeout=1500)

    status = ray_cli("job", "status", f"--address={address}", job_id, env=env)
    assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr, status.stdout + status.stderr
    assert "babelforge run" in output, "the job's summary reaches the submitter's terminal"
    # It joined the cluster (RAY_ADDRESS from ray job submit) and said, once, what it ignored.
    ignored = [line for line in output.splitlines() if "ignoring local-mode settings ray.num_cpus=2" in line]
    assert len(ignored) == 1 and " INFO " in ignored[0], ignored or output[-3000:]
    # Engines shut down cleanly: no ERROR line (or traceback) from the actors in a successful job's log.
    errors = actor_error_lines(output)
    assert not errors, "\n".join(errors[:30])
    report = read_report(run_dir)
    planned = json.loads((run_dir / "plan.json").read_text())["rows"]
    assert report["planned"] == planned > 0
    assert report["planned"] == report["accepted"] + report["rejected"]
    assert report["adds_up"]
