"""K-means maths for diversity: fit on a bounded sample, assign, select across clusters, coverage.

Pure numpy and faiss (CPU). The Ray side (actors/dataflow/clustering.py) hands it a bounded sample to fit and
then one batch at a time to assign, so no process ever needs every embedding at once.
Vectors are unit-normalised and the k-means is spherical (centroids renormalised every
iteration), so every distance here is a cosine: what sentence embeddings are trained for.

faiss k-means was chosen over scikit-learn's KMeans and MiniBatchKMeans on measured speed and fit
quality (benchmarks/clustering.py; numbers in benchmarks/README.md). Assignment is a plain numpy
matmul: as fast as faiss's flat index at k in the hundreds, and it needs nothing in Ray workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ASSIGN_CHUNK = 8192  # rows per matmul in assign_clusters: bounds the temporary to chunk × k floats


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows; an all-zero row stays zero instead of becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def sample_positions(count: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a deterministic bounded sample: the rows k-means is fitted on."""
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=size, replace=False))


def fit_centroids(sample: np.ndarray, clusters: int, seed: int, iterations: int = 20) -> np.ndarray:
    """k unit-length centroids (spherical k-means) from the sample; k is capped at its row count."""
    import faiss  # heavy import, only where fitting happens

    sample = np.ascontiguousarray(normalise_rows(sample))
    if len(sample) == 0:
        raise ValueError("cannot fit clusters on an empty sample")
    k = min(clusters, len(sample))
    kmeans = faiss.Kmeans(
        sample.shape[1],
        k,
        niter=iterations,
        seed=seed,
        spherical=True,
        # The caller already bounded the sample (select.sample_size): train on all of it, and do
        # not warn about few points per centroid, which small runs have by design.
        min_points_per_centroid=1,
        max_points_per_centroid=-(-len(sample) // k),
    )
    kmeans.train(sample)
    return normalise_rows(kmeans.centroids)


def assign_clusters(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centroid per row as int32, its cosine similarity as float32), in row order."""
    vectors = normalise_rows(vectors)
    labels = np.empty(len(vectors), dtype=np.int32)
    similarity = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), ASSIGN_CHUNK):
        scores = vectors[start : start + ASSIGN_CHUNK] @ centroids.T
        best = scores.argmax(axis=1)
        labels[start : start + len(best)] = best
        similarity[start : start + len(best)] = scores[np.arange(len(best)), best]
    return labels, similarity


def _rank_in_cluster(labels: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each row, its 0-based place within its cluster when rows are visited in `order`."""
    by_cluster = order[np.argsort(labels[order], kind="stable")]
    sorted_labels = labels[by_cluster]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_labels)) + 1]
    run_lengths = np.diff(np.r_[starts, len(sorted_labels)])
    ranks = np.empty(len(labels), dtype=np.int64)
    ranks[by_cluster] = np.arange(len(sorted_labels)) - np.repeat(starts, run_lengths)
    return ranks


def round_robin(labels: Sequence[int], quota: int, row_order: np.ndarray, cluster_order: np.ndarray) -> np.ndarray:
    """Sorted positions of `quota` rows taken one per cluster per round.

    Round r takes the r-th row (in row_order) of every cluster that still has one, clusters in
    cluster_order; so k clusters are all covered once quota >= k, and otherwise quota distinct ones.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if quota >= len(labels):
        return np.arange(len(labels))
    ranks = _rank_in_cluster(labels, np.asarray(row_order))
    cluster_rank = np.empty(labels.max() + 1, dtype=np.int64)
    cluster_rank[np.asarray(cluster_order)] = np.arange(len(cluster_order))
    key = ranks * (labels.max() + 1) + cluster_rank[labels]
    return np.sort(np.argsort(key, kind="stable")[:quota])


def stratified_select(labels: Sequence[int], quota: int, seed: int) -> np.ndarray:
    """Sorted positions of `quota` random rows, stratified over clusters (sPhinX, per language).

    Proportional allocation with a floor of one: when quota >= k every cluster gets a row and the
    rest is shared by cluster size (largest remainders), so all k are covered and the seed set's
    topic mix is kept; when quota < k, quota distinct clusters are drawn, weighted by size.
    Equal shares (round_robin) would cover the same clusters but over-sample tiny clusters,
    which are often outliers, at sPhinX-sized quotas.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if quota >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    sizes = np.bincount(labels)
    present = np.flatnonzero(sizes)
    take = np.zeros(len(sizes), dtype=np.int64)
    if quota <= len(present):
        take[rng.choice(present, size=quota, replace=False, p=sizes[present] / sizes[present].sum())] = 1
    else:
        take[present] = 1
        room = sizes - take
        share = (quota - len(present)) * room / room.sum()  # < room, since quota < len(labels)
        take += np.floor(share).astype(np.int64)
        fraction = np.where(room > 0, share - np.floor(share), -1.0)  # a full cluster never gets more
        by_remainder = np.lexsort((rng.random(len(sizes)), -fraction))  # ties broken at random
        take[by_remainder[: quota - take.sum()]] += 1
    ranks = _rank_in_cluster(labels, rng.permutation(len(labels)))
    return np.flatnonzero(ranks < take[labels])


def nearest_first_select(labels: Sequence[int], similarity: Sequence[float], budget: int) -> np.ndarray:
    """Rows nearest their centroid first, one per cluster per round (X-Instruction diversification).

    Within a round larger clusters go first: when the budget ends mid-round, the rows it keeps
    stand for more of the data.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return np.arange(0)
    row_order = np.lexsort((np.arange(len(labels)), -np.asarray(similarity, dtype=np.float64)))
    sizes = np.bincount(labels)
    cluster_order = np.lexsort((np.arange(len(sizes)), -sizes))
    return round_robin(labels, budget, row_order, cluster_order)


def coverage(labels: Sequence[int], total_clusters: int) -> dict:
    """How many of the k clusters a set of rows touches."""
    covered = len(set(int(label) for label in labels))
    return {
        "covered": covered,
        "of": total_clusters,
        "share": round(covered / total_clusters, 4) if total_clusters else 0.0,
    }
