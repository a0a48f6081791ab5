"""Ring (a): the driver's plan holds ids, not text. At a fixed seed count, planning more languages
adds only the per-row ids and indices (tens of bytes a row), not a dict and a copy of the seed's
text per (seed, language): the 1M-row plan of the old design took 1,234 MiB of driver memory."""

from __future__ import annotations

import gc
import json
import tracemalloc

import pyarrow as pa
import pytest

from engine.config import Config, parse_as
from engine.languages import DEFAULT_TARGETS
from engine.recipes import plan_run

SEEDS = 2000
TEXT = 560  # characters of instruction + output per seed, about an Alpaca pair


def write_seeds(path):
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(SEEDS):
            handle.write(
                json.dumps(
                    {
                        "id": f"s{i:05d}",
                        "instruction": f"Explain step {i} of the process in detail. " * 4,
                        "input": "",
                        "output": f"Step {i} is where we carefully describe everything. " * 8,
                    }
                )
                + "\n"
            )
    return path


def plan_config(path, languages: int) -> Config:
    return parse_as(
        Config,
        {
            "seeds": {"paths": [str(path)]},
            "languages": {"targets": list(DEFAULT_TARGETS[:languages])},
            "plan": {"mode": "all"},
        },
    )


def traced(body) -> tuple[object, int, int, int]:
    """(body(), Python bytes traced by tracemalloc at the end and at the peak, Arrow bytes added)."""
    gc.collect()
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        result = body()
        gc.collect()
        python_now, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, python_now, python_peak, pa.total_allocated_bytes() - arrow_before


def planning_bytes(path, languages: int) -> tuple[int, int]:
    """(rows planned, bytes the driver held at its peak while planning them: Python objects traced
    by tracemalloc plus the Arrow buffers the plan keeps), as jobs.synthesize.run plans."""
    config = plan_config(path, languages)
    (plan, ids), _, python_peak, arrow = traced(lambda: (lambda plan: (plan, plan.planned_ids()))(plan_run(config)))
    assert len(ids) == plan.tasks.num_rows == SEEDS * languages
    return plan.tasks.num_rows, python_peak + arrow


def test_planning_memory_grows_by_ids_not_by_text(tmp_path):
    path = write_seeds(tmp_path / "seeds.jsonl")
    planning_bytes(path, 2)  # lazy imports and caches out of the way
    rows_10, bytes_10 = planning_bytes(path, 10)
    rows_50, bytes_50 = planning_bytes(path, 50)
    per_row = (bytes_50 - bytes_10) / (rows_50 - rows_10)
    # An id (20 hex chars) + offsets + seed index + language code is ~30 bytes of Arrow; the
    # per-language Python lists of ids are transient. A dict per task plus its text copied into
    # the task table cost ~1,100 bytes a row here.
    assert per_row < 120, (
        f"{per_row:.0f} bytes per planned row ({bytes_10 / 2**20:.1f} MiB at {rows_10} rows, "
        f"{bytes_50 / 2**20:.1f} MiB at {rows_50})"
    )
    # The seed text is held once, whatever the number of languages.
    assert bytes_50 < 3 * SEEDS * TEXT + 60 * rows_50


def driver_side_bytes(path, languages: int) -> tuple[int, int, int]:
    """(rows planned, bytes the driver still holds once the plan is made, fingerprinted and resumed
    against some finished ids, bytes at the peak of doing so): what jobs.synthesize.run holds from
    planning until generation starts. Python objects and numpy arrays are traced by tracemalloc,
    Arrow's buffers counted by the pool; the seed table is left out (it does not grow with rows)."""
    from engine.inputs.plan import plan_fingerprint

    config = plan_config(path, languages)
    seeds_bytes = plan_run(config).tasks.seeds.nbytes

    def driver_side():
        plan = plan_run(config)
        planned = plan.planned_ids()
        fingerprint = plan_fingerprint(planned)
        done = pa.chunked_array([next(plan.tasks.id_chunks(500))])  # a resumed run: 500 rows already written
        return plan, planned, fingerprint, plan.tasks.without(done)

    (plan, planned, fingerprint, todo), python_now, python_peak, arrow = traced(driver_side)
    held = python_now + arrow - seeds_bytes
    assert len(fingerprint) == 64 and todo.num_rows == len(planned) - 500 == SEEDS * languages - 500
    return len(planned), held, python_peak


def test_the_driver_holds_a_few_bytes_per_planned_row_not_its_id(tmp_path, monkeypatch):
    """At a fixed seed count, five times the languages: what the driver keeps from planning to
    generation (plan, planned ids, fingerprint, resume's anti-join) grows by the indices alone (a
    seed index and a language code, 6 bytes a row, in the plan and in what is left to do), and its
    peak by the fingerprint's 10-byte digests. A plan that stores each row's id string (24 bytes in
    Arrow, more as Python objects) fails it. Ids are derived 2,048 at a time here (ID_STEP), so
    that one slice's transient objects are a constant far below the rows' growth."""
    from engine.inputs import plan

    monkeypatch.setattr(plan, "ID_STEP", 2048)
    path = write_seeds(tmp_path / "seeds.jsonl")
    driver_side_bytes(path, 2)
    rows_10, held_10, peak_10 = driver_side_bytes(path, 10)
    rows_50, held_50, peak_50 = driver_side_bytes(path, 50)
    held_per_row = (held_50 - held_10) / (rows_50 - rows_10)
    peak_per_row = (peak_50 - peak_10) / (rows_50 - rows_10)
    assert held_per_row < 16, (
        f"{held_per_row:.1f} bytes held per planned row ({held_10} at {rows_10} rows, {held_50} at {rows_50})"
    )
    assert peak_per_row < 40, (
        f"{peak_per_row:.1f} bytes per planned row at the peak ({peak_10} at {rows_10} rows, {peak_50} at {rows_50})"
    )


@pytest.mark.parametrize("step", [7, 1 << 16])
def test_the_compact_fingerprint_is_the_digest_of_the_sorted_id_strings(step, monkeypatch):
    """Hex row ids packed to 10 bytes and other ids (bad records' own ids) among them give the
    digest of the sorted strings joined by newlines, as the plan fingerprint always was."""
    import hashlib
    import random

    from engine.inputs import plan
    from engine.inputs.plan import plan_fingerprint
    from engine.records import row_id

    monkeypatch.setattr(plan, "ID_STEP", step)  # hex ids emitted this many at a time, the others between
    rng = random.Random(3)
    ids = [row_id(f"s{i}", "fr", "sphinx", "v1") for i in range(3000)]
    ids += [
        "0",
        "7zz",
        "a",
        "ffffffffffffffffffffz",
        "bad:seeds.jsonl:3",
        "é",
        "",
        "0000000000000000000",
        "ABCDEF0123456789abcd",
    ]
    rng.shuffle(ids)
    expected = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    assert plan_fingerprint(ids) == expected
    assert plan_fingerprint(pa.chunked_array([pa.array(ids[:1000]), pa.array(ids[1000:])])) == expected
    assert plan_fingerprint(ids[:-1]) != expected
