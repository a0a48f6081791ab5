"""The adequacy gate on the labelled pairs of tests/data/adequacy_pairs.jsonl: what the row
machine's checks accept per kind of pair and language group, the curve over similarity
thresholds, and the gate's speed.

    .venv/bin/python -m benchmarks.adequacy [--pairs FILE] [--out DIR]

Every pair goes through the same checks a draft meets in the row machine: the field checks of
engine/rows/validate.py (language ID with lid.176, length ratio, untranslated, degeneration) and
the gate of engine/text/adequacy.py at the config's defaults. tests/unit/test_adequacy_calibration.py
asserts the targets on the same numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from benchmarks.harness import RESULTS, ROOT, save_json
from engine.config import QualityConfig, ValidationConfig
from engine.languages import get_language
from engine.reasons import make_reason
from engine.text.adequacy import FieldPair, judge_pairs, scorable, similarities
from engine.text.spans import protect

PAIRS = ROOT / "tests/data/adequacy_pairs.jsonl"
# X-Instruction: {id, lang, text_id, instruction, kind}; kind correct (an instruction the text
# answers, written here), other_text (another text's instruction), junk (the shapes SmolLM2 wrote
# in the demo); text_id names a text of data/texts/target_texts.jsonl.
INSTRUCTION_PAIRS = ROOT / "tests/data/xinstruct_pairs.jsonl"
TEXTS = ROOT / "data/texts/target_texts.jsonl"
MUST_ACCEPT = ("correct",)
MUST_REJECT = ("nonsense", "other_seed", "copied")


@dataclass(frozen=True)
class Outcome:
    pair: dict
    group: str  # "latin" / "non_latin"
    form_reason: str | None  # the field checks' reason (language ID, length, ...)
    score: float | None  # cosine, None when the field has too little prose to score
    other_reason: str | None  # numbers or sentence count

    def reason(self, threshold: float | None, quality: QualityConfig) -> str | None:
        """The first reason the row machine gives at `threshold` (None: the config's own)."""
        if self.form_reason:
            return self.form_reason
        limit = threshold if threshold is not None else getattr(
            quality.min_similarity if self.group == "latin" else quality.min_similarity_non_latin, self.pair["field"])
        if quality.adequacy and self.score is not None and self.score < limit:
            return f"low_similarity:{self.pair['field']}:{self.score:.2f}"
        return self.other_reason


def load_pairs(path: str | Path = PAIRS) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(pairs: list[dict], encoder, langid, quality: QualityConfig = QualityConfig(),
             validation: ValidationConfig = ValidationConfig()) -> list[Outcome]:
    from engine.rows.validate import validate_translation

    quality_rest = quality.model_copy(update={"adequacy": False})
    fields = [FieldPair(p["field"], p["source"], p["candidate"]) for p in pairs]
    scored = [i for i, f in enumerate(fields) if scorable(f, quality.min_letters)]
    values = similarities(encoder, [fields[i].source for i in scored], [fields[i].translation for i in scored])
    score_of = dict(zip(scored, values))
    outcomes = []
    for i, (pair, field) in enumerate(zip(pairs, fields)):
        language = get_language(pair["lang"])
        # Spans are restored from the source, never written by the model: a candidate that lacks
        # one of the source's spans is what the row machine rejects as span_missing.
        missing = Counter(protect(field.source).spans) - Counter(protect(field.translation).spans)
        verdict = validate_translation({field.field: field.source}, {field.field: field.translation},
                                       {field.field: protect(field.translation).text}, language, langid, validation)
        latin = language.script == "Latin"
        rest = judge_pairs([field], {}, quality_rest, latin)
        form = make_reason("span_missing", next(iter(missing))) if missing else verdict.reason
        outcomes.append(Outcome(pair, "latin" if latin else "non_latin", form, score_of.get(i), rest.reason))
    return outcomes


def rates(outcomes: list[Outcome], quality: QualityConfig, threshold: float | None = None) -> dict:
    """Share accepted per kind, overall and per language group."""
    counts: dict = defaultdict(lambda: [0, 0])
    for outcome in outcomes:
        accepted = outcome.reason(threshold, quality) is None
        for key in (outcome.pair["kind"], f"{outcome.pair['kind']}/{outcome.group}"):
            counts[key][0] += accepted
            counts[key][1] += 1
    return {key: {"accepted": round(a / n, 3), "n": n} for key, (a, n) in sorted(counts.items())}


def curve(outcomes: list[Outcome], quality: QualityConfig) -> list[dict]:
    """Per threshold (one for every field and group): correct pairs accepted, junk rejected."""
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
    return {kind: {"accepted": round(sum(v >= limit for v in values) / len(values), 3), "n": len(values),
                   "min": round(min(values), 3), "max": round(max(values), 3)} for kind, values in sorted(by_kind.items())}


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
        (scratch / "pairs.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs[:: max(1, len(pairs) // subset)][:subset]),
                                             encoding="utf-8")
        argv, out = ["--pairs", str(scratch / "pairs.jsonl")], scratch  # a test's folder gets the run's JSON alone
    error = runner.module("benchmarks.adequacy", [*argv, "--out", str(out)])
    if error:
        raise RuntimeError(error)
    path = max(Path(out).glob("adequacy-*.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(path.read_text())
    return {
        "file": path.name if not subset else None, "encoder": report["encoder"], "pairs": report["pairs"],
        "speed_one_thread": report["speed_one_thread"],
        "at_defaults": {kind: row for kind, row in report["at_defaults"].items() if "/" not in kind},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default=str(PAIRS))
    parser.add_argument("--encoder", default=QualityConfig().encoder)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    from actors.embed import load_embedder
    from actors.langid import FastTextLangId

    encoder, langid, quality = load_embedder(args.encoder, threads=1), FastTextLangId(), QualityConfig(encoder=args.encoder)
    pairs = load_pairs(args.pairs)
    outcomes = evaluate(pairs, encoder, langid, quality)
    reasons: dict = defaultdict(lambda: defaultdict(int))
    for outcome in outcomes:
        reasons[outcome.pair["kind"]][(outcome.reason(None, quality) or "accepted").split(":")[0]] += 1
    report = {
        "date": date.today().isoformat(), "encoder": args.encoder, "pairs": len(pairs),
        "at_defaults": rates(outcomes, quality), "reasons_by_kind": {k: dict(v) for k, v in reasons.items()},
        "curve": curve(outcomes, quality), "xinstruction_at_default": instruction_rates(encoder, quality),
        "speed_one_thread": speed(encoder, pairs),
    }
    save_json(report, args.out, f"adequacy-{report['date']}")


if __name__ == "__main__":
    main()
