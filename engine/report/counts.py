"""The run report: counts that add up to the plan, per language and per reason."""

from __future__ import annotations

from collections import Counter, defaultdict

from engine.reasons import meaning, reason_kind  # noqa: F401  (reason_kind: read here by jobs and plots)
from engine.records import ACCEPTED, REJECTED
from engine.report.aggregate import NO_LANGUAGE, PHASES, RunFigures, most_common  # noqa: F401  (NO_LANGUAGE: read by jobs)
from engine.report.gate import gate_report


def lang_of(row: dict) -> str:
    return row.get("lang") or NO_LANGUAGE


def report_from_figures(figures: RunFigures, planned: int, bad_records: int, seconds: float, config: dict) -> dict:
    by_lang: dict[str, dict] = defaultdict(
        lambda: {"planned": 0, "accepted": 0, "rejected": 0, "reasons": Counter(), "completion_tokens": 0}
    )
    for (lang, status), count in figures.rows.items():
        entry = by_lang[lang]
        entry["planned"] += count
        entry[status] = entry.get(status, 0) + count
        entry["completion_tokens"] += figures.completion.get((lang, status), 0)
    all_reasons: Counter = Counter()
    for (lang, kind), count in figures.reasons.items():
        by_lang[lang]["reasons"][kind] += count
        all_reasons[kind] += count
    accepted, rejected = figures.status_count(ACCEPTED), figures.status_count(REJECTED)
    completion_tokens = sum(figures.completion.values())
    total = figures.total_rows
    return {
        "run": config["run"]["name"],
        "recipe": config["recipe"],
        "model": config["model"]["name"],
        "planned": planned,
        "accepted": accepted,
        "rejected": rejected,
        "adds_up": planned == accepted + rejected,
        "bad_records": bad_records,
        "reject_reasons": most_common(all_reasons),
        "languages": {
            lang: {**entry, "reasons": most_common(entry["reasons"])} for lang, entry in sorted(by_lang.items())
        },
        "tokens": {
            "prompt": figures.prompt_tokens,
            "completion": completion_tokens,
            "completion_per_accepted": round(completion_tokens / accepted, 1) if accepted else None,
        },
        "attempts_histogram": dict(sorted(figures.attempts.items())),
        "refinement": refinement_from_figures(figures),
        "round_trip": round_trip_from_figures(figures),
        "lid_methods": dict(figures.lid_methods),
        "gate": gate_report(figures, config),
        "seconds": round(seconds, 1),
        "rows_per_second": round(total / seconds, 3) if seconds > 0 else None,
        "completion_tokens_per_second": round(completion_tokens / seconds, 1) if seconds > 0 else None,
    }


def refinement_from_figures(figures: RunFigures) -> dict:
    """Judge/rewrite figures: acceptance by round per language, score distributions per round,
    generated tokens per accepted row by phase. Empty when no row was judged."""
    accepted = figures.status_count(ACCEPTED)
    per_accepted = {
        phase: round(figures.phase_tokens.get(phase, 0) / accepted, 1) if accepted else None for phase in PHASES
    }
    if not figures.judged_rows:
        return {"judged_rows": 0, "tokens_per_accepted": per_accepted}
    by_round: dict[str, dict[str, int]] = defaultdict(dict)
    for (lang, rounds), count in figures.accepted_rounds.items():
        by_round[lang][rounds] = count
    distributions: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    for (rnd, criterion, label), count in figures.scores.items():  # criteria in order of first appearance
        distributions[rnd][criterion][label] = count
    return {
        "judged_rows": figures.judged_rows,
        "accepted_after_rounds": {lang: dict(sorted(counts.items())) for lang, counts in sorted(by_round.items())},
        "score_distributions": {
            rnd: {crit: dict(sorted(values.items())) for crit, values in crits.items()}
            for rnd, crits in sorted(distributions.items())
        },
        "tokens_per_accepted": per_accepted,
    }


def round_trip_from_figures(figures: RunFigures) -> dict:
    """The optional round trip (quality.round_trip): rows scored and rejected, and what it cost
    in generated tokens per accepted row, as judging's cost is shown. Empty when it did not run."""
    tokens = figures.phase_tokens.get("round_trip", 0)
    if not (tokens or figures.round_trip_rows or figures.round_trip_rejected):
        return {}
    accepted = figures.status_count(ACCEPTED)
    return {
        "scored_rows": figures.round_trip_rows,
        "rejected_rows": figures.round_trip_rejected,
        "tokens": tokens,
        "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None,
    }


def cluster_figures_from(figures: RunFigures, seed_clusters: dict[str, int], k: int) -> dict:
    """Cluster sizes over the kept seeds, and per language how many of the k clusters its planned
    and its accepted rows cover: the diversity the selection bought and what survived of it."""
    sizes = Counter(seed_clusters.values())
    planned, accepted = figures.seed_clusters_planned, figures.seed_clusters_accepted
    return {
        "k": k,
        "seeds": len(seed_clusters),
        "sizes": [sizes.get(cluster, 0) for cluster in range(k)],
        "languages": {
            lang: {
                "planned": len(planned[lang]),
                "accepted": len(accepted.get(lang, ())),
                "planned_share": round(len(planned[lang]) / k, 3) if k else 0.0,
            }
            for lang in sorted(planned)
        },
    }


def render_clusters(figures: dict) -> list[str]:
    sizes = sorted(figures["sizes"]) or [0]
    lines = [
        "## Clusters",
        "",
        f"k = {figures['k']} over {figures['seeds']} seeds; "
        f"sizes min {sizes[0]}, median {sizes[len(sizes) // 2]}, max {sizes[-1]}.",
        "",
        "| language | clusters covered (planned) | clusters covered (accepted) | planned coverage |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {lang} | {entry['planned']} | {entry['accepted']} | {entry['planned_share']:.0%} |"
        for lang, entry in figures["languages"].items()
    ]
    return lines + [""]


def render_markdown(report: dict) -> str:
    lines = [
        f"# Run report: {report['run']}",
        "",
        f"Recipe `{report['recipe']}`, model `{report['model']}`, {report['seconds']} s.",
        "",
        f"**Planned {report['planned']} = accepted {report['accepted']} + rejected {report['rejected']}**"
        + ("" if report["adds_up"] else "  ⚠ does not add up"),
        "",
        "| language | planned | accepted | rejected | acceptance | top reject reasons |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for lang, entry in report["languages"].items():
        share = f"{entry['accepted'] / entry['planned']:.0%}" if entry["planned"] else "-"
        reasons = ", ".join(f"{k} {v}" for k, v in list(entry["reasons"].items())[:3]) or "-"
        lines.append(
            f"| {lang} | {entry['planned']} | {entry['accepted']} | {entry['rejected']} | {share} | {reasons} |"
        )
    lines += ["", "## Reject reasons", "", "| reason | rows | meaning |", "|---|---:|---|"]
    lines += [f"| {reason} | {count} | {meaning(reason)} |" for reason, count in report["reject_reasons"].items()] or [
        "| - | 0 | |"
    ]
    tokens = report["tokens"]
    lines += [
        "",
        "## Tokens",
        "",
        f"- prompt tokens: {tokens['prompt']}",
        f"- generated tokens: {tokens['completion']} ({report['completion_tokens_per_second']} per second)",
        f"- generated tokens per accepted row: {tokens['completion_per_accepted']}",
        f"- drafts per row: {report['attempts_histogram']}",
        "",
    ]
    refinement = report.get("refinement") or {}
    if refinement.get("judged_rows"):
        per = refinement["tokens_per_accepted"]
        lines += [
            "## Refinement",
            "",
            f"- judged rows: {refinement['judged_rows']}",
            f"- generated tokens per accepted row: drafting {per['draft']}, judging {per['judge']}, "
            f"rewriting {per['rewrite']}" + (f", round trip {per['round_trip']}" if per.get("round_trip") else ""),
            "",
            "| language | accepted after rounds (rewrites: rows) |",
            "|---|---|",
        ]
        lines += [f"| {lang} | {counts} |" for lang, counts in refinement["accepted_after_rounds"].items()]
        lines += ["", "| round | score distribution per criterion |", "|---|---|"]
        lines += [f"| {rnd} | {dist} |" for rnd, dist in refinement["score_distributions"].items()]
        lines.append("")
    round_trip = report.get("round_trip") or {}
    if round_trip:
        lines += [
            "## Round trip",
            "",
            f"- rows scored: {round_trip['scored_rows']}; rejected by it: {round_trip['rejected_rows']}",
            f"- generated tokens: {round_trip['tokens']}"
            + (
                f" ({round_trip['tokens_per_accepted']} per accepted row)"
                if round_trip["tokens_per_accepted"] is not None
                else ""
            ),
            "",
        ]
    if report.get("clusters"):
        lines += render_clusters(report["clusters"])
    return "\n".join(lines)


def render_summary(report: dict, run_dir: str) -> str:
    """The one screen printed at the end of a job."""
    width = max([8] + [len(lang) for lang in report["languages"]])
    lines = [
        "",
        f"babelforge run '{report['run']}' finished in {report['seconds']} s",
        f"  planned {report['planned']} = accepted {report['accepted']} + rejected {report['rejected']}",
        "",
        f"  {'language':<{width}}  planned  accepted  rejected",
    ]
    for lang, entry in report["languages"].items():
        lines.append(f"  {lang:<{width}}  {entry['planned']:>7}  {entry['accepted']:>8}  {entry['rejected']:>8}")
    if report["reject_reasons"]:
        lines += ["", "  rejected by reason: " + ", ".join(f"{k} {v}" for k, v in report["reject_reasons"].items())]
    tokens = report["tokens"]
    lines += [
        f"  tokens: {tokens['prompt']} prompt, {tokens['completion']} generated "
        f"({report['completion_tokens_per_second']}/s)",
        "",
        f"  run folder   {run_dir}",
        f"  accepted     {run_dir}/accepted.parquet/<language>/ (+ accepted.jsonl)",
        f"  rejected     {run_dir}/rejected.parquet/<language>/ (+ rejected.jsonl)",
        f"  report       {run_dir}/report.html (open in a browser), report.md, report.json",
        "",
    ]
    return "\n".join(lines)
