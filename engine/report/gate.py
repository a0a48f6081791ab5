"""The adequacy gate's part of the run report: per language, the rows it accepted and rejected
(low_similarity:*), the drafts it turned away, the scores against that language's thresholds (a
plot), and the calibration the run gated with (encoder, file, set digest: engine/calibration.py).

`gate_report` builds report.json's "gate" section from the run's figures and its resolved config;
`render_gate` is the page's section, with `plot_gate` drawn from that section alone (boxes from the
quantiles it keeps), so a report page rebuilt from report.json draws it too.
"""

from __future__ import annotations

import base64
from html import escape

from engine.report.aggregate import NO_LANGUAGE, RunFigures
from engine.report.charts import figure, to_png

OUTCOMES = ("accepted", "low_similarity", "other")
COLOURS = {"accepted": "#3a8f5c", "low_similarity": "#c8553d", "other": "#999999"}
LABELS = {"accepted": "accepted", "low_similarity": "rejected by the gate", "other": "rejected for another reason"}
TITLE = "Adequacy gate: scores against each language's thresholds"


def _quantiles(values: list[float]) -> dict | None:
    """The five numbers of a box (whiskers at the extremes), rounded."""
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 4)

    return {"min": at(0.0), "q1": at(0.25), "median": at(0.5), "q3": at(0.75), "max": at(1.0)}


def _thresholds(quality: dict, recipe: str, lang: str) -> tuple[dict | None, str | None]:
    """(thresholds by field, where they come from) of a language, from the resolved config."""
    if recipe == "xinstruction":  # its own check: one threshold, the instruction's fit to the text
        key = "xinstruct_min_similarity"
        value = quality.get(key)
        return ({"instruction": value} if value is not None else None), f"config {key}"
    resolved = quality.get("resolved_gate") or {}
    if lang in (resolved.get("languages") or {}):
        return resolved["languages"][lang], (resolved.get("sources") or {}).get(lang)
    from engine.languages import LANGUAGES

    language = LANGUAGES.get(lang)
    override = quality.get(
        "min_similarity" if language is not None and language.script == "Latin" else "min_similarity_non_latin"
    )
    return (override, "override") if override else (None, None)


def gate_report(figures: RunFigures, config: dict) -> dict | None:
    """report.json's "gate" section (see the module's docstring); None for a config that does not
    say how the gate ran (no quality section)."""
    if "quality" not in config:
        return None
    quality = config["quality"] or {}
    recipe = config.get("recipe", "sphinx")
    if not quality.get("adequacy", True):
        return {"enabled": False}
    resolved = quality.get("resolved_gate") or {}
    langs = sorted({lang for lang, _ in figures.rows} - {NO_LANGUAGE})
    languages = {}
    for lang in langs:
        thresholds, source = _thresholds(quality, recipe, lang)
        languages[lang] = {
            "thresholds": thresholds,
            "source": source,
            **{outcome: figures.gate_rows.get((lang, outcome), 0) for outcome in OUTCOMES},
            "drafts_rejected": figures.gate_drafts.get(lang, 0),
            "scores": {outcome: _quantiles(figures.gate_scores.get((lang, outcome), [])) for outcome in OUTCOMES},
        }
    # Every target overridden by min_similarity / min_similarity_non_latin: no calibration was read.
    calibration = (
        {key: resolved.get(key) for key in ("encoder", "file", "digest", "date")} if resolved.get("file") else None
    )
    return {"enabled": True, "encoder": quality.get("encoder"), "calibration": calibration, "languages": languages}


def plot_gate(gate: dict | None) -> bytes | None:
    """Per language, a box of the accepted rows' scores and one of the rows the gate rejected,
    with the language's instruction threshold (solid) and input/output threshold (dotted)."""
    languages = (gate or {}).get("languages") or {}
    langs = [
        lang
        for lang, entry in languages.items()
        if entry.get("thresholds") and any(entry["scores"].get(o) for o in ("accepted", "low_similarity"))
    ]
    if not langs:
        return None
    fig, ax = figure(max(8.0, 0.55 * len(langs) + 3.0), 3.6)
    for outcome, offset in (("accepted", -0.18), ("low_similarity", 0.18)):
        stats, positions = [], []
        for i, lang in enumerate(langs):
            box = languages[lang]["scores"].get(outcome)
            if box:
                stats.append(
                    {
                        "whislo": box["min"],
                        "q1": box["q1"],
                        "med": box["median"],
                        "q3": box["q3"],
                        "whishi": box["max"],
                        "fliers": [],
                    }
                )
                positions.append(i + offset)
        if stats:
            drawn = ax.bxp(stats, positions=positions, widths=0.3, patch_artist=True, manage_ticks=False)
            for patch in drawn["boxes"]:
                patch.set(facecolor=COLOURS[outcome], alpha=0.6)
        total = sum(languages[lang].get(outcome, 0) for lang in langs)
        ax.plot([], [], color=COLOURS[outcome], linewidth=6, alpha=0.6, label=f"{LABELS[outcome]} ({total})")
    for i, lang in enumerate(langs):
        limits = languages[lang].get("thresholds") or {}
        if limits.get("instruction") is not None:
            ax.hlines(limits["instruction"], i - 0.42, i + 0.42, colors="black", linewidth=1.2)
        if limits.get("output") is not None:
            ax.hlines(limits["output"], i - 0.42, i + 0.42, colors="black", linewidth=1.2, linestyles="dotted")
    ax.plot([], [], color="black", linewidth=1.2, label="threshold: instruction")
    ax.plot([], [], color="black", linewidth=1.2, linestyle="dotted", label="threshold: input, output")
    ax.set_xticks(range(len(langs)), langs)
    ax.set(title=TITLE, ylabel="cosine of the weakest field")
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return to_png(fig)


def render_gate(gate: dict | None) -> str:
    """The page's section: the calibration line, a table per language and the plot."""
    if not gate:
        return ""
    if not gate.get("enabled"):
        return '<h2>Adequacy gate</h2><p class="muted">Off in this run (quality.adequacy: false).</p>'
    calibration = gate.get("calibration")
    if calibration:
        ran = (
            f"Encoder <b>{escape(str(gate.get('encoder')))}</b>, "
            f"calibration <code>{escape(str(calibration.get('file')))}</code> "
            f"(fitted {escape(str(calibration.get('date')))} on set {escape(str(calibration.get('digest'))[:19])})."
        )
    else:
        ran = f"Encoder <b>{escape(str(gate.get('encoder')))}</b>; thresholds from the config."
    rows = ""
    for lang, entry in (gate.get("languages") or {}).items():
        limits = entry.get("thresholds") or {}
        shown = (
            " / ".join(
                f"{limits[key]:.3f}" for key in ("instruction", "output") if isinstance(limits.get(key), (int, float))
            )
            or "-"
        )
        medians = " / ".join(
            f"{(entry['scores'].get(o) or {}).get('median', '-')}" for o in ("accepted", "low_similarity")
        )
        rows += (
            f"<tr><td>{escape(lang)}</td><td>{escape(shown)}</td><td>{escape(str(entry.get('source') or '-'))}</td>"
            + "".join(
                f"<td class=num>{escape(str(entry.get(key, 0)))}</td>"
                for key in ("accepted", "low_similarity", "other", "drafts_rejected")
            )
            + f"<td>{escape(medians)}</td></tr>"
        )
    png = plot_gate(gate)
    image = (
        f'<figure><img alt="{escape(TITLE)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></figure>'
        if png
        else '<p class="muted">No scored rows to plot.</p>'
    )
    return (
        f'<h2>Adequacy gate</h2><p>{ran}</p><div class="scroll"><table class="summary gate"><tr><th>language</th>'
        "<th>thresholds instruction / input, output</th><th>from</th><th>accepted (scored)</th>"
        "<th>rejected by the gate</th><th>rejected otherwise (scored)</th><th>drafts the gate turned away</th>"
        "<th>median score accepted / gate-rejected</th></tr>"
        f"{rows}</table></div>{image}"
    )
