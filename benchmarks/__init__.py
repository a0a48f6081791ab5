"""Benchmarks: `python -m benchmarks.run` runs the suite; the other modules also run alone."""

from __future__ import annotations

import json
from pathlib import Path


def save_json(report: dict, out: str | Path, name: str) -> Path:
    """Write `report` to `out/<name>.json` (folders made as needed), print it, return the path."""
    path = Path(out) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return path
