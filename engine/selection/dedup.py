"""Deduplication: exact (normalised-text hash) and near (embedding cosine within a cluster).

Both keep the first occurrence in input order and map every later copy to the id it repeats; the
caller turns that into a rejected row with reason `duplicate_of:<id>`, so removed rows are still
counted. Near-duplicates are searched within a cluster only: it bounds the pairwise work (n²/k
instead of n²) and true near-duplicates land in the same cluster almost always.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from engine.reasons import make_reason
from engine.selection.cluster import normalise_rows

BLOCK = 1024  # rows compared at once in near_duplicates: bounds memory to BLOCK × kept floats
_SPACE = re.compile(r"\s+")


def duplicate_reason(of_id: str) -> str:
    return make_reason("duplicate_of", of_id)


def normalise_text(text: str | None) -> str:
    """Case, Unicode form and whitespace folded; punctuation kept ("2+2" and "2-2" differ)."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return _SPACE.sub(" ", folded).strip()


def text_key(*fields: str | None) -> str:
    """Hash of the normalised fields, kept apart so ("a b", "") and ("a", "b") differ."""
    joined = "\x1f".join(normalise_text(field) for field in fields)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def exact_duplicates(ids: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """{id of a later copy: id of the first row with the same key}."""
    first: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for row_id, key in zip(ids, keys, strict=True):
        if key in first:
            duplicates[row_id] = first[key]
        else:
            first[key] = row_id
    return duplicates


def near_duplicates(ids: Sequence[str], embeddings: np.ndarray, threshold: float) -> dict[str, str]:
    """{id: id of the most similar earlier kept row} for rows with cosine >= threshold to one.

    Greedy in input order, so the outcome does not depend on how rows were batched, and a chain
    a~b~c with a and c apart keeps c (it repeats b, which was itself dropped, not a).
    """
    vectors = normalise_rows(embeddings)
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids but {len(vectors)} embeddings: they must be row-aligned")
    return {ids[row]: ids[kept] for row, kept, _ in near_duplicate_matches(vectors, threshold)}


def near_duplicate_matches(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(row, earlier kept row, cosine) for every row whose best cosine to an earlier kept row is
    >= threshold; `vectors` are unit rows in the order that decides which copy is kept.

    Blockwise: BLOCK rows at a time against the earlier rows in slices of BLOCK (dropped rows
    masked out), so memory stays at BLOCK² floats whatever the number of rows; within a block,
    row by row. Ties go to the earliest kept row."""
    vectors = np.asarray(vectors, dtype=np.float32)
    kept = np.zeros(len(vectors), dtype=bool)
    matches: list[tuple[int, int, float]] = []
    for start in range(0, len(vectors), BLOCK):
        block = vectors[start : start + BLOCK]
        best = np.full(len(block), -np.inf, dtype=np.float32)
        best_row = np.full(len(block), -1, dtype=np.int64)
        for earlier in range(0, start, BLOCK):  # earlier blocks are settled: kept[] is final there
            sims = block @ vectors[earlier : earlier + BLOCK].T
            sims[:, ~kept[earlier : earlier + BLOCK]] = -np.inf
            column = sims.argmax(axis=1)
            value = sims[np.arange(len(block)), column]
            better = value > best
            best[better], best_row[better] = value[better], earlier + column[better]
        inside = block @ block.T
        for offset in range(len(block)):
            row = start + offset
            inner = np.flatnonzero(kept[start:row])
            if len(inner):
                j = int(inner[inside[offset, inner].argmax()])
                if inside[offset, j] > best[offset]:
                    best[offset], best_row[offset] = inside[offset, j], start + j
            if best_row[offset] >= 0 and best[offset] >= threshold:
                matches.append((row, int(best_row[offset]), float(best[offset])))
            else:
                kept[row] = True
    return matches
