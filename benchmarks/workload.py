"""What the benchmarks run: configs/demo.yaml narrowed to one pass over one language, the tasks
planned from the project's seeds (engine.recipes.plan_run), and the job's own translation stage
(jobs.synthesize: its task blocks and actor pool) with an actor that timestamps its batches.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import statistics
import time

import pyarrow as pa

from actors.engines.translate import TranslateActor
from benchmarks.harness import SEEDS, demo_settings, rate
from engine.config import Config, parse_config
from engine.inputs.seeds import load_seed_table
from engine.recipes import plan_run
from engine.records import ACCEPTED
from engine.rows.prompts import FIELDS


def base_spec(sizes: dict, simulated: bool) -> dict:
    """The settings every translation-shaped case shares; latency_s set: the simulated generator."""
    return {
        "lang": sizes.get("lang", "fr"),
        "batch_size": 16,
        "batches_in_flight": 4,
        "num_cpus": 2,
        "latency_s": sizes["latency_s"] if simulated else None,
    }


def bench_config(
    spec: dict,
    *,
    rounds: int | None = None,
    model_name: str | None = None,
    actors: int = 1,
    num_cpus_per_actor: float | None = None,
    seeds_path: str | None = None,
    languages=None,
    run_dir: str | None = None,
    adequacy: bool | None = None,
) -> Config:
    """configs/demo.yaml narrowed to one pass over one language: mode all, one attempt, no build;
    the demo's validation and adequacy gate unless `adequacy` says otherwise. spec['seeds_path']
    replaces the seed file; spec['overrides'] ({section: {key: value}}) is applied last, so every
    case of a suite given the same spec runs the same settings."""
    demo = demo_settings()
    demo["run"] = {"name": "bench", "output_dir": run_dir or "/tmp/babelforge-bench"}
    demo["seeds"] = {"paths": [seeds_path or spec.get("seeds_path") or str(SEEDS)]}
    demo["languages"] = {"targets": languages or [spec["lang"]]}
    demo["plan"] = {**demo.get("plan", {}), "mode": "all"}
    demo["refine"] = {"rounds": spec.get("rounds", 0) if rounds is None else rounds}
    demo["validation"] = {**demo.get("validation", {}), "max_attempts": 1}
    demo["compute"] = {
        **demo.get("compute", {}),
        "actors": actors,
        "batch_size": spec["batch_size"],
        "batches_in_flight": spec["batches_in_flight"],
        **({"num_cpus_per_actor": num_cpus_per_actor} if num_cpus_per_actor is not None else {}),
    }
    demo["ray"] = {"num_cpus": spec["num_cpus"]}
    demo["build"] = {"enabled": False}
    demo["qualify"] = {"enabled": False}  # the suites measure a stage, not the job's probe before it
    for section in ("select", "dedup"):
        demo.pop(section, None)  # selection is the tokens suite's subject, not this one's
    if model_name is not None:
        demo["model"] = {**demo["model"], "name": model_name}
    if adequacy is not None:
        demo["quality"] = {**demo.get("quality", {}), "adequacy": adequacy}
    for section, values in spec.get("overrides", {}).items():
        demo[section] = {**demo.get(section, {}), **values}
    return parse_config(demo, "benchmarks (configs/demo.yaml narrowed)")


def load_tasks(config: Config, seeds: int | None) -> list[dict]:
    """The first `seeds` seeds of the config's seed file, each into the config's languages (mode
    all), planned as the job plans them."""
    limited = config.model_copy(update={"seeds": config.seeds.model_copy(update={"limit": seeds})})
    return plan_run(limited).tasks.tasks().to_pylist()


def synthetic_tasks(rows: int, lang: str) -> list[dict]:
    """`rows` distinct tasks cycled from the project's seeds (ids carry a counter)."""
    seeds = load_seed_table([str(SEEDS)])[0].to_pylist()
    tasks = []
    for i in range(rows):
        seed = seeds[i % len(seeds)]
        tasks.append(
            {
                "id": f"sim-{i:08d}",
                "seed_id": f"{seed['id']}-{i}",
                "recipe": "sphinx",
                "lang": lang,
                "src_instruction": seed["instruction"],
                "src_input": seed["input"],
                "src_output": seed["output"],
                "source": seed["source"],
            }
        )
    return tasks


def row_summary(rows: list[dict]) -> dict:
    """What every refinement-shaped case reports of its rows (engine.records.SCHEMA columns):
    accepted, judged and rewritten rows, generated tokens by phase, and each row."""
    return {
        "accepted": sum(1 for row in rows if row["status"] == ACCEPTED),
        "judged_rows": sum(1 for row in rows if row["tokens_judge"]),
        "rewritten_rows": sum(1 for row in rows if row["rounds"]),
        "phase_tokens": {phase: sum(row[f"tokens_{phase}"] for row in rows) for phase in ("draft", "judge", "rewrite")},
        "per_row": [
            {
                "seed_id": row["seed_id"],
                "status": row["status"],
                "reason": row["reason"],
                "prompt_tokens": row["prompt_tokens"],
                "completion_tokens": row["completion_tokens"],
                "rounds": row["rounds"],
                "out": accepted_digest(row) if row["status"] == ACCEPTED else None,
            }
            for row in rows
        ],
    }


def accepted_digest(row: dict) -> str | None:
    """A short digest of a row's translated fields (those with a source), to compare outputs between cases."""
    fields = {k: row[k] for k in FIELDS if row[f"src_{k}"]}
    return (
        hashlib.sha1(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
        if fields
        else None
    )


class CountingEncoder:
    """An encoder (engine.protocols.TextEncoder) that counts the texts it encodes."""

    def __init__(self, encoder):
        self.encoder, self.texts = encoder, 0

    def encode_queries(self, texts):
        self.texts += len(texts)
        return self.encoder.encode_queries(texts)

    def encode_passages(self, texts):
        self.texts += len(texts)
        return self.encoder.encode_passages(texts)


_ROW = contextvars.ContextVar("bench_row", default=None)


class RequestTimeline:
    """Every LLM request a row machine sends through `generator`, timed: per row (the task id,
    carried by a context variable each row's coroutine sets), [sent, returned, generated tokens]
    in wall-clock seconds. Wraps the generator's `generate` in place, so the row machine that
    already holds the generator records without knowing."""

    def __init__(self, generator):
        self.rows: dict[str, list[list[float]]] = {}
        inner = generator.generate

        async def generate(messages, params):
            sent = time.time()
            done = await inner(messages, params)
            self.rows.setdefault(_ROW.get(), []).append([sent, time.time(), done.completion_tokens])
            return done

        generator.generate = generate

    def row_machine(self, machine):
        """`machine` with each row's requests recorded under its task id."""

        async def run(task: dict) -> dict:
            _ROW.set(task["id"])
            return await machine(task)

        return run

    def pop(self, row_id: str) -> str:
        return json.dumps(self.rows.pop(row_id, []))


def timeline_summary(requests: list[list[list[float]]], start: float, end: float, parts: int = 10) -> dict:
    """What a run's request timelines (RequestTimeline, one list per row) say about its steady
    state, `start` to `end`: requests in flight on average in each tenth of it, how far into it
    half, nine tenths and all of the rows had finished, the longest row (first request sent to
    last returned: a row's requests run one after another, so no schedule ends before it) and
    the median wait between a row's answer and its next request; and what of the window no request
    covered at its edges: from `start` to the first request sent, from the last answer to `end`."""
    rows = [sorted(row) for row in requests if row]
    window = end - start
    if not rows or window <= 0:
        return {}
    step = window / parts
    flat = [request for row in rows for request in row]
    in_flight = [
        round(sum(max(0.0, min(e, a + step) - max(s, a)) for s, e, _ in flat) / step, 1)
        for a in (start + i * step for i in range(parts))
    ]
    finished = sorted(row[-1][1] for row in rows)

    def share_at(q: float) -> float:
        return round((finished[min(len(finished) - 1, int(q * len(finished) + 0.5) - 1)] - start) / window, 3)

    longest = max(rows, key=lambda row: row[-1][1] - row[0][0])
    gaps = [b[0] - a[1] for row in rows for a, b in zip(row, row[1:])]
    return {
        "requests": len(flat),
        "mean_in_flight_by_tenth": in_flight,
        "rows_finished_at_share": {"half": share_at(0.5), "nine_tenths": share_at(0.9), "all": share_at(1.0)},
        "longest_row_s": round(longest[-1][1] - longest[0][0], 2),
        "longest_row_requests": len(longest),
        "longest_row_tokens": int(sum(r[2] for r in longest)),
        "median_gap_between_requests_s": round(statistics.median(gaps), 4) if gaps else None,
        "start_to_first_request_s": round(min(r[0] for r in flat) - start, 2),
        "last_answer_to_end_s": round(end - max(r[1] for r in flat), 2),
    }


class TimedTranslateActor(TranslateActor):
    """TranslateActor plus, on every output batch, when this actor became ready, when the batch
    finished (wall clock), how many batches this actor had running at most so far, the seconds
    and texts its adequacy gate has spent so far, and each row's LLM requests (RequestTimeline),
    so a benchmark can tell engine start from generation, see the pool's concurrency, the gate's
    cost and the engine's occupancy over time."""

    ready_at = 0.0
    running = peak_running = 0  # every call runs on the actor's one UDF event loop: no lock needed

    def __init__(self, config_data: dict):
        super().__init__(config_data)
        self.counters = []
        for check in self.checks:  # the gate's checks keep their encoder as .encoder (None with the gate off)
            if getattr(check, "encoder", None) is not None:
                check.encoder = CountingEncoder(check.encoder)
                self.counters.append(check.encoder)
        self.timeline = None
        if self.generator is not None:
            self.timeline = RequestTimeline(self.generator)
            self.translator = self.timeline.row_machine(self.translator)
        self.ready_at = time.time()

    async def __call__(self, batch: pa.Table):
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            async for table in super().__call__(batch):
                rows = table.num_rows
                table = table.append_column("bench_ready_at", pa.array([self.ready_at] * rows, pa.float64()))
                table = table.append_column("bench_peak_batches", pa.array([self.peak_running] * rows, pa.int32()))
                table = table.append_column(
                    "bench_gate_s", pa.array([sum(c.seconds for c in self.checks)] * rows, pa.float64())
                )
                table = table.append_column(
                    "bench_gate_texts", pa.array([sum(c.texts for c in self.counters)] * rows, pa.int64())
                )
                requests = [self.timeline.pop(i) if self.timeline else "[]" for i in table.column("id").to_pylist()]
                table = table.append_column("bench_requests", pa.array(requests, pa.string()))
                yield table.append_column("bench_done_at", pa.array([time.time()] * rows, pa.float64()))
        finally:
            self.running -= 1


def bench_pool(config: Config, tasks, actor_cls):
    """The job's generation stage (actors.dataflow.synthesis.translate_dataset's task blocks and actor
    pool) with `actor_cls`, a TranslateActor of the benchmarks', as the pool's actor class."""
    from actors.dataflow.synthesis import pool_options, task_blocks

    blocks, size = task_blocks(config, tasks)
    return blocks.map_batches(actor_cls, **pool_options(config, size))


def run_translation_stage(config: Config, tasks: list[dict], actor_cls) -> tuple[dict, pa.Table]:
    """The job's generation stage with `actor_cls` (a TimedTranslateActor: bench_pool); timed
    from the dataset's start to its last row. The timing's adequacy_gate holds the gate's
    seconds and texts summed over the pool's actors."""
    started = time.time()
    dataset = bench_pool(config, pa.Table.from_pylist(tasks), actor_cls)
    tables, arrivals = [], []
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        arrivals.append(time.time())
        tables.append(table)
    table = pa.concat_tables(tables)
    ready = table.column("bench_ready_at").to_pylist()
    done_at = table.column("bench_done_at").to_pylist()
    first_ready, all_ready, last = min(ready), max(ready), arrivals[-1]
    after_all_ready = sum(1 for t in done_at if t >= all_ready)
    window = max(done_at) - all_ready
    requests = [json.loads(r) for r in table.column("bench_requests").to_pylist()]
    timing = {
        "first_ready_s": round(first_ready - started, 2),
        "all_ready_s": round(all_ready - started, 2),
        "first_row_s": round(arrivals[0] - started, 2),
        "end_to_end_s": round(last - started, 2),
        "generation_s": round(last - first_ready, 2),
        "rows_per_s_end_to_end": rate(table.num_rows, last - started),
        "rows_per_s_after_ready": rate(table.num_rows, last - first_ready),
        "rows_per_s_after_all_ready": rate(after_all_ready, window) if window > 0 else None,
        "peak_batches_per_actor": max(table.column("bench_peak_batches").to_pylist()),
        "adequacy_gate": gate_totals(
            ready, table.column("bench_gate_s").to_pylist(), table.column("bench_gate_texts").to_pylist()
        ),
        "request_timeline": timeline_summary(requests, first_ready, last),
    }
    return timing, table.drop_columns(
        ["bench_ready_at", "bench_done_at", "bench_peak_batches", "bench_gate_s", "bench_gate_texts", "bench_requests"]
    )


def gate_totals(ready_at: list[float], seconds: list[float], texts: list[int]) -> dict:
    """The gate's seconds and texts over the pool: per actor (told apart by when it became ready)
    the largest of its running totals, summed; texts/s while the gate ran."""
    per_actor: dict[float, tuple[float, int]] = {}
    for actor, s, n in zip(ready_at, seconds, texts):
        best = per_actor.get(actor, (0.0, 0))
        per_actor[actor] = (max(best[0], s), max(best[1], n))
    total_s = sum(s for s, _ in per_actor.values())
    total_texts = sum(n for _, n in per_actor.values())
    return {"seconds": round(total_s, 3), "texts": total_texts, "texts_per_s": rate(total_texts, total_s)}
