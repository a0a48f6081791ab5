"""report.html: one self-contained page per run (or per pair of runs) — summary, plots, samples.

Pure: it takes the report dict, the rows and the plots' PNG bytes, and returns a string. Nothing
on the page reaches the network: styles and the filter script are inline, plots are `data:` URIs,
and every value that came from a model, a seed or a config is escaped.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from engine.reasons import meaning
from engine.report.aggregate import RunFigures
from engine.report.gate import render_gate
from engine.report.plots import TITLES, plots_from_figures
from engine.report.samples import DEFAULT_SAMPLES_PER_LANGUAGE, pair_rows, render_browser
from engine.runfolder import RunFolder

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{margin-bottom:4px} table{border-collapse:collapse} td,th{padding:3px 8px;vertical-align:top;text-align:left}
.summary td,.summary th{border-bottom:1px solid #ddd} .num{text-align:right} .scroll{overflow-x:auto}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px}
figure{margin:0} img{max-width:100%} .compare{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px}
.sample{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:12px 0}
.sample h3{margin:0 0 6px;font-size:15px} .pair{width:100%;table-layout:fixed} .pair th:first-child{width:90px}
.pair td{border-top:1px solid #eee}
.text{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:12.5px}
mark{background:#ffe48a} .badge{padding:1px 6px;border-radius:4px;color:#fff}
.accepted{background:#3a8f5c} .rejected{background:#c8553d} .reason{color:#a33;font-weight:600}
.muted{color:#888} .fate{margin:4px 0} .scores{font-size:12px;margin:2px 0 0 12px}
.filters{position:sticky;top:0;background:#f7f7f7;padding:6px;border:1px solid #ddd}
"""

# Filters samples by their data-lang / data-status; `#lang=fr&status=rejected` presets it.
SCRIPT = """
(function(){
  var lang=document.getElementById('f-lang'),status=document.getElementById('f-status');
  if(!lang)return;
  function apply(){
    var shown=0;
    document.querySelectorAll('.sample').forEach(function(s){
      var ok=(!lang.value||s.dataset.lang===lang.value)&&
        (!status.value||s.dataset.status.split(' ').indexOf(status.value)>=0);
      s.hidden=!ok; if(ok)shown++;
    });
    document.getElementById('f-count').textContent=shown+' shown';
  }
  var preset=new URLSearchParams(location.hash.slice(1));
  if(preset.has('lang'))lang.value=preset.get('lang');
  if(preset.has('status'))status.value=preset.get('status');
  lang.onchange=apply;status.onchange=apply;apply();
})();
"""


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}<script>{SCRIPT}</script></body></html>"
    )


def render_plot(name: str, png: bytes | None, run_label: str = "") -> str:
    title = escape(TITLES.get(name, name))
    caption = f"<figcaption>{escape(run_label)}</figcaption>" if run_label else ""
    if png is None:
        return f'<figure>{caption}<p class="muted">{title}: nothing to plot in this run</p></figure>'
    data = base64.b64encode(png).decode("ascii")
    return f'<figure>{caption}<img alt="{title}" src="data:image/png;base64,{data}"></figure>'


def text(value) -> str:
    """Any report value as escaped text: report.json is read back from disk, so trust no type."""
    return escape(str(value))


def render_summary(report: dict) -> str:
    adds_up = "" if report.get("adds_up", True) else ' <span class="reason">does not add up</span>'
    tokens = report.get("tokens") or {}
    rows = ""
    for lang, entry in (report.get("languages") or {}).items():
        share = f"{entry['accepted'] / entry['planned']:.0%}" if entry.get("planned") else "-"
        top = list((entry.get("reasons") or {}).items())[:4]
        reasons = ", ".join(f'<span title="{text(meaning(k))}">{text(k)}</span> {text(v)}' for k, v in top) or "-"
        numbers = "".join(
            f"<td class=num>{text(entry.get(key, '-'))}</td>" for key in ("planned", "accepted", "rejected")
        )
        rows += (
            f"<tr><td>{text(lang)}</td>{numbers}<td class=num>{share}</td><td>{reasons}</td>"
            f"<td class=num>{text(entry.get('completion_tokens', '-'))}</td></tr>"
        )
    return (
        f"<p>Recipe <b>{text(report.get('recipe'))}</b>, model <b>{text(report.get('model'))}</b>, "
        f"{text(report.get('seconds'))} s, {text(report.get('completion_tokens_per_second'))} generated tokens/s.</p>"
        f"<p><b>Planned {text(report.get('planned', 0))} = accepted {text(report.get('accepted', 0))} + "
        f"rejected {text(report.get('rejected', 0))}</b>{adds_up}</p>"
        '<div class="scroll"><table class="summary"><tr><th>language</th><th>planned</th><th>accepted</th>'
        f"<th>rejected</th><th>acceptance</th><th>top reject reasons</th><th>tokens out</th></tr>{rows}</table></div>"
        f"<p>Generated tokens per accepted row: {text(tokens.get('completion_per_accepted'))}.</p>"
        f"{render_costs(report)}"
        f"{render_reason_legend(report.get('reject_reasons') or {})}"
        "<details><summary>report.json</summary>"
        f"<pre>{escape(json.dumps(report, indent=2, ensure_ascii=False))}</pre></details>"
    )


def render_costs(report: dict) -> str:
    """What judging and the round trip cost, in generated tokens per accepted row (where they ran)."""
    parts = []
    refinement = report.get("refinement") or {}
    per = refinement.get("tokens_per_accepted") or {}
    if refinement.get("judged_rows"):
        parts.append(
            f"judging {text(per.get('judge'))}, rewriting {text(per.get('rewrite'))} "
            f"({text(refinement['judged_rows'])} rows judged)"
        )
    round_trip = report.get("round_trip") or {}
    if round_trip:
        parts.append(
            f"round trip {text(round_trip.get('tokens_per_accepted'))} "
            f"({text(round_trip.get('scored_rows'))} rows scored, "
            f"{text(round_trip.get('rejected_rows'))} rejected by it)"
        )
    return f"<p>Of those: {'; '.join(parts)}.</p>" if parts else ""


def render_reason_legend(reject_reasons: dict) -> str:
    """What each reject reason of this run means (engine/reasons.py), with its row count."""
    if not reject_reasons:
        return ""
    items = "".join(
        f"<dt>{text(reason)} <span class=muted>({text(count)})</span></dt><dd>{text(meaning(reason))}</dd>"
        for reason, count in reject_reasons.items()
    )
    return f'<details class="reasons"><summary>What the reject reasons mean</summary><dl>{items}</dl></details>'


def build_html(
    report: dict,
    rows: list[dict],
    plots: dict[str, bytes | None],
    samples_per_language: int = DEFAULT_SAMPLES_PER_LANGUAGE,
    total_rows: int | None = None,
) -> str:
    """One run's page. `rows` may be a sample (engine/report/samples.py's first rows of each
    language and status): `total_rows` then says how many the run has."""
    name = str(report.get("run") or "run")
    skipped = ", ".join(escape(TITLES.get(k, k)).lower() for k, v in plots.items() if v is None)
    body = (
        f"<h1>babelforge run: {escape(name)}</h1>{render_summary(report)}{render_gate(report.get('gate'))}"
        "<h2>Plots</h2>"
        f'<div class="plots">{"".join(render_plot(k, v) for k, v in plots.items() if v is not None)}</div>'
        + (f'<p class="muted">Nothing to plot in this run for: {skipped}.</p>' if skipped else "")
        + render_browser([[row] for row in rows], ["output"], samples_per_language, total_rows)
    )
    return page(f"babelforge run {name}", body)


def build_compare_html(
    runs: list[tuple[str, dict, list[dict], dict[str, bytes | None]]],
    samples_per_language: int = DEFAULT_SAMPLES_PER_LANGUAGE,
) -> str:
    """Two (or more) runs side by side: (label, report, rows, plots) each; samples joined on
    (seed, language), one output column per run."""
    labels = [label for label, *_ in runs]
    summaries = "".join(f"<div><h2>{escape(label)}</h2>{render_summary(report)}</div>" for label, report, _, _ in runs)
    plot_rows = "".join(
        '<div class="compare">'
        + "".join(render_plot(name, plots.get(name), label) for label, _, _, plots in runs)
        + "</div>"
        for name in runs[0][3]
    )
    body = (
        f"<h1>babelforge: {' vs '.join(escape(label) for label in labels)}</h1>"
        f'<div class="compare">{summaries}</div><h2>Plots</h2>{plot_rows}'
        + render_browser(pair_rows([rows for _, _, rows, _ in runs]), labels, samples_per_language)
    )
    return page("babelforge " + " vs ".join(labels), body)


def write_report_page(
    run_dir: RunFolder | str | Path,
    report: dict,
    figures: RunFigures,
    sample: list[dict],
    samples_per_language: int = DEFAULT_SAMPLES_PER_LANGUAGE,
    out: Path | None = None,
) -> str:
    """Write plot-<name>.png for each plot the run has, and the page; returns the page's location.
    `figures`: the whole run's; `sample`: the rows the page may show (Sample's first rows of each
    language and status, or every row of a small run)."""
    folder = RunFolder.of(run_dir)
    plots = plots_from_figures(figures)
    for name, png in plots.items():
        if png is not None:
            folder.write_bytes(f"plot-{name}.png", png)
    html = build_html(report, sample, plots, samples_per_language, figures.total_rows)
    if out is not None:
        Path(out).write_text(html, encoding="utf-8")
        return str(out)
    folder.write_text("report.html", html)
    return f"{folder}/report.html"
