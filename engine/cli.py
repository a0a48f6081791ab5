"""The command line every `jobs/*.py` shares: `--config` and `--set`, logging, and exit codes.

A job builds its parser with `job_parser`, adds what is its own, and hands `run_main` a body
(args → exit code) and the errors that mean "the input is wrong" with their exit codes; those
print one `error: ...` line instead of a traceback, after the job has left the Ray it started or
joined (so the line is the last thing on stderr, and an in-process caller gets no Ray left
running). Any other exception is a bug or a crash and keeps its traceback (exit code 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Literal

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

ErrorCodes = Sequence[tuple[type[BaseException] | tuple[type[BaseException], ...], int]]


def job_parser(
    module: str,
    doc: str | None,
    config: Literal["required", "optional", "none"] = "required",
    config_help: str = "YAML config (see configs/)",
    set_example: str = "compute.actors=2",
) -> argparse.ArgumentParser:
    """`python -m <module>`'s parser: the docstring's first paragraph as description, and unless
    `config="none"` the --config file and repeatable dotted `--set KEY=VALUE` overrides."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=(doc or "").split("\n\n")[0])
    if config != "none":
        parser.add_argument("--config", required=config == "required", help=config_help)
        parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"dotted override, e.g. --set {set_example}",
        )
    return parser


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)


def exit_code(error: BaseException, errors: ErrorCodes) -> int | None:
    """The code of the first (types, code) pair that `error` is an instance of; None if none is."""
    for types, code in errors:
        if isinstance(error, types):
            return code
    return None


def run_main(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    body: Callable[[argparse.Namespace], int],
    errors: ErrorCodes = (),
) -> int:
    """Parse `argv`, set up logging, run `body(args)` and return its exit code; an error listed in
    `errors` prints `error: <message>` on stderr and returns its code (first match wins)."""
    args = parser.parse_args(argv)
    setup_logging()
    ray_before = ray_connected()
    try:
        return body(args)
    except Exception as error:
        code = exit_code(error, errors)
        if code is None:
            raise
        if not ray_before and ray_connected():
            disconnect_ray()  # dying workers print their last logs now, not after the message
        print(f"error: {error}", file=sys.stderr)
        return code


def ray_connected() -> bool:
    """Whether this process is connected to Ray (without importing Ray for jobs that never do)."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def disconnect_ray() -> None:
    """Leave the Ray a failed job started or joined: a local one stops, a cluster keeps running."""
    sys.modules["ray"].shutdown()  # imported by the job: it is connected
