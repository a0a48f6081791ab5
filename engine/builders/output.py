"""Writing a build: `<out>/<dataset>/<split>.parquet/part-*.parquet` (and `<split>.jsonl/part-*.jsonl`),
`README.md` (the card) and `build.json` (the counts).

A split is a folder of part files, like the run's accepted.parquet, because a distributed build
writes it from many workers at once: `pyarrow.parquet.read_table("<dataset>/train.parquet")`,
Ray Data and DuckDB read the folder whole; `datasets.load_dataset(out, name)` reads it through the
card's globs (or `data_files="<dataset>/train.parquet/*.parquet"`). The folder is assembled beside
the target and swapped in, so a killed build leaves the previous datasets whole, never a mix of old
and new files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa

from engine.builders.card import render_card
from engine.builders.example import EXAMPLE_SCHEMA, messages_column
from engine.runfolder import RunFolder

ROWS_PER_FILE = 50_000  # examples per part file at most (the build writes parts per block, often smaller)
JSONL_CHUNK = 1_000  # examples turned into JSON at a time


def part_name(name: str, split: str, fmt: str, part: str) -> str:
    return f"{name}/{split}.{fmt}/part-{part}.{fmt}"


def write_part(table: pa.Table, folder: RunFolder, name: str, split: str, formats, part: str) -> None:
    """One part file per format of a dataset's split; `table` holds the example columns (more are dropped)."""
    if not table.num_rows:
        return  # datasets cannot load an empty Parquet file; the card lists only written splits
    if "messages" not in table.column_names:
        table = table.append_column("messages", messages_column(table.column("prompt"), table.column("completion")))
    table = table.select(EXAMPLE_SCHEMA.names).cast(EXAMPLE_SCHEMA)
    if "parquet" in formats:
        folder.write_parquet(part_name(name, split, "parquet", part), table)
    if "jsonl" in formats:
        with folder.open_output(part_name(name, split, "jsonl", part)) as stream:
            for start in range(0, table.num_rows, JSONL_CHUNK):
                # orjson: UTF-8 as is (no \u escapes), 3-5x faster than json.dumps on these rows.
                stream.write(
                    b"".join(
                        orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
                        for row in table.slice(start, JSONL_CHUNK).to_pylist()
                    )
                )


def write_card(summary: dict, folder: RunFolder, formats, run_name: str) -> None:
    card_format = "parquet" if "parquet" in formats else "jsonl"
    folder.write_text("README.md", render_card(summary, run_name, card_format))
    folder.write_text("build.json", json.dumps(summary, indent=2, ensure_ascii=False))


def swap_in(out_dir: str | Path | RunFolder, fill: Callable[[RunFolder], None]) -> Path | RunFolder:
    """Run `fill(folder)` so that it writes a whole build, then make it the build at `out_dir`.

    On a local disk the build is assembled beside the target and swapped in. On an object store
    (no rename) the old files are removed first and each file is uploaded whole; a killed build
    there leaves some datasets missing, never a file cut short: rerun jobs.build."""
    folder = RunFolder.of(out_dir)
    if not folder.local:
        with contextlib.suppress(FileNotFoundError):
            folder.fs.delete_dir_contents(folder.root)
        fill(folder)
        return folder
    out_dir = Path(folder.root)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        fill(RunFolder(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:8]}.old"
    if out_dir.exists():
        out_dir.rename(previous)
    staging.rename(out_dir)
    shutil.rmtree(previous, ignore_errors=True)
    return out_dir
