"""Local Ray nodes for the cluster tests, and the README's cluster commands as argv lists.

Each node is started in its own process group and stopped by that group (and its descendants) alone:
`ray stop` would kill every Ray process on the machine, other people's test clusters included.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
README = ROOT / "README.md"


def readme_commands(section: str = "On a Ray cluster") -> list[list[str]]:
    """The shell commands of the first bash block under the README's `## <section>`, one argv per
    command (`\\` continuations joined, comments dropped), exactly as a reader would paste them."""
    text = README.read_text(encoding="utf-8")
    heading = re.search(rf"^## {re.escape(section)}\n", text, re.M)
    assert heading, f"README.md has no '## {section}' section"
    block = re.search(r"```bash\n(.*?)```", text[heading.end() :], re.S)
    assert block, f"README.md's '{section}' section has no bash block"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        if current.strip():
            commands.append(shlex.split(current, comments=True))
        current = ""
    return [argv for argv in commands if argv]


def split_env(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`VAR=value ... cmd args` → ({VAR: value}, [cmd, args...])."""
    env = {}
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        name, value = argv[0].split("=", 1)
        env[name] = value
        argv = argv[1:]
    return env, argv


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    """argv with `option`'s value (`--opt v` or `--opt=v`) replaced; the option must be there."""
    out, found = list(argv), False
    for i, word in enumerate(out):
        if word == option:
            out[i + 1], found = value, True
        elif word.startswith(option + "="):
            out[i], found = f"{option}={value}", True
    assert found, f"{option} not in {argv}"
    return out


def replace_override(argv: list[str], key: str, value: str) -> list[str]:
    """argv with the job's `--set key=...` given `value`; the override must be there."""
    prefix = f"{key}="
    hits = [i for i, word in enumerate(argv) if word.startswith(prefix) and i and argv[i - 1] == "--set"]
    assert hits, f"--set {key}=... not in {argv}"
    out = list(argv)
    out[hits[0]] = prefix + value
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_args() -> list[str]:
    """Every port a node opens chosen free, on 127.0.0.1: nodes of several test runs share this host."""
    return [
        "--node-ip-address=127.0.0.1",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


def node_args() -> list[str]:
    """One CPU and a small object store per node (two nodes share 2 cores), every port free."""
    return ["--num-cpus=1", "--object-store-memory=400000000", *port_args()]


class LocalNode:
    """One `ray start` node, its processes kept in the process group of the `ray start` call."""

    def __init__(self, name: str, args: list[str], env: dict, temp_dir: Path):
        self.name, self.env, self.temp_dir = name, env, temp_dir
        self.log = temp_dir.parent / f"{name}-start.log"
        self.args = [str(BIN / "ray"), "start", *args, f"--temp-dir={temp_dir}", "--disable-usage-stats"]
        self.pgid: int | None = None

    def start(self, timeout: int = 240) -> None:
        with open(self.log, "w") as log:
            process = subprocess.Popen(
                self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
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


def submit_job(argv: list[str], env: dict, timeout: int) -> tuple[str, str]:
    """Run a `ray job submit ...` argv; returns (submission id, the submitter's output). The head's
    job agent comes up a little after `ray start` returns; until then the dashboard answers
    "No available agent to submit job": that answer alone is retried, for a bounded time."""
    deadline = time.monotonic() + 120
    while True:
        submitted = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        output = submitted.stdout + submitted.stderr
        if "No available agent" not in output or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert submitted.returncode == 0, output[-5000:]
    return re.search(r"raysubmit_\w+", output).group(), output


# Ray prefixes what a worker process prints with "(<actor or task name> pid=N)".
WORKER_LINE = re.compile(r"^(?:\x1b\[\d+m)?\((?P<who>[^\n]*?) pid=\d+(?:, ip=[^)]*)?\)")


def actor_error_lines(output: str) -> list[str]:
    """Lines that babelforge's actors (and the engines inside them) logged at ERROR or as a traceback."""
    found = []
    for line in output.splitlines():
        if WORKER_LINE.match(line) and (re.search(r"\bERROR\b", line) or "Traceback (most recent call last)" in line):
            found.append(line)
    return found
