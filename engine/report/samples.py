"""The report page's sample browser: source and output side by side, protected spans marked,
judge scores and reject reasons shown. Every piece of row text goes through html.escape.

A sample shows one or more outputs of the same (seed, language): one for a run's own page, one
per run on a comparison page.
"""

from __future__ import annotations

import re
from collections import defaultdict
from html import escape

from engine.reasons import meaning
from engine.records import ACCEPTED, REJECTED
from engine.report.counts import lang_of

FIELDS = ("instruction", "input", "output")
DEFAULT_SAMPLES_PER_LANGUAGE = 50


def highlight(text: str | None, spans: list[str] | None) -> str:
    """Escape `text` and wrap every occurrence of a protected span in <mark>. The raw text is
    split on the spans first and each piece escaped alone, so entities are never cut or doubled."""
    text = text or ""
    spans = sorted({span for span in spans or [] if span}, key=len, reverse=True)
    if not spans:
        return escape(text)
    pieces = re.split("(" + "|".join(map(re.escape, spans)) + ")", text)
    # re.split with one capturing group: odd positions are the spans themselves.
    return "".join(f"<mark>{escape(piece)}</mark>" if i % 2 else escape(piece) for i, piece in enumerate(pieces))


def pick_samples(groups: list[list[dict | None]], cap: int) -> list[list[dict | None]]:
    """Up to `cap` groups per language, half accepted and half rejected where both exist, so both
    status filters have something to show. A group's status is its first present row's."""
    by_lang: dict[str, dict[str, list]] = defaultdict(lambda: {ACCEPTED: [], REJECTED: []})
    for group in groups:
        first = next(row for row in group if row)
        by_lang[lang_of(first)][first["status"]].append(group)
    picked = []
    for lang in sorted(by_lang):
        accepted, rejected = by_lang[lang][ACCEPTED], by_lang[lang][REJECTED]
        take_rejected = min(len(rejected), max(cap // 2, cap - len(accepted)))
        picked += accepted[: cap - take_rejected] + rejected[:take_rejected]
    return picked


def render_scores(scores: list[dict] | None) -> str:
    if not scores:
        return ' · <span class="muted">no judge scores</span>'
    cells = "".join(
        f"<tr><td>{escape(str(s.get('round')))}</td><td>{escape(str(s.get('criterion')))}</td>"
        f"<td>{escape(str(s.get('score')))}</td></tr>"
        for s in sorted(scores, key=lambda s: (s.get("round") or 0, str(s.get("criterion"))))
    )
    return f'<table class="scores"><tr><th>round</th><th>criterion</th><th>score</th></tr>{cells}</table>'


def render_reason(reason: str, field: str | None = None) -> str:
    """A reject reason, the field it is about, and its meaning (engine/reasons.py) as a tooltip."""
    about = f" ({escape(field)})" if field else ""
    return f' <span class="reason" title="{escape(meaning(reason))}">{escape(reason)}{about}</span>'


def render_fate(label: str, row: dict | None) -> str:
    """One output's header: status, reason, drafts, language ID, scores."""
    if row is None:
        return f'<div class="fate"><b>{escape(label)}</b>: <span class="muted">not in this run</span></div>'
    status = escape(row["status"] or "")
    reason = render_reason(row["reason"], row.get("reason_field")) if row.get("reason") else ""
    lid = ""
    if row.get("lid_label"):
        lid = (
            f" · language ID {escape(row['lid_label'])} {row.get('lid_confidence') or 0:.2f} "
            f"({escape(row.get('lid_method') or '')})"
        )
    if row.get("adequacy") is not None:
        lid += f" · adequacy {row['adequacy']:.3f}"
    if row.get("round_trip_chrf") is not None:
        lid += f" · round-trip chrF {row['round_trip_chrf']:.1f}"
    drafts = ", ".join(row.get("attempt_reasons") or [])
    drafts = f" · reasons per draft: {escape(drafts)}" if drafts else ""
    return (
        f'<div class="fate"><b>{escape(label)}</b> <span class="badge {status}">{status}</span>{reason}'
        f" · drafts {escape(str(row.get('attempts')))}{lid}{drafts}"
        f" · {escape(str(row.get('completion_tokens')))} tokens{render_scores(row.get('scores'))}</div>"
    )


def render_sample(group: list[dict | None], labels: list[str]) -> str:
    source = next(row for row in group if row)
    spans = source.get("protected_spans") or []
    lang = lang_of(source)
    statuses = " ".join(sorted({row["status"] for row in group if row}))
    head = "".join(f"<th>{escape(label)} ({escape(lang)})</th>" for label in labels)
    body = ""
    for field in FIELDS:
        texts = [source.get(f"src_{field}")] + [row.get(field) if row else None for row in group]
        if not any(texts):
            continue
        cells = "".join(f'<td><div class="text">{highlight(text, spans)}</div></td>' for text in texts)
        body += f"<tr><th>{field}</th>{cells}</tr>"
    fates = "".join(render_fate(label, row) for label, row in zip(labels, group))
    return (
        f'<section class="sample" data-lang="{escape(lang)}" data-status="{escape(statuses)}">'
        f"<h3>{escape(lang)} · {escape(source.get('seed_id') or '')} "
        f"<small>{escape(source.get('id') or '')}</small></h3>"
        f'{fates}<table class="pair"><tr><th></th><th>source (English)</th>{head}</tr>{body}</table></section>'
    )


def render_browser(
    groups: list[list[dict | None]],
    labels: list[str],
    cap: int = DEFAULT_SAMPLES_PER_LANGUAGE,
    total: int | None = None,
) -> str:
    """The filter bar and the capped samples; `groups` holds one row per label (None: absent).
    `total`: how many rows the run has when `groups` is already a sample of them."""
    picked = pick_samples(groups, cap)
    langs = sorted({lang_of(next(row for row in group if row)) for group in groups})
    options = "".join(f'<option value="{escape(lang)}">{escape(lang)}</option>' for lang in langs)
    return (
        f"<h2>Samples</h2><p>{len(picked)} of {len(groups) if total is None else total} rows on this page "
        f"(at most {cap} per language).</p>"
        '<div class="filters">language <select id="f-lang"><option value="">all</option>'
        f'{options}</select> status <select id="f-status"><option value="">all</option>'
        f'<option value="{ACCEPTED}">{ACCEPTED}</option><option value="{REJECTED}">{REJECTED}</option></select>'
        ' <span id="f-count"></span></div>'
        + ("".join(render_sample(group, labels) for group in picked) or '<p class="muted">no rows in this run</p>')
    )


def pair_rows(runs: list[list[dict]]) -> list[list[dict | None]]:
    """Join the runs' rows on (seed, language): ids differ across prompt versions, these do not."""
    keyed = [{(row.get("seed_id"), row.get("lang")): row for row in rows} for rows in runs]
    keys = sorted(set().union(*keyed), key=lambda key: (key[1] or "", key[0] or ""))
    return [[rows.get(key) for rows in keyed] for key in keys]
