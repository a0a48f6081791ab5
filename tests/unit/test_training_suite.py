"""The training benchmark's alternation and statistics (benchmarks/training.suite), with a stand-in
for the runner: which launches it asks for, in which order, and what it makes of their results.
The launches themselves are real only at --quick (tests/integration/test_finetune.py runs Ray Train
with DeepSpeed in CI)."""

from __future__ import annotations

import pytest

from benchmarks.summary import training_md, training_plot
from benchmarks.training import spread, suite


class Launches:
    """Answers each launch with the next figure of its arm; an arm's figure None is a failed launch."""

    def __init__(self, direct: list, ray: list, beside_ray: list | None = None, small_pages: list | None = None):
        beside_ray = beside_ray if beside_ray is not None else list(direct)
        small_pages = small_pages if small_pages is not None else list(ray)
        self.figures = {
            "direct": list(direct),
            "ray": list(ray),
            "beside_ray": list(beside_ray),
            "ray_small_pages": list(small_pages),
        }
        self.calls: list[tuple[str, str, dict]] = []

    def case(self, module: str, case: str, spec: dict) -> dict:
        self.calls.append((module, case, spec))
        tokens = self.figures[case].pop(0)
        if tokens is None:
            return {"error": "Traceback: launch failed", "load_average_1m": [1.0, 1.0]}
        return {
            "tokens_per_s": tokens,
            "seconds_per_step": round(1000 / tokens, 2),
            "wall_seconds": 60.0,
            "steps_measured": spec["steps"] - spec["warmup"],
            "load_average_1m": [len(self.calls) * 0.5, 2.0],
            **({"idle_ray_processes": 9} if case == "beside_ray" else {}),
        }


def test_arms_alternate_abcd_with_one_spec():
    runner = Launches([10.0, 12.0, 11.0], [9.0, 9.5, 12.0])
    result = suite({"training_pairs": 3, "training_steps": 8, "training_max_length": 128}, runner)
    assert [case for _, case, _ in runner.calls] == ["direct", "ray", "beside_ray", "ray_small_pages"] * 3
    assert all(module == "benchmarks.training" for module, _, _ in runner.calls)
    assert len({repr(sorted(spec.items())) for _, _, spec in runner.calls}) == 1, "every arm launches the same config"
    spec = runner.calls[0][2]
    assert spec["steps"] == 8 and spec["max_length"] == 128 and spec["warmup"] == 2
    arms = ["deepspeed_direct", "ray_train", "direct_beside_ray", "ray_train_small_pages"]
    assert [run["arm"] for run in result["runs"]] == arms * 3
    assert [run["order"] for run in result["runs"]] == list(range(12))
    assert result["workload"]["order"].startswith(
        "ABCD...: deepspeed_direct, ray_train, direct_beside_ray, ray_train_small_pages, deepspeed"
    )


def test_medians_spread_and_ratios_come_from_the_launches():
    launches = Launches([10.0, 12.0, 11.0], [9.0, 9.5, 12.0], [8.0, 10.0, 11.0], [7.0, 9.5, 10.0])
    result = suite({"training_pairs": 3, "training_steps": 8}, launches)
    direct, ray = result["arms"]["deepspeed_direct"], result["arms"]["ray_train"]
    assert direct["tokens_per_s"] == {"n": 3, "median": 11.0, "min": 10.0, "max": 12.0, "iqr": [10.5, 11.5]}
    assert ray["tokens_per_s"]["median"] == 9.5 and ray["launches"] == 3
    assert result["ratios"]["ray_train_over_direct_median_tokens_per_s"] == pytest.approx(9.5 / 11.0, abs=1e-3)
    per_pair = result["ratios"]["ray_train_over_direct_per_pair"]  # 0.9, 0.792, 1.091
    assert per_pair["n"] == 3 and per_pair["min"] == pytest.approx(0.792) and per_pair["max"] == pytest.approx(1.091)
    assert direct["load_average_1m_before"]["min"] == 0.5, "the load before each launch is kept"
    # each round's arms against that round's direct launch: 0.8, 0.833, 1.0; Ray Train / beside: 1.125, 0.95, 1.091
    beside = result["ratios"]["beside_ray_over_direct_per_pair"]
    assert beside["median"] == pytest.approx(0.83) and beside["min"] == pytest.approx(0.8)
    assert result["ratios"]["beside_ray_over_direct_median_tokens_per_s"] == pytest.approx(10.0 / 11.0, abs=1e-3)
    assert result["ratios"]["ray_train_over_beside_ray_per_pair"]["median"] == pytest.approx(1.09)
    markdown = "\n".join(training_md(result))
    assert "direct beside Ray / direct, median tokens/s: 0.909" in markdown
    assert "Ray Train / direct beside Ray (9 idle Ray worker processes), per round: median 1.090, min 0.950" in markdown
    # the Ray Train arm on 4 KiB pages: 0.7, 0.792, 0.909 of direct; Ray Train over it 1.286, 1.0, 1.2
    small = result["ratios"]["small_pages_over_direct_per_pair"]
    assert small["median"] == pytest.approx(0.79) and small["max"] == pytest.approx(0.909)
    assert result["ratios"]["ray_train_over_small_pages_per_pair"]["median"] == pytest.approx(1.2)
    assert "Ray Train on 4 KiB pages / direct, median tokens/s: 0.864" in markdown  # 9.5 / 11
    assert "Ray Train / Ray Train on 4 KiB pages (the job's huge-page default off), per round: median 1.200" in markdown
    assert markdown.startswith("### Training: direct DeepSpeed, Ray Train, direct beside Ray and Ray Train, 4 KiB")


def test_a_failed_launch_is_shown_and_left_out_of_the_statistics():
    result = suite({"training_pairs": 2, "training_steps": 4}, Launches([10.0, 12.0], [None, 9.0]))
    ray = result["arms"]["ray_train"]
    assert ray["launches"] == 1 and ray["tokens_per_s"]["median"] == 9.0
    assert result["ratios"]["ray_train_over_direct_per_pair"]["n"] == 1, "a round with a failed launch has no ratio"
    assert result["ratios"]["beside_ray_over_direct_per_pair"]["n"] == 2, "the other arms' ratios keep that round"
    markdown = "\n".join(training_md(result))
    assert "| 2 | ray_train | error |" in markdown.replace("  ", " ")
    assert "Ray Train / direct, median tokens/s: 0.818" in markdown  # 9 / median(10, 12)
    assert "training launch 2 (ray_train) failed" in markdown
    assert training_plot(result["runs"]).startswith(b"\x89PNG")


def test_spread_of_one_or_no_value():
    assert spread([]) == {"n": 0, "median": None, "min": None, "max": None, "iqr": None}
    assert spread([3.0, None]) == {"n": 1, "median": 3.0, "min": 3.0, "max": 3.0, "iqr": [3.0, 3.0]}
