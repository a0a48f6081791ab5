"""Writing a build: `<out>/<dataset>/{train,validation}.{parquet,jsonl}`, `README.md` (the card)
and `build.json` (the counts). The folder is assembled beside the target and swapped in, so a
killed build leaves the previous datasets whole, never a mix of old and new files."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.builders import Built
from engine.builders.card import render_card
from engine.builders.example import EXAMPLE_SCHEMA


def write_split(rows: list[dict], folder: Path, split: str, formats) -> None:
    if not rows:
        return  # datasets cannot load an empty Parquet file; the card lists only written splits
    folder.mkdir(parents=True, exist_ok=True)
    if "parquet" in formats:
        pq.write_table(pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA), folder / f"{split}.parquet")
    if "jsonl" in formats:
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({name: row[name] for name in EXAMPLE_SCHEMA.names}, ensure_ascii=False) + "\n")


def write_build(built: Built, summary: dict, out_dir: str | Path, formats, run_name: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    for name, splits in built.splits.items():
        for split, rows in splits.items():
            write_split(rows, staging / name, split, formats)
    card_format = "parquet" if "parquet" in formats else "jsonl"
    (staging / "README.md").write_text(render_card(summary, run_name, card_format), encoding="utf-8")
    (staging / "build.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    previous = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.old"
    if out_dir.exists():
        out_dir.rename(previous)
    staging.rename(out_dir)
    shutil.rmtree(previous, ignore_errors=True)
    return out_dir
