"""The cheap stages on Ray Data actor pools against calling the library directly, same texts:
fastText lid.176 language ID (a LangIdActor pool vs `predict` in this process) and embeddings
(benchmarks/embedding.py: the EmbedActor pool vs sentence-transformers `encode`).

Pools are timed end to end, actor start and model load included, as a job sees them.

    .venv/bin/python -m benchmarks.cheap_stages --case langid --spec spec.json --result out.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa

from benchmarks.harness import ROOT, case_main, seed_sentences, start_local_ray


def texts(count: int) -> list[str]:
    """Seed instructions and answers (English) and the project's target-language texts, cycled,
    each made distinct by a counter."""
    pool = seed_sentences()
    with open(ROOT / "data/texts/target_texts.jsonl", encoding="utf-8") as handle:
        pool += [json.loads(line)["text"] for line in handle if line.strip()]
    return [f"{pool[i % len(pool)]} {i}" for i in range(count)]


class LangIdActor:
    """Reads `text`; writes `lid_label` and `lid_confidence` (lid.176, as validation calls it)."""

    def __init__(self, model: str = "lid176"):
        from actors.engines.langid import FastTextLangId

        self.lid = FastTextLangId(model)

    def __call__(self, batch: pa.Table) -> pa.Table:
        labels, scores = predict_batch(self.lid, batch.column("text").to_pylist())
        return batch.append_column("lid_label", pa.array(labels)).append_column(
            "lid_confidence", pa.array(scores, pa.float32())
        )


def predict_batch(lid, batch: list[str]) -> tuple[list[str], list[float]]:
    """FastTextLangId.predict per text. (fasttext-predict's list form, multilinePredict, returns
    labels without probabilities here, so it cannot stand in for what validation reads.)"""
    answers = [lid.predict(text) for text in batch]
    return [label for label, _ in answers], [score for _, score in answers]


def case_langid(spec: dict) -> dict:
    import ray
    from ray.data import ActorPoolStrategy

    from actors.engines.langid import FastTextLangId

    corpus = texts(spec["texts"])
    started = time.perf_counter()
    lid = FastTextLangId("lid176")
    loaded = time.perf_counter()
    reference, _ = predict_batch(lid, corpus)
    predicted = time.perf_counter()
    direct = [
        {
            "shape": "direct, in this process",
            "texts": len(corpus),
            "load_s": round(loaded - started, 3),
            "seconds": round(predicted - loaded, 3),
            "texts_per_s": round(len(corpus) / (predicted - loaded), 1),
        }
    ]
    table = pa.table({"text": corpus})
    blocks = [table.slice(start, spec["batch_size"]) for start in range(0, len(corpus), spec["batch_size"])]
    init_s = start_local_ray(spec)
    pools = []
    try:
        for actors in spec["actors"]:
            started = time.perf_counter()
            dataset = ray.data.from_arrow(blocks).map_batches(
                LangIdActor,
                batch_size=spec["batch_size"],
                batch_format="pyarrow",
                num_cpus=1,
                compute=ActorPoolStrategy(size=actors),
            )
            out = pa.concat_tables(list(dataset.iter_batches(batch_size=None, batch_format="pyarrow")))
            seconds = time.perf_counter() - started
            got = dict(zip(out.column("text").to_pylist(), out.column("lid_label").to_pylist()))
            same = sum(got[text] == label for text, label in zip(corpus, reference))
            pools.append(
                {
                    "shape": f"pool, {actors} actor(s)",
                    "texts": out.num_rows,
                    "seconds": round(seconds, 3),
                    "texts_per_s": round(out.num_rows / seconds, 1),
                    "same_label_as_direct": round(same / len(corpus), 4),
                }
            )
    finally:
        ray.shutdown()
    return {
        "texts": len(corpus),
        "batch_size": spec["batch_size"],
        "ray_init_s": init_s,
        "direct": direct,
        "pool": pools,
        "pool_over_direct_seconds": [round(p["seconds"] / direct[0]["seconds"], 1) for p in pools],
    }


def suite(sizes: dict, simulated: bool, runner) -> dict:
    spec = {"texts": sizes["lid_texts"], "batch_size": 4096, "actors": sizes["lid_actors"], "num_cpus": 2}
    langid = runner.case("benchmarks.cheap_stages", "langid", spec)
    if sizes["embed_sentences"] is None:  # tiny (tests): a model load per shape would double the test's time
        embedding = {"skipped": "not run at this size"}
    else:
        out = Path(runner.scratch("embedding"))
        error = runner.module("benchmarks.embedding", ["--sentences", str(sizes["embed_sentences"]), "--out", str(out)])
        written = sorted(out.glob("embedding-*.json"))
        embedding = (
            json.loads(written[-1].read_text())
            if written and not error
            else {"error": error or "benchmarks.embedding wrote no result"}
        )
    return {
        "langid": langid,
        "embedding": embedding,
        "notes": [
            "pools are timed end to end: Ray Data start, actor start and model load included (Ray init excluded)",
            "embedding: benchmarks/embedding.py, run as it is (its own Ray, its shapes)",
        ],
    }


CASES = {"langid": case_langid}

if __name__ == "__main__":
    case_main(CASES)
