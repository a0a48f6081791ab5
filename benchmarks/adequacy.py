"""The adequacy gate on the labelled pairs of tests/data/adequacy_pairs.jsonl: what the row
machine's checks accept per kind of pair and language group, the curve over similarity
thresholds, and the gate's speed.

    .venv/bin/python -m benchmarks.adequacy [--pairs FILE] [--encoder NAME] [--out DIR]

Every pair goes through the same checks a draft meets in the row machine (engine.calibration.evaluate):
the field checks of engine/text/checks.py (language ID with lid.176, length ratio, untranslated,
degeneration) and the gate of engine/text/adequacy.py, at each language's thresholds from the
encoder's calibration (data/calibration/thresholds/<encoder>.json, python -m jobs.calibrate), a
language the calibration marks not separable at its best-effort thresholds (said in the JSON).
tests/integration/test_adequacy_calibration.py asserts the targets on the same numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

from benchmarks.harness import RESULTS, ROOT, save_json
from engine.calibration import MUST_ACCEPT, MUST_REJECT, Outcome, evaluate, limits_for  # noqa: F401  (evaluate, Outcome: read by tests)
from engine.config import QualityConfig, ValidationConfig

PAIRS = ROOT / "tests/data/adequacy_pairs.jsonl"
# X-Instruction: {id, lang, text_id, instruction, kind}; kind correct (an instruction the text
# answers, written here), other_text (another text's instruction), junk (the shapes SmolLM2 wrote
# in the demo); text_id names a text of data/texts/target_texts.jsonl.
INSTRUCTION_PAIRS = ROOT / "tests/data/xinstruct_pairs.jsonl"
TEXTS = ROOT / "data/texts/target_texts.jsonl"


def load_pairs(path: str | Path = PAIRS) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def thresholds(outcomes: list[Outcome], quality: QualityConfig) -> dict[str, dict]:
    """Each language's thresholds at the config (override, or the encoder's calibration; best
    effort where it is not separable) and where they come from."""
    found = {}
    for lang in sorted({o.pair["lang"] for o in outcomes}):
        decision = limits_for(quality, lang)
        found[lang] = {"thresholds": decision.limits.model_dump(), "source": decision.source}
    return found


def rates(outcomes: list[Outcome], quality: QualityConfig, threshold: float | None = None) -> dict:
    """Share accepted per kind, overall and per language group, at `threshold` for every field
    and language, or (None) at each language's thresholds."""
    limits = thresholds(outcomes, quality) if threshold is None else {}
    counts: dict = defaultdict(lambda: [0, 0])
    for outcome in outcomes:
        limit = (
            threshold if threshold is not None else limits[outcome.pair["lang"]]["thresholds"][outcome.pair["field"]]
        )
        accepted = outcome.reason(limit, quality.adequacy) is None
        for key in (outcome.pair["kind"], f"{outcome.pair['kind']}/{outcome.group}"):
            counts[key][0] += accepted
            counts[key][1] += 1
    return {key: {"accepted": round(a / n, 3), "n": n} for key, (a, n) in sorted(counts.items())}


def curve(outcomes: list[Outcome], quality: QualityConfig) -> list[dict]:
    """Per threshold (one for every field and language): correct pairs accepted, junk rejected."""
    points = []
    for step in range(76, 96):
        table = rates(outcomes, quality, step / 100)
        point = {"threshold": step / 100}
        for kind, row in table.items():
            if "/" not in kind:
                point[kind] = row["accepted"] if kind in MUST_ACCEPT else round(1 - row["accepted"], 3)
        points.append(point)
    return points


def instruction_rates(encoder, quality: QualityConfig = QualityConfig(), path: str | Path = INSTRUCTION_PAIRS) -> dict:
    """X-Instruction's gate (InstructionFitCheck) on the labelled instruction/text pairs: share
    accepted per kind at quality.xinstruct_min_similarity, and the scores."""
    from engine.text.adequacy import InstructionFitCheck

    texts = {row["id"]: row["text"] for row in load_pairs(TEXTS)}
    check, by_kind = InstructionFitCheck(encoder, quality), defaultdict(list)
    for pair in load_pairs(path):
        by_kind[pair["kind"]].append(check.score(pair["instruction"], texts[pair["text_id"]]))
    limit = quality.xinstruct_min_similarity
    return {
        kind: {
            "accepted": round(sum(v >= limit for v in values) / len(values), 3),
            "n": len(values),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }
        for kind, values in sorted(by_kind.items())
    }


def speed(encoder, pairs: list[dict], limit: int = 100) -> dict:
    """texts/s of encode_passages over both sides of the first `limit` pairs: the figure settles
    within a few hundred texts, and benchmarks.run's adequacy suite stays under a minute."""
    pairs = pairs[:limit]
    texts = [p["source"] for p in pairs] + [p["candidate"] for p in pairs]
    started = time.perf_counter()
    encoder.encode_passages(texts)
    seconds = time.perf_counter() - started
    return {"texts": len(texts), "seconds": round(seconds, 2), "texts_per_s": round(len(texts) / seconds, 1)}


def suite(sizes: dict, runner, out: Path) -> dict:
    """benchmarks.run's adequacy suite: this module's main in a process of its own (the encoder
    loads there); its JSON (adequacy-<date>.json) goes to `out` beside the run's, and its headline
    figures into the run's. sizes['adequacy_pairs'] takes every k-th pair only (tests)."""
    argv = []
    subset = sizes.get("adequacy_pairs")
    if subset:
        pairs = load_pairs()
        scratch = Path(runner.scratch("adequacy"))
        (scratch / "pairs.jsonl").write_text(
            "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs[:: max(1, len(pairs) // subset)][:subset]),
            encoding="utf-8",
        )
        argv, out = ["--pairs", str(scratch / "pairs.jsonl")], scratch  # a test's folder gets the run's JSON alone
    error = runner.module("benchmarks.adequacy", [*argv, "--out", str(out)])
    if error:
        raise RuntimeError(error)
    path = max(Path(out).glob("adequacy-*.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(path.read_text())
    return {
        "file": path.name if not subset else None,
        "encoder": report["encoder"],
        "pairs": report["pairs"],
        "speed_one_thread": report["speed_one_thread"],
        "at_defaults": {kind: row for kind, row in report["at_defaults"].items() if "/" not in kind},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=str(PAIRS))
    parser.add_argument("--encoder", default=QualityConfig().encoder)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    from actors.engines.embed import load_embedder
    from actors.engines.langid import load_langid

    encoder, langid, quality = (
        load_embedder(args.encoder, threads=1),
        load_langid(ValidationConfig()),
        QualityConfig(encoder=args.encoder),
    )
    pairs = load_pairs(args.pairs)
    outcomes = evaluate(pairs, encoder, langid, quality)
    limits = thresholds(outcomes, quality)
    reasons: dict = defaultdict(lambda: defaultdict(int))
    for outcome in outcomes:
        limit = limits[outcome.pair["lang"]]["thresholds"][outcome.pair["field"]]
        reasons[outcome.pair["kind"]][(outcome.reason(limit) or "accepted").split(":")[0]] += 1
    report = {
        "date": date.today().isoformat(),
        "encoder": args.encoder,
        "pairs": len(pairs),
        "thresholds": limits,
        "at_defaults": rates(outcomes, quality),
        "reasons_by_kind": {k: dict(v) for k, v in reasons.items()},
        "curve": curve(outcomes, quality),
        "xinstruction_at_default": instruction_rates(encoder, quality),
        "speed_one_thread": speed(encoder, pairs),
    }
    save_json(report, args.out, f"adequacy-{report['date']}")


if __name__ == "__main__":
    main()
