"""Writing a build: `<out>/<dataset>/{train,validation}.{parquet,jsonl}`, `README.md` (the card)
and `build.json` (the counts). The folder is assembled beside the target and swapped in, so a
killed build leaves the previous datasets whole, never a mix of old and new files."""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from pathlib import Path

import pyarrow as pa

from engine.builders import Built
from engine.builders.card import render_card
from engine.builders.example import EXAMPLE_SCHEMA
from engine.runfolder import RunFolder


def write_split(rows: list[dict], folder: RunFolder, name: str, split: str, formats) -> None:
    if not rows:
        return  # datasets cannot load an empty Parquet file; the card lists only written splits
    if "parquet" in formats:
        folder.write_parquet(f"{name}/{split}.parquet", pa.Table.from_pylist(rows, schema=EXAMPLE_SCHEMA))
    if "jsonl" in formats:
        with folder.open_output(f"{name}/{split}.jsonl") as stream:
            for start in range(0, len(rows), 1_000):
                lines = "".join(json.dumps({n: row[n] for n in EXAMPLE_SCHEMA.names}, ensure_ascii=False) + "\n" for row in rows[start:start + 1_000])
                stream.write(lines.encode("utf-8"))


def write_files(built: Built, summary: dict, folder: RunFolder, formats, run_name: str) -> None:
    for name, splits in built.splits.items():
        for split, rows in splits.items():
            write_split(rows, folder, name, split, formats)
    card_format = "parquet" if "parquet" in formats else "jsonl"
    folder.write_text("README.md", render_card(summary, run_name, card_format))
    folder.write_text("build.json", json.dumps(summary, indent=2, ensure_ascii=False))


def write_build(built: Built, summary: dict, out_dir: str | Path | RunFolder, formats, run_name: str) -> Path | RunFolder:
    """On a local disk the build is assembled beside the target and swapped in. On an object
    store (no rename) the old files are removed first and each file is uploaded whole; a killed
    build there leaves some datasets missing, never a file cut short: rerun jobs.build."""
    folder = out_dir if isinstance(out_dir, RunFolder) else RunFolder(out_dir)
    if not folder.local:
        with contextlib.suppress(FileNotFoundError):
            folder.fs.delete_dir_contents(folder.root)
        write_files(built, summary, folder, formats, run_name)
        return folder
    out_dir = Path(folder.root)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    write_files(built, summary, RunFolder(staging), formats, run_name)
    previous = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.old"
    if out_dir.exists():
        out_dir.rename(previous)
    staging.rename(out_dir)
    shutil.rmtree(previous, ignore_errors=True)
    return out_dir
