"""Ring (a): k-means maths, stratified and nearest-first selection, X-Instruction diversification."""

from collections import Counter

import numpy as np
import pytest

import engine.selection.cluster as cluster
from engine.selection.budget import OVER_BUDGET, diversify_embeddings, diversify_instructions
from engine.selection.cluster import (
    assign_clusters,
    coverage,
    fit_centroids,
    nearest_first_select,
    normalise_rows,
    sample_positions,
    stratified_select,
)


def blobs(per_cluster: list[int], dim: int = 16, spread: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated unit-vector clusters around orthogonal axes; returns (vectors, true labels)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(per_cluster)), per_cluster)
    vectors = np.eye(dim, dtype=np.float32)[labels] + rng.normal(scale=spread, size=(len(labels), dim)).astype(
        np.float32
    )
    return normalise_rows(vectors), labels


def test_normalise_rows_keeps_zero_rows_finite():
    out = normalise_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    assert np.allclose(out[0], [0.6, 0.8]) and np.all(out[1] == 0)


@pytest.mark.parametrize("count, size", [(0, 5), (3, 5), (5, 5), (1000, 10)])
def test_sample_positions_are_bounded_sorted_unique_and_repeatable(count, size):
    first, again = sample_positions(count, size, seed=7), sample_positions(count, size, seed=7)
    assert len(first) == min(count, size) and np.array_equal(first, again)
    assert np.all(np.diff(first) > 0) and (len(first) == 0 or first.max() < count)


def test_fit_and_assign_recover_separated_clusters():
    vectors, truth = blobs([40, 30, 20, 10])
    centroids = fit_centroids(vectors, 4, seed=0)
    labels, similarity = assign_clusters(vectors, centroids)
    # Each true cluster maps to exactly one found cluster, and every found cluster is used.
    assert all(len(set(labels[truth == t])) == 1 for t in range(4)) and len(set(labels)) == 4
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    assert similarity.min() > 0.9


def test_k_is_capped_by_the_sample_and_empty_sample_is_an_error():
    vectors, _ = blobs([2, 1])
    assert fit_centroids(vectors, 10, seed=0).shape == (3, 16)
    with pytest.raises(ValueError, match="empty"):
        fit_centroids(np.zeros((0, 16)), 4, seed=0)


def test_assign_in_chunks_matches_one_matmul(monkeypatch):
    vectors, _ = blobs([25, 25, 25], seed=3)
    centroids = fit_centroids(vectors, 3, seed=0)
    whole = assign_clusters(vectors, centroids)
    monkeypatch.setattr(cluster, "ASSIGN_CHUNK", 7)
    chunked = assign_clusters(vectors, centroids)
    assert np.array_equal(whole[0], chunked[0]) and np.allclose(whole[1], chunked[1])


@pytest.mark.parametrize(
    "sizes, quota",
    [
        ([10, 10, 10, 10], 3),
        ([10, 10, 10, 10], 4),
        ([50, 3, 2, 1], 9),
        ([5], 3),
        ([4, 4], 0),
        ([90, 5, 1, 1, 1, 1, 1], 40),
        ([2, 2, 2], 5),
    ],
)
def test_stratified_select_covers_min_quota_k_and_keeps_the_mix(sizes, quota):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    chosen = stratified_select(labels, quota, seed=1)
    assert len(chosen) == quota == len(set(chosen.tolist()))
    assert coverage(labels[chosen], len(sizes))["covered"] == min(quota, len(sizes))
    taken = np.bincount(labels[chosen], minlength=len(sizes))
    assert np.all(taken <= sizes)
    if quota > len(sizes):
        # One row per cluster, the rest by size: within one row of the proportional share.
        expected = 1 + (quota - len(sizes)) * (np.array(sizes) - 1) / (sum(sizes) - len(sizes))
        assert np.all(np.abs(taken - expected) < 1)


def test_stratified_select_prefers_big_clusters_when_quota_is_below_k():
    labels = np.repeat(np.arange(6), [50, 50, 1, 1, 1, 1])
    picks = Counter(int(c) for seed in range(200) for c in labels[stratified_select(labels, 2, seed)])
    assert picks[0] + picks[1] > 0.8 * 400


def test_stratified_select_is_repeatable_and_depends_on_the_seed():
    labels = np.repeat(np.arange(20), 5)
    assert np.array_equal(stratified_select(labels, 10, 3), stratified_select(labels, 10, 3))
    assert not np.array_equal(stratified_select(labels, 10, 3), stratified_select(labels, 10, 4))


def test_stratified_select_handles_gaps_in_labels_and_no_rows():
    labels = np.array([7, 7, 2, 2, 40])
    assert set(labels[stratified_select(labels, 3, 0)].tolist()) == {2, 7, 40}
    assert len(stratified_select([], 3, 0)) == 0


def test_stratified_covers_more_clusters_than_uniform_on_skewed_data():
    rng = np.random.default_rng(0)
    labels = rng.choice(32, size=2000, p=np.r_[np.full(4, 0.15), np.full(28, 0.4 / 28)])
    quota = 40
    uniform = [len(set(labels[rng.choice(len(labels), quota, replace=False)].tolist())) for _ in range(50)]
    stratified = [len(set(labels[stratified_select(labels, quota, seed)].tolist())) for seed in range(50)]
    assert min(stratified) == 32 and max(uniform) < 32


def test_nearest_first_takes_each_clusters_nearest_row_first():
    labels = np.array([0, 0, 0, 1, 1, 2])
    similarity = np.array([0.5, 0.9, 0.7, 0.8, 0.95, 0.1])
    assert nearest_first_select(labels, similarity, 3).tolist() == [1, 4, 5]
    # Budget 4: round two starts with the largest cluster (0), its second-nearest row.
    assert nearest_first_select(labels, similarity, 4).tolist() == [1, 2, 4, 5]
    # Budget below k: the nearest rows of the largest clusters.
    assert nearest_first_select(labels, similarity, 2).tolist() == [1, 4]
    assert nearest_first_select(labels, similarity, 99).tolist() == list(range(6))


def test_coverage():
    assert coverage([0, 2, 2], 4) == {"covered": 2, "of": 4, "share": 0.5}
    assert coverage([], 0)["share"] == 0.0


def test_diversify_keeps_the_budget_per_language_and_the_nearest_rows():
    fr, fr_truth = blobs([30, 20, 10], seed=1)
    sw, _ = blobs([5, 5], seed=2)
    embeddings = np.vstack([fr, sw])
    langs = ["fr"] * len(fr) + ["sw"] * len(sw)
    result = diversify_embeddings(embeddings, langs, budget=6, clusters=3, seed=0)
    kept_fr = np.flatnonzero(result.keep[: len(fr)])
    assert len(kept_fr) == 6 and result.keep[len(fr) :].sum() == 6
    assert Counter(fr_truth[kept_fr].tolist()) == {0: 2, 1: 2, 2: 2}
    # Each kept row is at least as near its centroid as every left-out row of its cluster.
    for label in set(result.cluster[: len(fr)].tolist()):
        rows = np.flatnonzero(result.cluster[: len(fr)] == label)
        kept, left = rows[result.keep[rows]], rows[~result.keep[rows]]
        assert len(left) == 0 or result.similarity[kept].min() >= result.similarity[left].max()
    assert result.reason(int(np.flatnonzero(~result.keep)[0])) == OVER_BUDGET and result.reason(int(kept_fr[0])) is None


def test_diversify_instructions_embeds_with_the_given_function():
    calls = []

    def fake_embed(texts):
        calls.append(list(texts))
        return np.array([[1.0, 0.0] if "cook" in t else [0.0, 1.0] for t in texts])

    texts = ["cook rice", "cook pasta", "fix a bike", "fix a tyre"]
    result = diversify_instructions(texts, ["fi"] * 4, fake_embed, budget=2, clusters=2)
    assert calls == [texts]
    assert result.keep.sum() == 2 and len(set(result.cluster[result.keep].tolist())) == 2


def test_diversify_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="row-aligned"):
        diversify_embeddings(np.zeros((3, 4)), ["fr", "fr"])


def test_stratified_plan_covers_clusters_and_keeps_the_plan_properties():
    from engine.inputs.plan import build_task_plan
    from engine.inputs.seeds import Seed
    from engine.languages import resolve_languages
    from tests.unit.test_plan import seeds_table

    seeds = [Seed(f"s{i:03d}", f"Instruction {i}", "", f"Output {i}", f"seeds.jsonl:{i + 1}") for i in range(60)]
    clusters = {seed.id: (0 if i < 40 else 1 + i % 5) for i, seed in enumerate(seeds)}  # one big cluster, five small
    quotas = {"high": 6, "mid": 3, "low": 1}

    def plan(codes):
        labels = np.array([clusters[seed.id] for seed in seeds])
        return (
            build_task_plan(
                seeds_table(seeds), resolve_languages(codes), "per_language", quotas, 0, "sphinx", "v1", labels
            )
            .tasks()
            .to_pylist()
        )

    tasks = plan(["fr", "bg"])
    for lang, quota in (("fr", 6), ("bg", 3)):
        chosen = [t["seed_id"] for t in tasks if t["lang"] == lang]
        assert len(chosen) == quota and chosen == sorted(chosen)
        assert len({clusters[s] for s in chosen}) == quota
    assert tasks == plan(["fr", "bg"])
    assert [t for t in plan(["de", "fr", "bg"]) if t["lang"] != "de"] == tasks


def test_apply_budget_keeps_the_budget_per_language_and_rejects_the_rest_with_a_reason():
    import numpy as np

    from engine.records import to_table
    from engine.selection.budget import apply_budget_table

    def embed(texts):
        # Two clear topics: questions about bread and questions about rivers.
        return np.array([[1.0, 0.0] if "bread" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    rows = [
        {"id": f"fr{i}", "lang": "fr", "status": "accepted", "instruction": f"{topic} question {i}? Answer in French."}
        for i, topic in enumerate(
            [
                "Why does bread rise",
                "Why does bread rise",
                "Where do rivers go",
                "Where do rivers go",
                "Why is bread brown",
            ]
        )
    ] + [
        {"id": "es0", "lang": "es", "status": "accepted", "instruction": "Why? Answer in Spanish."},
        {"id": "fr-rej", "lang": "fr", "status": "rejected", "reason": "judge_bad", "instruction": "x"},
    ]
    out = apply_budget_table(to_table(rows), budget=2, embed=embed, clusters=2, sample_size=100, seed=0).to_pylist()
    french = [row for row in out if row["lang"] == "fr" and row["id"] != "fr-rej"]
    kept = [row for row in french if row["status"] == "accepted"]
    assert len(kept) == 2
    assert {"bread" in row["instruction"] for row in kept} == {True, False}, "one per cluster before a second from any"
    assert all(row["reason"] == "diversity_budget" for row in french if row["status"] == "rejected")
    assert len(out) == len(rows), "nothing lost"
    assert out[5]["status"] == "accepted" and out[5]["cluster"] is None, "a language within budget is untouched"
    assert out[6]["reason"] == "judge_bad"
