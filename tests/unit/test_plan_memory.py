"""Ring (a): the driver's plan holds ids, not text. At a fixed seed count, planning more languages
adds only the per-row ids and indices (tens of bytes a row), not a dict and a copy of the seed's
text per (seed, language): the 1M-row plan of the old design took 1,234 MiB of driver memory."""

from __future__ import annotations

import gc
import json
import tracemalloc

import pyarrow as pa

from engine.config import Config, parse_as
from engine.languages import DEFAULT_TARGETS
from engine.recipes import plan_run

SEEDS = 2000
TEXT = 560  # characters of instruction + output per seed, about an Alpaca pair


def write_seeds(path):
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(SEEDS):
            handle.write(json.dumps({"id": f"s{i:05d}", "instruction": f"Explain step {i} of the process in detail. " * 4,
                                     "input": "", "output": f"Step {i} is where we carefully describe everything. " * 8}) + "\n")
    return path


def planning_bytes(path, languages: int) -> tuple[int, int]:
    """(rows planned, bytes the driver held at its peak while planning them: Python objects traced
    by tracemalloc plus the Arrow buffers the plan keeps), as jobs.synthesize.run plans."""
    config = parse_as(Config, {"seeds": {"paths": [str(path)]}, "languages": {"targets": list(DEFAULT_TARGETS[:languages])}, "plan": {"mode": "all"}})
    gc.collect()
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        plan = plan_run(config)
        ids = plan.planned_ids()
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held = python_peak + pa.total_allocated_bytes() - arrow_before
    assert len(ids) == plan.tasks.num_rows == SEEDS * languages
    return plan.tasks.num_rows, held


def test_planning_memory_grows_by_ids_not_by_text(tmp_path):
    path = write_seeds(tmp_path / "seeds.jsonl")
    planning_bytes(path, 2)  # lazy imports and caches out of the way
    rows_10, bytes_10 = planning_bytes(path, 10)
    rows_50, bytes_50 = planning_bytes(path, 50)
    per_row = (bytes_50 - bytes_10) / (rows_50 - rows_10)
    # An id (20 hex chars) + offsets + seed index + language code is ~30 bytes of Arrow; the
    # per-language Python lists of ids are transient. A dict per task plus its text copied into
    # the task table cost ~1,100 bytes a row here.
    assert per_row < 120, f"{per_row:.0f} bytes per planned row ({bytes_10 / 2**20:.1f} MiB at {rows_10} rows, {bytes_50 / 2**20:.1f} MiB at {rows_50})"
    # The seed text is held once, whatever the number of languages.
    assert bytes_50 < 3 * SEEDS * TEXT + 60 * rows_50
