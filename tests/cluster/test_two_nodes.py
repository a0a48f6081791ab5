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
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import ROOT, read_report, tiny_config, write_config

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

BIN = Path(sys.executable).parent
RUNTIME_ENV = ROOT / "cluster" / "runtime_env.yaml"
TRANSLATE_ACTOR = "TranslateActor"  # Ray Data names the pool's actors MapWorker(MapBatches(TranslateActor))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_args() -> list[str]:
    """One CPU and a small object store per node (two nodes share 2 cores), and every port a node
    opens chosen free: two nodes share this host, and so may other test runs' clusters."""
    return [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--object-store-memory=400000000",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


class LocalNode:
    """One `ray start` node, its processes kept in the process group of the `ray start` call."""

    def __init__(self, name: str, args: list[str], env: dict, temp_dir: Path):
        self.name, self.env, self.temp_dir = name, env, temp_dir
        self.log = temp_dir.parent / f"{name}-start.log"
        self.args = [str(BIN / "ray"), "start", *args, f"--temp-dir={temp_dir}", "--disable-usage-stats"]
        self.pgid: int | None = None

    def start(self, timeout: int = 240) -> None:
        with open(self.log, "w") as log:
            process = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = process.pid
        returncode = process.wait(timeout=timeout)
        assert returncode == 0, f"ray start ({self.name}) failed:\n{self.log.read_text()[-3000:]}"

    def processes(self) -> list[psutil.Process]:
        """The group's processes and their descendants (workers may get process groups of their own)."""
        if self.pgid is None:
            return []
        found: dict[int, psutil.Process] = {}
        for process in psutil.process_iter():
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue  # already dead, waiting for init to reap it
                if os.getpgid(process.pid) == self.pgid:
                    found[process.pid] = process
                    for child in process.children(recursive=True):
                        found[child.pid] = child
            except (psutil.Error, ProcessLookupError):
                continue
        return list(found.values())

    def stop(self, grace_s: float = 15) -> None:
        processes = self.processes()
        for process in processes:
            try:
                process.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(processes, timeout=grace_s)
        for process in alive:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)


def ray_cli(*args: str, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


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
        assert time.monotonic() < deadline, f"{len(nodes)} of {count} nodes alive: {listed.stdout[-2000:]}{listed.stderr[-2000:]}"
        time.sleep(3)


@pytest.fixture(scope="module")
def two_nodes():
    # Short: a node's Unix sockets live under its temp dir, and AF_UNIX paths end at 107 bytes
    # (pytest's tmp_path plus Ray's session folder name is already too long for the dashboard's).
    root = Path(tempfile.mkdtemp(prefix="bf2n-", dir="/tmp"))
    # A token of this test's own: every node, the submitter and the state API must present it.
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    gcs_port, dashboard_port = free_port(), free_port()
    address = f"http://127.0.0.1:{dashboard_port}"
    head = LocalNode("head", ["--head", f"--port={gcs_port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                              f"--ray-client-server-port={free_port()}", *node_args()], env, root / "h")
    worker = LocalNode("worker", [f"--address=127.0.0.1:{gcs_port}", '--resources={"worker_node": 1}', *node_args()], env, root / "w")
    try:
        head.start()
        worker.start()
        nodes = wait_for_nodes(address, env, count=2)
        head_id = next(n["node_id"] for n in nodes if n["is_head_node"])
        worker_id = next(n["node_id"] for n in nodes if "worker_node" in n["resources_total"])
        assert head_id != worker_id
        yield {"env": env, "address": address, "head_id": head_id, "worker_id": worker_id, "head": head, "worker": worker}
    finally:
        worker.stop()
        head.stop()
        left = [p.pid for p in head.processes() + worker.processes()]
        if not left:
            shutil.rmtree(root, ignore_errors=True)
        assert not left, f"processes of the test cluster still running: {left}"


def submit(address: str, env: dict, config_path: Path) -> tuple[str, str]:
    # The head's job agent comes up a little after `ray start` returns; until then the dashboard
    # answers "No available agent to submit job". Retry that answer alone, for a bounded time.
    deadline = time.monotonic() + 120
    while True:
        submitted = ray_cli(
            "job", "submit", f"--address={address}", "--runtime-env", str(RUNTIME_ENV), "--",
            "python", "-m", "jobs.synthesize", "--config", str(config_path),
            env=env, timeout=1500,  # a few minutes alone; 13 minutes was seen with other test runs sharing the 2 cores
        )
        output = submitted.stdout + submitted.stderr
        if "No available agent" not in output or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert submitted.returncode == 0, output[-5000:]
    return re.search(r"raysubmit_\w+", output).group(), output


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
        compute={"actors": 1, "num_cpus_per_actor": 1, "engine_threads": 2, "batch_size": 3, "batches_in_flight": 1,
                 "resources": {"worker_node": 1}},
        ray={"num_cpus": None},
    )
    config_path = write_config(tmp_path / "config.yaml", config)  # absolute paths: the job runs on this machine
    job_id, output = submit(address, env, config_path)

    status = ray_cli("job", "status", f"--address={address}", job_id, env=env)
    assert f"Job '{job_id}' succeeded" in status.stdout + status.stderr, status.stdout + status.stderr
    assert "babelforge run" in output, "the job's summary reaches the submitter's terminal"
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
    packages = [p for p in (two_nodes["worker"].temp_dir / "session_latest" / "runtime_resources" / "working_dir_files").glob("_ray_pkg_*")
                if p.is_dir()]
    assert packages and (packages[0] / "jobs" / "synthesize.py").exists(), packages
    assert not (packages[0] / "tests").exists(), "cluster/runtime_env.yaml excludes tests/ from the upload"
    print(
        f"\nhead node {two_nodes['head_id'][:12]}: job driver and JobSupervisor of {job_id}\n"
        f"worker node {two_nodes['worker_id'][:12]}: {len(generators)} x {generators[0]['class_name']}\n"
        f"rows: planned {report['planned']} = accepted {report['accepted']} + rejected {report['rejected']}"
    )
