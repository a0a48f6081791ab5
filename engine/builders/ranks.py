"""Selection by hash rank: how a build takes "the first N" of a set without ever holding the set.

Every candidate gets a rank, a stable hash of (config seed, purpose, key…), and a quota keeps the
candidates whose (rank, id) are among the lowest `quota`. Whether a candidate is kept depends on
its own key and on one threshold (a `Cut`) per quota, never on the order in which candidates
arrive or on how they are partitioned: the Ray executor computes the cut from counts (see
actors/dataflow/build_pipeline.py), and it is the cut that sorting every candidate would give.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

RANK_LIMIT = 2**64  # ranks are the first 8 bytes of a sha256, big-endian: 0 <= rank < RANK_LIMIT


def rank(*parts) -> int:
    """The stable rank of a key: sha256 of its parts joined by \\x1f, first 8 bytes. The order of
    ranks is the order of the hex digests' first 16 characters."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def seed_rank(seed: int, seed_id: str) -> int:
    """The rank of a seed for the train/validation split (hash of (config seed, seed id))."""
    return rank(seed, seed_id)


def crossin_rank(seed: int, mode: str, example_id: str) -> int:
    return rank(seed, "crossin-size", mode, example_id)


def mix_rank(seed: int, dataset: str, lang: str, example_id: str) -> int:
    return rank(seed, "mix", dataset, lang, example_id)


@dataclass(frozen=True, order=True)
class Cut:
    """Keep a candidate when (rank, key) <= (self.rank, self.key)."""

    rank: int
    key: str = ""

    def keeps(self, candidate_rank: int, candidate_key: str) -> bool:
        return (candidate_rank, candidate_key) <= (self.rank, self.key)


KEEP_ALL = Cut(RANK_LIMIT, "")
KEEP_NONE = Cut(-1, "")


def keeps_each(cuts: list[Cut], which: np.ndarray, ranks: np.ndarray, keys) -> np.ndarray:
    """`Cut.keeps` over a batch: row i is kept by `cuts[which[i]]` given its rank (uint64) and key
    (`keys[i]`, a string; only read for the rare rank that equals its cut's)."""
    keep_all = np.array([cut.rank >= RANK_LIMIT for cut in cuts], dtype=bool)[which]
    keep_none = np.array([cut.rank < 0 for cut in cuts], dtype=bool)[which]
    at = np.array([min(max(cut.rank, 0), RANK_LIMIT - 1) for cut in cuts], dtype=np.uint64)[which]
    ranks = np.asarray(ranks, dtype=np.uint64)
    mask = keep_all | (~keep_none & (ranks < at))
    for i in np.flatnonzero(~keep_all & ~keep_none & (ranks == at)).tolist():
        key = keys[i]
        mask[i] = str(key.as_py() if hasattr(key, "as_py") else key) <= cuts[which[i]].key
    return mask


def validation_count(seeds: int, share: float) -> int:
    """How many seeds a split holds out: round(share × seeds), at least one when share > 0 and two
    seeds exist, never all of them."""
    if share <= 0 or seeds < 2:
        return 0
    return min(seeds - 1, max(1, round(share * seeds)))


def copies(quota: int, available: int) -> tuple[int, int]:
    """Upsampling by rank order: every one of `available` rows is taken `whole` times and the
    `extra` lowest-ranked once more, so `quota` rows are drawn without a repeat while rows last."""
    if available <= 0:
        return 0, 0
    return divmod(quota, available) if quota > available else (0, quota)
