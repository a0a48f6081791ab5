"""(Re)build a run's report page: report.html plus the plots as PNG files in the run folder.

    python -m jobs.report <run folder> [--compare <other run folder>] [--out file.html]

With --compare the page puts both runs side by side (two models, two prompt versions...), their
samples joined on (seed, language); it goes to <run folder>/compare-<other>.html unless --out.
The synthesis job calls write_report_page at the end of every run.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pyarrow.parquet as pq

from engine.cli import job_parser, run_main
from engine.report.page import build_compare_html, build_html
from engine.report.samples import DEFAULT_SAMPLES_PER_LANGUAGE
from engine.report.plots import build_plots
from engine.records import ACCEPTED, REJECTED

log = logging.getLogger("babelforge.report")


class NotARunFolder(ValueError):
    pass


def load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """report.json and every row, accepted then rejected, as the synthesis job wrote them."""
    needed = [run_dir / "report.json"] + [run_dir / f"{status}.parquet" for status in (ACCEPTED, REJECTED)]
    missing = [path.name for path in needed if not path.exists()]
    if missing:
        raise NotARunFolder(f"{run_dir} is not a finished run folder (missing {', '.join(missing)}): run jobs.synthesize on it first")
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    rows = [row for status in (ACCEPTED, REJECTED) for row in pq.read_table(run_dir / f"{status}.parquet").to_pylist()]
    return report, rows


def write_report_page(run_dir: Path, report: dict, rows: list[dict], samples_per_language: int = DEFAULT_SAMPLES_PER_LANGUAGE, out: Path | None = None) -> Path:
    """Write plot-<name>.png for each plot the run has, and the page; returns the page's path."""
    plots = build_plots(rows)
    for name, png in plots.items():
        if png is not None:
            (run_dir / f"plot-{name}.png").write_bytes(png)
    out = out or run_dir / "report.html"
    out.write_text(build_html(report, rows, plots, samples_per_language), encoding="utf-8")
    return out


def write_compare_page(run_dirs: list[Path], out: Path | None, samples_per_language: int) -> Path:
    runs = []
    for run_dir in run_dirs:
        report, rows = load_run(run_dir)
        label = f"{report.get('run') or run_dir.name} ({run_dir.name})"
        runs.append((label, report, rows, build_plots(rows)))
    out = out or run_dirs[0] / f"compare-{run_dirs[1].name}.html"
    out.write_text(build_compare_html(runs, samples_per_language), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    def body(args) -> int:
        if args.compare:
            out = write_compare_page([args.run_dir, args.compare], args.out, args.samples_per_language)
        else:
            report, rows = load_run(args.run_dir)
            out = write_report_page(args.run_dir, report, rows, args.samples_per_language, args.out)
        print(f"report page: {out}")
        return 0

    parser = job_parser("jobs.report", __doc__, config="none")
    parser.add_argument("run_dir", type=Path, help="a finished run folder (holds report.json)")
    parser.add_argument("--compare", type=Path, metavar="OTHER_RUN", help="a second run folder to put side by side")
    parser.add_argument("--out", type=Path, help="where to write the page (default: in the run folder)")
    parser.add_argument("--samples-per-language", type=int, default=DEFAULT_SAMPLES_PER_LANGUAGE, help="cap on the samples shown per language")
    return run_main(parser, argv, body, [(NotARunFolder, 2)])


if __name__ == "__main__":
    sys.exit(main())
