"""Ring (a): the refinement benchmark's chain (benchmarks/refinement_chain.py) retries a failed
draft or rewrite the way the row machine does: the failure fed back, one more stage per attempt,
so both arms of the comparison take the same decisions row by row."""

from __future__ import annotations

import asyncio
import json

import pytest

from benchmarks.refinement_chain import BENCH_VALIDATION, refine_chain
from benchmarks.simulated import FixedLatencyGenerator, simulated_answer, simulated_config
from benchmarks.translation import driver_requests
from benchmarks.workload import load_tasks
from engine.protocols import Completion, GenParams
from engine.recipes import recipe_class, row_machine
from tests.unit.test_translate_state_machine import FakeLangId

CUT_OFF = '{"instruction": "le'  # a reply cut off mid-JSON: parse_truncated, which is retried


def reply(messages: list[dict], schema: dict | None, failing: set[str]) -> str:
    """The judge scores 1 of 2 (every valid version is rewritten); a draft or rewrite of a seed
    in `failing` is cut off at its first attempt (no assistant turn yet in its conversation)."""
    if "score" in (schema or {}).get("properties", {}):
        return json.dumps({"feedback": "simulated", "score": 1})
    first_attempt = not any(m["role"] == "assistant" for m in messages)
    if first_attempt and any(seed in messages[-1]["content"] for seed in failing):
        return CUT_OFF
    return simulated_answer(messages, GenParams(json_schema=schema))


class ScriptedGenerator(FixedLatencyGenerator):
    def __init__(self, failing: set[str]):
        super().__init__(0.0)
        self.failing = failing

    async def generate(self, messages: list[dict], params: GenParams) -> Completion:
        text = reply(messages, params.json_schema, self.failing)
        return Completion(text, 1, len(text.split()), "stop")


@pytest.fixture(scope="module")
def setting():
    overrides = {**BENCH_VALIDATION, "validation": {**BENCH_VALIDATION["validation"], "max_attempts": 2},
                 "refine": {"criteria": ["adequacy"], "rewrite_below": 2.0}}
    config = simulated_config({"lang": "fr", "batch_size": 4, "batches_in_flight": 1, "num_cpus": 2, "rounds": 1, "overrides": overrides}, 0.0)
    recipe = recipe_class(config)(config, FakeLangId(), [])
    tasks = load_tasks(config, 4)
    requests = driver_requests(config, recipe, tasks)
    # The first two seeds' drafts fail once; their source text names them in the request.
    failing = {task["src_instruction"][:40] for task in tasks[:2]}
    return config, recipe, tasks, requests, failing


def run_chain(recipe, requests, failing, max_attempts):
    def generate(batch):
        answers = []
        for row in batch:
            schema = (row["sampling_params"].get("structured_outputs") or {}).get("json")
            text = reply(row["messages"], json.loads(schema) if schema else None, failing)
            answers.append({"key": row["key"], "text": text, "prompt_tokens": 1, "completion_tokens": len(text.split())})
        return answers, {"end_to_end_s": 0.0}

    return refine_chain(recipe, 1, requests, generate, max_attempts)


def test_a_failed_draft_is_retried_in_a_stage_of_its_own_with_its_failure_fed_back(setting):
    _, recipe, _, requests, failing = setting
    rows, stages = run_chain(recipe, requests, failing, max_attempts=2)
    assert [(s["stage"], s["requests"]) for s in stages] == [
        ("translate", 4), ("translate, attempt 2", 2), ("judge 0", 4), ("rewrite 1", 4), ("judge 1", 4)]
    assert all(row.versions and row.rounds == 1 for row in rows), "every row judged and rewritten once"


def test_with_one_attempt_the_failed_drafts_are_rejected_and_never_judged(setting):
    _, recipe, _, requests, failing = setting
    rows, stages = run_chain(recipe, requests, failing, max_attempts=1)
    assert [s["stage"] for s in stages] == ["translate", "judge 0", "rewrite 1", "judge 1"]
    assert [(row.status, row.reason, bool(row.versions)) for row in rows[:2]] == [("rejected", "parse_truncated", False)] * 2


def test_the_chain_and_the_row_machine_take_the_same_decisions_row_by_row(setting):
    config, recipe, tasks, requests, failing = setting
    chain_rows, _ = run_chain(recipe, requests, failing, max_attempts=2)
    machine = row_machine(config, ScriptedGenerator(failing), FakeLangId())

    async def all_rows():
        return await asyncio.gather(*(machine(task) for task in tasks))

    machine_rows = asyncio.run(all_rows())
    assert [row["attempts"] for row in machine_rows] == [3, 3, 2, 2]  # a draft retried once, then one rewrite
    assert [(r.status, r.reason, r.rounds) for r in chain_rows] == [(r["status"], r["reason"], r["rounds"]) for r in machine_rows]
