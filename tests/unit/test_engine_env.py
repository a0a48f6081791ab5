"""actors.vllm_generator.engine_env: what a CPU engine is started with."""

from __future__ import annotations

import os

from actors.vllm_generator import engine_env


def allowed() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def test_engine_threads_pin_the_engine_to_that_many_allowed_cores():
    env = engine_env(1, {})
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == str(allowed()[0])


def test_more_threads_than_cores_are_capped_at_the_cores_this_process_may_use():
    env = engine_env(10_000, {})
    assert env["OMP_NUM_THREADS"] == str(len(allowed()))
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == ",".join(map(str, allowed()))


def test_a_binding_set_by_the_user_wins():
    env = engine_env(2, {"VLLM_CPU_OMP_THREADS_BIND": "1,3", "VLLM_CPU_KVCACHE_SPACE": "8"})
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "1,3"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "8"


def test_without_engine_threads_vllm_keeps_its_own_binding():
    env = engine_env(None, {})
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "2"}
