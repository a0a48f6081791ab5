"""benchmarks.scaling.in_flight_figures: what the simulated generators' in-flight samples say."""

from __future__ import annotations

import json

import pytest

from benchmarks.scaling import in_flight_figures


def report(actor: str, samples: list, requests: int, latency: float) -> str:
    return json.dumps(
        {
            "actor": actor,
            "samples": samples,
            "requests": requests,
            "latency_total_s": latency,
            "observed_total_s": latency * 1.1,
        }
    )


def test_the_fed_window_mean_and_the_ideal_inputs():
    # One actor, limit 2: two requests at 0, one ends at 1 and the third starts, all done by 2.
    samples = [[0.0, 1], [0.0, 2], [1.0, 1], [1.0, 2], [2.0, 1], [2.0, 0]]
    # Reports arrive in any order (one per output batch): the second holds nothing new but totals.
    figures = in_flight_figures(
        [None, report("a", samples[3:], 3, 3.0), report("a", samples[:3], 2, 2.0)], limit=2, rows=3
    )
    assert figures["realised_mean_latency_s"] == 1.0 and figures["requests_per_row"] == 1.0
    assert figures["observed_mean_request_s"] == pytest.approx(1.1)
    assert figures["fed_window_s"] == 1.0 and figures["mean_in_flight_per_actor_while_fed"] == 2.0
    assert figures["in_flight_fill"] == 1.0 and figures["peak_in_flight_per_actor"] == 2
    assert figures["rows_per_s_while_fed"] == 1.0  # the one finish inside [0, 1]
    series = figures["in_flight_series"]
    assert series[0] == [0.0, 2.0] and series[-1] == [2.0, 0.0] and max(n for _, n in series) == 2.0


def test_two_actors_the_window_is_while_both_have_rows_to_start():
    a = [[0.0, 1], [2.0, 2], [3.0, 1], [4.0, 0]]  # starts at 0 and 2
    b = [[1.0, 1], [3.0, 2], [4.0, 1], [5.0, 0]]  # starts at 1 and 3
    figures = in_flight_figures([report("a", a, 2, 3.0), report("b", b, 2, 5.0)], limit=2, rows=4)
    # From the last actor's first start (b, 1) to the first actor's last start (a, 2): one row each.
    assert figures["fed_window_s"] == 1.0 and figures["mean_in_flight_per_actor_while_fed"] == 1.0
    assert figures["in_flight_fill"] == 0.5 and figures["rows_per_s_while_fed"] == 0.0
    assert figures["realised_mean_latency_s"] == 2.0
    # The mean over both actors on the grid: 0.5 at 0 (a alone), 1.5 at 3 (a down to 1, b up to 2), 0 at the end.
    series = dict(map(tuple, figures["in_flight_series"]))
    assert series[0.0] == 0.5 and series[3.0] == 1.5 and series[5.0] == 0.0
