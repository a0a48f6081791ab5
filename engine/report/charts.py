"""matplotlib basics for the report's plots: loaded on first use with the Agg backend, so
importing the report code costs nothing and never needs a display."""

from __future__ import annotations

import io
from collections import Counter


def figure(width: float = 6.4, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=90)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def to_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def stacked_bars(
    counts: dict[str, Counter], series: list[str], title: str, ylabel: str, colours: dict | None = None
) -> bytes:
    """One bar per language, one stacked segment per series."""
    fig, ax = figure()
    langs = sorted(counts)
    bottom = [0.0] * len(langs)
    for name in series:
        values = [counts[lang].get(name, 0) for lang in langs]
        ax.bar(langs, values, bottom=bottom, label=name, color=(colours or {}).get(name))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return to_png(fig)
