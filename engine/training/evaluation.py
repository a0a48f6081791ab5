"""The pure side of the evaluation job: held-out prompts, the answer judge's messages, language
fidelity and the other per-language aggregates, and the report (JSON, Markdown, PNG bars).

Language fidelity is the share of answers whose language (by fastText) is the prompt's language:
the question-response language consistency that QAlign measures. Cross-lingual consistency is the
cosine (a multilingual encoder) between a model's answer to a question asked in language x and its
answer to the same question asked in English: does what it knows carry across languages?
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

import numpy as np

from engine.languages import get_language
from engine.report.charts import figure, to_png

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
        "2 = entirely in natural {language}; 1 = mostly {language}, with parts in another language or awkward; "
        "0 = mostly in another language, or empty.",
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
    system = ANSWER_JUDGE_SYSTEM.format(
        language=language, criterion=name.format(language=language), rubric=rubric.format(language=language)
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Request:\n{prompt}\n\nAnswer:\n{answer}"},
    ]


def parse_prompt_lines(lines, source: str) -> list[dict]:
    """Held-out prompts from JSONL lines {"id", "lang", "prompt"}, optionally "en" (the prompt's
    English version) and "seed_id" (pairs it with the English prompt of the same seed); a bad line
    names file, line and field."""
    prompts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}:{number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{source}:{number}: a prompt line is a JSON object, not {type(row).__name__}")
        missing = [key for key in ("lang", "prompt") if not isinstance(row.get(key), str) or not row[key].strip()]
        if missing:
            raise ValueError(f"{source}:{number}: needs non-empty string fields {missing}")
        prompt = {
            "id": str(row.get("id") or f"{source}:{number}"),
            "lang": row["lang"],
            "prompt": row["prompt"],
            "source": "file",
        }
        for key, meaning in (
            ("en", "the prompt in English"),
            ("seed_id", "the seed the prompt shares with its English version"),
        ):
            if key not in row:
                continue
            if not isinstance(row[key], str) or not row[key].strip():
                raise ValueError(
                    f"{source}:{number}: field '{key}' ({meaning}) must be a non-empty string, got {row[key]!r}"
                )
            prompt[key] = row[key]
        prompts.append(prompt)
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
    out = []
    for row in rows:
        prompt = {"id": row["id"], "lang": row["lang"], "prompt": row["prompt"], "source": "validation"}
        if row.get("seed_id"):
            prompt["seed_id"] = row["seed_id"]
        out.append(prompt)
    return out


def english_by_seed(rows: list[dict]) -> dict[str, str]:
    """seed id → the prompt of its English row (the lowest id when a seed has several)."""
    out: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: str(r.get("id"))):
        if row.get("lang") == "en" and row.get("seed_id") and (row.get("prompt") or "").strip():
            out.setdefault(row["seed_id"], row["prompt"])
    return out


def pair_with_english(prompts: list[dict], english: dict[str, str] | None = None) -> list[dict]:
    """Copies of `prompts`, each non-English one with `en_prompt`: its own `en` field, else the English
    prompt of its seed (from `english`, seed id → prompt, or an English prompt among `prompts`).
    A prompt with no English version gets none and is left out of the consistency figures."""
    known = english_by_seed([p for p in prompts if p.get("seed_id")])
    known.update(english or {})
    out = []
    for prompt in prompts:
        prompt = dict(prompt)
        if prompt["lang"] != "en":
            en = prompt.get("en") or known.get(prompt.get("seed_id") or "")
            if en:
                prompt["en_prompt"] = en
        out.append(prompt)
    return out


def english_questions(items: list[dict]) -> list[str]:
    """The English questions the models answer besides the prompts: one per distinct English
    version, shared by every language that asks it."""
    return sorted({item["en_prompt"] for item in items if item.get("en_prompt")})


def cosines(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Row-wise cosine of two (n, d) matrices (a zero vector gives 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cosines needs matrices of one shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("ij,ij->i", a, b)
    return [float(np.clip(d / n, -1.0, 1.0)) if n > 0 else 0.0 for d, n in zip(dots, norms)]


def consistency(items: list[dict], model: str) -> dict[str, dict]:
    """Per language: how many prompts were scored (`n`) and the mean cosine between the model's answer
    and its answer to the English version (`mean`); items carry `<model>_consistency`."""
    scores: dict[str, list[float]] = defaultdict(list)
    for item in items:
        if (score := item.get(f"{model}_consistency")) is not None:
            scores[item["lang"]].append(score)
    return {lang: {"n": len(values), "mean": sum(values) / len(values)} for lang, values in sorted(scores.items())}


def overall_consistency(items: list[dict], model: str) -> dict:
    """Consistency over every scored prompt, whatever its language (empty when none was scored)."""
    values = [s for item in items if (s := item.get(f"{model}_consistency")) is not None]
    return {"n": len(values), "mean": sum(values) / len(values)} if values else {}


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


def build_report(
    name: str,
    models: dict[str, str],
    items: list[dict],
    losses: dict[str, dict] | None,
    criteria,
    seconds: float,
    encoder: str | None = None,
) -> dict:
    """The report; `encoder` names the consistency encoder (None: consistency was not measured)."""
    languages = sorted({item["lang"] for item in items} | set((losses or {}).get("base", {})))
    per_model = {
        model: {
            "fidelity": fidelity(items, model),
            "judge": judge_means(items, model, criteria),
            "loss": (losses or {}).get(model, {}),
            "consistency": consistency(items, model),
        }
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
                "consistency": m["consistency"].get(lang, {}).get("mean"),
            }
        row["consistency_n"] = max((per_model[m]["consistency"].get(lang, {}).get("n", 0) for m in MODELS), default=0)
        table[lang] = row
    overall = {model: overall_fidelity(items, model) for model in MODELS}
    by_source = {
        source: {model: fidelity([item for item in items if item["source"] == source], model) for model in MODELS}
        for source in sorted({item["source"] for item in items})
    }
    measured = None
    if encoder:
        measured = {
            "encoder": encoder,
            "per_language": {model: per_model[model]["consistency"] for model in MODELS},
            "overall": {model: overall_consistency(items, model) for model in MODELS},
        }
    return {
        "name": name,
        "models": models,
        "languages": table,
        "overall_fidelity": overall,
        "by_source": by_source,
        "consistency": measured,
        "criteria": list(criteria),
        "answers": len(items),
        "seconds": round(seconds, 1),
    }


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
        lines.append(
            f"{'all':<6}{overall['base']['answers']:>8}{_fmt(overall['base']['share']):>8}{_fmt(overall['finetuned']['share']):>8}"
            f"{_fmt(overall['finetuned']['share'] - overall['base']['share']):>8}"
        )
    return lines


def consistency_lines(report: dict) -> list[str]:
    """The per-language consistency table as plain text lines (none when it was not measured)."""
    if not report.get("consistency"):
        return []
    lines = [f"{'lang':<6}{'pairs':>8}{'base':>8}{'tuned':>8}{'delta':>8}"]
    for lang, row in report["languages"].items():
        base, tuned = row["base"]["consistency"], row["finetuned"]["consistency"]
        if base is None and tuned is None:
            continue
        delta = None if base is None or tuned is None else tuned - base
        lines.append(f"{lang:<6}{row['consistency_n']:>8}{_fmt(base):>8}{_fmt(tuned):>8}{_fmt(delta):>8}")
    overall = report["consistency"]["overall"]
    if overall["base"] and overall["finetuned"]:
        lines.append(
            f"{'all':<6}{overall['base']['n']:>8}{_fmt(overall['base']['mean']):>8}{_fmt(overall['finetuned']['mean']):>8}"
            f"{_fmt(overall['finetuned']['mean'] - overall['base']['mean']):>8}"
        )
    return lines


def render_markdown(report: dict) -> str:
    criteria = report["criteria"]
    measured = report.get("consistency")
    head = ["language", "prompts", "fidelity base", "fidelity tuned"]
    head += ["pairs", "consistency base", "consistency tuned"] if measured else []
    head += [f"{c} base" for c in criteria] + [f"{c} tuned" for c in criteria] + ["loss base", "loss tuned"]
    lines = [
        f"# Evaluation: {report['name']}",
        "",
        f"Base: `{report['models']['base']}`  ",
        f"Fine-tuned: `{report['models']['finetuned']}`",
        "",
        "Language fidelity is the share of answers fastText puts in the prompt's language. Judge scores",
        "are 0–2 means (a signal, not a gate); loss is the mean completion-token loss on held-out examples.",
    ]
    if measured:
        lines += [
            f"Consistency is the mean cosine ({measured['encoder']}) between a model's answer to a prompt and its",
            "answer to the same question asked in English, over the `pairs` prompts that have an English version:",
            "near 1, the model says the same thing in both languages.",
        ]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lang, row in report["languages"].items():
        cells = [lang, str(row["prompts"]), _fmt(row["base"]["fidelity"]), _fmt(row["finetuned"]["fidelity"])]
        if measured:
            cells += [
                str(row["consistency_n"]),
                _fmt(row["base"]["consistency"]),
                _fmt(row["finetuned"]["consistency"]),
            ]
        cells += [_fmt(row["base"]["judge"].get(c)) for c in criteria] + [
            _fmt(row["finetuned"]["judge"].get(c)) for c in criteria
        ]
        cells += [_fmt(row["base"]["loss"], 3), _fmt(row["finetuned"]["loss"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    overall = report["overall_fidelity"]
    if overall["base"]:
        lines += [
            "",
            f"Overall fidelity: base {_fmt(overall['base']['share'])}, "
            f"fine-tuned {_fmt(overall['finetuned']['share'])} over {overall['base']['answers']} prompts. Sources: "
            + ", ".join(
                f"{s} ({sum(v['answers'] for v in m['base'].values())})" for s, m in report["by_source"].items()
            )
            + ".",
        ]
    if measured and measured["overall"]["base"]:
        both = measured["overall"]
        lines += [
            "",
            f"Overall consistency: base {_fmt(both['base']['mean'])}, fine-tuned {_fmt(both['finetuned'].get('mean'))} "
            f"over {both['base']['n']} prompts paired with English.",
        ]
    lines += ["", f"{report['answers']} prompts, {report['seconds']} s."]
    return "\n".join(lines) + "\n"


def plot_pairs(report: dict, metric: str, title: str, ylabel: str, criterion: str | None = None) -> bytes | None:
    """Bars per language, base beside fine-tuned, for fidelity, consistency, loss or one judge criterion."""
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
    elif metric == "consistency":  # a cosine: below 0 only when answers point apart
        ax.set_ylim(min(0.0, *values["base"], *values["finetuned"]), 1.05)
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return to_png(fig)


def plots(report: dict) -> dict[str, bytes]:
    """File name → PNG for every plot the report has data for."""
    out = {
        "fidelity.png": plot_pairs(
            report, "fidelity", "Language fidelity: base vs fine-tuned", "share in the prompt's language"
        ),
        "consistency.png": plot_pairs(
            report, "consistency", "Cross-lingual consistency: answer vs answer to the English question", "mean cosine"
        ),
        "loss.png": plot_pairs(report, "loss", "Held-out loss per language", "mean completion-token loss"),
    }
    for criterion in report["criteria"]:
        out[f"judge-{criterion}.png"] = plot_pairs(
            report, "judge", f"Judge: {criterion}", "mean score (0–2)", criterion
        )
    return {name: png for name, png in out.items() if png}
