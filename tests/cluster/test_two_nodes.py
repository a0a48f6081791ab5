"""Two Ray nodes on this machine, one synthesis job across them, submitted with `ray job submit`.

A head (`ray start --head`) and a second node (`ray start --address … --resources '{"worker_node": 1}'`)
on 127.0.0.1, token authentication on with a token of this test's own. The job's config asks for
`compute.resources: {worker_node: 1}`, so its generator actors can only run on the second node,
while the job's driver runs on the head: the state API shows which node ran what.

Each node is started in its own process group and stopped by that group (and its descendants) alone:
`ray stop` would kill every Ray process on the machine, other people's test clusters included.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.cluster.ray_nodes import BIN, LocalNode, actor_error_lines, free_port, node_args, ray_cli, submit_job
from tests.integration.conftest import ROOT, read_report, tiny_config, write_config

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

RUNTIME_ENV = ROOT / "cluster" / "runtime_env.yaml"
TRANSLATE_ACTOR = "TranslateActor"  # Ray Data names the pool's actors MapWorker(MapBatches(TranslateActor))


def state(kind: str, address: str, env: dict) -> list[dict]:
    """`ray list <kind> --detail` as JSON; dead actors stay listed, with the node they ran on."""
    listed = ray_cli("list", kind, "--detail", "--format=json", "--limit=10000", f"--address={address}", env=env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return json.loads(listed.stdout)


def wait_for_nodes(address: str, env: dict, count: int, timeout_s: float = 240) -> list[dict]:
    """The alive nodes, once there are `count`; the dashboard's state API comes up after `ray start`
    returns (later still on a busy machine), so a refused request is retried until the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        listed = ray_cli("list", "nodes", "--detail", "--format=json", f"--address={address}", env=env)
        nodes = [n for n in json.loads(listed.stdout) if n["state"] == "ALIVE"] if listed.returncode == 0 else []
        if len(nodes) == count:
            return nodes
        assert time.monotonic() < deadline, (
            f"{len(nodes)} of {count} nodes alive: {listed.stdout[-2000:]}{listed.stderr[-2000:]}"
        )
        time.sleep(3)


@pytest.fixture(scope="module")
def two_nodes():
    # Short: a node's Unix sockets live under its temp dir, and AF_UNIX paths end at 107 bytes
    # (pytest's tmp_path plus Ray's session folder name is already too long for the dashboard's).
    root = Path(tempfile.mkdtemp(prefix="bf2n-", dir="/tmp"))
    # A token of this test's own: every node, the submitter and the state API must present it.
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAY_ADDRESS", None)
    gcs_port, dashboard_port = free_port(), free_port()
    address = f"http://127.0.0.1:{dashboard_port}"
    head = LocalNode(
        "head",
        [
            "--head",
            f"--port={gcs_port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            *node_args(),
        ],
        env,
        root / "h",
    )
    worker = LocalNode(
        "worker", [f"--address=127.0.0.1:{gcs_port}", '--resources={"worker_node": 1}', *node_args()], env, root / "w"
    )
    try:
        head.start()
        worker.start()
        nodes = wait_for_nodes(address, env, count=2)
        head_id = next(n["node_id"] for n in nodes if n["is_head_node"])
        worker_id = next(n["node_id"] for n in nodes if "worker_node" in n["resources_total"])
        assert head_id != worker_id
        yield {
            "env": env,
            "address": address,
            "head_id": head_id,
            "worker_id": worker_id,
            "head": head,
            "worker": worker,
        }
    finally:
        worker.stop()
        head.stop()
        left = [p.pid for p in head.processes() + worker.processes()]
        if not left:
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the test cluster still running: {left}"


def submit(address: str, env: dict, config_path: Path) -> tuple[str, str]:
    argv = [
        str(BIN / "ray"),
        "job",
        "submit",
        f"--address={address}",
        "--runtime-env",
        str(RUNTIME_ENV),
        "--",
        "python",
        "-m",
        "jobs.synthesize",
        "--config",
        str(config_path),
    ]
    # a few minutes alone; 13 minutes was seen with other test runs sharing the 2 cores
    return submit_job(argv, env, timeout=1500)


def test_the_cluster_refuses_a_wrong_token(two_nodes):
    env = {**two_nodes["env"], "RAY_AUTH_TOKEN": "0" * 64}
    refused = ray_cli("list", "nodes", f"--address={two_nodes['address']}", env=env)
    assert refused.returncode != 0
    assert "auth" in (refused.stdout + refused.stderr).lower()


def test_job_runs_its_driver_on_the_head_and_its_generators_on_the_worker(two_nodes, tmp_path):
    env, address = two_nodes["env"], two_nodes["address"]
    run_dir = tmp_path / "run"
    # 3 seeds x 1 language; the generator actor asks for the second node's custom resource.
    config = tiny_config(
        run_dir,
        languages={"targets": ["fr"]},
        plan={"quotas": {"high": 3, "mid": 3, "low": 3}},
        compute={
            "actors": 1,
            "num_cpus_per_actor": 1,
            "engine_threads": 2,
            "batch_size": 3,
            "batches_in_flight": 1,
            "resources": {"worker_node": 1},
        },
    )
    assert config["ray"]["num_cpus"], "a local-mode setting, as the demo configs have: joining must ignore it"
    config_path = write_config(tmp_path / "config.yaml", config)  # absolute paths: the job runs on this machine
    job_id, output = submit(address, env, config_path)

    status = ray_cli("job", "status", f"--address={address}", job_id, env=env)
    assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr, status.stdout + status.stderr
    assert "babelforge run" in output, "the job's summary reaches the submitter's terminal"
    assert "ignoring local-mode settings ray.num_cpus=2" in output, output[-3000:]
    assert not actor_error_lines(output), "\n".join(actor_error_lines(output)[:20])
    report = read_report(run_dir)
    assert report["planned"] == 3
    assert report["planned"] == report["accepted"] + report["rejected"]

    # Where things ran, from the cluster's own records (the cluster is still up).
    actors = state("actors", address, env)
    generators = [a for a in actors if TRANSLATE_ACTOR in a["class_name"]]
    assert generators, sorted({a["class_name"] for a in actors})
    assert {a["node_id"] for a in generators} == {two_nodes["worker_id"]}, generators
    jobs = [j for j in state("jobs", address, env) if j.get("submission_id") == job_id]
    assert len(jobs) == 1, jobs
    driver_node = jobs[0]["driver_node_id"]
    assert driver_node == two_nodes["head_id"], jobs[0]
    supervisors = [a for a in actors if a["class_name"] == "JobSupervisor" and job_id in (a.get("name") or "")]
    assert supervisors and {a["node_id"] for a in supervisors} == {two_nodes["head_id"]}, supervisors

    # The runtime env (cluster/runtime_env.yaml: the working dir) travelled to the second node.
    # Ray leaves a `_ray_pkg_<hash>.zip.lock` beside the unpacked folder: folders only.
    packages = [
        p
        for p in (two_nodes["worker"].temp_dir / "session_latest" / "runtime_resources" / "working_dir_files").glob(
            "_ray_pkg_*"
        )
        if p.is_dir()
    ]
    assert packages and (packages[0] / "jobs" / "synthesize.py").exists(), packages
    assert not (packages[0] / "tests").exists(), "cluster/runtime_env.yaml excludes tests/ from the upload"
    print(
        f"\nhead node {two_nodes['head_id'][:12]}: job driver and JobSupervisor of {job_id}\n"
        f"worker node {two_nodes['worker_id'][:12]}: {len(generators)} x {generators[0]['class_name']}\n"
        f"rows: planned {report['planned']} = accepted {report['accepted']} + rejected {report['rejected']}"
    )
