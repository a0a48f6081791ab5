"""The translation benchmark's CPU table: which class a process of a Ray session belongs to, and
how samples add up per class over a window."""

from __future__ import annotations

import pytest

from benchmarks.harness import CpuSampler, classify_process

VENV = "/work/main/.venv/lib/python3.11/site-packages/ray"


@pytest.mark.parametrize(
    "name, cmdline, expected",
    [
        (
            "raylet",
            f"{VENV}/core/src/ray/raylet/raylet --raylet_socket_name=/tmp/ray/session_x/sockets/raylet",
            "raylet",
        ),
        ("gcs_server", f"{VENV}/core/src/ray/gcs/gcs_server --log_dir=/tmp/ray/session_x/logs", "gcs_server"),
        ("python", f"/work/main/.venv/bin/python -u {VENV}/dashboard/dashboard.py --host=127.0.0.1", "dashboard"),
        (
            "python",
            f"/work/main/.venv/bin/python -u {VENV}/dashboard/dashboard.py --host=127.0.0.1 "
            "--modules-to-load=UsageStatsHead --disable-frontend",
            "dashboard head, usage stats only",
        ),
        (
            "python",
            f"/work/main/.venv/bin/python -u {VENV}/dashboard/agent.py --node-ip-address=10.0.0.1",
            "dashboard agent",
        ),
        (
            "python",
            f"/work/main/.venv/bin/python -u {VENV}/_private/runtime_env/agent/main.py --node-ip-address=10.0.0.1",
            "runtime env agent",
        ),
        (
            "python",
            f"/work/main/.venv/bin/python -u {VENV}/_private/log_monitor.py --session-dir=/tmp/ray/s",
            "log monitor",
        ),
        (
            "python",
            f"/work/main/.venv/bin/python -u {VENV}/autoscaler/_private/monitor.py --logs-dir=/tmp/ray/s",
            "autoscaler monitor",
        ),
        ("ray::IDLE", "ray::IDLE", "idle worker"),
        (
            "python",
            f"/work/main/.venv/bin/python {VENV}/_private/workers/default_worker.py --node-ip-address=10.0.0.1",
            "idle worker",
        ),
        ("ray::MapWorker(", "ray::MapWorker(MapBatches(TimedTranslateActor))", "translate actor"),
        ("ray::MapWorker(", "ray::MapWorker(MapBatches(SimulatedTranslateActor)).submit", "translate actor"),
        ("ray::_StatsActo", "ray::_StatsActor", "Ray Data stats actor"),
        ("ray::Autoscalin", "ray::AutoscalingRequester.request_resources", "Ray Data autoscaling actor"),
        ("VLLM::EngineCor", "VLLM::EngineCore", "vLLM engine core"),
        ("VLLM::Worker", "VLLM::Worker", "vLLM model worker"),
        ("ray::assemble_o", "ray::assemble_on_worker", "other Ray worker"),
        # A worker's arguments name the raylet's socket: it is not the raylet.
        (
            "python",
            f"/work/main/.venv/bin/python {VENV}/_private/workers/default_worker.py "
            "--raylet-name=/tmp/ray/s/sockets/raylet --gcs-address=10.0.0.1:6379",
            "idle worker",
        ),
        (
            "python",
            "/work/main/.venv/bin/python -c from multiprocessing.resource_tracker import main;main(5)",
            "multiprocessing (spawning, resource tracker)",
        ),
        ("bash", "/bin/bash -c sleep 1", "other: bash"),
        ("", "", "other"),  # a process that ended between listing and reading
    ],
)
def test_processes_are_classified_by_their_titles_and_command_lines(name, cmdline, expected):
    assert classify_process(name, cmdline) == expected


def test_the_driver_is_the_driver_whatever_its_command_line():
    assert classify_process("python", "python -m benchmarks.translation --case babelforge", is_driver=True) == "driver"
    assert classify_process("python", "python -m benchmarks.translation --case babelforge") == "other: python"


def test_cpu_between_samples_counts_for_the_class_a_process_has_at_the_later_sample():
    sampler = CpuSampler()
    sampler.samples = [
        (0.0, 0.0, {1: ("driver", 1.0)}),
        (1.0, 2.0, {1: ("driver", 1.5), 7: ("idle worker", 0.8)}),  # 7 was born in this interval
        (2.0, 4.0, {1: ("driver", 1.6), 7: ("translate actor", 1.8), 9: ("raylet", 0.1)}),
        (3.0, 6.0, {1: ("driver", 1.7), 9: ("raylet", 0.3)}),  # 7 ended
    ]
    whole = sampler.table()
    assert whole["wall_s"] == 3.0 and whole["machine_cpu_s"] == 6.0
    assert whole["classes"]["driver"] == {"cpu_s": 0.7, "processes": 1, "cores": 0.233}
    assert whole["classes"]["idle worker"]["cpu_s"] == 0.8
    assert whole["classes"]["translate actor"]["cpu_s"] == 1.0
    assert whole["classes"]["raylet"]["cpu_s"] == 0.3
    assert whole["case_cpu_s"] == pytest.approx(2.8) and whole["other_sessions_cpu_s"] == pytest.approx(3.2)
    late = sampler.table(1.0, 3.0)  # samples at 2.0 and 3.0 only
    assert set(late["classes"]) == {"driver", "translate actor", "raylet"}
    assert late["classes"]["translate actor"]["cpu_s"] == 1.0 and late["wall_s"] == 2.0


def test_the_sampler_sees_the_processes_it_starts():
    import subprocess
    import sys

    with CpuSampler(interval_s=0.05) as sampler:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(0.2)",
            ],
            check=True,
        )
    table = sampler.table()
    child = table["classes"][f"other: {sys.executable.rsplit('/', 1)[-1]}"]
    assert child["cpu_s"] > 0.2 and child["processes"] == 1
    assert "driver" in table["classes"]
