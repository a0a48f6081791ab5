"""The dataset card, `<run>/datasets/README.md`: Hugging Face front matter (licence and one
config per dataset, so `load_dataset(folder, name)` works) and the counts, config and provenance."""

from __future__ import annotations

import yaml

# Hub cards take SPDX-like lower-case ids; anything else is kept and flagged as "other".
_HUB_LICENSES = {
    "apache-2.0",
    "mit",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc-by-nc-4.0",
    "llama3",
    "llama3.1",
    "gemma",
    "other",
}


def front_matter(summary: dict, fmt: str) -> str:
    # A split is a folder of part files (engine/builders/output.py): the glob names them all.
    license = summary["license"].lower()
    meta = {
        "license": license if license in _HUB_LICENSES else "other",
        "configs": [
            {
                "config_name": name,
                "data_files": [
                    {"split": split, "path": f"{name}/{split}.{fmt}/*.{fmt}"}
                    for split in ("train", "validation")
                    if entry[split]
                ],
            }
            for name, entry in summary["datasets"].items()
        ],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def render_card(summary: dict, run_name: str, fmt: str = "parquet") -> str:
    datasets = summary["datasets"]
    langs = sorted({lang for entry in datasets.values() for lang in entry["languages"]})
    lines = [
        front_matter(summary, fmt),
        f"# Training sets built from run `{run_name}`",
        "",
        f"Built from {summary['accepted_rows']} accepted rows over {sum(summary['seeds'].values())} seeds; "
        f"split by seed: {summary['seeds']['train']} train, {summary['seeds']['validation']} validation seeds "
        "(a seed is on one side in every language and dataset).",
        "",
        "Columns: `messages` (one user and one assistant turn), `prompt` and `completion` (compute the loss on "
        "`completion` only: N-shot demonstrations are part of the prompt), `id`, `builder`, `mode`, `lang`, "
        "`input_lang`, `output_lang`, `seed_id`, and provenance (`source_ids`, `shot_ids`, `model`, `prompt_version`, "
        "`source`).",
        "",
        "## Rows per dataset",
        "",
        "| dataset | train | validation | modes |",
        "|---|---:|---:|---|",
    ]
    for name, entry in datasets.items():
        modes = ", ".join(f"{k} {v}" for k, v in entry["modes"].items())
        lines.append(f"| {name} | {entry['train']} | {entry['validation']} | {modes} |")
    lines += [
        "",
        "## Rows per language (train / validation)",
        "",
        "| dataset | " + " | ".join(langs) + " |",
        "|---|" + "---:|" * len(langs),
    ]
    for name, entry in datasets.items():
        cells = [
            f"{entry['languages'][lang]['train']} / {entry['languages'][lang]['validation']}"
            if lang in entry["languages"]
            else "-"
            for lang in langs
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    repeated = {name: e["repeated_train_rows"] for name, e in datasets.items() if e["repeated_train_rows"]}
    if repeated:
        lines += [
            "",
            "Rows repeated to fill a language's share (temperature upsampling): "
            + ", ".join(f"{k} {v}" for k, v in repeated.items())
            + ".",
        ]
    provenance = summary["provenance"]
    lines += [
        "",
        "## Provenance",
        "",
        f"- translation models: {provenance['models']}",
        f"- prompt versions: {provenance['prompt_versions']}",
        f"- seed sources: {provenance['sources']}",
        "- English text comes from the seeds themselves (`model` is empty on English-only rows).",
        "",
        "## Licence",
        "",
        f"`{summary['license']}`: the licence of the models that translated the rows (config `model.license`, and "
        "`mt.license` for rows a machine-translation model drafted); check that it allows training on their outputs.",
        "",
        "## Build config",
        "",
        "```yaml",
        yaml.safe_dump(summary["config"], sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
