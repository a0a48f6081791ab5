"""Choosing the N demonstrations of an N-shot example, within one language's training rows.

`random` draws with a generator seeded by (seed, example id), so a row's shots do not change when
other rows come or go. `knn` takes the nearest rows by cosine similarity of embeddings that the
caller computes: this module never loads a model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

Embed = Callable[[list[str]], Sequence[Sequence[float]]]

# Rows scored against the candidates at once: bounds memory at CHUNK × candidates floats.
CHUNK = 256


def random_shots(queries: list[dict], candidates: list[dict], shots: int, seed: int) -> list[list[dict]]:
    chosen = []
    for row in queries:
        rng = random.Random(f"{seed}\x1fshots\x1f{row['id']}")
        # A language holds one row per seed, so drawing one extra and dropping the query's own
        # seed gives `shots` others without scanning every candidate for every query.
        drawn = rng.sample(candidates, min(shots + 1, len(candidates)))
        chosen.append([c for c in drawn if c["seed_id"] != row["seed_id"]][:shots])
    return chosen


def _unit(vectors) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"the embed function must return one vector per text, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def knn_shots(
    queries: list[dict], candidates: list[dict], shots: int, embed: Embed, text: Callable[[dict], str]
) -> list[list[dict]]:
    """The `shots` most similar candidates of each query, never one of the query's own seed.

    Ties break by candidate order (the pool's stable order), so the result is deterministic.
    A language holds one row per seed, so excluding the query's seed excludes the query itself.
    """
    if not queries or not candidates or shots == 0:
        return [[] for _ in queries]
    # Candidates are usually a subset of the queries: embed each row once.
    unique = list({row["id"]: row for row in (*queries, *candidates)}.values())
    vectors = _unit(embed([text(row) for row in unique]))
    if len(vectors) != len(unique):
        raise ValueError(f"the embed function returned {len(vectors)} vectors for {len(unique)} texts")
    position = {row["id"]: i for i, row in enumerate(unique)}
    query_vectors = vectors[[position[r["id"]] for r in queries]]
    candidate_vectors = vectors[[position[c["id"]] for c in candidates]]
    candidate_seeds = np.array([c["seed_id"] for c in candidates])
    chosen: list[list[dict]] = []
    for start in range(0, len(queries), CHUNK):
        block = queries[start : start + CHUNK]
        scores = query_vectors[start : start + CHUNK] @ candidate_vectors.T
        for offset, row in enumerate(block):
            row_scores = np.where(candidate_seeds == row["seed_id"], -np.inf, scores[offset])
            # The own seed scores -inf, sorts last, and is dropped when there are too few others.
            k = min(shots, len(candidates))
            nearest = np.argpartition(-row_scores, k - 1)[:k]
            nearest = sorted(nearest, key=lambda i: (-row_scores[i], i))
            chosen.append([candidates[i] for i in nearest if np.isfinite(row_scores[i])][:shots])
    return chosen
