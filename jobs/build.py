"""Training sets from a finished run folder, without loading any LLM.

    python -m jobs.build --run runs/demo [--config configs/demo.yaml] [--set build.sphinx.shots=3 ...] [--output DIR]

Reads `<run>/accepted.parquet` (a dataset by language, or an older run's single file; the run
folder may be a filesystem URI such as s3://bucket/runs/demo) with Ray Data, runs the builders of
`build:` in the config (the run's own `config.resolved.yaml` unless --config names another) as
group operations over seeds and languages (actors/dataflow/build_pipeline.py), and writes `<run>/datasets/`
(or --output): one folder per dataset with `train.parquet/` and `validation.parquet/` (folders of
part files, written by the workers; JSONL likewise), a dataset card and build.json. It starts or
joins Ray as jobs.synthesize does (`ray:` in the config); `jobs.synthesize` calls `build_run` at
its end when `build.enabled` is true, with Ray already up.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

from engine.builders.output import swap_in, write_card
from engine.cli import job_parser, run_main
from engine.config import Config, ConfigError, load_config
from engine.records import ACCEPTED
from engine.runfolder import RunFolder

log = logging.getLogger("babelforge.build")


def check_accepted(run_dir: RunFolder) -> None:
    if not run_dir.exists(f"{ACCEPTED}.parquet"):
        raise FileNotFoundError(
            f"{run_dir}/{ACCEPTED}.parquet not found: build from a run folder that jobs.synthesize has finished"
        )


def accepted_count(run_dir: RunFolder) -> int:
    """Rows of accepted.parquet, from the Parquet footers (no rows are read)."""
    import pyarrow.dataset as ds

    return ds.dataset(run_dir.path(f"{ACCEPTED}.parquet"), format="parquet", filesystem=run_dir.fs).count_rows()


def record_in_report(run_dir: RunFolder, summary: dict) -> None:
    """Put the dataset counts into report.json, so the run's report and its datasets agree."""
    if not run_dir.exists("report.json"):
        return
    report = json.loads(run_dir.read_text("report.json"))
    report["datasets"] = {"seeds": summary["seeds"], **summary["datasets"]}
    run_dir.write_text("report.json", json.dumps(report, indent=2, ensure_ascii=False))


def build_run(
    run_dir: str | Path | RunFolder,
    config: Config,
    output: str | Path | RunFolder | None = None,
    partitions: int | None = None,
) -> dict:
    """Build from a run folder (a local path or a filesystem URI such as s3://…) on Ray Data (started
    or joined as jobs.synthesize does, unless this process already runs Ray); the datasets go to
    <run>/datasets/ (counts recorded in report.json) or to `output`. `partitions` sets the number
    of blocks the rows are read into; the examples built do not depend on it."""
    from actors.dataflow.build_pipeline import build_on_ray, empty_summary
    from actors.dataflow.ray_session import init_ray

    run_dir = RunFolder.of(run_dir)
    check_accepted(run_dir)
    empty = accepted_count(run_dir) == 0
    if not empty:
        init_ray(config.ray)
    own = run_dir.child("datasets")
    out_dir = RunFolder.of(output) if output else own
    summaries = []

    def fill(folder: RunFolder) -> None:
        # Workers write the datasets' part files into `folder` (the staging folder on a local disk).
        # A run that accepted nothing gets its empty datasets' card without starting Ray.
        summary = empty_summary(config) if empty else build_on_ray(run_dir, config, folder, partitions)
        write_card(summary, folder, config.build.formats, config.run.name)
        summaries.append(summary)

    swap_in(out_dir, fill)
    summary = summaries[0]
    if (out_dir.fs.type_name, out_dir.root) == (own.fs.type_name, own.root):
        record_in_report(run_dir, summary)
    for name, entry in summary["datasets"].items():
        log.info(
            "dataset %-16s train %6d  validation %5d  languages %s",
            name,
            entry["train"],
            entry["validation"],
            ",".join(entry["languages"]),
        )
    log.info("datasets and card written to %s", out_dir)
    return summary


def write_local_copy(folder: RunFolder, name: str) -> Path:
    """A file of a remote run folder copied to a local temporary (load_config reads local files)."""
    handle = tempfile.NamedTemporaryFile("w", suffix=f"-{name}", delete=False, encoding="utf-8")
    with handle:
        handle.write(folder.read_text(name))
    return Path(handle.name)


def main(argv: list[str] | None = None) -> int:
    def body(args) -> int:
        run_dir = RunFolder(args.run)
        config_path = args.config or run_dir.local_path("config.resolved.yaml")
        if config_path is None:  # an object-store run folder: its resolved config, read through the folder
            config_path = write_local_copy(run_dir, "config.resolved.yaml")
        build_run(run_dir, load_config(config_path, args.overrides), args.output)
        return 0

    parser = job_parser(
        "jobs.build",
        __doc__,
        config="optional",
        set_example="build.sphinx.shots=3",
        config_help="YAML config whose build: section to use (default: the run's config.resolved.yaml)",
    )
    parser.add_argument("--run", required=True, help="a run folder written by jobs.synthesize")
    parser.add_argument("--output", help="write the datasets here instead of <run>/datasets")
    return run_main(parser, argv, body, [((ConfigError, FileNotFoundError, ValueError), 2)])


if __name__ == "__main__":
    sys.exit(main())
