"""The shipped build (actors.dataflow.build_pipeline.build_rows, what jobs.build runs on Ray) in this process,
on small tables: a list of Arrow blocks stands in for a Ray dataset, and the group-by shuffle runs
its own split and reduce functions (actors/dataflow/group_shuffle.py) without Ray tasks. Unit tests of the
builders drive this, so they test the code the job runs, in milliseconds and without Ray.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq

import actors.dataflow.build_pipeline as build_pipeline
from actors.dataflow.group_shuffle import reduce_groups, split_block
from engine.builders import SPLITS
from engine.config import BuildConfig, Config, parse_config
from engine.records import to_table
from engine.runfolder import RunFolder

DEFAULT_BATCH = 1024  # Ray Data's batch size of map_batches when none is given


class LocalDataset:
    """The calls the build makes on a Ray dataset, over Arrow tables in this process."""

    def __init__(self, blocks: list[pa.Table]):
        self.blocks = [block for block in blocks if block.num_rows]

    def map_batches(
        self, fn, batch_format: str = "pyarrow", batch_size: int | str | None = "default", **_
    ) -> LocalDataset:
        assert batch_format == "pyarrow"
        out = []
        for block in self.blocks:
            step = DEFAULT_BATCH if batch_size == "default" else batch_size or block.num_rows
            out += [fn(block.slice(start, step)) for start in range(0, block.num_rows, step)]
        return LocalDataset(out)

    def iter_batches(self, batch_format: str = "pyarrow", batch_size: int | None = None, **_):
        assert batch_format == "pyarrow" and batch_size is None
        return iter(self.blocks)

    def union(self, *others: LocalDataset) -> LocalDataset:
        return LocalDataset([*self.blocks, *(block for other in others for block in other.blocks)])

    def repartition(self, count: int) -> LocalDataset:
        table = pa.concat_tables(self.blocks) if self.blocks else pa.table({})
        step = -(-table.num_rows // count) if table.num_rows else 1
        return LocalDataset([table.slice(start, step) for start in range(0, table.num_rows, step)])

    def materialize(self) -> LocalDataset:
        return self

    def count(self) -> int:
        return sum(block.num_rows for block in self.blocks)


def map_groups_here(
    ds: LocalDataset, key: str, fn_class, fn_args: tuple, schema: pa.Schema, partitions: int
) -> LocalDataset:
    """actors.dataflow.group_shuffle.map_groups without Ray: each block split by key, each part reduced."""
    pieces = [split_block(block, key, partitions) for block in ds.blocks]
    make = partial(fn_class, *fn_args)
    return LocalDataset(
        [reduce_groups(key, make, schema, *(block_pieces[i] for block_pieces in pieces)) for i in range(partitions)]
    )


def run_config(build: BuildConfig, license: str = "Apache-2.0") -> Config:
    """A run config around a build section (the build reads the model's licence for the card)."""
    return parse_config(
        {
            "seeds": {"paths": ["s.jsonl"]},
            "languages": {"targets": ["fr"]},
            "model": {"license": license},
            "build": build.model_dump(mode="json"),
        }
    )


def build_here(
    rows: list[dict], config: Config | BuildConfig, out: Path | RunFolder, partitions: int | None = None
) -> dict:
    """build_rows over `rows` (accepted row dicts) into `out`; returns the summary."""
    config = run_config(config) if isinstance(config, BuildConfig) else config
    folder = RunFolder.of(out)
    # Without the disk flushes of each written file (most of a small build's time): what is
    # tested here is which examples are built; the run folder's writes are tested on their own.
    with (
        mock.patch.object(build_pipeline, "map_groups", map_groups_here),
        mock.patch("engine.runfolder.os.fsync"),
        mock.patch("engine.runfolder._fsync_dir"),
    ):
        return build_pipeline.build_rows(LocalDataset([to_table(rows)]), config, folder, partitions)


def read_built(out: Path) -> dict[str, dict[str, list[dict]]]:
    """Every dataset's splits as written (Parquet parts), rows in a fixed order."""
    built = {}
    for folder in sorted(p for p in Path(out).iterdir() if p.is_dir()):
        built[folder.name] = {}
        for split in SPLITS:
            parts = sorted((folder / f"{split}.parquet").glob("*.parquet"))
            rows = [row for part in parts for row in pq.read_table(part).to_pylist()]
            built[folder.name][split] = sorted(
                rows, key=lambda row: json.dumps(row, sort_keys=True, ensure_ascii=False)
            )
    return built


def build_and_read(
    rows: list[dict], config: Config | BuildConfig, out: Path
) -> tuple[dict, dict[str, dict[str, list[dict]]]]:
    """The summary and the written datasets of building `rows` into `out`."""
    summary = build_here(rows, config, out)
    return summary, read_built(out)
