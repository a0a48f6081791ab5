"""What the report and its plots need from a run, as small mergeable figures.

`RunFigures.of(table)` reads one group of rows (a language, a shard, a whole small run) with Arrow
aggregations; `a + b` merges two groups. The report (counts.py) and the plots (plots.py) are
built from the merged figures, so a run of any size is counted group by group and no process
ever holds all its rows. Counts are exact; the few value distributions drawn as boxes keep a
bounded sample (the first SAMPLE_CAP values of each group, in the group's row order).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.reasons import reason_kind
from engine.records import ACCEPTED, REJECTED

NO_LANGUAGE = "(input)"  # rows decided before a language was assigned (unreadable input records)
SAMPLE_CAP = 5_000  # values kept per box (language × status, or judge round) for the box plots
LID_BINS = 20  # language-ID confidence histogram: 20 bins over [0, 1]
PHASES = ("draft", "judge", "rewrite", "round_trip")  # the ledger's phases: tokens_<phase> columns


def _counter(table: pa.Table, keys: list[str], value: str | None = None) -> Counter:
    """Counter over the key columns' value tuples (row counts, or sums of `value`), its keys in
    the order of their first row: Arrow's group_by does not promise an order, ties in the
    report's "most common" lists are broken by first appearance."""
    if table.num_rows == 0:
        return Counter()
    table = table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    aggregation = [("_row", "min"), (value, "sum")] if value else [("_row", "min"), ("_row", "count")]
    grouped = table.group_by(keys, use_threads=False).aggregate(aggregation)
    grouped = grouped.sort_by("_row_min").to_pydict()
    values = grouped[f"{value}_sum" if value else "_row_count"]
    key_columns = [grouped[k] for k in keys]
    return Counter(
        {
            (tuple(col[i] for col in key_columns) if len(keys) > 1 else key_columns[0][i]): (v or 0)
            for i, v in enumerate(values)
        }
    )


def _capped_extend(target: list, values, cap: int = SAMPLE_CAP) -> None:
    room = cap - len(target)
    if room > 0:
        target.extend(values[:room])


@dataclass
class RunFigures:
    rows: Counter = field(default_factory=Counter)  # (language label, status) -> rows
    completion: Counter = field(default_factory=Counter)  # (language label, status) -> generated tokens
    reasons: Counter = field(default_factory=Counter)  # (language label, reason kind) -> rejected rows
    prompt_tokens: int = 0
    attempts: Counter = field(default_factory=Counter)  # drafts -> rows
    lid_methods: Counter = field(default_factory=Counter)
    phase_tokens: Counter = field(default_factory=Counter)  # phase -> generated tokens
    judged_rows: int = 0
    round_trip_rows: int = 0  # rows whose round trip scored a field (round_trip_chrf set)
    round_trip_rejected: int = 0  # rows the round trip rejected (round_trip, round_trip_failed)
    accepted_rounds: Counter = field(default_factory=Counter)  # (lang, str(rounds)) -> accepted rows
    scores: Counter = field(default_factory=Counter)  # (str(round), criterion, value label) -> scores
    score_sums: Counter = field(default_factory=Counter)  # (criterion, round) -> sum of read scores
    score_counts: Counter = field(default_factory=Counter)  # (criterion, round) -> read scores
    score_sample: dict = field(default_factory=lambda: defaultdict(list))  # round -> read scores (capped)
    lid_hist: Counter = field(default_factory=Counter)  # (status, bin) -> rows
    adequacy: dict = field(default_factory=lambda: defaultdict(list))  # (language label, status) -> values (capped)
    row_clusters: dict = field(default_factory=lambda: defaultdict(set))  # language label -> clusters of accepted rows
    seed_clusters_planned: dict = field(default_factory=lambda: defaultdict(set))  # lang -> seed clusters planned
    seed_clusters_accepted: dict = field(default_factory=lambda: defaultdict(set))  # lang -> ... accepted
    # The adequacy gate's own figures (engine/report/gate.py): rows with a score by outcome
    # (accepted, low_similarity: rejected by the gate, other: rejected for another reason), their
    # scores (capped), and drafts the gate turned away (attempt_reasons), per language.
    gate_rows: Counter = field(default_factory=Counter)  # (language label, outcome) -> rows with a score
    gate_scores: dict = field(default_factory=lambda: defaultdict(list))  # (language label, outcome) -> values (capped)
    gate_drafts: Counter = field(default_factory=Counter)  # language label -> drafts rejected low_similarity

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def status_count(self, status: str) -> int:
        return sum(count for (_, s), count in self.rows.items() if s == status)

    def __add__(self, other: RunFigures) -> RunFigures:
        out = RunFigures()
        for name in (
            "rows",
            "completion",
            "reasons",
            "attempts",
            "lid_methods",
            "phase_tokens",
            "accepted_rounds",
            "scores",
            "score_sums",
            "score_counts",
            "lid_hist",
            "gate_rows",
            "gate_drafts",
        ):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.prompt_tokens = self.prompt_tokens + other.prompt_tokens
        out.judged_rows = self.judged_rows + other.judged_rows
        out.round_trip_rows = self.round_trip_rows + other.round_trip_rows
        out.round_trip_rejected = self.round_trip_rejected + other.round_trip_rejected
        for name in ("score_sample", "adequacy", "gate_scores"):
            merged = getattr(out, name)
            for part in (getattr(self, name), getattr(other, name)):
                for key, values in part.items():
                    _capped_extend(merged[key], values)
        for name in ("row_clusters", "seed_clusters_planned", "seed_clusters_accepted"):
            merged = getattr(out, name)
            for part in (getattr(self, name), getattr(other, name)):
                for key, values in part.items():
                    merged[key] |= values
        return out

    @classmethod
    def of(cls, table: pa.Table, seed_clusters: dict[str, int] | None = None) -> RunFigures:
        """The figures of one group of rows (any columns of engine.records.SCHEMA it lacks count as empty)."""
        figures = cls()
        if table.num_rows == 0:
            return figures
        label = (
            pc.fill_null(table.column("lang"), NO_LANGUAGE)
            if "lang" in table.column_names
            else pa.repeat(NO_LANGUAGE, table.num_rows)
        )
        status = table.column("status")
        lang_status = pa.table({"lang": label, "status": status, "completion": _int_column(table, "completion_tokens")})
        figures.rows = _counter(lang_status, ["lang", "status"])
        figures.completion = _counter(lang_status, ["lang", "status"], "completion")
        figures.prompt_tokens = int(pc.sum(_int_column(table, "prompt_tokens")).as_py() or 0)
        rejected = pc.equal(status, REJECTED)
        accepted = pc.fill_null(pc.equal(status, ACCEPTED), False)
        raw_reasons = _counter(
            pa.table({"lang": label, "reason": table.column("reason")}).filter(rejected), ["lang", "reason"]
        )
        for (lang, reason), count in raw_reasons.items():
            figures.reasons[(lang, reason_kind(reason))] += count
        figures.attempts = _counter(pa.table({"attempts": table.column("attempts")}), ["attempts"])
        methods = pa.table({"method": table.column("lid_method")}).filter(pc.is_valid(table.column("lid_method")))
        figures.lid_methods = Counter({k: v for k, v in _counter(methods, ["method"]).items() if k})
        figures.phase_tokens = Counter(
            {phase: int(pc.sum(_int_column(table, f"tokens_{phase}")).as_py() or 0) for phase in PHASES}
        )
        if "round_trip_chrf" in table.column_names:
            figures.round_trip_rows = int(pc.sum(pc.is_valid(table.column("round_trip_chrf"))).as_py() or 0)
        figures.round_trip_rejected = sum(
            n for (_, kind), n in figures.reasons.items() if kind in ("round_trip", "round_trip_failed")
        )
        figures._judge(table, accepted)
        figures._distributions(table, label, status, accepted)
        figures._gate(table, label, status)
        if seed_clusters:
            figures._seed_clusters(table, seed_clusters, accepted)
        return figures

    def _judge(self, table: pa.Table, accepted: pa.ChunkedArray) -> None:
        if "scores" not in table.column_names:
            return
        scores = table.column("scores")
        judged = pc.fill_null(pc.greater(pc.list_value_length(scores), 0), False)
        self.judged_rows = int(pc.sum(judged).as_py() or 0)
        if not self.judged_rows:
            return
        rounds = pc.fill_null(table.column("rounds"), 0)
        accepted_rows = pa.table({"lang": table.column("lang"), "rounds": pc.cast(rounds, pa.string())}).filter(
            accepted
        )
        self.accepted_rounds = _counter(accepted_rows, ["lang", "rounds"])
        flat = pc.list_flatten(scores.filter(judged))
        items = pa.table(
            {
                "round": pc.struct_field(flat, "round"),
                "criterion": pc.struct_field(flat, "criterion"),
                "score": pc.struct_field(flat, "score"),
            }
        )
        for (rnd, criterion, score), count in _counter(items, ["round", "criterion", "score"]).items():
            self.scores[(str(rnd), criterion, "unread" if score is None else f"{score:g}")] += count
        read = items.filter(pc.is_valid(items.column("score")))
        self.score_sums = _counter(read, ["criterion", "round"], "score")
        self.score_counts = _counter(read, ["criterion", "round"])
        for rnd in pc.unique(read.column("round")).to_pylist():
            values = read.filter(pc.equal(read.column("round"), rnd)).column("score").slice(0, SAMPLE_CAP).to_pylist()
            _capped_extend(self.score_sample[rnd], values)

    def _distributions(self, table: pa.Table, label, status, accepted) -> None:
        for state in (ACCEPTED, REJECTED):
            mask = pc.fill_null(pc.equal(status, state), False)
            if "lid_confidence" in table.column_names:
                values = pc.drop_null(table.column("lid_confidence").filter(mask)).to_numpy()
                counts, _ = np.histogram(values, bins=LID_BINS, range=(0.0, 1.0))
                self.lid_hist.update({(state, i): int(c) for i, c in enumerate(counts) if c})
            if "adequacy" in table.column_names:
                part = pa.table({"lang": label, "adequacy": table.column("adequacy")}).filter(mask)
                part = part.filter(pc.is_valid(part.column("adequacy")))
                for lang in pc.unique(part.column("lang")).to_pylist():
                    values = (
                        part.filter(pc.equal(part.column("lang"), lang))
                        .column("adequacy")
                        .slice(0, SAMPLE_CAP)
                        .to_pylist()
                    )
                    _capped_extend(self.adequacy[(lang, state)], values)
        if "cluster" in table.column_names:
            part = pa.table({"lang": label, "cluster": table.column("cluster")}).filter(accepted)
            part = part.filter(pc.is_valid(part.column("cluster")))
            for lang, cluster in _counter(part, ["lang", "cluster"]):
                self.row_clusters[lang].add(cluster)

    def _gate(self, table: pa.Table, label, status) -> None:
        if "adequacy" in table.column_names:
            reason = table.column("reason") if "reason" in table.column_names else pa.nulls(table.num_rows, pa.string())
            gated = pc.fill_null(pc.starts_with(reason, "low_similarity"), False)
            outcome = pc.if_else(pc.equal(status, ACCEPTED), "accepted", pc.if_else(gated, "low_similarity", "other"))
            part = pa.table(
                {"lang": label, "outcome": pc.fill_null(outcome, "other"), "adequacy": table.column("adequacy")}
            )
            part = part.filter(pc.is_valid(part.column("adequacy")))
            self.gate_rows = _counter(part, ["lang", "outcome"])
            for lang, kind in self.gate_rows:
                mask = pc.and_(pc.equal(part.column("lang"), lang), pc.equal(part.column("outcome"), kind))
                _capped_extend(
                    self.gate_scores[(lang, kind)],
                    part.filter(mask).column("adequacy").slice(0, SAMPLE_CAP).to_pylist(),
                )
        if "attempt_reasons" in table.column_names:
            reasons = (
                table.column("attempt_reasons").combine_chunks()
                if isinstance(table.column("attempt_reasons"), pa.ChunkedArray)
                else table.column("attempt_reasons")
            )
            flat = pc.list_flatten(reasons)
            if len(flat):
                langs = pc.take(
                    label.combine_chunks() if isinstance(label, pa.ChunkedArray) else label,
                    pc.list_parent_indices(reasons),
                )
                drafts = pa.table({"lang": langs, "gated": pc.fill_null(pc.starts_with(flat, "low_similarity"), False)})
                drafts = drafts.filter(drafts.column("gated"))
                self.gate_drafts = Counter(_counter(drafts, ["lang"]))

    def _seed_clusters(self, table: pa.Table, seed_clusters: dict[str, int], accepted) -> None:
        # Rows decided before planning (duplicates, bad records) belong to no language.
        part = pa.table({"seed_id": table.column("seed_id"), "lang": table.column("lang"), "accepted": accepted})
        part = part.filter(pc.and_(pc.is_valid(part.column("lang")), pc.not_equal(part.column("lang"), "")))
        for (seed_id, lang, is_accepted), _ in _counter(part, ["seed_id", "lang", "accepted"]).items():
            cluster = seed_clusters.get(seed_id)
            if cluster is None:
                continue
            self.seed_clusters_planned[lang].add(cluster)
            if is_accepted:
                self.seed_clusters_accepted[lang].add(cluster)


def _int_column(table: pa.Table, name: str):
    if name not in table.column_names:
        return pa.repeat(pa.scalar(0, pa.int64()), table.num_rows)
    return pc.fill_null(pc.cast(table.column(name), pa.int64()), 0)


def most_common(counter: Counter) -> dict:
    """Largest first, ties in the order of first appearance (group_by keeps it; merging groups in
    row order keeps it across groups)."""
    return dict(counter.most_common())
