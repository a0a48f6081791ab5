"""The synthesis job: English seeds → planned (seed, language) tasks → translated and validated
rows on a Ray Data actor pool → run folder with accepted and rejected rows and a report.

    python -m jobs.synthesize --config configs/demo.yaml [--set translate.key=value ...]

Runs the same under `ray job submit --working-dir . -- python -m jobs.synthesize ...` (it joins
the cluster) and locally (it starts an embedded Ray).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from engine.config import Config, ConfigError, load_config, redacted
from engine.languages import resolve_languages
from engine.plan import build_plan
from engine.prompts import TRANSLATE_VERSION
from engine.records import ACCEPTED, REJECTED, to_table
from engine.report import build_report, render_markdown, render_summary
from engine.seeds import SeedError, load_seeds
from engine.store import RowStore

log = logging.getLogger("babelforge.synthesize")


class PlanChanged(RuntimeError):
    pass


def plan_fingerprint(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def prepare_run_dir(config: Config, planned_ids: list[str]) -> Path:
    """Create the run folder, or check that an existing one was made for the same plan."""
    run_dir = Path(config.run.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / "plan.json"
    fingerprint = plan_fingerprint(planned_ids)
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous["fingerprint"] != fingerprint:
            raise PlanChanged(
                f"{run_dir} holds a run of a different plan ({previous['rows']} rows, now {len(planned_ids)}): "
                "the seeds, languages, quotas or prompt version changed. Resume with the original config, "
                "or give a new folder with --set run.output_dir=<new folder>."
            )
    else:
        marker.write_text(json.dumps({"fingerprint": fingerprint, "rows": len(planned_ids)}))
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(redacted(config), sort_keys=False, allow_unicode=True))
    return run_dir


def init_ray(config: Config) -> None:
    import ray

    if ray.is_initialized():
        return
    if config.ray.address:
        ray.init(address=config.ray.address)
    else:
        # Joins RAY_ADDRESS / a running cluster when there is one (ray job submit), else starts one.
        ray.init(num_cpus=config.ray.num_cpus, ignore_reinit_error=True)
    log.info("ray cluster resources: %s", ray.cluster_resources())


def translate_dataset(config: Config, tasks: pa.Table):
    import ray
    from ray.data import ActorPoolStrategy

    from actors.translate import TranslateActor

    size = config.compute.batch_size
    blocks = [tasks.slice(start, size) for start in range(0, tasks.num_rows, size)]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    return ray.data.from_arrow(blocks).map_batches(
        TranslateActor,
        fn_constructor_kwargs={"config_data": json.loads(config.model_dump_json())},
        batch_size=size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=config.compute.actors, max_tasks_in_flight_per_actor=config.compute.batches_in_flight),
        num_cpus=config.compute.num_cpus_per_actor,
        num_gpus=config.compute.num_gpus_per_actor or None,
        resources=config.compute.resources or None,
    )


class Progress:
    """One line per finished shard: rows done / planned, accepted, tokens/s, ETA."""

    def __init__(self, total: int, already: int):
        self.total, self.done, self.accepted, self.tokens = total, already, 0, 0
        self.new = 0
        self.started = time.monotonic()

    def update(self, table: pa.Table) -> None:
        self.done += table.num_rows
        self.new += table.num_rows
        self.accepted += table.column("status").to_pylist().count(ACCEPTED)
        self.tokens += pa.compute.sum(table.column("completion_tokens")).as_py() or 0
        elapsed = time.monotonic() - self.started
        rate = self.new / elapsed if elapsed else 0
        eta = (self.total - self.done) / rate if rate else float("nan")
        log.info(
            "rows %d/%d  accepted %d  %.0f tokens/s  eta %.0fs",
            self.done, self.total, self.accepted, self.tokens / elapsed if elapsed else 0, eta,
        )


def finalise(run_dir: Path, store: RowStore, config: Config, planned_ids: list[str], bad_records: int, seconds: float) -> dict:
    table = store.read_all()
    ids = table.column("id").to_pylist()
    expected = set(planned_ids)
    missing, extra = expected - set(ids), set(ids) - expected
    if len(ids) != len(set(ids)) or missing or extra:
        raise RuntimeError(
            f"run folder {run_dir} does not match its plan: {len(missing)} missing, {len(extra)} unexpected, "
            f"{len(ids) - len(set(ids))} duplicated ids"
        )
    for status in (ACCEPTED, REJECTED):
        part = table.filter(pa.compute.equal(table.column("status"), status))
        pq.write_table(part, run_dir / f"{status}.parquet")
        with open(run_dir / f"{status}.jsonl", "w", encoding="utf-8") as handle:
            for row in part.to_pylist():
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    report = build_report(table, len(planned_ids), bad_records, seconds, redacted(config))
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (run_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def run(config: Config) -> dict:
    started = time.monotonic()
    languages = resolve_languages(config.languages.targets)
    seeds, bad = load_seeds(config.seeds.paths, config.seeds.on_bad_record, config.seeds.limit)
    log.info("read %d seeds (%d bad records) from %s", len(seeds), len(bad), ", ".join(config.seeds.paths))
    tasks = build_plan(seeds, languages, config.plan.mode, config.plan.quotas, config.plan.seed, config.recipe, TRANSLATE_VERSION)
    bad_rows = [
        {"id": f"{record.id}", "seed_id": record.id, "recipe": config.recipe, "status": REJECTED, "reason": record.reason, "source": record.source}
        for record in bad
    ]
    planned_ids = [task["id"] for task in tasks] + [row["id"] for row in bad_rows]
    run_dir = prepare_run_dir(config, planned_ids)
    store = RowStore(run_dir)
    if store.clean_partial():
        log.info("removed partial shards left by an interrupted run")
    done = store.done_ids()
    todo = [task for task in tasks if task["id"] not in done]
    pending_bad = [row for row in bad_rows if row["id"] not in done]
    if pending_bad:
        store.write(to_table(pending_bad))
    log.info(
        "plan: %d rows over %d languages; %d already in %s, %d to generate",
        len(planned_ids), len(languages), len(done), run_dir, len(todo),
    )
    if todo:
        init_ray(config)
        progress = Progress(len(planned_ids), len(planned_ids) - len(todo))
        dataset = translate_dataset(config, pa.Table.from_pylist(todo))
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            store.write(table)
            progress.update(table)
    report = finalise(run_dir, store, config, planned_ids, len(bad), time.monotonic() - started)
    print(render_summary(report, str(run_dir)), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.synthesize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="dotted override, e.g. --set compute.actors=2")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
        report = run(config)
    except (ConfigError, SeedError, PlanChanged, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if report["adds_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
