"""The run report: counts that add up to the plan, per language and per reason."""

from __future__ import annotations

from collections import Counter, defaultdict

import pyarrow as pa

from engine.records import ACCEPTED, REJECTED


def reason_kind(reason: str | None) -> str:
    """'span_missing:[[3]]' → 'span_missing': counters group by kind, rows keep the detail."""
    return (reason or "").split(":", 1)[0]


def build_report(table: pa.Table, planned: int, bad_records: int, seconds: float, config: dict) -> dict:
    rows = table.select(["lang", "status", "reason", "prompt_tokens", "completion_tokens", "attempts", "lid_method"]).to_pylist()
    by_lang: dict[str, dict] = defaultdict(lambda: {"planned": 0, "accepted": 0, "rejected": 0, "reasons": Counter(), "completion_tokens": 0})
    for row in rows:
        entry = by_lang[row["lang"] or "(input)"]
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
        "lid_methods": dict(Counter(row["lid_method"] for row in rows if row["lid_method"])),
        "seconds": round(seconds, 1),
        "rows_per_second": round(len(rows) / seconds, 3) if seconds > 0 else None,
        "completion_tokens_per_second": round(completion_tokens / seconds, 1) if seconds > 0 else None,
    }


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
    lines += ["", "## Reject reasons", "", "| reason | rows |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in report["reject_reasons"].items()] or ["| - | 0 |"]
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
        f"  report       {run_dir}/report.md, {run_dir}/report.json",
        "",
    ]
    return "\n".join(lines)
