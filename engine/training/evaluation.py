"""The pure side of the evaluation job: held-out prompts, the answer judge's messages, language
fidelity and the other per-language aggregates, and the report (JSON, Markdown, PNG bars).

Language fidelity is the share of answers whose language (by fastText) is the prompt's language:
the question-response language consistency that QAlign measures.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

from engine.report.charts import figure, to_png
from engine.languages import get_language

MODELS = ("base", "finetuned")
ANSWER_JUDGE_VERSION = "answer_judge.v1"

ANSWER_JUDGE_SYSTEM = (
    "You review an answer to a request written in {language}. Judge one thing only: {criterion}.\n"
    "{rubric}\n"
    'Reply with a JSON object: "feedback" (one short sentence) then "score" (0, 1 or 2).'
)
# criterion → (name in the prompt, rubric). Our words; 0–2 as the translation judge (METAL-style).
ANSWER_CRITERIA = {
    "language": (
        "whether the answer is written in {language}, the language of the request",
        "2 = entirely in natural {language}; 1 = mostly {language}, with parts in another language or awkward; 0 = mostly in another language, or empty.",
    ),
    "helpfulness": (
        "whether the answer does what the request asks",
        "2 = correct and complete; 1 = partly right or incomplete; 0 = wrong, off-topic, empty or repetitive.",
    ),
}


def language_name(code: str) -> str:
    try:
        return get_language(code).name
    except (KeyError, ValueError):
        return code


def answer_judge_messages(criterion: str, lang: str, prompt: str, answer: str) -> list[dict]:
    name, rubric = ANSWER_CRITERIA[criterion]
    language = language_name(lang)
    system = ANSWER_JUDGE_SYSTEM.format(language=language, criterion=name.format(language=language), rubric=rubric.format(language=language))
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Request:\n{prompt}\n\nAnswer:\n{answer}"}]


def parse_prompt_lines(lines, source: str) -> list[dict]:
    """Held-out prompts from JSONL lines {"id", "lang", "prompt"}; a bad line names file and line."""
    prompts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}:{number}: not JSON ({error.msg})") from None
        missing = [key for key in ("lang", "prompt") if not isinstance(row.get(key), str) or not row[key].strip()]
        if missing:
            raise ValueError(f"{source}:{number}: needs non-empty string fields {missing}")
        prompts.append({"id": str(row.get("id") or f"{source}:{number}"), "lang": row["lang"], "prompt": row["prompt"], "source": "file"})
    return prompts


def sample_per_language(rows: list[dict], per_language: int, seed: int, languages=None) -> list[dict]:
    """At most per_language rows of each language, drawn reproducibly, in a stable order."""
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if languages is None or row["lang"] in languages:
            by_lang[row["lang"]].append(row)
    chosen = []
    for lang in sorted(by_lang):
        group = sorted(by_lang[lang], key=lambda r: str(r.get("id")))
        chosen += random.Random(f"{seed}:{lang}").sample(group, min(per_language, len(group)))
    return chosen


def validation_prompts(rows: list[dict]) -> list[dict]:
    return [{"id": row["id"], "lang": row["lang"], "prompt": row["prompt"], "source": "validation"} for row in rows]


def fidelity(items: list[dict], model: str) -> dict[str, dict]:
    """Per language: answers, answers in the prompt's language, and their share.

    items carry `lang` and, per model, `<model>_lid` (the answer's detected label)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        counts[item["lang"]][0] += 1
        counts[item["lang"]][1] += int(item.get(f"{model}_lid") == item["lang"])
    return {lang: {"answers": n, "in_language": k, "share": k / n} for lang, (n, k) in sorted(counts.items())}


def overall_fidelity(items: list[dict], model: str) -> dict:
    """Fidelity over every prompt, whatever its language (empty when there are none)."""
    if not items:
        return {}
    k = sum(int(item.get(f"{model}_lid") == item["lang"]) for item in items)
    return {"answers": len(items), "in_language": k, "share": k / len(items)}


def judge_means(items: list[dict], model: str, criteria) -> dict[str, dict[str, float | None]]:
    """Per language and criterion: the mean of the scores the judge's replies could be read as."""
    out: dict[str, dict[str, float | None]] = {}
    for lang in sorted({item["lang"] for item in items}):
        group = [item for item in items if item["lang"] == lang]
        out[lang] = {}
        for criterion in criteria:
            read = [s for item in group if (s := item.get(f"{model}_judge", {}).get(criterion)) is not None]
            out[lang][criterion] = sum(read) / len(read) if read else None
    return out


def mean_loss(sums: dict[str, list[float]]) -> dict[str, float]:
    """{lang: [loss sum, tokens]} → {lang: mean loss per completion token}."""
    return {lang: total / tokens for lang, (total, tokens) in sorted(sums.items()) if tokens}


def build_report(name: str, models: dict[str, str], items: list[dict], losses: dict[str, dict] | None, criteria, seconds: float) -> dict:
    languages = sorted({item["lang"] for item in items} | set((losses or {}).get("base", {})))
    per_model = {
        model: {"fidelity": fidelity(items, model), "judge": judge_means(items, model, criteria), "loss": (losses or {}).get(model, {})}
        for model in MODELS
    }
    table = {}
    for lang in languages:
        row = {"prompts": sum(1 for item in items if item["lang"] == lang)}
        for model in MODELS:
            m = per_model[model]
            row[model] = {
                "fidelity": m["fidelity"].get(lang, {}).get("share"),
                "judge": m["judge"].get(lang, {}),
                "loss": m["loss"].get(lang),
            }
        table[lang] = row
    overall = {model: overall_fidelity(items, model) for model in MODELS}
    by_source = {
        source: {model: fidelity([item for item in items if item["source"] == source], model) for model in MODELS}
        for source in sorted({item["source"] for item in items})
    }
    return {"name": name, "models": models, "languages": table, "overall_fidelity": overall, "by_source": by_source,
            "criteria": list(criteria), "answers": len(items), "seconds": round(seconds, 1)}


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fidelity_lines(report: dict) -> list[str]:
    """The per-language fidelity table as plain text lines (what `make finetune-demo` prints)."""
    lines = [f"{'lang':<6}{'prompts':>8}{'base':>8}{'tuned':>8}{'delta':>8}"]
    for lang, row in report["languages"].items():
        base, tuned = row["base"]["fidelity"], row["finetuned"]["fidelity"]
        delta = None if base is None or tuned is None else tuned - base
        lines.append(f"{lang:<6}{row['prompts']:>8}{_fmt(base):>8}{_fmt(tuned):>8}{_fmt(delta):>8}")
    overall = report["overall_fidelity"]
    if overall["base"]:
        lines.append(f"{'all':<6}{overall['base']['answers']:>8}{_fmt(overall['base']['share']):>8}{_fmt(overall['finetuned']['share']):>8}"
                     f"{_fmt(overall['finetuned']['share'] - overall['base']['share']):>8}")
    return lines


def render_markdown(report: dict) -> str:
    criteria = report["criteria"]
    head = ["language", "prompts", "fidelity base", "fidelity tuned"]
    head += [f"{c} base" for c in criteria] + [f"{c} tuned" for c in criteria] + ["loss base", "loss tuned"]
    lines = [
        f"# Evaluation: {report['name']}",
        "",
        f"Base: `{report['models']['base']}`  ",
        f"Fine-tuned: `{report['models']['finetuned']}`",
        "",
        "Language fidelity is the share of answers fastText puts in the prompt's language. Judge scores",
        "are 0–2 means (a signal, not a gate); loss is the mean completion-token loss on held-out examples.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for lang, row in report["languages"].items():
        cells = [lang, str(row["prompts"]), _fmt(row["base"]["fidelity"]), _fmt(row["finetuned"]["fidelity"])]
        cells += [_fmt(row["base"]["judge"].get(c)) for c in criteria] + [_fmt(row["finetuned"]["judge"].get(c)) for c in criteria]
        cells += [_fmt(row["base"]["loss"], 3), _fmt(row["finetuned"]["loss"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    overall = report["overall_fidelity"]
    if overall["base"]:
        lines += ["", f"Overall fidelity: base {_fmt(overall['base']['share'])}, fine-tuned {_fmt(overall['finetuned']['share'])} "
                  f"over {overall['base']['answers']} prompts. Sources: "
                  + ", ".join(f"{s} ({sum(v['answers'] for v in m['base'].values())})" for s, m in report["by_source"].items()) + "."]
    lines += ["", f"{report['answers']} prompts, {report['seconds']} s."]
    return "\n".join(lines) + "\n"


def plot_pairs(report: dict, metric: str, title: str, ylabel: str, criterion: str | None = None) -> bytes | None:
    """Bars per language, base beside fine-tuned, for fidelity, loss or one judge criterion."""
    langs, values = [], {model: [] for model in MODELS}
    for lang, row in report["languages"].items():
        pair = [row[m]["judge"].get(criterion) if criterion else row[m][metric] for m in MODELS]
        if any(v is None for v in pair):
            continue
        langs.append(lang)
        for model, value in zip(MODELS, pair):
            values[model].append(value)
    if not langs:
        return None
    fig, ax = figure()
    width = 0.38
    for i, (model, colour) in enumerate(zip(MODELS, ("#9aa5b1", "#3a8f5c"))):
        ax.bar([x + (i - 0.5) * width for x in range(len(langs))], values[model], width, label=model, color=colour)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if metric == "fidelity":
        ax.set_ylim(0, 1.05)
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return to_png(fig)


def plots(report: dict) -> dict[str, bytes]:
    """File name → PNG for every plot the report has data for."""
    out = {
        "fidelity.png": plot_pairs(report, "fidelity", "Language fidelity: base vs fine-tuned", "share in the prompt's language"),
        "loss.png": plot_pairs(report, "loss", "Held-out loss per language", "mean completion-token loss"),
    }
    for criterion in report["criteria"]:
        out[f"judge-{criterion}.png"] = plot_pairs(report, "judge", f"Judge: {criterion}", "mean score (0–2)", criterion)
    return {name: png for name, png in out.items() if png}
