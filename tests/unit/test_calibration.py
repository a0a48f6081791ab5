"""Ring (a): the adequacy gate's calibration, pure parts (engine/calibration.py): the set built by
rule, the fit and its fallback, the records, the refusal of a run that cannot be gated, and the
script-fair unit of engine.text.adequacy measured on the set. No encoder: outcomes are made here."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from engine.calibration import (
    CalibrationError,
    Outcome,
    Point,
    build_set,
    calibration_path,
    decide,
    encoder_slug,
    fit_calibration,
    fit_threshold,
    gate_limits,
    load_set,
    resolve_gate,
    script_ratios,
    set_digest,
    table_lines,
    write_calibration,
)
from engine.config import SimilarityThresholds, parse_config
from engine.languages import DEFAULT_TARGETS, get_language

SOURCES = [
    {"id": "s01", "field": "instruction", "text": "Rewrite this sentence so that it sounds more formal."},
    {"id": "s02", "field": "instruction", "text": "Why is the sky blue during the day?"},
    {"id": "s03", "field": "instruction", "text": "Who painted the Mona Lisa?"},
    {"id": "s10", "field": "input", "text": "Hey, can you send me that report asap?"},
    {"id": "s11", "field": "output", "text": "The sky is blue because air scatters blue light."},
    {"id": "s12", "field": "output", "text": "Leonardo da Vinci painted it in the sixteenth century."},
]
TEXTS = [
    {"lang": "fr", "source": sid, "kind": "correct", "text": f"fr:{sid}"}
    for sid in ("s01", "s02", "s03", "s10", "s11", "s12")
]
TEXTS += [{"lang": "fr", "source": "s02", "kind": "nonsense", "text": "Le ciel de la journée bleue le ciel."}]


def test_the_set_is_built_by_rule():
    pairs = build_set(SOURCES, TEXTS)
    kinds = Counter(p["kind"] for p in pairs)
    assert kinds == {"correct": 6, "nonsense": 1, "other_seed": 6, "copied": 5}  # no copied input: it may stay as it is
    other = {p["source_id"]: p["candidate"] for p in pairs if p["kind"] == "other_seed"}
    # the next source of the same class, wrapping around; input and output are one class (passage)
    assert other == {
        "s01": "fr:s02",
        "s02": "fr:s03",
        "s03": "fr:s01",
        "s10": "fr:s11",
        "s11": "fr:s12",
        "s12": "fr:s10",
    }
    assert {p["class"] for p in pairs if p["field"] == "instruction"} == {"instruction"}
    assert {p["class"] for p in pairs if p["field"] in ("input", "output")} == {"passage"}
    assert all(p["candidate"] == p["source"] for p in pairs if p["kind"] == "copied")
    assert build_set(SOURCES, list(reversed(TEXTS))) == pairs  # the order of the files does not matter
    assert set_digest(pairs) == set_digest(list(reversed(pairs)))
    changed = [dict(p, candidate=p["candidate"] + "!") if i == 0 else p for i, p in enumerate(pairs)]
    assert set_digest(changed) != set_digest(pairs)


def test_the_shipped_set_covers_every_default_language_with_enough_pairs_of_each_kind():
    pairs = load_set()
    counts = Counter((p["lang"], p["kind"]) for p in pairs)
    assert {p["lang"] for p in pairs} == set(DEFAULT_TARGETS)
    for lang in DEFAULT_TARGETS:
        for kind in ("correct", "nonsense", "other_seed", "copied"):
            assert counts[(lang, kind)] >= 8, (lang, kind)


def test_script_fair_units_are_fair_on_the_set():
    """The weights of engine.text.adequacy.text_units hold on the set: English letters per unit of a
    correct translation stay near 1 in every script (by plain letters Han is 2.66, Hangul 2.05)."""
    ratios = script_ratios(load_set())
    assert ratios["Han"]["letters"] > 2.3 and ratios["Hangul"]["letters"] > 1.8
    for script, ratio in ratios.items():
        assert 0.65 <= ratio["units"] <= 1.4, (script, ratio)


def points(correct, nonsense=(), other=(), caught=()):
    """Points of one class; `caught`: junk scores another check stops (they do not decide)."""
    return (
        [Point(v, "correct", True) for v in correct]
        + [Point(v, "nonsense", True) for v in nonsense]
        + [Point(v, "other_seed", True) for v in other]
        + [Point(v, "nonsense", False) for v in caught]
    )


def test_a_gap_gives_its_midpoint():
    fit = fit_threshold(points([0.90, 0.92, 0.95], nonsense=[0.80], other=[0.84, 0.86]))
    assert fit.threshold == pytest.approx(0.88) and fit.separable and fit.separates_meaning
    assert fit.record()["gap"] == pytest.approx(0.04)


def test_nonsense_another_check_stops_does_not_count_against_the_language():
    fit = fit_threshold(points([0.90, 0.92], other=[0.80], caught=[0.95]))
    assert fit.separable and fit.threshold == pytest.approx(0.85)
    assert fit.record()["scores"]["gap"] < 0  # the encoder alone does not separate them


def test_nonsense_raises_the_threshold_at_most_halfway_to_the_lowest_correct_translation():
    # meaning gap 0.80 .. 0.90: midpoint 0.85, ceiling 0.875
    fit = fit_threshold(points([0.90, 0.92], nonsense=[0.86], other=[0.80]))
    assert fit.threshold == pytest.approx(0.8675) and fit.separable  # halfway from the nonsense to the ceiling
    fit = fit_threshold(points([0.90, 0.92], nonsense=[0.81, 0.853], other=[0.80]))
    assert fit.threshold == pytest.approx(0.864) and fit.separable
    fit = fit_threshold(points([0.90, 0.92], nonsense=[0.88, 0.91], other=[0.80]))
    assert fit.threshold == pytest.approx(0.85)  # nothing to stop under the ceiling: the midpoint stays
    assert fit.separates_meaning and not fit.separable and fit.record()["nonsense_passed"] == 2


def test_meanings_that_overlap_are_not_separated():
    fit = fit_threshold(points([0.50, 0.60, 0.70], other=[0.55, 0.65, 0.75]))
    assert not fit.separates_meaning and not fit.separable and fit.record()["overlap"] > 0


def outcome(lang, kind, cls, score, sid="s01", form=None, other=None):
    field = "instruction" if cls == "instruction" else "output"
    pair = {
        "lang": lang,
        "kind": kind,
        "field": field,
        "class": cls,
        "source_id": sid,
        "source": "src",
        "candidate": "c",
    }
    return Outcome(pair, form, score, other)


def language(lang, correct=0.90, junk=0.80, n=8, overlap=False):
    found = []
    for cls in ("instruction", "passage"):
        for i in range(n):
            found.append(outcome(lang, "correct", cls, correct + i / 1000, f"s{i:02d}"))
            found.append(
                outcome(
                    lang, "other_seed", cls, (correct + 0.01 if overlap and i == 0 else junk) - i / 1000, f"s{i:02d}"
                )
            )
            found.append(outcome(lang, "copied", cls, 1.0, f"s{i:02d}", form="untranslated"))
        found.append(outcome(lang, "nonsense", cls, junk, "s00"))
    return found


def test_fit_records_per_language_with_fallback_and_refusal():
    outcomes = language("fr") + language("de", correct=0.88, junk=0.78) + language("ru") + language("ja", overlap=True)
    outcomes += language("es", n=3)  # too few pairs: the group's threshold
    calibration = fit_calibration(outcomes, "enc", "sha256:x", "2026-01-01")
    records = calibration["languages"]
    assert records["fr"]["separable"] is True and records["fr"]["fallback"] is None
    assert (
        records["fr"]["thresholds"]["input"]
        == records["fr"]["thresholds"]["output"]
        == records["fr"]["classes"]["passage"]["threshold"]
    )
    assert records["ja"]["separates_meaning"] is False and records["ja"]["separable"] is False
    assert records["es"]["fallback"] == ["group:latin"] and records["es"]["separable"] is None
    assert records["es"]["thresholds"] == calibration["groups"]["latin"]["thresholds"]
    assert calibration["groups"]["latin"]["classes"]["instruction"]["languages"] == ["de", "fr"]
    assert records["fr"]["in_sample"]["correct"] == {"accepted": 1.0, "n": 16, "missed": 0, "gate": 1.0, "gate_n": 16}
    assert records["fr"]["in_sample"]["copied"]["rejected"] == 1.0
    assert set(records["fr"]["leave_one_out"]) == {"correct", "nonsense", "other_seed", "copied"}
    summary = calibration["summary"]
    assert summary["not_separating_meaning"] == ["ja"] and summary["fallback"] == {"es": ["group:latin"]}
    assert any(line.startswith("ja ") for line in table_lines(calibration))
    # the run's side: refused, allowed at best effort, group fallback, unknown language
    assert decide(calibration, "ja").refused and "instruction" in decide(calibration, "ja").refused
    assert (
        decide(calibration, "ja", ["ja"]).source == "best_effort"
        and decide(calibration, "ja", ["ja"]).limits is not None
    )
    assert decide(calibration, "es").source == "group:latin" and decide(calibration, "es").refused is None
    assert decide(calibration, "it").source == "group:latin"  # no pairs at all: the group's
    assert decide(calibration, "fr").limits == SimilarityThresholds(**records["fr"]["thresholds"])


def test_leave_one_out_judges_each_pair_without_it():
    # one correct translation far under the others: in-sample it sets the threshold, out of sample it falls under it
    outcomes = language("fr") + [outcome("fr", "correct", "instruction", 0.82, "s99")]
    record = fit_calibration(outcomes, "enc", "d", "t")["languages"]["fr"]
    assert record["in_sample"]["correct"]["missed"] == 0
    assert record["leave_one_out"]["correct"]["missed"] == 1


@pytest.fixture
def shipped(tmp_path):
    """A calibration file for encoder 'enc' with fr separable, ja not separating meaning."""
    calibration = fit_calibration(language("fr") + language("ja", overlap=True), "enc", "sha256:abc", "2026-01-01")
    return write_calibration(calibration, tmp_path / "enc.json"), calibration


def config(tmp_path, targets, **quality):
    return parse_config(
        {
            "seeds": {"paths": ["x.jsonl"]},
            "languages": {"targets": targets},
            "run": {"output_dir": str(tmp_path / "run")},
            "quality": {"encoder": "enc", **quality},
        }
    )


def test_resolve_gate_puts_each_targets_thresholds_in_the_config(tmp_path, shipped):
    path, calibration = shipped
    resolved = resolve_gate(config(tmp_path, ["fr", "de"], calibration=str(path))).quality.resolved_gate
    assert resolved.encoder == "enc" and resolved.digest == "sha256:abc" and resolved.file == str(path)
    assert resolved.languages["fr"] == SimilarityThresholds(**calibration["languages"]["fr"]["thresholds"])
    assert resolved.sources == {"fr": "own", "de": "group:latin"}
    # what the actors get: the gate's lookup reads the resolved thresholds
    cfg = resolve_gate(config(tmp_path, ["fr"], calibration=str(path))).quality
    assert gate_limits(cfg, get_language("fr")) == resolved.languages["fr"]


def test_a_language_the_encoder_cannot_separate_refuses_the_run(tmp_path, shipped):
    path, _ = shipped
    with pytest.raises(
        CalibrationError, match=r"cannot tell a correct translation from another seed's in 1 target.*ja \(instruction"
    ):
        resolve_gate(config(tmp_path, ["fr", "ja"], calibration=str(path)))
    allowed = resolve_gate(
        config(tmp_path, ["fr", "ja"], calibration=str(path), allow_unseparable=["ja"])
    ).quality.resolved_gate
    assert allowed.sources["ja"] == "best_effort"
    off = config(tmp_path, ["ja"], calibration=str(path), adequacy=False)
    assert resolve_gate(off) is off  # the gate off: nothing to resolve


def test_no_calibration_refuses_naming_the_command_or_calibrates_when_auto(tmp_path, shipped):
    missing = config(tmp_path, ["fr"], encoder="no-such-encoder")
    with pytest.raises(CalibrationError, match=r"python -m jobs.calibrate --encoder no-such-encoder"):
        resolve_gate(missing)
    _, calibration = shipped
    calls = []

    def calibrate(cfg):
        calls.append(cfg.quality.encoder)
        return "run/calibration-enc.json", calibration

    auto = resolve_gate(config(tmp_path, ["fr"], encoder="enc", calibrate="auto"), calibrate)
    assert calls == ["enc"] and auto.quality.resolved_gate.file == "run/calibration-enc.json"
    with pytest.raises(CalibrationError, match="fitted for encoder 'enc'"):
        resolve_gate(config(tmp_path, ["fr"], encoder="other", calibrate="auto"), calibrate)


def test_explicit_thresholds_need_no_calibration(tmp_path):
    strict = {"instruction": 0.99, "input": 0.99, "output": 0.99}
    cfg = config(
        tmp_path, ["fr", "ja"], encoder="no-such-encoder", min_similarity=strict, min_similarity_non_latin=strict
    )
    resolved = resolve_gate(cfg).quality.resolved_gate
    assert resolved.sources == {"fr": "override", "ja": "override"} and resolved.languages["ja"].output == 0.99
    assert gate_limits(cfg.quality, get_language("ja")).instruction == 0.99


def test_the_run_refuses_before_anything_starts(tmp_path, shipped, capsys):
    """jobs.synthesize checks the gate first: exit code 2 and one error line naming the languages."""
    from jobs.synthesize import main

    path, _ = shipped
    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        json.dumps(
            {
                "seeds": {"paths": [str(tmp_path / "missing.jsonl")]},
                "languages": {"targets": ["ja", "fr"]},
                "run": {"output_dir": str(tmp_path / "run")},
                "quality": {"encoder": "enc", "calibration": str(path)},
            }
        )
    )
    assert main(["--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert "error: encoder 'enc' cannot tell a correct translation from another seed's" in err and "ja (" in err
    assert not (tmp_path / "run").exists()  # refused before the run folder, Ray or any model


def test_shipped_calibration_files_name_their_encoder():
    for encoder in ("multilingual-e5-small", "minilm-l6"):
        data = json.loads(calibration_path(encoder).read_text())
        assert data["encoder"] == encoder and data["set"]["digest"].startswith("sha256:")
    assert encoder_slug("intfloat/multilingual-e5-small") == "intfloat--multilingual-e5-small"
