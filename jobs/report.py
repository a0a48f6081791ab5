"""(Re)build a run's report page: report.html plus the plots as PNG files in the run folder.
The run is read one language at a time: its figures are counted group by group and the page
shows a bounded sample per language, so a run of any size fits.

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

from engine.cli import job_parser, run_main
from engine.records import ACCEPTED, REJECTED
from engine.report.aggregate import RunFigures
from engine.report.page import build_compare_html, write_report_page
from engine.report.plots import build_plots
from engine.report.samples import DEFAULT_SAMPLES_PER_LANGUAGE
from engine.run_outputs import Sample, read_language_groups
from engine.runfolder import RunFolder

log = logging.getLogger("babelforge.report")


class NotARunFolder(ValueError):
    pass


def check_run(folder: RunFolder) -> dict:
    """report.json of a finished run folder, or NotARunFolder saying what is missing."""
    needed = ["report.json"] + [f"{status}.parquet" for status in (ACCEPTED, REJECTED)]
    missing = [name for name in needed if not folder.exists(name)]
    if missing:
        raise NotARunFolder(
            f"{folder} is not a finished run folder (missing {', '.join(missing)}): run jobs.synthesize on it first"
        )
    return json.loads(folder.read_text("report.json"))


def load_run(
    run_dir: RunFolder | str | Path, samples_per_language: int = DEFAULT_SAMPLES_PER_LANGUAGE
) -> tuple[dict, RunFigures, list[dict]]:
    """report.json, the run's figures and the page's sample, read one language at a time."""
    folder = RunFolder.of(run_dir)
    report = check_run(folder)
    figures, sample = RunFigures(), Sample(samples_per_language)
    for _, table in read_language_groups(folder):
        figures = figures + RunFigures.of(table)
        sample.add(table)
    return report, figures, sample.rows


def load_rows(run_dir: RunFolder | str | Path) -> tuple[dict, list[dict]]:
    """report.json and every row (the comparison page joins two runs row by row: small runs)."""
    folder = RunFolder.of(run_dir)
    report = check_run(folder)
    return report, [row for _, table in read_language_groups(folder) for row in table.to_pylist()]


def write_compare_page(run_dirs: list[Path], out: Path | None, samples_per_language: int) -> Path:
    runs = []
    for run_dir in run_dirs:
        report, rows = load_rows(run_dir)
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
            report, figures, sample = load_run(args.run_dir, args.samples_per_language)
            out = write_report_page(args.run_dir, report, figures, sample, args.samples_per_language, args.out)
        print(f"report page: {out}")
        return 0

    parser = job_parser("jobs.report", __doc__, config="none")
    parser.add_argument("run_dir", type=Path, help="a finished run folder (holds report.json)")
    parser.add_argument("--compare", type=Path, metavar="OTHER_RUN", help="a second run folder to put side by side")
    parser.add_argument("--out", type=Path, help="where to write the page (default: in the run folder)")
    parser.add_argument(
        "--samples-per-language",
        type=int,
        default=DEFAULT_SAMPLES_PER_LANGUAGE,
        help="cap on the samples shown per language",
    )
    return run_main(parser, argv, body, [(NotARunFolder, 2)])


if __name__ == "__main__":
    sys.exit(main())
