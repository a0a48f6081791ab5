"""The cluster plot of a run (plot-clusters.png): cluster sizes, and per language how many of the
k clusters its planned and accepted rows cover. Drawn from report["clusters"] (engine.report.counts)."""

from __future__ import annotations

from engine.report.charts import to_png


def plot_clusters(figures: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, langs = figures["k"], list(figures["languages"])
    fig, (sizes_ax, cover_ax) = plt.subplots(1, 2, figsize=(10, 3.4), dpi=90)
    sizes = sorted(figures["sizes"], reverse=True)
    sizes_ax.bar(range(len(sizes)), sizes, width=1.0, color="#4a6fa5")
    sizes_ax.set(
        title=f"Cluster sizes (k = {k}, {figures['seeds']} seeds)", xlabel="cluster, largest first", ylabel="seeds"
    )
    positions = range(len(langs))
    for offset, key, colour in ((-0.2, "planned", "#4a6fa5"), (0.2, "accepted", "#3a8f5c")):
        values = [figures["languages"][lang][key] for lang in langs]
        cover_ax.bar([p + offset for p in positions], values, width=0.4, color=colour, label=f"{key} rows")
    cover_ax.axhline(k, color="grey", linestyle="--", linewidth=1, label=f"k = {k}")
    cover_ax.set_xticks(list(positions), langs)
    cover_ax.set(title="Clusters covered per language", ylabel="clusters")
    cover_ax.legend(fontsize="small", frameon=False, loc="upper right", bbox_to_anchor=(1.0, 0.9))
    for ax in (sizes_ax, cover_ax):
        ax.spines[["top", "right"]].set_visible(False)
    return to_png(fig)
