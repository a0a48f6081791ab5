"""The run report: counts that add up to the plan, per language and per reason."""

from __future__ import annotations

from collections import Counter, defaultdict

import pyarrow as pa

from engine.reasons import meaning, reason_kind  # noqa: F401  (reason_kind: read here by jobs and plots)
from engine.records import ACCEPTED, REJECTED

NO_LANGUAGE = "(input)"  # rows decided before a language was assigned (unreadable input records)


def lang_of(row: dict) -> str:
    return row.get("lang") or NO_LANGUAGE


def build_report(table: pa.Table, planned: int, bad_records: int, seconds: float, config: dict) -> dict:
    rows = table.select(["lang", "status", "reason", "prompt_tokens", "completion_tokens", "attempts", "lid_method"]).to_pylist()
    by_lang: dict[str, dict] = defaultdict(lambda: {"planned": 0, "accepted": 0, "rejected": 0, "reasons": Counter(), "completion_tokens": 0})
    for row in rows:
        entry = by_lang[lang_of(row)]
        entry["planned"] += 1
        entry[row["status"]] += 1
        entry["completion_tokens"] += row["completion_tokens"] or 0
        if row["status"] == REJECTED:
            entry["reasons"][reason_kind(row["reason"])] += 1
    accepted = sum(1 for row in rows if row["status"] == ACCEPTED)
    rejected = sum(1 for row in rows if row["status"] == REJECTED)
    prompt_tokens = sum(row["prompt_tokens"] or 0 for row in rows)
    completion_tokens = sum(row["completion_tokens"] or 0 for row in rows)
    return {
        "run": config["run"]["name"],
        "recipe": config["recipe"],
        "model": config["model"]["name"],
        "planned": planned,
        "accepted": accepted,
        "rejected": rejected,
        "adds_up": planned == accepted + rejected,
        "bad_records": bad_records,
        "reject_reasons": dict(Counter(reason_kind(r["reason"]) for r in rows if r["status"] == REJECTED).most_common()),
        "languages": {
            lang: {**entry, "reasons": dict(entry["reasons"].most_common())} for lang, entry in sorted(by_lang.items())
        },
        "tokens": {
            "prompt": prompt_tokens,
            "completion": completion_tokens,
            "completion_per_accepted": round(completion_tokens / accepted, 1) if accepted else None,
        },
        "attempts_histogram": dict(sorted(Counter(row["attempts"] for row in rows).items())),
        "refinement": refinement_figures(table),
        "lid_methods": dict(Counter(row["lid_method"] for row in rows if row["lid_method"])),
        "seconds": round(seconds, 1),
        "rows_per_second": round(len(rows) / seconds, 3) if seconds > 0 else None,
        "completion_tokens_per_second": round(completion_tokens / seconds, 1) if seconds > 0 else None,
    }


def refinement_figures(table: pa.Table) -> dict:
    """Judge/rewrite figures: acceptance by round per language, score distributions per round,
    generated tokens per accepted row by phase. Empty when no row was judged."""
    rows = table.select(["lang", "status", "scores", "rounds", "tokens_draft", "tokens_judge", "tokens_rewrite"]).to_pylist()
    judged = [row for row in rows if row["scores"]]
    accepted = [row for row in rows if row["status"] == ACCEPTED]
    phases = ("draft", "judge", "rewrite")
    per_accepted = {
        phase: round(sum(row[f"tokens_{phase}"] or 0 for row in rows) / len(accepted), 1) if accepted else None
        for phase in phases
    }
    if not judged:
        return {"judged_rows": 0, "tokens_per_accepted": per_accepted}
    by_round: dict[str, dict[str, int]] = defaultdict(Counter)
    for row in accepted:
        by_round[row["lang"]][str(row["rounds"] or 0)] += 1
    scores: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in judged:
        for item in row["scores"]:
            scores[str(item["round"])][item["criterion"]].append(item["score"])
    distributions = {
        rnd: {crit: dict(sorted(Counter("unread" if v is None else f"{v:g}" for v in values).items())) for crit, values in crits.items()}
        for rnd, crits in sorted(scores.items())
    }
    return {
        "judged_rows": len(judged),
        "accepted_after_rounds": {lang: dict(sorted(counts.items())) for lang, counts in sorted(by_round.items())},
        "score_distributions": distributions,
        "tokens_per_accepted": per_accepted,
    }


def cluster_figures(table: pa.Table, seed_clusters: dict[str, int], k: int) -> dict:
    """Cluster sizes over the kept seeds, and per language how many of the k clusters its planned
    and its accepted rows cover: the diversity the selection bought and what survived of it."""
    sizes = Counter(seed_clusters.values())
    planned: dict[str, set] = defaultdict(set)
    accepted: dict[str, set] = defaultdict(set)
    for row in table.select(["seed_id", "lang", "status"]).to_pylist():
        cluster = seed_clusters.get(row["seed_id"])
        if cluster is None or not row["lang"]:
            continue  # rows decided before planning (duplicates, bad records) belong to no language
        planned[row["lang"]].add(cluster)
        if row["status"] == ACCEPTED:
            accepted[row["lang"]].add(cluster)
    return {
        "k": k,
        "seeds": len(seed_clusters),
        "sizes": [sizes.get(cluster, 0) for cluster in range(k)],
        "languages": {
            lang: {"planned": len(planned[lang]), "accepted": len(accepted[lang]), "planned_share": round(len(planned[lang]) / k, 3) if k else 0.0}
            for lang in sorted(planned)
        },
    }


def render_clusters(figures: dict) -> list[str]:
    sizes = sorted(figures["sizes"]) or [0]
    lines = [
        "## Clusters",
        "",
        f"k = {figures['k']} over {figures['seeds']} seeds; sizes min {sizes[0]}, median {sizes[len(sizes) // 2]}, max {sizes[-1]}.",
        "",
        "| language | clusters covered (planned) | clusters covered (accepted) | planned coverage |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {lang} | {entry['planned']} | {entry['accepted']} | {entry['planned_share']:.0%} |" for lang, entry in figures["languages"].items()
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
        lines.append(f"| {lang} | {entry['planned']} | {entry['accepted']} | {entry['rejected']} | {share} | {reasons} |")
    lines += ["", "## Reject reasons", "", "| reason | rows | meaning |", "|---|---:|---|"]
    lines += [f"| {reason} | {count} | {meaning(reason)} |" for reason, count in report["reject_reasons"].items()] or ["| - | 0 | |"]
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
            f"- generated tokens per accepted row: drafting {per['draft']}, judging {per['judge']}, rewriting {per['rewrite']}",
            "",
            "| language | accepted after rounds (rewrites: rows) |",
            "|---|---|",
        ]
        lines += [f"| {lang} | {counts} |" for lang, counts in refinement["accepted_after_rounds"].items()]
        lines += ["", "| round | score distribution per criterion |", "|---|---|"]
        lines += [f"| {rnd} | {dist} |" for rnd, dist in refinement["score_distributions"].items()]
        lines.append("")
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
        f"  tokens: {tokens['prompt']} prompt, {tokens['completion']} generated ({report['completion_tokens_per_second']}/s)",
        "",
        f"  run folder   {run_dir}",
        f"  accepted     {run_dir}/accepted.parquet (+ .jsonl)",
        f"  rejected     {run_dir}/rejected.parquet (+ .jsonl)",
        f"  report       {run_dir}/report.html (open in a browser), report.md, report.json",
        "",
    ]
    return "\n".join(lines)
