"""Ring (a): the refinement benchmark's chain (benchmarks/refinement_chain.py) drives the row
machine's own steps in stages: a failed draft or rewrite is retried the way the row machine does
(the failure fed back), one more stage per attempt, so both arms of the comparison take the same
decisions row by row."""

from __future__ import annotations

import asyncio
import json

import pytest

from benchmarks.refinement_chain import BENCH_VALIDATION, refine_chain
from benchmarks.simulated import FixedLatencyGenerator, simulated_answer, simulated_config
from benchmarks.workload import load_tasks
from engine.protocols import Completion, GenParams
from engine.recipes import row_machine
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
    overrides = {
        **BENCH_VALIDATION,
        "validation": {**BENCH_VALIDATION["validation"], "max_attempts": 2},
        "refine": {"criteria": ["adequacy"], "rewrite_below": 2.0},
    }
    config = simulated_config(
        {"lang": "fr", "batch_size": 4, "batches_in_flight": 1, "num_cpus": 2, "rounds": 1, "overrides": overrides}, 0.0
    )
    tasks = load_tasks(config, 4)
    # The first two seeds' drafts fail once; their source text names them in the request.
    failing = {task["src_instruction"][:40] for task in tasks[:2]}
    return config, tasks, failing


def run_chain(config, tasks, failing, max_attempts):
    """The chain over the row machine (token budgets by the simulated generator's word count, as
    the benchmark counts them), its stages answered by `reply`. A judged row carries scores."""
    config = config.model_copy(
        update={"validation": config.validation.model_copy(update={"max_attempts": max_attempts})}
    )
    machine = row_machine(config, FixedLatencyGenerator(0.0), FakeLangId())

    def generate(asks):
        answers = []
        for key, ask in asks:
            text = reply(ask.messages, ask.params.json_schema, failing)
            answers.append({"key": key, "text": text, "prompt_tokens": 1, "completion_tokens": len(text.split())})
        return answers, {"end_to_end_s": 0.0}

    return refine_chain(machine, tasks, generate)


def test_a_failed_draft_is_retried_in_a_stage_of_its_own_with_its_failure_fed_back(setting):
    config, tasks, failing = setting
    rows, stages = run_chain(config, tasks, failing, max_attempts=2)
    assert [(s["stage"], s["requests"]) for s in stages] == [
        ("translate", 4),
        ("translate, attempt 2", 2),
        ("judge 0", 4),
        ("rewrite 1", 4),
        ("judge 1", 4),
    ]
    assert all(row["scores"] and row["rounds"] == 1 for row in rows), "every row judged and rewritten once"


def test_with_one_attempt_the_failed_drafts_are_rejected_and_never_judged(setting):
    config, tasks, failing = setting
    rows, stages = run_chain(config, tasks, failing, max_attempts=1)
    assert [s["stage"] for s in stages] == ["translate", "judge 0", "rewrite 1", "judge 1"]
    assert [(row["status"], row["reason"], bool(row["scores"])) for row in rows[:2]] == [
        ("rejected", "parse_truncated", False)
    ] * 2


def test_the_chain_and_the_row_machine_take_the_same_decisions_row_by_row(setting):
    config, tasks, failing = setting
    chain_rows, _ = run_chain(config, tasks, failing, max_attempts=2)
    machine = row_machine(config, ScriptedGenerator(failing), FakeLangId())

    async def all_rows():
        return await asyncio.gather(*(machine(task) for task in tasks))

    machine_rows = asyncio.run(all_rows())
    assert [row["attempts"] for row in machine_rows] == [3, 3, 2, 2]  # a draft retried once, then one rewrite
    assert [(r["status"], r["reason"], r["rounds"]) for r in chain_rows] == [
        (r["status"], r["reason"], r["rounds"]) for r in machine_rows
    ]


def test_a_simulated_run_sends_every_language_to_the_simulated_generator():
    """configs/demo.yaml routes pt to the real machine translator; the simulated suites (scale over
    50 languages) must not, or their Portuguese rows are translated on the CPU, not simulated."""
    from benchmarks.harness import demo_settings

    assert demo_settings()["translators"].get("pt") == "mt"  # what the override is there for
    spec = {"lang": "pt", "batch_size": 8, "batches_in_flight": 1, "num_cpus": 2}
    config = simulated_config(spec, 0.01, languages=["fr", "pt"])
    assert config.mt_languages() == () and config.translator_for("pt") == "llm"
