"""actors.engines.vllm_generator.engine_env and host_engine_kwargs: what a CPU engine is started with."""

from __future__ import annotations

import os
import platform

import pytest

from actors.engines.vllm_generator import engine_env, host_engine_kwargs


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


x86_only = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the rule is about x86 SIMD levels")


@x86_only
def test_an_avx2_only_cpu_computes_in_float32():
    assert host_engine_kwargs({"max_model_len": 512}, "AVX2") == {
        "disable_log_stats": True,
        "max_model_len": 512,
        "dtype": "float32",
    }
    assert host_engine_kwargs(None, "DEFAULT")["dtype"] == "float32"


@x86_only
def test_avx512_cpus_keep_the_models_dtype():
    assert "dtype" not in host_engine_kwargs({}, "AVX512")
    assert "dtype" not in host_engine_kwargs({}, "AVX512_BF16")


def test_a_dtype_from_the_config_wins_and_gpu_builds_are_left_alone():
    assert host_engine_kwargs({"dtype": "bfloat16"}, "AVX2")["dtype"] == "bfloat16"
    assert host_engine_kwargs({"enforce_eager": True}, None) == {"disable_log_stats": True, "enforce_eager": True}
