"""Training sets from a finished run folder, without loading any LLM.

    python -m jobs.build --run runs/demo [--config configs/demo.yaml] [--set build.sphinx.shots=3 ...] [--output DIR]

Reads `<run>/accepted.parquet`, runs the builders of `build:` in the config (the run's own
`config.resolved.yaml` unless --config names another), and writes `<run>/datasets/` (or --output):
one folder per dataset with train/validation Parquet and JSONL, a dataset card and build.json.
`jobs.synthesize` calls `build_run` at its end when `build.enabled` is true.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pyarrow.parquet as pq

from engine.builders import build_datasets
from engine.builders.output import write_build
from engine.builders.retrieval import Embed
from engine.builders.summary import summarise
from engine.cli import job_parser, run_main
from engine.config import Config, ConfigError, load_config, redacted

log = logging.getLogger("babelforge.build")


def load_accepted(run_dir: Path) -> list[dict]:
    path = run_dir / "accepted.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: build from a run folder that jobs.synthesize has finished")
    return pq.read_table(path).to_pylist()


def make_embed(config: Config) -> Embed | None:
    """An embedder only when a builder needs one (sPhinX knn), so other builds load no model."""
    sphinx = config.build.sphinx
    if "sphinx" not in config.build.builders or sphinx.retrieval != "knn" or sphinx.shots == 0:
        return None
    from actors.embed import Embedder

    return Embedder(sphinx.embedder)


def record_in_report(run_dir: Path, summary: dict) -> None:
    """Put the dataset counts into report.json, so the run's report and its datasets agree."""
    path = run_dir / "report.json"
    if not path.exists():
        return
    report = json.loads(path.read_text(encoding="utf-8"))
    report["datasets"] = {"seeds": summary["seeds"], **summary["datasets"]}
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")


def build_run(run_dir: str | Path, config: Config, output: str | Path | None = None, embed: Embed | None = None) -> dict:
    run_dir = Path(run_dir)
    accepted = load_accepted(run_dir)
    built = build_datasets(accepted, config.build, embed or make_embed(config))
    summary = summarise(built, redacted(config)["build"], config.model.license)
    out_dir = Path(output) if output else run_dir / "datasets"
    write_build(built, summary, out_dir, config.build.formats, config.run.name)
    if out_dir.resolve() == (run_dir / "datasets").resolve():
        record_in_report(run_dir, summary)
    for name, entry in summary["datasets"].items():
        log.info("dataset %-16s train %6d  validation %5d  languages %s", name, entry["train"], entry["validation"], ",".join(entry["languages"]))
    log.info("datasets and card written to %s", out_dir)
    return summary


def main(argv: list[str] | None = None) -> int:
    def body(args) -> int:
        run_dir = Path(args.run)
        build_run(run_dir, load_config(args.config or run_dir / "config.resolved.yaml", args.overrides), args.output)
        return 0

    parser = job_parser("jobs.build", __doc__, config="optional", set_example="build.sphinx.shots=3",
                        config_help="YAML config whose build: section to use (default: the run's config.resolved.yaml)")
    parser.add_argument("--run", required=True, help="a run folder written by jobs.synthesize")
    parser.add_argument("--output", help="write the datasets here instead of <run>/datasets")
    return run_main(parser, argv, body, [((ConfigError, FileNotFoundError, ValueError), 2)])


if __name__ == "__main__":
    sys.exit(main())
