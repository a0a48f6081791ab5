"""The synthesis job: English seeds → planned (seed, language) tasks → translated and validated
rows on a Ray Data actor pool → run folder with accepted and rejected rows and a report.

    python -m jobs.synthesize --config configs/demo.yaml [--set section.key=value ...]

Runs the same under `ray job submit --working-dir . -- python -m jobs.synthesize ...` (it joins
the cluster) and locally (it starts an embedded Ray).
"""

from __future__ import annotations

import json
import logging
import sys
import time

from actors.dataflow.synthesis import PlanChanged, StageFailed, finish, generate, plan_job, qualify_languages
from engine.cli import job_parser, run_main
from engine.config import Config, ConfigError, load_config
from engine.inputs.seeds import SeedError
from engine.report.counts import render_summary
from jobs.build import build_run
from jobs.calibrate import prepare_gate

log = logging.getLogger("babelforge.synthesize")


def run(config: Config, dry_run: bool = False) -> dict | None:
    """The whole job: plan, qualification (qualify.enabled), generation, finalise and (build.enabled)
    the training sets; returns the report. `dry_run` stops after qualification and returns None."""
    started = time.monotonic()
    config = prepare_gate(config)  # the gate's thresholds per target, or a refusal, before Ray or any model starts
    planned = plan_job(config)
    if planned.todo.num_rows and (config.qualify.enabled or dry_run):
        planned, _ = qualify_languages(config, planned, dry_run)
    if dry_run:
        log.info(
            "dry run: qualification done; nothing else generated (the same command without --dry-run goes on "
            "from here: the probe rows are kept)"
        )
        return None
    if planned.todo.num_rows:
        generate(config, planned)
    report = finish(config, planned, time.monotonic() - started)
    if config.build.enabled:
        build_run(planned.folder, config)  # training sets from the accepted rows; counts go into report.json
        report = json.loads(planned.folder.read_text("report.json"))
    print(render_summary(report, str(planned.folder)), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    def body(args) -> int:
        report = run(load_config(args.config, args.overrides), dry_run=args.dry_run)
        if report is None:
            return 0
        return 0 if report["adds_up"] else 1  # the counts do not add up to the plan

    parser = job_parser("jobs.synthesize", __doc__, set_example="compute.actors=2")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="plan and run the qualification probe only: print each language's probe acceptance and "
        "cost estimate, generate nothing else (the probe rows are kept for the real run)",
    )
    return run_main(parser, argv, body, [((ConfigError, SeedError, PlanChanged, ValueError), 2), (StageFailed, 3)])


if __name__ == "__main__":
    sys.exit(main())
