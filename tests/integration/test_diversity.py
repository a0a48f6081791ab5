"""Diversity with the real MiniLM on the project's seeds: stratified selection covers more clusters
than uniform sampling, the Ray embedding pool matches direct encoding, and planted duplicates are
found on Ray, rejected with the id they repeat, and counted in the plan."""

from __future__ import annotations

import json
from statistics import mean

import numpy as np
import pytest

from actors.dataflow.seeds import CACHE_NAME, SeedSelector
from engine.config import parse_config
from engine.inputs.plan import build_task_plan
from engine.inputs.seeds import load_seed_table, task_texts
from engine.languages import resolve_languages
from engine.recipes import plan_run
from engine.selection.cluster import assign_clusters, fit_centroids
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

SEEDS = ROOT / "data/seeds/english_seeds.jsonl"
HIGH = ["ar", "de", "es", "fr", "hi", "id", "it", "ja", "ko", "nl", "pl", "pt", "ru", "tr", "vi", "zh"]


@pytest.fixture(scope="module")
def embedder():
    from actors.engines.embed import Embedder

    return Embedder("minilm-l6")


@pytest.fixture(scope="module")
def seeds_and_vectors(embedder):
    seeds, _ = load_seed_table([str(SEEDS)])
    return seeds, embedder.encode(task_texts(seeds))


@pytest.fixture(scope="module")
def local_ray():
    import ray

    # address="local": a fresh cluster of our own, never a `ray start` head someone left running.
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def clusters_covered(tasks: list[dict], clusters: dict[str, int], lang: str) -> int:
    return len({clusters[task["seed_id"]] for task in tasks if task["lang"] == lang})


@pytest.mark.parametrize("k, quota", [(16, 12), (8, 6), (32, 12)])
def test_stratified_selection_covers_more_clusters_than_uniform(seeds_and_vectors, k, quota):
    seeds, vectors = seeds_and_vectors
    labels, _ = assign_clusters(vectors, fit_centroids(vectors, k, seed=0))
    clusters = {seed_id: int(label) for seed_id, label in zip(seeds.column("id").to_pylist(), labels)}
    languages, quotas = resolve_languages(HIGH), {"high": quota, "mid": quota, "low": quota}
    uniform = build_task_plan(seeds, languages, "per_language", quotas, 0, "sphinx", "v1").tasks().to_pylist()
    stratified = (
        build_task_plan(seeds, languages, "per_language", quotas, 0, "sphinx", "v1", np.asarray(labels, dtype=np.int64))
        .tasks()
        .to_pylist()
    )
    covered_uniform = [clusters_covered(uniform, clusters, lang) for lang in HIGH]
    covered_stratified = [clusters_covered(stratified, clusters, lang) for lang in HIGH]
    assert all(s >= u for s, u in zip(covered_stratified, covered_uniform))
    assert mean(covered_stratified) > mean(covered_uniform) + 1
    assert covered_stratified == [min(quota, len(set(clusters.values())))] * len(HIGH)


def test_minilm_clusters_follow_the_seed_categories(seeds_and_vectors):
    """The clusters mean something: they share information with the hand-written categories."""
    from sklearn.metrics import adjusted_mutual_info_score

    seeds, vectors = seeds_and_vectors
    categories = [json.loads(line)["category"] for line in SEEDS.read_text().splitlines() if line.strip()]
    labels, _ = assign_clusters(vectors, fit_centroids(vectors, 16, seed=0))
    assert adjusted_mutual_info_score(categories, labels) > 0.2
    assert abs(adjusted_mutual_info_score(categories, np.random.default_rng(0).permutation(labels))) < 0.1


def test_embed_actor_pool_matches_direct_encoding(local_ray, embedder, seeds_and_vectors):
    import pyarrow as pa

    from actors.dataflow.clustering import embed_dataset
    from actors.engines.embed import arrow_to_vectors
    from engine.config import SelectConfig

    seeds, vectors = seeds_and_vectors
    table = pa.table({"pos": range(40), "text": task_texts(seeds.slice(0, 40))})
    blocks = [table.slice(start, 16) for start in range(0, 40, 16)]
    dataset = embed_dataset(local_ray.data.from_arrow(blocks), SelectConfig(batch_size=16))
    out = pa.concat_tables(local_ray.get(dataset.to_arrow_refs())).sort_by("pos")
    pooled = arrow_to_vectors(out.column("embedding"))
    assert pooled.shape == (40, 384)
    assert np.allclose(pooled, vectors[:40], atol=1e-4)


def test_planted_duplicates_are_rejected_on_ray_and_counted(local_ray, tmp_path):
    records = [json.loads(line) for line in SEEDS.read_text().splitlines()[:30]]
    planted = [
        {**records[0], "id": "exact-copy", "instruction": "  " + records[0]["instruction"].upper() + " "},
        {**records[1], "id": "near-copy", "instruction": "Why is the sky blue in the daytime?"},  # cos 0.96
    ]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records + planted))
    data = {
        "seeds": {"paths": [str(path)]},
        "languages": {"targets": ["fr", "de"]},
        "plan": {"quotas": {"high": 10, "mid": 5, "low": 2}},
        "select": {"by": "clusters", "clusters": 6, "batch_size": 8},
        "dedup": {"exact": True, "near_threshold": 0.95},
        "run": {"output_dir": str(tmp_path / "run")},
    }
    config = parse_config(data)
    selector = SeedSelector(config, start_ray=lambda: None)
    plan = plan_run(config, selector)
    tasks, decided, read = plan.tasks.tasks().to_pylist(), plan.decided, plan.read

    assert read == 32
    assert sorted((row["seed_id"], row["reason"]) for row in decided) == [
        ("exact-copy", f"duplicate_of:{records[0]['id']}"),
        ("near-copy", f"duplicate_of:{records[1]['id']}"),
    ]
    assert len(selector.selection.kept) == 30 and len(tasks) == 20
    assert {task["seed_id"] for task in tasks} <= {record["id"] for record in records}
    assert all(clusters_covered(tasks, selector.selection.clusters, lang) == 6 for lang in ("fr", "de"))
    assert all(task["cluster"] == selector.selection.clusters[task["seed_id"]] for task in tasks)

    # Saved in the run folder, the clusters plan the same rows again without Ray or the model.
    (tmp_path / "run").mkdir()
    selector.save(tmp_path / "run")
    assert (tmp_path / "run" / CACHE_NAME).exists()

    def no_ray():
        raise AssertionError("a rerun with the same seeds and settings must read the cached clusters")

    plan = plan_run(config, SeedSelector(config, no_ray))
    again, decided_again, _ = plan.tasks.tasks().to_pylist(), plan.decided, plan.read
    assert [t["id"] for t in again] == [t["id"] for t in tasks] and decided_again == decided


@pytest.mark.parametrize("name", ["clustering", "embedding"])
def test_benchmarks_run_in_quick_mode(name, tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(next(tmp_path.glob(f"{name}-*-quick.json")).read_text())
    if name == "clustering":
        cases = report["implementations"] + report["scale"]
        assert not [case for case in cases if "error" in case]
        assert report["scale"][0]["peak_rss_mib"] > 0 and report["scale"][0]["k"] == 32
    else:
        assert report["pool"][0]["max_abs_diff_vs_direct"] < 1e-4
        assert report["direct"]["sentences_per_s"] > 0 and report["pool_over_direct_end_to_end"][0] > 0
