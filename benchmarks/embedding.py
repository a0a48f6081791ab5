"""Embedding throughput: the Ray Data EmbedActor pool (what the diversity stage runs) against
sentence-transformers called directly, on the same sentences, in one run.

    .venv/bin/python -m benchmarks.embedding [--sentences 3000] [--quick] [--out DIR]

Direct: one Embedder in this process with every core. Pool: Ray Data map_batches over EmbedActor,
timed end to end (actor start and model load included, as a job sees it), in three shapes:
one actor with Ray's default threads (= its one reserved CPU), one actor with a thread per core,
and one actor per core. Sentences are the project's seed instructions and answers, cycled.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date

import numpy as np
import pyarrow as pa

from benchmarks.harness import RESULTS, save_json, seed_sentences
from engine.config import SelectConfig


def sentences(count: int) -> list[str]:
    pool = seed_sentences()
    # A counter keeps cycled sentences distinct, so nothing downstream can reuse an earlier result.
    return [f"{pool[i % len(pool)]} ({i})" for i in range(count)]


def direct(texts: list[str], batch_size: int, threads: int) -> tuple[dict, np.ndarray]:
    from actors.engines.embed import Embedder

    started = time.perf_counter()
    embedder = Embedder("minilm-l6", batch_size, "cpu", threads)
    loaded = time.perf_counter()
    vectors = embedder.encode(texts)
    done = time.perf_counter()
    encode_s = done - loaded
    return {
        "shape": f"direct, {threads} threads",
        "load_s": round(loaded - started, 2),
        "encode_s": round(encode_s, 2),
        "end_to_end_s": round(done - started, 2),
        "sentences_per_s": round(len(texts) / encode_s, 1),
    }, vectors


def pooled(ray, texts: list[str], batch_size: int, actors: int, threads: int | None, reference: np.ndarray) -> dict:
    from actors.dataflow.clustering import embed_dataset
    from actors.engines.embed import arrow_to_vectors

    table = pa.table({"pos": range(len(texts)), "text": texts})
    blocks = [table.slice(start, batch_size) for start in range(0, len(texts), batch_size)]
    select = SelectConfig(batch_size=batch_size, actors=actors, threads=threads)
    started = time.perf_counter()
    dataset = embed_dataset(ray.data.from_arrow(blocks), select)
    out = pa.concat_tables(ray.get(dataset.to_arrow_refs())).sort_by("pos")
    seconds = time.perf_counter() - started
    vectors = arrow_to_vectors(out.column("embedding"))
    return {
        "shape": f"pool, {actors} actor(s) x {threads or 'Ray default (1)'} threads",
        "end_to_end_s": round(seconds, 2),
        "sentences_per_s": round(len(texts) / seconds, 1),
        "max_abs_diff_vs_direct": float(np.abs(vectors - reference).max()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.embedding", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="256 sentences, one pool shape: for tests")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    import ray

    cores = os.cpu_count() or 1
    count = 256 if args.quick else args.sentences
    texts = sentences(count)
    load_average = os.getloadavg()[0]
    baseline, reference = direct(texts, args.batch_size, cores)
    shapes = [(1, cores)] if args.quick else [(1, None), (1, cores), (cores, 1)]
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        pools = [pooled(ray, texts, args.batch_size, actors, threads, reference) for actors, threads in shapes]
    finally:
        ray.shutdown()
    report = {
        "benchmark": "embedding",
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {cores} cores, CPU only, load average {load_average:.1f} at start",
        "model": "minilm-l6 (all-MiniLM-L6-v2)",
        "sentences": count,
        "batch_size": args.batch_size,
        "direct": baseline,
        "pool": pools,
        # > 1: the pool is slower than loading the model and encoding in this process.
        "pool_over_direct_end_to_end": [round(p["end_to_end_s"] / baseline["end_to_end_s"], 2) for p in pools],
    }
    save_json(report, args.out, f"embedding-{report['date']}{'-quick' if args.quick else ''}")
    return report


if __name__ == "__main__":
    main()
