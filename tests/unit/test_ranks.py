"""Hash-rank cuts: the batch form of `Cut.keeps` and the distributed build's two-pass cut search
(actors.dataflow.build_pipeline.find_cuts) keep exactly the rows that sorting all candidates keeps."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.dataflow.build_pipeline import cut_mask, find_cuts
from engine.builders.ranks import KEEP_ALL, KEEP_NONE, Cut, keeps_each, rank
from tests.local_build import LocalDataset
from tests.reference_build import lowest_cut


def candidates(n: int, seed: int = 0) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    pairs = [(rank(seed, "test", i), f"id-{i:05d}") for i in range(n)]
    # a few equal ranks, so ties are settled by key
    pairs += [(pairs[i][0], f"id-{i:05d}-twin") for i in rng.sample(range(n), 5)]
    rng.shuffle(pairs)
    return pairs


def test_keeps_each_is_cut_keeps_row_by_row():
    pairs = candidates(400)
    ranks = np.array([r for r, _ in pairs], dtype=np.uint64)
    keys = pa.array([k for _, k in pairs])
    twin = next(p for p in pairs if p[1].endswith("-twin"))
    cuts = [KEEP_ALL, KEEP_NONE, lowest_cut(pairs, 150), Cut(twin[0], twin[1][:-5]), Cut(twin[0], twin[1]), Cut(0, "")]
    which = np.array([i % len(cuts) for i in range(len(pairs))])
    got = keeps_each(cuts, which, ranks, keys)
    assert got.tolist() == [cuts[w].keeps(r, k) for w, (r, k) in zip(which.tolist(), pairs)]
    assert 0 < got.sum() < len(pairs)


def test_two_pass_cuts_keep_each_groups_lowest_quota():
    rng = random.Random(3)
    rows = [
        (g, r, k)
        for g in ("a", "b", "c", "d")
        for r, k in candidates({"a": 900, "b": 300, "c": 40, "d": 10}[g], seed=ord(g))
    ]
    rows += [("", 0, f"none-{i}") for i in range(30)]  # rows in no group: never counted or cut
    rng.shuffle(rows)
    tables = [
        pa.table(
            {
                "group": [g for g, _, _ in part],
                "rank": pa.array([r for _, r, _ in part], pa.uint64()),
                "key": [k for _, _, k in part],
            }
        )
        for part in (rows[i : i + 97] for i in range(0, len(rows), 97))
    ]

    def rank_of(batch: pa.Table):
        return (
            batch.column("group").combine_chunks(),
            batch.column("rank").to_numpy(),
            batch.column("key").combine_chunks(),
        )

    quotas = {"a": 333, "b": 300, "c": 0, "d": 4}
    cuts, sizes = find_cuts(LocalDataset(tables), rank_of, lambda _sizes: quotas, {"b": 17})
    assert sizes == {"a": 905, "b": 305, "c": 45, "d": 15}
    assert cuts["c"] == KEEP_NONE
    for group, quota in quotas.items():
        mine = [(r, k) for g, r, k in rows if g == group]
        assert cuts[group] == lowest_cut(mine, quota)
        kept = np.concatenate(
            [
                cut_mask(cuts, t.column("group"), t.column("rank").to_numpy(), t.column("key"))
                & pc.equal(t.column("group"), group).to_numpy()
                for t in tables
            ]
        )
        assert kept.sum() == min(quota, sizes[group])
