"""The adequacy gate's calibration: thresholds fitted per target language and per encoder on
labelled pairs built by rule from data/calibration, stored as data beside the encoder's name
(data/calibration/thresholds/<encoder slug>.json, written by `python -m jobs.calibrate`).

The set (`build_set`, pure): per language, from data/calibration/texts/<lang>.jsonl and the English
fields of data/calibration/sources.jsonl (s01..s19):
- correct: a faithful translation of a source (one per source);
- nonsense: fluent nonsense in the language, paired with a source;
- other_seed: the correct translation of the next source of the same field class (in id order,
  wrapping around), paired with a source: right language, right kind of text, wrong meaning;
- copied: the English source itself as the candidate (not for an input: the text a task operates
  on may stay as it is, and the row machine lets it).
Field classes: `instruction` (short task statements) and `passage` (inputs and outputs); the
instruction threshold gates the instruction field, the passage threshold the input and output.

Scoring (`evaluate`): every pair through the checks a draft meets in the row machine: the span
check, the field checks of engine/text/checks.py (language ID with lid.176, length ratio,
untranslated, degeneration), the similarity (where the source has enough prose to score:
engine.text.adequacy.scorable) and the number and sentence checks. So `copied` is stopped where
the row machine stops it (untranslated, language ID) and counted through the same checks.

The fit (`fit_threshold`), per language and field class: first on meaning, the scored correct
translations against the scored translations of other seeds (where they separate, the midpoint of
the gap), then raised to stop the fluent nonsense no other check stops, but at most halfway to the
lowest correct score (chasing it further put thresholds right under the lowest correct translation
of the set, and real machine translations fell under them); the record says how much nonsense
still passes. Each language records `separates_meaning` (no correct translation under its
threshold, no other seed's translation over it) and `separable` (no fluent nonsense that the other
checks pass over it either). A language whose meanings the encoder cannot tell apart is refused
by a run (unless quality.allow_unseparable names it); one where only fluent nonsense scores as
high as correct translations is gated, and the run's log says how much of it gets through. A
class with fewer than MIN_PAIRS scored correct or other seed pairs takes its group's threshold
(latin / non_latin: the same fit on the pooled pairs of the group's languages that have their
own), and the record says so.

Rates are given per kind through every check, in-sample (at the fitted thresholds) and
leave-one-out (each fitted pair judged by the threshold fitted without it: the honest figure for
19 correct pairs against 27 junk ones a language), over all pairs and over the pairs whose fate the
threshold decides (`in_scope`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from engine.config import Config, QualityConfig, ResolvedGate, SimilarityThresholds, ValidationConfig
from engine.languages import get_language
from engine.reasons import make_reason

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "calibration"
THRESHOLDS = DATA / "thresholds"
FIELD_CLASSES = {"instruction": "instruction", "input": "passage", "output": "passage"}
CLASSES = ("instruction", "passage")
MUST_ACCEPT = ("correct",)
MUST_REJECT = ("nonsense", "other_seed", "copied")
FITTED_JUNK = ("nonsense", "other_seed")  # copied is the form checks' (untranslated, language ID)
KINDS = (*MUST_ACCEPT, *MUST_REJECT)
# engine.text.checks.MAY_STAY_UNCHANGED (not imported: this module's set building stays light).
MAY_STAY_UNCHANGED = frozenset({"input"})
# Scored correct and scored other_seed pairs a class needs for thresholds of its own. The instruction
# class has 9 sources, one of which (s08, "Solve for x: 3x + 7 = 22.") has too little prose to
# score: 6 lets two more translations be too short to score before a language falls back.
MIN_PAIRS = 6
GROUPS = ("latin", "non_latin")
RULE = (
    "per language and field class: the midpoint of the gap between the highest other_seed and the lowest correct "
    "score (overlapping: of the midpoints between neighbouring scores, those misclassifying fewest, the middle one); "
    "where they separate, raised as far as needed to stop the nonsense no other check stops, at most halfway to the "
    "lowest correct score; under MIN_PAIRS scored correct or other_seed pairs: the group's threshold, fitted the same "
    "way on the pooled pairs of the group's languages that have their own"
)


class CalibrationError(ValueError):
    """The gate cannot run as configured: no calibration for the encoder, or a target the encoder
    cannot separate. The message says what to do."""


def group_of(lang: str) -> str:
    """The script group a language falls back to: GROUPS[0] (latin) or GROUPS[1] (non_latin)."""
    return GROUPS[0] if get_language(lang).script == "Latin" else GROUPS[1]


def encoder_slug(encoder: str) -> str:
    """A file name for an encoder name: 'intfloat/multilingual-e5-small' → 'intfloat--multilingual-e5-small'."""
    return re.sub(r"[^a-z0-9._-]+", "--", encoder.strip().lower()).strip("-.") or "encoder"


def calibration_path(encoder: str, folder: Path = THRESHOLDS) -> Path:
    return Path(folder) / f"{encoder_slug(encoder)}.json"


# ---------------------------------------------------------------------------------------- the set


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def build_set(sources: Sequence[dict], texts: Iterable[dict]) -> list[dict]:
    """The labelled pairs, by rule (see the module's docstring): {lang, kind, field, class,
    source_id, source, candidate}, ordered by language, kind, then source id."""
    by_id = {row["id"]: row for row in sources}
    order = {sid: i for i, sid in enumerate(sorted(by_id))}
    per_lang: dict[str, list[dict]] = defaultdict(list)
    for row in texts:
        if row["source"] not in by_id:
            raise ValueError(f"{row['lang']}: unknown source {row['source']!r}")
        per_lang[row["lang"]].append(row)
    pairs = []
    for lang in sorted(per_lang):
        rows = per_lang[lang]
        correct = {row["source"]: row["text"] for row in rows if row["kind"] == "correct"}

        def pair(kind: str, sid: str, candidate: str, lang: str = lang) -> dict:
            field = by_id[sid]["field"]
            return {
                "lang": lang,
                "kind": kind,
                "field": field,
                "class": FIELD_CLASSES[field],
                "source_id": sid,
                "source": by_id[sid]["text"],
                "candidate": candidate,
            }

        out = [pair("correct", sid, text) for sid, text in correct.items()]
        out += [pair(row["kind"], row["source"], row["text"]) for row in rows if row["kind"] not in ("correct",)]
        for cls in CLASSES:
            translated = sorted((sid for sid in correct if FIELD_CLASSES[by_id[sid]["field"]] == cls), key=order.get)
            for i, sid in enumerate(translated if len(translated) > 1 else ()):
                out.append(pair("other_seed", sid, correct[translated[(i + 1) % len(translated)]]))
        # An input may stay as it is (the text a task operates on): copying it is no error there.
        out += [
            pair("copied", sid, by_id[sid]["text"])
            for sid in sorted(by_id, key=order.get)
            if by_id[sid]["field"] not in MAY_STAY_UNCHANGED
        ]
        kind_order = {kind: i for i, kind in enumerate(KINDS)}
        pairs += sorted(
            out, key=lambda p: (kind_order.get(p["kind"], len(KINDS)), p["kind"], order[p["source_id"]], p["candidate"])
        )
    return pairs


def load_set(folder: Path = DATA, languages: Iterable[str] | None = None) -> list[dict]:
    """The calibration set from `folder` (sources.jsonl, texts/<lang>.jsonl), every language whose
    file is there, or only `languages`."""
    folder = Path(folder)
    wanted = set(languages) if languages is not None else None
    texts = []
    for path in sorted((folder / "texts").glob("*.jsonl")):
        if wanted is None or path.stem in wanted:
            texts += read_jsonl(path)
    return build_set(read_jsonl(folder / "sources.jsonl"), texts)


def set_digest(pairs: Sequence[dict]) -> str:
    """sha256 of the set's canonical JSON: a changed, added or removed pair changes it."""
    canonical = json.dumps(
        sorted(pairs, key=lambda p: json.dumps(p, sort_keys=True)), sort_keys=True, ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def script_ratios(pairs: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per script of the translation's language, over the correct pairs: English letters of the
    source per letter of the translation (`letters`) and per script-fair unit (`units`,
    engine.text.adequacy.text_units), spans removed: what engine.text.adequacy._UNIT_WEIGHTS is
    measured by, and how fair it comes out."""
    from engine.text.adequacy import letter_count, text_units, visible_text

    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for pair in pairs:
        if pair["kind"] == "correct":
            entry = totals[get_language(pair["lang"]).script]
            entry[0] += letter_count(visible_text(pair["source"]))
            entry[1] += letter_count(visible_text(pair["candidate"]))
            entry[2] += text_units(visible_text(pair["candidate"]))
    return {
        script: {"letters": round(en / letters, 2), "units": round(en / units, 2)}
        for script, (en, letters, units) in sorted(totals.items())
        if letters and units
    }


# ---------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Outcome:
    """One pair through the row machine's checks: what stopped it before the similarity (form),
    its cosine (None: too little prose to score) and what stopped it after (numbers, sentences)."""

    pair: dict
    form_reason: str | None
    score: float | None
    other_reason: str | None
    source_scored: bool = True  # the source has enough prose to score (the gate can judge this pair at all)

    @property
    def group(self) -> str:
        return group_of(self.pair["lang"])

    def reason(self, limit: float | None, adequacy: bool = True) -> str | None:
        """The first reason the row machine gives with this field's threshold `limit` (None: not gated)."""
        if self.form_reason:
            return self.form_reason
        if adequacy and limit is not None and self.score is not None and self.score < limit:
            return make_reason("low_similarity", f"{self.pair['field']}:{self.score:.2f}")
        return self.other_reason

    def accepted(self, limit: float | None) -> bool:
        return self.reason(limit) is None


def evaluate(
    pairs: Sequence[dict],
    encoder,
    langid,
    quality: QualityConfig = QualityConfig(),
    validation: ValidationConfig = ValidationConfig(),
) -> list[Outcome]:
    """Every pair ({lang, field, source, candidate, ...}) through the checks a draft meets in the
    row machine, the similarity scored but not yet judged (thresholds are what is fitted)."""
    from engine.text.adequacy import FieldPair, judge_pairs, scorable, similarities, text_units, visible_text
    from engine.text.checks import validate_translation
    from engine.text.spans import protect

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
        verdict = validate_translation(
            {field.field: field.source},
            {field.field: field.translation},
            {field.field: protect(field.translation).text},
            language,
            langid,
            validation,
        )
        rest = judge_pairs([field], {}, quality_rest, None)
        form = make_reason("span_missing", next(iter(missing))) if missing else verdict.reason
        outcomes.append(
            Outcome(
                pair, form, score_of.get(i), rest.reason, text_units(visible_text(field.source)) >= quality.min_letters
            )
        )
    return outcomes


# ---------------------------------------------------------------------------------------- the fit


@dataclass(frozen=True)
class Point:
    """One scored pair of a fit: its cosine, its kind (correct, nonsense, other_seed), and whether
    nothing but the threshold decides it: every correct one (the threshold should never be what
    loses a good translation, whatever the other checks make of it) and the junk that no other
    check stops (the form, number and sentence checks pass it)."""

    score: float
    kind: str
    decides: bool

    @property
    def correct(self) -> bool:
        return self.kind in MUST_ACCEPT


# Which points a count of misclassified points takes (see ClassFit.errors).
LEVELS = (
    (
        "meaning",
        lambda p: p.kind != "nonsense",
    ),  # every correct vs every other seed's translation: what the threshold is fitted on
    (
        "nonsense",
        lambda p: p.decides and p.kind == "nonsense",
    ),  # fluent nonsense no other check stops: recorded, not fitted
    ("all", lambda p: True),
)


def _misses(thresholds: np.ndarray, points: Sequence[Point], level: str) -> np.ndarray:
    """Misclassified points of a level at each threshold (a correct one under it, a junk one at or over it)."""
    counts = dict(LEVELS)[level]
    chosen = [p for p in points if counts(p)]
    if not chosen:
        return np.zeros(len(thresholds), dtype=np.int64)
    scores = np.array([p.score for p in chosen])[None, :]
    correct = np.array([p.correct for p in chosen])[None, :]
    wrong = np.where(correct, scores < thresholds[:, None], scores >= thresholds[:, None])
    return wrong.sum(axis=1)


@dataclass(frozen=True)
class ClassFit:
    threshold: float
    points: tuple[Point, ...]

    def errors(self, level: str) -> int:
        return int(_misses(np.array([self.threshold]), self.points, level)[0])

    @property
    def separates_meaning(self) -> bool:
        """Every correct translation at or over the threshold and every other seed's translation
        under it (whether or not another check would stop it: this is the encoder's own ability to
        tell this language's meanings apart)."""
        return self.errors("meaning") == 0

    @property
    def separable(self) -> bool:
        """That, and the fluent nonsense nothing else stops under the threshold too."""
        return self.separates_meaning and self.errors("nonsense") == 0

    def record(self) -> dict:
        decided = [p for p in self.points if p.decides]
        return {
            "threshold": self.threshold,
            "separable": self.separable,
            "separates_meaning": self.separates_meaning,
            "errors": self.errors("meaning") + self.errors("nonsense"),
            "nonsense_passed": self.errors("nonsense"),
            **_separation(decided),
            "scores": _separation(self.points),
        }


def _separation(points: Sequence[Point]) -> dict:
    """Score ranges of the correct and junk points (and per junk kind), the gap between them
    (lowest correct - highest junk; negative: they overlap) and how many points lie in the overlap."""
    correct = [p.score for p in points if p.correct]
    junk = [p.score for p in points if not p.correct]
    found = {
        "correct": _spread(correct),
        "junk": _spread(junk),
        "gap": None,
        "overlap": 0,
        **{kind: _spread([p.score for p in points if p.kind == kind]) for kind in FITTED_JUNK},
    }
    if correct and junk:
        low, high = min(correct), max(junk)
        found["gap"] = round(low - high, 4)
        found["overlap"] = sum(low <= v <= high for v in (*correct, *junk)) if low <= high else 0
    return found


def _spread(values: Sequence[float]) -> dict:
    return {"n": len(values), "min": round(min(values), 4), "max": round(max(values), 4)} if values else {"n": 0}


def _candidates(points: Sequence[Point]) -> np.ndarray:
    """Thresholds worth trying: below every score, between neighbouring scores, above every score."""
    values = np.unique(np.array([p.score for p in points]))
    return np.concatenate([[values[0] - 1e-4], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-4]])


def fit_threshold(points: Sequence[Point]) -> ClassFit:
    """One class's threshold, in two steps.

    Meaning: the correct translations against the other seeds' translations (all of them scored,
    whatever the other checks make of them: the encoder's own separation). Where they separate,
    the midpoint of the gap between the highest other seed's and the lowest correct score (the
    widest margin on both sides); where they overlap, of the candidates between neighbouring
    scores, those that misclassify fewest, the middle one.

    Nonsense: where the meanings separate, the threshold then rises as far as it must to stop the
    fluent nonsense that no other check stops, but no further than halfway from the midpoint to the
    lowest correct score: it keeps at least half the margin the midpoint had. Both ends were
    measured: left at the midpoint, word salad of the "why is the sky blue" source (0.85-0.88)
    passed in five languages of tests/data/adequacy_pairs.jsonl; raised up to the lowest correct
    score (pt instructions: 0.928, a nonsense one at 0.927), a real run lost half its correct
    machine-translated instructions (0.87-0.93). What still passes is recorded (nonsense_passed).
    Rounded to 4 decimals where that changes nothing."""
    meaning = [p for p in points if dict(LEVELS)["meaning"](p)]
    if not any(p.correct for p in meaning) or not any(p.kind == "other_seed" for p in meaning):
        raise ValueError("a threshold needs correct translations and other seeds' translations")
    candidates = _candidates(meaning)
    errors = _misses(candidates, meaning, "all")
    tied = candidates[errors == errors.min()]
    threshold = float(tied[len(tied) // 2])
    if errors.min() == 0:
        ceiling = (threshold + min(p.score for p in meaning if p.correct)) / 2
        # Just over each score in the window: halfway to the next score, or the ceiling if nearer.
        values = np.unique(np.array([p.score for p in points] + [ceiling]))
        above = [min((low + high) / 2, ceiling) for low, high in zip(values, values[1:]) if threshold <= low < ceiling]
        window = np.array([threshold, *above])
        passed = _misses(window, points, "nonsense")
        threshold = float(window[passed == passed.min()][0])  # the lowest that stops the most
    exact, rounded = ClassFit(threshold, tuple(points)), ClassFit(round(threshold, 4), tuple(points))
    same = all(exact.errors(level) == rounded.errors(level) for level, _ in LEVELS)
    return rounded if same else exact


def _point(outcome: Outcome) -> Point | None:
    """The outcome as a point of its class's fit; None when it is not one (copied, unscored)."""
    kind = outcome.pair["kind"]
    if outcome.score is None or kind not in (*MUST_ACCEPT, *FITTED_JUNK):
        return None
    return Point(
        outcome.score, kind, kind in MUST_ACCEPT or (outcome.form_reason is None and outcome.other_reason is None)
    )


def _thresholds(instruction: float, passage: float) -> dict[str, float]:
    return {"instruction": instruction, "input": passage, "output": passage}


def in_scope(outcome: Outcome) -> bool:
    """Whether the similarity threshold decides this pair's fate, so the calibration can be held to
    it: a correct translation that every other check passes (one the form checks reject never meets
    the threshold; one a number or sentence check rejects is lost whatever the threshold), a junk
    pair whose source has enough prose to score (a source of 10 letters is not scored, whatever
    stands beside it; junk another check stops counts as rejected)."""
    if outcome.pair["kind"] in MUST_ACCEPT:
        return outcome.score is not None and outcome.form_reason is None and outcome.other_reason is None
    return outcome.source_scored


def _rates(outcomes: Sequence[Outcome], limit_of: Callable[[int, Outcome], float | None]) -> dict:
    """Per kind, through every check: the share accepted (correct) or rejected (the rest) and the
    pairs missed, of all pairs and (gate, gate_n) of those in the gate's scope (in_scope)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for i, outcome in enumerate(outcomes):
        entry = counts[outcome.pair["kind"]]
        accepted = outcome.accepted(limit_of(i, outcome))
        missed = (not accepted) if outcome.pair["kind"] in MUST_ACCEPT else accepted
        entry[0] += missed
        entry[1] += 1
        if in_scope(outcome):
            entry[2] += missed
            entry[3] += 1
    table = {}
    for kind in sorted(counts, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k)):
        missed, n, scope_missed, scope_n = counts[kind]
        key = "accepted" if kind in MUST_ACCEPT else "rejected"
        table[kind] = {
            key: round(1 - missed / n, 3),
            "n": n,
            "missed": missed,
            "gate": round(1 - scope_missed / scope_n, 3) if scope_n else None,
            "gate_n": scope_n,
        }
    return table


def _wrong_pairs(outcomes: Sequence[Outcome], limits: dict[str, float]) -> list[dict]:
    """The pairs the checks get wrong at the language's thresholds, with why (in-sample)."""
    found = []
    for outcome in outcomes:
        reason = outcome.reason(limits[outcome.pair["class"]])
        if (reason is not None) == (outcome.pair["kind"] in MUST_ACCEPT):
            found.append(
                {
                    "kind": outcome.pair["kind"],
                    "source": outcome.pair["source_id"],
                    "field": outcome.pair["field"],
                    "reason": reason or "accepted",
                    "score": None if outcome.score is None else round(outcome.score, 4),
                    "gate_scope": in_scope(outcome),
                }
            )
    return found


def fit_calibration(
    outcomes: Sequence[Outcome],
    encoder: str,
    digest: str,
    date: str,
    min_pairs: int = MIN_PAIRS,
    extra: dict | None = None,
) -> dict:
    """The calibration record (what jobs.calibrate writes) from scored pairs of every language."""
    points: dict[tuple[str, str], list[Point]] = defaultdict(list)
    for outcome in outcomes:
        point = _point(outcome)
        if point is not None:
            points[(outcome.pair["lang"], outcome.pair["class"])].append(point)
    langs = sorted({o.pair["lang"] for o in outcomes})
    own: dict[tuple[str, str], ClassFit] = {}
    for lang in langs:
        for cls in CLASSES:
            mine = points.get((lang, cls), [])
            if sum(p.correct for p in mine) >= min_pairs and sum(p.kind == "other_seed" for p in mine) >= min_pairs:
                own[(lang, cls)] = fit_threshold(mine)
    groups: dict[str, dict] = {}
    group_fit: dict[tuple[str, str], ClassFit] = {}
    for group in GROUPS:
        members = [lang for lang in langs if group_of(lang) == group]
        classes = {}
        for cls in CLASSES:
            # The group's languages with thresholds of their own; none: every such language.
            pooled = [lang for lang in members if (lang, cls) in own] or [lang for lang in langs if (lang, cls) in own]
            if pooled:
                group_fit[(group, cls)] = fit_threshold([p for lang in pooled for p in own[(lang, cls)].points])
                classes[cls] = group_fit[(group, cls)].record() | {"languages": pooled}
        if len(classes) == len(CLASSES):
            groups[group] = {
                "thresholds": _thresholds(*(group_fit[(group, cls)].threshold for cls in CLASSES)),
                "classes": classes,
            }

    by_lang: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_lang[outcome.pair["lang"]].append(outcome)
    languages = {}
    for lang in langs:
        fits, sources = {}, {}
        for cls in CLASSES:
            if (lang, cls) in own:
                fits[cls], sources[cls] = own[(lang, cls)], "own"
            elif (group_of(lang), cls) in group_fit:
                fits[cls], sources[cls] = group_fit[(group_of(lang), cls)], f"group:{group_of(lang)}"
        if len(fits) < len(CLASSES):
            continue  # no threshold anywhere for a class: nothing in the set to fit
        mine = by_lang[lang]
        limits = {cls: fits[cls].threshold for cls in CLASSES}
        own_classes = [cls for cls in CLASSES if sources[cls] == "own"]

        def flag(name: str, fits: dict = fits, own_classes: list = own_classes) -> bool | None:
            """False as soon as a class of its own fails it; None (unknown) where a class took the group's."""
            if any(not getattr(fits[cls], name) for cls in own_classes):
                return False
            return True if len(own_classes) == len(CLASSES) else None

        classes = {}
        for cls in CLASSES:
            if sources[cls] == "own":
                classes[cls] = fits[cls].record() | {"source": "own"}
            else:  # the group's threshold, with this language's own (too few) pairs against it
                mine_points = points.get((lang, cls), [])
                classes[cls] = {
                    "threshold": fits[cls].threshold,
                    "source": sources[cls],
                    **_separation([p for p in mine_points if p.decides]),
                    "scores": _separation(mine_points),
                }
        languages[lang] = {
            "script": get_language(lang).script,
            "group": group_of(lang),
            "separable": flag("separable"),
            "separates_meaning": flag("separates_meaning"),
            "fallback": sorted({sources[cls] for cls in CLASSES if sources[cls] != "own"}) or None,
            "thresholds": _thresholds(limits["instruction"], limits["passage"]),
            "classes": classes,
            "kinds": _kind_spreads(mine),
            "in_sample": _rates(mine, lambda i, o, limits=limits: limits[o.pair["class"]]),
            "misses": _wrong_pairs(mine, limits),
            "leave_one_out": _leave_one_out(mine, limits, set(own_classes)),
        }
    return {
        "encoder": encoder,
        "date": date,
        "set": {"digest": digest, "pairs": len(outcomes), "languages": len(langs)},
        "rule": RULE,
        "min_pairs": min_pairs,
        **(extra or {}),
        "summary": summarise(languages),
        "groups": groups,
        "languages": languages,
    }


def _kind_spreads(outcomes: Sequence[Outcome]) -> dict:
    """Score range per kind and class (unscored pairs counted apart)."""
    found: dict[str, dict] = {}
    for kind in KINDS:
        for cls in CLASSES:
            mine = [o for o in outcomes if o.pair["kind"] == kind and o.pair["class"] == cls]
            if mine:
                values = [o.score for o in mine if o.score is not None]
                found[f"{kind}/{cls}"] = _spread(values) | {"unscored": len(mine) - len(values)}
    return found


def _leave_one_out(outcomes: Sequence[Outcome], limits: dict[str, float], own_classes: set[str]) -> dict:
    """Rates per kind where each fitted pair (a scored correct or junk pair of a class with its own
    threshold) is judged by the threshold fitted on the language's other pairs of its class."""
    pools: dict[str, list[Point]] = {cls: [] for cls in CLASSES}
    slot: dict[int, tuple[str, int]] = {}
    for i, outcome in enumerate(outcomes):
        point = _point(outcome)
        if point is not None and outcome.pair["class"] in own_classes:
            slot[i] = (outcome.pair["class"], len(pools[outcome.pair["class"]]))
            pools[outcome.pair["class"]].append(point)

    def limit_of(i: int, outcome: Outcome) -> float | None:
        if i not in slot:
            return limits[outcome.pair["class"]]
        cls, k = slot[i]
        rest = pools[cls][:k] + pools[cls][k + 1 :]
        if not any(p.correct for p in rest) or not any(p.kind == "other_seed" for p in rest):
            return limits[cls]
        return fit_threshold(rest).threshold

    return _rates(outcomes, limit_of)


def summarise(languages: dict[str, dict]) -> dict:
    """Which languages are separable (correct translations from every junk kind), which only
    separate meanings (correct from another seed's translation; some fluent nonsense scores as
    high), which do not even that (a run refuses them), which fall back to their group; and over
    the separable ones, those a run gates on thresholds of their own (meaning separated, no
    fallback) and all: the least and the median share of correct pairs accepted and of each junk
    kind rejected, of all pairs and of those in the gate's scope, in-sample and leave-one-out."""
    summary: dict = {
        "languages": len(languages),
        "separable": sorted(lang for lang, r in languages.items() if r["separable"] is True),
        "not_separable": sorted(lang for lang, r in languages.items() if r["separable"] is False),
        "separates_meaning_only": sorted(
            lang for lang, r in languages.items() if r["separates_meaning"] and r["separable"] is False
        ),
        "not_separating_meaning": sorted(lang for lang, r in languages.items() if r["separates_meaning"] is False),
        "fallback": {lang: r["fallback"] for lang, r in sorted(languages.items()) if r["fallback"]},
    }
    gated = [lang for lang, r in languages.items() if r["separates_meaning"] is True]
    for estimate in ("in_sample", "leave_one_out"):
        summary[estimate] = {}
        for over, records in (
            ("separable", [languages[lang] for lang in summary["separable"]]),
            ("gated", [languages[lang] for lang in gated]),
            ("all", list(languages.values())),
        ):
            entry = {}
            for kind in KINDS:
                rows = [r[estimate][kind] for r in records if kind in r[estimate]]
                if rows:
                    key = "accepted" if kind in MUST_ACCEPT else "rejected"
                    values, gate = [row[key] for row in rows], [row["gate"] for row in rows if row["gate"] is not None]
                    entry[kind] = {
                        "min": min(values),
                        "median": round(statistics.median(values), 3),
                        "gate_min": min(gate) if gate else None,
                        "gate_median": round(statistics.median(gate), 3) if gate else None,
                    }
            summary[estimate][over] = entry
    return summary


def table_lines(calibration: dict) -> list[str]:
    """The per-language table jobs.calibrate prints (and the tests, with -s). Per field class
    (instruction/passage): the threshold; the lowest correct and highest junk score of the pairs
    only the similarity decides; pairs on the wrong side of the threshold; then the shares through
    every check, correct accepted and nonsense / other_seed / copied rejected: in-sample over all
    pairs, in-sample over the pairs in the gate's scope (engine.calibration.in_scope), and
    leave-one-out over all pairs."""
    lines = [
        f"calibration of {calibration['encoder']}: {calibration['set']['pairs']} pairs, "
        f"{calibration['set']['languages']} languages (set {calibration['set']['digest'][:19]}, {calibration['date']})",
        f"{'lang':5} {'m/n':4} {'from':16} {'thresh i/p':12} {'correct>= i/p':14} {'junk<= i/p':14} {'m/n':5}  "
        f"{'in-sample cor/non/oth/cop':26} {'gate scope':20} leave-one-out",
    ]
    for lang, record in calibration["languages"].items():
        classes = record["classes"]

        def both(value, classes: dict = classes) -> str:
            return "/".join(value(classes[c]) for c in CLASSES)

        def rates(estimate: str, column: str | None = None, record: dict = record) -> str:
            cells = []
            for kind in KINDS:
                row = record[estimate].get(kind)
                value = None if row is None else row[column] if column else row.get("accepted", row.get("rejected"))
                cells.append("-" if value is None else f"{value:.2f}")
            return " ".join(cells)

        flags = {True: "y", False: "N", None: "?"}
        sep = f"{flags[record['separates_meaning']]}/{flags[record['separable']]}"
        source = ",".join(record["fallback"]) if record["fallback"] else "own"
        nonsense = sum(c.get("nonsense_passed", 0) for c in classes.values())
        wrong = f"{sum(c.get('errors', 0) for c in classes.values()) - nonsense}/{nonsense}"
        thresholds = both(lambda c: f"{c['threshold']:.3f}")
        lowest = both(lambda c: f"{c['correct']['min']:.3f}" if c["correct"]["n"] else "-")
        highest = both(lambda c: f"{c['junk']['max']:.3f}" if c["junk"]["n"] else "-")
        lines.append(
            f"{lang:5} {sep:4} {source:16} {thresholds:12} {lowest:14} {highest:14} {wrong:5}  "
            f"{rates('in_sample'):26} {rates('in_sample', 'gate'):20} {rates('leave_one_out')}"
        )
    summary = calibration["summary"]
    lines.append(
        "m/n: separates meaning (correct vs another seed's translation) / separates every junk kind "
        "(fluent nonsense too); the second m/n: pairs on the wrong side of the threshold that nothing else stops"
    )
    lines.append(f"separable (every junk kind): {', '.join(summary['separable']) or 'none'}")
    lines.append(
        f"separating meaning only (some fluent nonsense scores as high as correct translations; gated, "
        f"with a warning): {', '.join(summary['separates_meaning_only']) or 'none'}"
    )
    lines.append(
        f"not separating meaning (a run refuses them): {', '.join(summary['not_separating_meaning']) or 'none'}"
    )
    lines.append(f"group fallback: {', '.join(f'{k} ({v[0]})' for k, v in summary['fallback'].items()) or 'none'}")
    for estimate in ("in_sample", "leave_one_out"):
        for over in ("separable", "gated", "all"):
            parts = [
                f"{kind} min {row['min']:.2f} median {row['median']:.2f}"
                + (f" (gate scope min {row['gate_min']:.2f})" if row["gate_min"] is not None else "")
                for kind, row in summary[estimate][over].items()
            ]
            lines.append(f"{estimate}, {over} languages: " + "; ".join(parts))
    return lines


# ---------------------------------------------------------------------------------------- files


def write_calibration(calibration: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@lru_cache(maxsize=16)
def _read_cached(path: str, mtime: float) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_calibration(path: str | Path) -> dict:
    path = Path(path)
    return _read_cached(str(path), path.stat().st_mtime)


def missing_message(encoder: str, path: str | Path) -> str:
    return (
        f"the adequacy gate has no calibration for encoder '{encoder}' (looked for {path}): run "
        f"`python -m jobs.calibrate --encoder {encoder}` first (a minute or two on a CPU), set "
        "quality.calibrate: auto to calibrate at the start of the run, "
        "or quality.adequacy: false to run without the gate"
    )


def limits_of(record: dict) -> SimilarityThresholds:
    return SimilarityThresholds(**record["thresholds"])


@dataclass(frozen=True)
class Decision:
    """What the gate does for one target: its thresholds (None: not gated) and where they come from."""

    limits: SimilarityThresholds | None
    source: str  # own, group:<g>, best_effort, override
    refused: str | None = None  # why the target cannot run gated (None: it can)


def decide(calibration: dict, lang: str, allow_unseparable: Iterable[str] = ()) -> Decision:
    """A target's thresholds from a calibration: its own, its group's (too few or no pairs), or a
    refusal when the encoder cannot tell its meanings apart (a correct translation from another
    seed's: separates_meaning false) unless `allow_unseparable` names it (then its best-effort
    thresholds). A language whose correct translations the encoder tells from another seed's but
    not from all fluent nonsense is gated (the record and the run's log say how much got through)."""
    record = calibration["languages"].get(lang)
    if record is None:
        group = calibration["groups"].get(group_of(lang))
        if group is None:
            return Decision(None, "none", f"{lang}: no calibration pairs and no {group_of(lang)} group threshold")
        return Decision(SimilarityThresholds(**group["thresholds"]), f"group:{group_of(lang)}")
    if record["separates_meaning"] is False:
        if lang in set(allow_unseparable):
            return Decision(limits_of(record), "best_effort")
        bad = {
            cls: fit
            for cls, fit in record["classes"].items()
            if fit.get("source") == "own" and not fit["separates_meaning"]
        }
        detail = ", ".join(
            f"{cls}: correct >= {fit['correct']['min']:.3f}, another seed's translation <= "
            f"{fit['other_seed'].get('max', float('nan')):.3f}"
            for cls, fit in bad.items()
        )
        return Decision(None, "own", f"{lang} ({detail})")
    return Decision(limits_of(record), "own" if not record["fallback"] else record["fallback"][0])


def nonsense_note(calibration: dict, lang: str) -> str | None:
    """What the calibration says its thresholds let through in a language: the fluent nonsense pairs
    no other check stops that score over them (None: none)."""
    record = calibration["languages"].get(lang) or {}
    passed = sum(fit.get("nonsense_passed", 0) for fit in (record.get("classes") or {}).values())
    total = (record.get("in_sample") or {}).get("nonsense", {}).get("n", 0)
    return f"{passed} of {total} nonsense calibration pairs pass every check" if passed else None


def override_of(quality: QualityConfig, lang: str) -> SimilarityThresholds | None:
    return quality.min_similarity if get_language(lang).script == "Latin" else quality.min_similarity_non_latin


def find_calibration(quality: QualityConfig, run_dir: str | None = None) -> tuple[str, dict | None]:
    """(where, calibration or None): quality.calibration if set, else the shipped file for the
    encoder; failing that, with calibrate: auto, the run folder's (made by an earlier start of the
    same run), or where the run would write one."""
    path = Path(quality.calibration) if quality.calibration else calibration_path(quality.encoder)
    if path.exists():
        return _shown(path), read_calibration(path)
    if quality.calibrate == "auto" and run_dir is not None:
        from engine.runfolder import RunFolder

        folder, name = RunFolder(run_dir), f"calibration-{encoder_slug(quality.encoder)}.json"
        if folder.exists(name):
            return folder.path(name), json.loads(folder.read_text(name))
        return folder.path(name), None
    return _shown(path), None


def _shown(path: Path) -> str:
    """A path as the logs and the report show it: relative to the project where it lies inside."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def resolve_gate(config: Config, calibrate: Callable[[Config], tuple[str, dict]] | None = None) -> Config:
    """The config with quality.resolved_gate set: every target's thresholds, from an explicit
    override or the encoder's calibration. Raises CalibrationError when there is no calibration
    (and calibrate: auto did not make one with `calibrate(config)` → (where, calibration)), when it
    was fitted for another encoder, or when a target is one the encoder cannot separate. Nothing to
    resolve with the gate off or for xinstruction (its check has a threshold of its own)."""
    from engine.recipes import recipe_spec

    quality = config.quality
    if not quality.adequacy or not recipe_spec(config).calibrated_gate:
        return config
    targets = list(config.languages.targets)
    needed = [lang for lang in targets if override_of(quality, lang) is None]
    decisions = {lang: Decision(override_of(quality, lang), "override") for lang in targets if lang not in needed}
    where, calibration, digest, date = "", None, "", ""
    if needed:
        where, calibration = find_calibration(quality, config.run.output_dir)
        if calibration is None:
            if quality.calibrate != "auto" or calibrate is None:
                raise CalibrationError(missing_message(quality.encoder, where))
            log.info("no calibration for encoder %s: calibrating it now (quality.calibrate: auto)", quality.encoder)
            where, calibration = calibrate(config)
        if calibration["encoder"] != quality.encoder:
            raise CalibrationError(
                f"{where} was fitted for encoder '{calibration['encoder']}', the run's is "
                f"'{quality.encoder}': run `python -m jobs.calibrate --encoder {quality.encoder}`"
            )
        decisions |= {lang: decide(calibration, lang, quality.allow_unseparable) for lang in needed}
        refused = [d.refused for d in decisions.values() if d.refused]
        if refused:
            raise CalibrationError(
                f"encoder '{quality.encoder}' cannot tell a correct translation from another seed's in "
                f"{len(refused)} target language(s), by its calibration {where}: {'; '.join(refused)}. "
                "Use an encoder that separates them (python -m jobs.calibrate --encoder NAME says which do), "
                "drop these targets, let them run at the calibration's best-effort thresholds with "
                "quality.allow_unseparable: [codes], or turn the gate off with quality.adequacy: false"
            )
        leaky = {
            lang: note
            for lang in needed
            if decisions[lang].source == "own" and (note := nonsense_note(calibration, lang))
        }
        if leaky:
            log.warning(
                "adequacy gate: %s does not separate all fluent nonsense from correct translations in %d target(s) "
                "(the number and sentence checks stop some of the rest): %s",
                quality.encoder,
                len(leaky),
                "; ".join(f"{lang}: {note}" for lang, note in leaky.items()),
            )
        digest, date = calibration["set"]["digest"], calibration["date"]
        for lang, decision in decisions.items():
            if decision.source.startswith("group:"):
                log.info(
                    "adequacy gate: %s has too few calibration pairs; it takes the %s group's thresholds",
                    lang,
                    decision.source[6:],
                )
            elif decision.source == "best_effort":
                log.warning(
                    "adequacy gate: %s is not separable by %s; it runs at the calibration's best-effort thresholds "
                    "(quality.allow_unseparable)",
                    lang,
                    quality.encoder,
                )
    resolved = ResolvedGate(
        encoder=quality.encoder,
        file=where,
        digest=digest,
        date=date,
        languages={lang: d.limits for lang, d in decisions.items()},
        sources={lang: d.source for lang, d in decisions.items()},
    )
    return config.model_copy(update={"quality": quality.model_copy(update={"resolved_gate": resolved})})


def limits_for(quality: QualityConfig, lang: str) -> Decision:
    """A language's thresholds for measuring (benchmarks, reports): an override, else its
    calibration's, best effort where the encoder cannot separate it (source says best_effort)."""
    override = override_of(quality, lang)
    if override is not None:
        return Decision(override, "override")
    where, calibration = find_calibration(quality)
    if calibration is None:
        raise CalibrationError(missing_message(quality.encoder, where))
    decision = decide(calibration, lang, [lang])
    if decision.refused:
        raise CalibrationError(f"no thresholds for {decision.refused} in {where}")
    return decision


def gate_limits(quality: QualityConfig, language) -> SimilarityThresholds | None:
    """A language's thresholds for the gate (engine.text.adequacy.AdequacyCheck): an explicit
    override, the run's resolved gate, or (outside a job: benchmarks, tests) the encoder's
    calibration file read here. Raises CalibrationError as resolve_gate does."""
    code = language.code if hasattr(language, "code") else str(language)
    override = override_of(quality, code)
    if override is not None:
        return override
    resolved = quality.resolved_gate
    if resolved is not None and code in resolved.languages:
        return resolved.languages[code]
    where, calibration = find_calibration(quality)
    if calibration is None:
        raise CalibrationError(missing_message(quality.encoder, where))
    decision = decide(calibration, code, quality.allow_unseparable)
    if decision.refused:
        raise CalibrationError(f"encoder '{quality.encoder}' cannot separate {decision.refused} (calibration {where})")
    return decision.limits
