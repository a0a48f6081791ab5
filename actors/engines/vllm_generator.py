"""engine.generation.Generator over one vLLM engine (AsyncLLM): every request of every row an
actor has in flight goes into the same engine, which batches them continuously."""

from __future__ import annotations

import logging
import os
import platform
import uuid
from typing import Any

from actors.engines.models import resolve_model
from engine.protocols import ERROR, TOO_LONG, Completion, GenParams

log = logging.getLogger(__name__)


def engine_env(engine_threads: int | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a vLLM engine on CPU is started with (builds for GPUs read none of it).

    With `engine_threads` set, the engine's OpenMP threads are pinned to the first that many CPUs
    this process may use. vLLM's own "auto" binding keeps one core per engine for its scheduler
    and pins to the rest: on a 2-core machine the model computes on one core. Measured with
    `python -m benchmarks.translation --case raw` (48 prompts, SmolLM2-135M, 2 cores): 186
    generated tokens/s with "auto", 195 unpinned on 2 threads, 248 pinned to both cores.
    Ray sets OMP_NUM_THREADS to the CPUs an actor reserves; what an actor reserves for scheduling
    and what its engine computes with are separate decisions. A VLLM_CPU_OMP_THREADS_BIND already
    in the environment wins (several engines on one node want disjoint CPU lists).
    """
    environ = os.environ if environ is None else environ
    env = {"VLLM_CPU_KVCACHE_SPACE": environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}  # GiB
    if engine_threads:
        cpus = sorted(os.sched_getaffinity(0))[:engine_threads]
        env["OMP_NUM_THREADS"] = str(len(cpus))
        env["VLLM_CPU_OMP_THREADS_BIND"] = environ.get("VLLM_CPU_OMP_THREADS_BIND") or ",".join(map(str, cpus))
    return env


def host_engine_kwargs(engine_kwargs: dict[str, Any] | None, capability: str | None = None) -> dict[str, Any]:
    """Engine arguments for this host: bfloat16 weights computed in float32 on an x86 CPU without AVX-512.

    vLLM on CPU runs a bfloat16 model's linear layers through oneDNN, which needs AVX-512; on an
    AVX2-only CPU it logs "Failed to create oneDNN linear, fallback to torch linear", and torch's
    bfloat16 matmul there is several times slower than float32. Measured on a 2-core AVX2-only
    EPYC (SmolLM2-135M, 32 chat prompts x 64 tokens, enforce_eager): 11.0 generated tokens/s in
    bfloat16, 53.0 in float32; a 512x576 @ 576x1536 torch linear, 98 ms vs 15 ms. A `dtype` the
    config sets wins, and builds for GPUs are left alone (`capability` is None there).
    """
    kwargs = {"disable_log_stats": True, **(engine_kwargs or {})}
    if "dtype" in kwargs or capability is None:
        return kwargs
    if platform.machine() in ("x86_64", "AMD64") and not capability.startswith("AVX512"):
        log.info(
            "CPU without AVX-512 (%s): the engine computes in float32 (set model.engine_kwargs.dtype to choose)",
            capability,
        )
        kwargs["dtype"] = "float32"
    return kwargs


def cpu_capability() -> str | None:
    """torch's SIMD level for this CPU ("AVX2", "AVX512", ...) when vLLM runs on the CPU, else None."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return None
    import torch

    return torch.backends.cpu.get_cpu_capability()


# The runtime env of an actor that owns an engine. Ray kills a worker's child processes as the
# worker exits, before any Python hook of the actor runs (CoreWorkerShutdownExecutor: children
# first, then the task loop ends, then __ray_shutdown__ and atexit): vLLM's engine core dies
# under a live AsyncLLM, whose output handler logs `ERROR ... AsyncLLM output_handler failed`, and
# the killed multiprocessing resource_tracker is relaunched and prints KeyError tracebacks. So the
# actor stops its engine itself (VLLMGenerator.shutdown, at the latest at exit); if the actor dies
# without that (SIGKILL, ray.kill), actors.engines.reaper kills the orphaned engine processes.
ENGINE_ACTOR_RUNTIME_ENV = {"env_vars": {"RAY_kill_child_processes_on_worker_exit": "0"}}


# How long a stopping engine core gets before it and its workers are killed (vLLM's default: 5 s).
# Its worker then frees the KV cache and runs the interpreter's exit-time collection, about 2-3 s
# here, while the core waits on it up to 5 s: inside a Ray actor the default always ran out and
# the core was killed anyway, 5 s after the last row. With 1 s, a tiny job's last row to its
# datasets took 6.0 s against 9.9 (jobs.synthesize, test_synthesize's config, 2 cores). Whatever
# the job needed from the engine it has by then: shutdown comes after the last answer.
ENGINE_STOP_S = 1.0


class VLLMGenerator:
    backend = "vllm"

    def __init__(self, model: str, engine_kwargs: dict[str, Any] | None = None, engine_threads: int | None = None):
        os.environ.update(engine_env(engine_threads))
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.model_name = model
        kwargs = host_engine_kwargs(engine_kwargs, cpu_capability())
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=resolve_model(model), **kwargs))
        from actors.engines.reaper import watch_children

        self._reaper = watch_children()  # the engine core must not outlive this process
        self._stopped = False
        import atexit

        atexit.register(self.shutdown)  # runs before vLLM's own exit-time teardown (atexit is LIFO)
        self.tokenizer = self.engine.get_tokenizer()
        self.max_model_len = self.engine.model_config.max_model_len

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # some tokenizers return a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    async def generate(self, messages: list[dict], params: GenParams) -> Completion:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
        from vllm.v1.engine.exceptions import EngineDeadError

        ids = self.prompt_ids(messages)
        if len(ids) + params.max_tokens > self.max_model_len:
            return Completion("", len(ids), 0, TOO_LONG)
        sampling = SamplingParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            repetition_penalty=params.repetition_penalty,
            # The answer only, when it is done: by default AsyncLLM builds every request's text so far and
            # wakes its caller at every engine step, Python work in this actor for each token of each row.
            output_kind=RequestOutputKind.FINAL_ONLY,
            # No free whitespace between JSON tokens: small models otherwise loop on newlines.
            structured_outputs=StructuredOutputsParams(json=params.json_schema, disable_any_whitespace=True)
            if params.json_schema
            else None,
        )
        final = None
        try:
            async for output in self.engine.generate(TokensPrompt(prompt_token_ids=ids), sampling, uuid.uuid4().hex):
                final = output
        except EngineDeadError:
            raise  # a dead engine is a run problem: Ray restarts the actor, the batch is redone
        except Exception as error:  # a request the engine refused is a row problem
            log.warning("request failed: %s", error)
            return Completion(f"{type(error).__name__}: {error}", len(ids), 0, ERROR)
        if final is None or not final.outputs:
            return Completion("no output", len(ids), 0, ERROR)
        choice = final.outputs[0]
        return Completion(choice.text, len(ids), len(choice.token_ids), choice.finish_reason or "stop")

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop the engine, its output handler first. AsyncLLM.shutdown stops the engine core and
        only then cancels the handler; called from a thread other than the engine's event loop
        (Ray Data drops a UDF on the actor's main thread, its async loop runs in another) the
        handler sees the core die first and logs `ERROR ... AsyncLLM output_handler failed`.

        Safe to call again, at any time: a pool that ends before the job does (the qualification
        probe's) leaves its actors to exit with the engine still held, so the atexit hook stops it
        and a later call (the actor's __del__, during interpreter teardown) returns at once."""
        if getattr(self, "_stopped", False):
            return
        import asyncio
        import concurrent.futures

        self._stopped = True
        handler = getattr(self.engine, "output_handler", None)
        if handler is not None and not handler.done():
            loop = handler.get_loop()
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                handler.cancel()  # cancelled before this loop runs again: the core stops first below
            elif loop.is_running():

                async def cancel() -> None:
                    handler.cancel()
                    await asyncio.wait([handler])

                try:
                    asyncio.run_coroutine_threadsafe(cancel(), loop).result(timeout_s)
                except (concurrent.futures.TimeoutError, RuntimeError) as error:
                    log.warning("engine output handler did not stop in %.0fs: %s", timeout_s, error)
        self.engine.shutdown(timeout=ENGINE_STOP_S)
        # Let go of the stopped engine now, while the interpreter is whole: AsyncLLM.__del__ calls
        # shutdown again, which fails with a TypeError once module globals are torn down at exit.
        self.engine = None
