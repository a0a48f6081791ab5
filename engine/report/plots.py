"""The run report's plots, each a pure function of the rows that returns PNG bytes, or None when
the run has nothing to plot (no judge scores, no clusters, no rows).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from engine.report.charts import figure, stacked_bars, to_png
from engine.records import ACCEPTED, REJECTED
from engine.report.counts import lang_of, reason_kind

TITLES = {
    "rows_per_language": "Rows per language",
    "reject_reasons": "Reject reasons per language",
    "lid_confidence": "Language-ID confidence",
    "adequacy": "Adequacy (cosine to the source) per language",
    "judge_scores": "Judge scores per round",
    "cluster_coverage": "Cluster coverage",
    "tokens_per_accepted": "Generated tokens per accepted example",
}
COLOURS = {ACCEPTED: "#3a8f5c", REJECTED: "#c8553d"}


def plot_rows_per_language(rows: list[dict]) -> bytes | None:
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        counts[lang_of(row)][row["status"]] += 1
    if not counts:
        return None
    return stacked_bars(counts, [ACCEPTED, REJECTED], TITLES["rows_per_language"], "rows", COLOURS)


def plot_reject_reasons(rows: list[dict]) -> bytes | None:
    counts: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        if row["status"] == REJECTED:
            counts[lang_of(row)][reason_kind(row.get("reason"))] += 1
    if not counts:
        return None
    reasons = [reason for reason, _ in sum(counts.values(), Counter()).most_common()]
    return stacked_bars(counts, reasons, TITLES["reject_reasons"], "rejected rows")


def plot_lid_confidence(rows: list[dict]) -> bytes | None:
    by_status = {status: [r["lid_confidence"] for r in rows if r["status"] == status and r.get("lid_confidence") is not None] for status in COLOURS}
    if not any(by_status.values()):
        return None
    fig, ax = figure()
    ax.hist([by_status[ACCEPTED], by_status[REJECTED]], bins=[i / 20 for i in range(21)], stacked=True,
            color=[COLOURS[ACCEPTED], COLOURS[REJECTED]], label=[ACCEPTED, REJECTED])
    ax.set(title=TITLES["lid_confidence"], xlabel="confidence of the weakest field", ylabel="rows", xlim=(0, 1))
    ax.legend(fontsize="small", frameon=False)
    return to_png(fig)


def plot_adequacy(rows: list[dict]) -> bytes | None:
    """One pair of boxes per language (accepted, rejected) of the weakest field's cosine to its
    source: where accepted rows sit against the threshold, and what the gate turned away."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: {ACCEPTED: [], REJECTED: []})
    for row in rows:
        if row.get("adequacy") is not None and row.get("status") in COLOURS:
            values[lang_of(row)][row["status"]].append(row["adequacy"])
    if not values:
        return None
    fig, ax = figure()
    langs = sorted(values)
    for offset, status in ((-0.18, ACCEPTED), (0.18, REJECTED)):
        present = [(i, values[lang][status]) for i, lang in enumerate(langs) if values[lang][status]]
        if present:
            boxes = ax.boxplot([v for _, v in present], positions=[i + offset for i, _ in present], widths=0.3,
                               patch_artist=True, manage_ticks=False)
            for box in boxes["boxes"]:
                box.set(facecolor=COLOURS[status], alpha=0.6)
        ax.plot([], [], color=COLOURS[status], linewidth=6, alpha=0.6, label=f"{status} ({sum(len(values[l][status]) for l in langs)})")
    ax.set_xticks(range(len(langs)), langs)
    ax.set(title=TITLES["adequacy"], ylabel="cosine of the weakest field")
    ax.legend(fontsize="small", frameon=False)
    return to_png(fig)


def plot_judge_scores(rows: list[dict]) -> bytes | None:
    """One box per round, all criteria pooled; the mean per criterion drawn over it."""
    by_round: dict[int, list[float]] = defaultdict(list)
    by_criterion: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for score in row.get("scores") or []:
            if score.get("score") is None:
                continue
            by_round[score["round"]].append(score["score"])
            by_criterion[score.get("criterion") or "score"][score["round"]].append(score["score"])
    if not by_round:
        return None
    fig, ax = figure()
    rounds = sorted(by_round)
    ax.boxplot([by_round[r] for r in rounds], positions=rounds, widths=0.5)
    for criterion, values in sorted(by_criterion.items()):
        xs = sorted(values)
        ax.plot(xs, [sum(values[x]) / len(values[x]) for x in xs], marker="o", label=f"mean {criterion}")
    ax.set(title=TITLES["judge_scores"], xlabel="round", ylabel="score")
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return to_png(fig)


def plot_cluster_coverage(rows: list[dict]) -> bytes | None:
    """How many distinct clusters each language's accepted rows cover, out of all seen."""
    clusters: dict[str, set] = defaultdict(set)
    for row in rows:
        if row.get("cluster") is not None and row["status"] == ACCEPTED:
            clusters[lang_of(row)].add(row["cluster"])
    if not clusters:
        return None
    total = len(set().union(*clusters.values()))
    fig, ax = figure()
    langs = sorted(clusters)
    ax.bar(langs, [len(clusters[lang]) for lang in langs], color="#4a6fa5")
    ax.axhline(total, color="grey", linestyle="--", linewidth=1, label=f"all clusters seen ({total})")
    ax.set(title=TITLES["cluster_coverage"], ylabel="clusters with an accepted row")
    ax.legend(fontsize="small", frameon=False)
    return to_png(fig)


def plot_tokens_per_accepted(rows: list[dict]) -> bytes | None:
    """Generated tokens per accepted row, split into tokens the accepted rows took and tokens
    spent on rows that were rejected: the real price of a kept example."""
    spent: dict[str, Counter] = defaultdict(Counter)
    accepted: Counter = Counter()
    for row in rows:
        spent[lang_of(row)][f"on {row['status']} rows"] += row.get("completion_tokens") or 0
        accepted[lang_of(row)] += row["status"] == ACCEPTED
    per_accepted = {lang: Counter({k: v / accepted[lang] for k, v in spent[lang].items()}) for lang in spent if accepted[lang]}
    if not per_accepted:
        return None
    colours = {f"on {status} rows": colour for status, colour in COLOURS.items()}
    return stacked_bars(per_accepted, list(colours), TITLES["tokens_per_accepted"], "tokens / accepted row", colours)


PLOTS = {
    "rows_per_language": plot_rows_per_language,
    "reject_reasons": plot_reject_reasons,
    "lid_confidence": plot_lid_confidence,
    "adequacy": plot_adequacy,
    "judge_scores": plot_judge_scores,
    "cluster_coverage": plot_cluster_coverage,
    "tokens_per_accepted": plot_tokens_per_accepted,
}


def build_plots(rows: list[dict]) -> dict[str, bytes | None]:
    """Every plot by name, in page order; None where the run has nothing to show."""
    return {name: plot(rows) for name, plot in PLOTS.items()}
