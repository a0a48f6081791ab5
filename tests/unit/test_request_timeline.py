"""The refinement benchmark's request timelines (benchmarks/workload.py: RequestTimeline,
timeline_summary) and the floors they are read against (benchmarks/refinement_chain.py:
critical_paths, benchmarks/summary.py: critical_path_lines)."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.refinement_chain import critical_paths
from benchmarks.summary import critical_path_lines, edges_md
from benchmarks.workload import RequestTimeline, timeline_summary
from engine.protocols import Completion, GenParams


class Sleeper:
    """A generator whose answer takes `len(text)` hundredths of a second and has that many tokens."""

    async def generate(self, messages, params):
        text = messages[-1]["content"]
        await asyncio.sleep(len(text) / 100)
        return Completion(text, 1, len(text), "stop")


def test_each_rows_requests_are_recorded_under_its_task_id():
    generator = Sleeper()
    timeline = RequestTimeline(generator)

    async def machine(task):  # two requests one after another, as the row machine sends them
        for text in task["texts"]:
            await generator.generate([{"role": "user", "content": text}], GenParams())
        return {"id": task["id"]}

    run = timeline.row_machine(machine)

    async def both():
        return await asyncio.gather(run({"id": "a", "texts": ["xx", "xxxx"]}), run({"id": "b", "texts": ["x"]}))

    assert [row["id"] for row in asyncio.run(both())] == ["a", "b"]
    assert [[r[2] for r in timeline.rows[k]] for k in ("a", "b")] == [[2, 4], [1]]
    first, second = timeline.rows["a"]
    assert first[0] < first[1] <= second[0] < second[1]  # sent, returned; the next sent after
    assert timeline.pop("a").startswith("[[") and timeline.pop("a") == "[]" and "a" not in timeline.rows


def test_the_summary_reads_occupancy_finishing_and_the_longest_row():
    rows = [
        [[0.0, 4.0, 40], [4.2, 10.0, 60]],  # the longest: 10 s, two requests, 100 tokens
        [[0.0, 2.0, 20]],
        [[0.0, 5.0, 50]],
        [],  # a row no request was sent for (machine-translated): left out
    ]
    summary = timeline_summary(rows, 0.0, 10.0, parts=5)
    assert summary["requests"] == 4
    assert summary["mean_in_flight_by_tenth"] == [3.0, 2.0, 1.4, 1.0, 1.0]
    assert summary["rows_finished_at_share"] == {"half": 0.5, "nine_tenths": 1.0, "all": 1.0}
    assert (summary["longest_row_s"], summary["longest_row_requests"], summary["longest_row_tokens"]) == (10.0, 2, 100)
    assert summary["median_gap_between_requests_s"] == pytest.approx(0.2)
    assert timeline_summary(rows, -1.5, 12.0)["start_to_first_request_s"] == 1.5
    assert timeline_summary(rows, -1.5, 12.0)["last_answer_to_end_s"] == 2.0
    assert timeline_summary([[]], 0.0, 10.0) == {} and timeline_summary(rows, 5.0, 5.0) == {}


def suite(bound_b, bound_c):
    b = {
        "steady_state_s": 100.0,
        "request_timeline": {
            "longest_row_s": bound_b,
            "longest_row_requests": 6,
            "longest_row_tokens": 900,
            "mean_in_flight_by_tenth": [64.0, 60.5],
            "rows_finished_at_share": {"half": 0.61, "nine_tenths": 0.9, "all": 1.0},
            "median_gap_between_requests_s": 0.0023,
        },
    }
    c = {"steady_state_s": 150.0, "stage_longest_requests_s": bound_c}
    return {
        "workload": {"seeds": 64, "engine_slots": 64},
        "cases": {"babelforge": b, "ray_data_llm_chain": c},
        "critical_paths": critical_paths(b, c),
    }


def test_each_arm_is_set_beside_its_floor():
    paths = suite(97.0, 120.0)["critical_paths"]
    assert paths["babelforge"] == {"steady_state_s": 100.0, "bound_s": 97.0, "bound_share": 0.97}
    assert paths["ray_data_llm_chain"] == {"steady_state_s": 150.0, "bound_s": 120.0, "bound_share": 0.8}
    lines = critical_path_lines(suite(97.0, 120.0))
    assert "longest row (6 requests one after another, 900 tokens) took 97.0 s of its 100.0 s" in lines[1]
    assert "add up to 120.0 s of its 150.0 s (0.80)" in lines[1]
    assert "64.0, 60.5" in lines[2] and "2.3 ms" in lines[2]
    assert critical_path_lines(suite(97.0, 0.0)) == []  # a simulated chain has no engine requests to time


def test_the_translation_summary_names_the_phase_edges():
    timeline = timeline_summary([[[1.5, 9.0, 90]], [[1.6, 10.0, 80]]], 0.0, 10.4, parts=2)
    [_, line] = edges_md({"generation_s": 10.4, "request_timeline": timeline})
    assert "first request reached the engine 1.50 s after" in line and "0.40 s after the last answer" in line
    assert line.endswith("in flight by tenth: 1.4, 1.7.")
    assert edges_md({"generation_s": 1.0}) == []
