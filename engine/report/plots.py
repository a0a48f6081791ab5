"""The run report's plots, each a pure function of a run's figures (engine/report/aggregate.py)
that returns PNG bytes, or None when the run has nothing to plot (no judge scores, no clusters,
no rows). Counts are exact; box plots are drawn over a bounded sample of values.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from engine.records import ACCEPTED, REJECTED, to_table
from engine.report.aggregate import LID_BINS, RunFigures
from engine.report.charts import figure, stacked_bars, to_png

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


def per_language(counts: dict[tuple[str, str], int], label=str) -> dict[str, Counter]:
    """{(lang, key): n} → {lang: Counter({label(key): n})}: the shape the stacked bars draw."""
    grouped: dict[str, Counter] = defaultdict(Counter)
    for (lang, key), n in counts.items():
        grouped[lang][label(key)] += n
    return grouped


def plot_rows_per_language(figures: RunFigures) -> bytes | None:
    counts = per_language(figures.rows)
    if not counts:
        return None
    return stacked_bars(counts, [ACCEPTED, REJECTED], TITLES["rows_per_language"], "rows", COLOURS)


def plot_reject_reasons(figures: RunFigures) -> bytes | None:
    counts = per_language(figures.reasons)
    if not counts:
        return None
    reasons = [reason for reason, _ in sum(counts.values(), Counter()).most_common()]
    return stacked_bars(counts, reasons, TITLES["reject_reasons"], "rejected rows")


def plot_lid_confidence(figures: RunFigures) -> bytes | None:
    """A histogram drawn from its bin counts (exact at any size): each bin's centre weighted by its rows."""
    if not figures.lid_hist:
        return None
    edges = [i / LID_BINS for i in range(LID_BINS + 1)]
    centres = [(edges[i] + edges[i + 1]) / 2 for i in range(LID_BINS)]
    weights = [[figures.lid_hist.get((status, i), 0) for i in range(LID_BINS)] for status in (ACCEPTED, REJECTED)]
    fig, ax = figure()
    ax.hist(
        [centres, centres],
        bins=edges,
        weights=weights,
        stacked=True,
        color=[COLOURS[ACCEPTED], COLOURS[REJECTED]],
        label=[ACCEPTED, REJECTED],
    )
    ax.set(title=TITLES["lid_confidence"], xlabel="confidence of the weakest field", ylabel="rows", xlim=(0, 1))
    ax.legend(fontsize="small", frameon=False)
    return to_png(fig)


def plot_adequacy(figures: RunFigures) -> bytes | None:
    """One pair of boxes per language (accepted, rejected) of the weakest field's cosine to its
    source: where accepted rows sit against the threshold, and what the gate turned away.
    Boxes are drawn over at most SAMPLE_CAP values per language and status."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: {ACCEPTED: [], REJECTED: []})
    for (lang, status), sample in figures.adequacy.items():
        if sample and status in COLOURS:
            values[lang][status] = sample
    if not values:
        return None
    fig, ax = figure()
    langs = sorted(values)
    for offset, status in ((-0.18, ACCEPTED), (0.18, REJECTED)):
        present = [(i, values[lang][status]) for i, lang in enumerate(langs) if values[lang][status]]
        if present:
            boxes = ax.boxplot(
                [v for _, v in present],
                positions=[i + offset for i, _ in present],
                widths=0.3,
                patch_artist=True,
                manage_ticks=False,
            )
            for box in boxes["boxes"]:
                box.set(facecolor=COLOURS[status], alpha=0.6)
        ax.plot(
            [],
            [],
            color=COLOURS[status],
            linewidth=6,
            alpha=0.6,
            label=f"{status} ({sum(len(values[lang][status]) for lang in langs)})",
        )
    ax.set_xticks(range(len(langs)), langs)
    ax.set(title=TITLES["adequacy"], ylabel="cosine of the weakest field")
    ax.legend(fontsize="small", frameon=False, loc="lower left")  # "best" scans every drawn point: slow on big runs
    return to_png(fig)


def plot_judge_scores(figures: RunFigures) -> bytes | None:
    """One box per round, all criteria pooled (over at most SAMPLE_CAP scores a round); the exact
    mean per criterion drawn over it."""
    by_round = {rnd: values for rnd, values in figures.score_sample.items() if values}
    if not by_round:
        return None
    fig, ax = figure()
    rounds = sorted(by_round)
    ax.boxplot([by_round[r] for r in rounds], positions=rounds, widths=0.5)
    means: dict[str, dict[int, float]] = defaultdict(dict)
    for (criterion, rnd), total in figures.score_sums.items():
        means[criterion or "score"][rnd] = total / figures.score_counts[(criterion, rnd)]
    for criterion, values in sorted(means.items()):
        xs = sorted(values)
        ax.plot(xs, [values[x] for x in xs], marker="o", label=f"mean {criterion}")
    ax.set(title=TITLES["judge_scores"], xlabel="round", ylabel="score")
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return to_png(fig)


def plot_cluster_coverage(figures: RunFigures) -> bytes | None:
    """How many distinct clusters each language's accepted rows cover, out of all seen."""
    clusters = {lang: found for lang, found in figures.row_clusters.items() if found}
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


def plot_tokens_per_accepted(figures: RunFigures) -> bytes | None:
    """Generated tokens per accepted row, split into tokens the accepted rows took and tokens
    spent on rows that were rejected: the real price of a kept example."""
    spent = per_language(figures.completion, lambda status: f"on {status} rows")
    accepted = {lang: figures.rows.get((lang, ACCEPTED), 0) for lang in spent}
    per_accepted = {
        lang: Counter({k: v / accepted[lang] for k, v in spent[lang].items()}) for lang in spent if accepted[lang]
    }
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
    """Every plot of a small run's rows, by name, in page order; None where there is nothing to show."""
    return plots_from_figures(RunFigures.of(to_table(rows)))


def plots_from_figures(figures: RunFigures) -> dict[str, bytes | None]:
    """Every plot from a run's merged figures (a run of any size, counted group by group)."""
    return {name: plot(figures) for name, plot in PLOTS.items()}
