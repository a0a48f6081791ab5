"""Clustering at scale, as the diversity stage does it: fit k-means on a bounded sample, then assign
every vector chunk by chunk; time and driver peak memory for 100k and 1M synthetic 384-d vectors,
and the k-means implementations side by side on one sample (time and fit quality).

    .venv/bin/python -m benchmarks.clustering [--sizes 100000 1000000] [--quick] [--out DIR]

Every case runs in its own subprocess, so its peak RSS (ru_maxrss) is its own. The vectors are
generated chunk by chunk from a fixed seed, so no case ever holds them all, as in the Ray job.
The load average is recorded: on a shared machine compare CPU seconds as well as wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date

import numpy as np

from benchmarks.harness import RESULTS, ROOT, peak_rss_mib, save_json
from engine.selection.cluster import assign_clusters, fit_centroids, normalise_rows, sample_positions

DIM, K, CENTRES, CHUNK = 384, 256, 512, 16_384


def chunks(count: int, seed: int = 0):
    """(start, unit vectors) of a 512-centre Gaussian mixture; chunk i depends only on (seed, i)."""
    centres = np.random.default_rng(seed).normal(size=(CENTRES, DIM)).astype(np.float32)
    for index, start in enumerate(range(0, count, CHUNK)):
        rng = np.random.default_rng([seed, index + 1])
        size = min(CHUNK, count - start)
        noise = rng.normal(scale=2.0, size=(size, DIM)).astype(np.float32)
        yield start, normalise_rows(centres[rng.integers(0, CENTRES, size)] + noise)


def gather(count: int, positions: np.ndarray) -> np.ndarray:
    parts = []
    for start, block in chunks(count):
        inside = positions[(positions >= start) & (positions < start + len(block))]
        parts.append(block[inside - start])
    return np.concatenate(parts)


def fit_with(impl: str, sample: np.ndarray, k: int) -> np.ndarray:
    """The same budget for each: 20 iterations (faiss, KMeans) or scikit-learn's own stopping rule."""
    if impl == "faiss":
        return fit_centroids(sample, k, seed=0)  # what the project runs
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if impl == "sklearn_minibatch":
        model = MiniBatchKMeans(n_clusters=k, n_init=1, batch_size=4096, random_state=0)
    else:
        model = KMeans(n_clusters=k, n_init=1, max_iter=20, random_state=0)
    return normalise_rows(model.fit(sample).cluster_centers_)


def case_fit(impl: str, sample_size: int, k: int) -> dict:
    sample = gather(sample_size, np.arange(sample_size))
    started, cpu = time.perf_counter(), time.process_time()
    centroids = fit_with(impl, sample, k)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    _, similarity = assign_clusters(sample, centroids)
    return {
        "impl": impl,
        "sample": sample_size,
        "k": k,
        "fit_s": round(seconds, 2),
        "fit_cpu_s": round(cpu_seconds, 2),
        "mean_cosine_to_centroid": round(float(similarity.mean()), 4),
        "load_average": round(os.getloadavg()[0], 1),
    }


def case_scale(count: int, sample_size: int, k: int) -> dict:
    baseline = peak_rss_mib()
    started = time.perf_counter()
    sample = gather(count, sample_positions(count, sample_size, seed=0))
    sampled, cpu = time.perf_counter(), time.process_time()
    centroids = fit_centroids(sample, k, seed=0)
    fitted, fit_cpu = time.perf_counter(), time.process_time() - cpu
    sizes = np.zeros(len(centroids), dtype=np.int64)
    assign_s = 0.0
    for _, block in chunks(count):  # in the job, blocks arrive from Ray; here they are generated
        assign_started = time.perf_counter()
        labels, _ = assign_clusters(block, centroids)
        sizes += np.bincount(labels, minlength=len(centroids))
        assign_s += time.perf_counter() - assign_started
    total = time.perf_counter() - started
    fit_s = fitted - sampled
    return {
        "vectors": count,
        "sample": len(sample),
        "k": len(centroids),
        "fit_s": round(fit_s, 2),
        "fit_cpu_s": round(fit_cpu, 2),
        "assign_s": round(assign_s, 2),
        "fit_plus_assign_s": round(fit_s + assign_s, 2),
        "data_generation_s": round(total - fit_s - assign_s, 2),
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_data_mib": baseline,
        "all_vectors_would_take_mib": round(count * DIM * 4 / 2**20, 1),
        "empty_clusters": int((sizes == 0).sum()),
        "load_average": round(os.getloadavg()[0], 1),
    }


def run_case(*args: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.clustering", "--case", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        return {
            "case": args,
            "error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}",
        }
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clustering", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="vectors per scale case")
    parser.add_argument(
        "--sample", type=int, default=100_000, help="fitting sample of the scale cases (select.sample_size)"
    )
    parser.add_argument(
        "--fit-sample", type=int, default=20_000, help="sample of the side-by-side implementation cases"
    )
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--quick", action="store_true", help="small sizes, for tests: 20k vectors, k=32")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)  # internal: one case in this process
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.case:
        kind, *rest = args.case
        result = case_fit(rest[0], int(rest[1]), int(rest[2])) if kind == "fit" else case_scale(*map(int, rest))
        print(json.dumps(result))
        return result
    if args.quick:
        args.sizes, args.sample, args.fit_sample, args.k = [20_000], 5_000, 5_000, 32
    impls = ["faiss", "sklearn_minibatch", "sklearn_kmeans"]
    report = {
        "benchmark": "clustering",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "implementations": [run_case("fit", impl, str(args.fit_sample), str(args.k)) for impl in impls],
        "scale": [run_case("scale", str(size), str(args.sample), str(args.k)) for size in args.sizes],
    }
    save_json(report, args.out, f"clustering-{report['date']}{'-quick' if args.quick else ''}")
    return report


if __name__ == "__main__":
    main()
