"""VLLMGenerator.shutdown stops the engine's output handler before the engine core, from any thread.

vLLM's AsyncLLM.shutdown stops the core first and cancels the handler after; from a thread other
than the engine's event loop the handler then sees a dead core and logs an ERROR. A stand-in
engine (no vLLM) records what the handler saw when the core stopped.
"""

from __future__ import annotations

import asyncio
import threading

from actors.engines.vllm_generator import ENGINE_STOP_S, VLLMGenerator


class FakeEngine:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.core_stopped = threading.Event()
        self.seen = []
        self.handler_done_at_shutdown = None
        self.shutdowns = 0

        async def output_handler():
            try:
                while not self.core_stopped.is_set():
                    await asyncio.sleep(0.01)
                self.seen.append("dead core")  # vLLM logs "AsyncLLM output_handler failed." here
            except asyncio.CancelledError:
                self.seen.append("cancelled")
                raise

        self.output_handler = asyncio.run_coroutine_threadsafe(self._create(output_handler), loop).result()

    @staticmethod
    async def _create(coro_fn):
        return asyncio.get_running_loop().create_task(coro_fn())

    def shutdown(self, timeout=None):  # AsyncLLM.shutdown's signature
        self.shutdowns += 1
        self.timeout = timeout
        self.handler_done_at_shutdown = self.output_handler.done()
        self.core_stopped.set()


def generator_on(engine) -> VLLMGenerator:
    generator = object.__new__(VLLMGenerator)  # no vLLM: only the engine attribute shutdown uses
    generator.engine = engine
    return generator


def test_handler_is_cancelled_before_the_core_stops_when_called_from_another_thread():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        engine = FakeEngine(loop)
        generator = generator_on(engine)
        generator.shutdown()
        generator.shutdown()  # idempotent: Ray Data's teardown and the atexit hook may both call it
        assert engine.handler_done_at_shutdown is True
        assert engine.seen == ["cancelled"]
        assert engine.shutdowns == 1
        assert engine.timeout == ENGINE_STOP_S  # not vLLM's 5 s, which a stopping core in an actor always used up
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_on_the_engines_own_loop_the_handler_is_cancelled_first_too():
    async def main():
        engine = FakeEngine.__new__(FakeEngine)
        engine.core_stopped, engine.seen, engine.shutdowns = threading.Event(), [], 0

        async def output_handler():
            try:
                while not engine.core_stopped.is_set():
                    await asyncio.sleep(0.01)
                engine.seen.append("dead core")
            except asyncio.CancelledError:
                engine.seen.append("cancelled")
                raise

        engine.output_handler = asyncio.get_running_loop().create_task(output_handler())
        await asyncio.sleep(0.02)
        generator_on(engine).shutdown()
        await asyncio.sleep(0.05)
        return engine

    engine = asyncio.run(main())
    assert engine.seen == ["cancelled"]
