"""The translate actor's limit of rows in flight (actors.engines.translate.RowSlots), without Ray: a new
row starts as soon as any row finishes, whichever batch it belongs to; a batch held by one slow
row holds no other slot; batches come back whole and in their rows' order. And the drafts'
checks run off the event loop (engine.rows.refine.checks_thread), so a slow check does not stop the others."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from actors.engines.translate import RowSlots
from engine.config import ComputeConfig, parse_config
from engine.protocols import CheckResult, Completion, GenParams
from engine.recipes import row_machine
from tests.unit.test_translate_state_machine import FakeLangId, make_task


class HeldRows:
    """A row machine whose rows run until the test lets each one finish; it counts rows in flight."""

    def __init__(self):
        self.in_flight = self.peak = 0
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, task: dict) -> dict:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.started.append(task["id"])
        done = self.release.setdefault(task["id"], asyncio.Event())
        await done.wait()
        self.in_flight -= 1
        return {"id": task["id"], "done": True}


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_new_rows_start_as_others_finish_and_in_flight_stays_at_the_limit():
    async def scenario():
        limit, batches, size = 6, 5, 4
        rows, slots = HeldRows(), RowSlots(limit)
        tasks = [[{"id": f"b{b}r{r}"} for r in range(size)] for b in range(batches)]
        calls = [asyncio.ensure_future(slots.batch(rows, batch)) for batch in tasks]  # as Ray Data's queued calls
        await settle()
        assert rows.in_flight == limit
        assert rows.started == ["b0r0", "b0r1", "b0r2", "b0r3", "b1r0", "b1r1"]  # oldest batch first
        # b0r0 is the slow row: every other row finishes, one at a time, in an order that mixes batches.
        order = [
            "b1r0",
            "b0r1",
            "b0r2",
            "b0r3",
            "b1r1",
            "b1r2",
            "b1r3",
            "b2r0",
            "b2r1",
            "b2r2",
            "b2r3",
            "b3r0",
            "b3r1",
            "b3r2",
            "b3r3",
            "b4r0",
            "b4r1",
            "b4r2",
            "b4r3",
        ]
        total = batches * size
        for finished, row_id in enumerate(order, start=1):
            assert row_id in rows.started, f"{row_id} must be running before it can finish"
            rows.release[row_id].set()
            await settle()
            unfinished = total - finished
            # While rows wait for a slot, a finished row's slot goes to the next at once.
            assert rows.in_flight == min(limit, unfinished), (row_id, rows.in_flight)
            assert rows.peak <= limit
            assert not calls[0].done(), "batch 0 waits for its slow row"
        # Batch 0's slow row held one slot only: every later batch started and finished meanwhile.
        assert all(call.done() for call in calls[1:])
        assert rows.in_flight == 1 and rows.started.count("b0r0") == 1
        rows.release["b0r0"].set()
        results = await asyncio.gather(*calls)
        assert [[row["id"] for row in batch] for batch in results] == [[t["id"] for t in batch] for batch in tasks]
        assert rows.peak == limit and rows.in_flight == 0

    asyncio.run(scenario())


def test_a_batch_smaller_than_the_limit_runs_all_its_rows_at_once():
    async def scenario():
        rows, slots = HeldRows(), RowSlots(64)
        call = asyncio.ensure_future(slots.batch(rows, [{"id": str(i)} for i in range(16)]))
        await settle()
        assert rows.in_flight == 16
        for event in list(rows.release.values()):
            event.set()
        assert len(await call) == 16

    asyncio.run(scenario())


def test_rows_in_flight_defaults_to_batches_in_flight_batches_and_the_pool_holds_more():
    compute = ComputeConfig(batch_size=16, batches_in_flight=4)
    assert compute.in_flight_rows == 64
    assert compute.actor_batches == 32  # batches waiting for slots, or held by their last row, beyond the 4 running
    assert ComputeConfig(batch_size=8, rows_in_flight=100).in_flight_rows == 100
    assert ComputeConfig(batches_in_flight=6, batches_per_actor=2).actor_batches == 6  # never fewer than run at once


BONJOUR = {"instruction": "Dites bonjour à toute la équipe.", "output": "Bonjour la équipe, et bonne journée à tous."}


class InstantGenerator:
    backend = "fake"

    async def generate(self, messages: list[dict], params: GenParams) -> Completion:
        return Completion(json.dumps(BONJOUR, ensure_ascii=False), 3, 2, "stop")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_a_slow_check_runs_off_the_event_loop():
    """A check that takes 0.3 s (the adequacy gate's encoding) runs on another thread while the
    loop keeps running the other rows' coroutines."""
    loop_thread, check_threads, ticks = threading.get_ident(), [], []

    def slow_check(source: dict, drafted: dict, language) -> CheckResult:
        check_threads.append(threading.get_ident())
        time.sleep(0.3)
        return CheckResult(None, None, {"checked": drafted})

    async def ticker(stop: asyncio.Event):
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def scenario():
        stop = asyncio.Event()
        ticking = asyncio.ensure_future(ticker(stop))
        config = parse_config(
            {"seeds": {"paths": ["unused.jsonl"]}, "languages": {"targets": ["fr"]}, "validation": {"max_attempts": 1}}
        )
        machine = row_machine(config, InstantGenerator(), FakeLangId(), [slow_check])
        row = await machine(make_task("Say hello to the whole team.", "Hello team, and have a nice day, everyone."))
        stop.set()
        await ticking
        return row

    row = asyncio.run(scenario())
    assert row["status"] == "accepted" and row["checked"] == BONJOUR
    assert check_threads and check_threads[0] != loop_thread
    assert len(ticks) >= 10, "the loop ran other coroutines while the check worked"
