"""Did the data help? Base and fine-tuned models side by side on held-out prompts.

    python -m jobs.evaluate --config configs/evaluate-demo.yaml [--set prompts.per_language=20 ...]

Held-out prompts (files, plus the validation split of a built dataset) → answers from both models
through vLLM (one Ray actor per model, one after the other), to each prompt and to its English
version → language fidelity by fastText, cross-lingual consistency (multilingual cosine of the two
answers, encoded in the driver), judge scores, per-language held-out loss → report.json, report.md,
answers.jsonl and PNG bars.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from actors.engines.evaluator import answer_and_judge, held_out_loss, score_consistency
from engine.cli import job_parser, run_main
from engine.config import ConfigError, load_as
from engine.training import evaluation as E
from engine.training.config import EvaluateConfig

log = logging.getLogger("babelforge.evaluate")


def collect_prompts(cfg: EvaluateConfig) -> tuple[list[dict], list[dict]]:
    """(prompts to answer, each with `en_prompt` where it has an English version; held-out examples for the loss)."""
    import pyarrow.dataset as pads  # a split is a file, or the folder of parts jobs.build writes
    import pyarrow.parquet as pq

    langs = set(cfg.prompts.languages) if cfg.prompts.languages else None
    prompts = []
    for path in cfg.prompts.files:
        rows = E.parse_prompt_lines(Path(path).read_text(encoding="utf-8").splitlines(), path)
        prompts += [row for row in rows if langs is None or row["lang"] in langs]
    held_out, english = [], {}
    if cfg.prompts.dataset:
        path = Path(cfg.prompts.dataset) / f"{cfg.prompts.split}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: point prompts.dataset at a folder written by jobs.build")
        columns = ["id", "lang", "prompt", "completion"]
        # jobs.build writes it; other folders may not
        columns += ["seed_id"] if "seed_id" in pads.dataset(path, format="parquet").schema.names else []
        rows = pq.read_table(path, columns=columns).to_pylist()
        english = E.english_by_seed(rows)  # every English row, whichever languages are evaluated
        held_out = E.sample_per_language(
            rows, max(cfg.prompts.per_language, cfg.loss.max_examples_per_language), cfg.prompts.seed, langs
        )
        prompts += E.validation_prompts(E.sample_per_language(held_out, cfg.prompts.per_language, cfg.prompts.seed))
    if not prompts:
        raise ValueError("no prompts to evaluate: check prompts.files, prompts.dataset and prompts.languages")
    return E.pair_with_english(prompts, english), E.sample_per_language(
        held_out, cfg.loss.max_examples_per_language, cfg.prompts.seed
    )


def evaluate(cfg: EvaluateConfig) -> dict:
    import ray

    from actors.dataflow.ray_session import init_ray
    from actors.engines.langid import FastTextLangId

    started = time.monotonic()
    out_dir = Path(cfg.run.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts, held_out = collect_prompts(cfg)
    log.info(
        "%d prompts (%s), %d held-out examples for the loss",
        len(prompts),
        ", ".join(sorted({p["lang"] for p in prompts})),
        len(held_out),
    )
    init_ray(cfg.ray)  # joins ray.address / RAY_ADDRESS (ray job submit) / a running cluster, else starts one
    losses = None
    if cfg.loss.enabled and held_out:  # torch forward passes, beside the engines
        task = ray.remote(num_cpus=cfg.compute.num_cpus)(held_out_loss)
        refs = {
            m: task.remote(getattr(cfg.models, m), held_out, cfg.loss.max_length, cfg.compute.engine_threads)
            for m in E.MODELS
        }
    items = [dict(p) for p in prompts]
    answer_and_judge(cfg, items)
    if cfg.loss.enabled and held_out:
        losses = {model: E.mean_loss(ray.get(ref)) for model, ref in refs.items()}
    if cfg.consistency.enabled:
        score_consistency(cfg, items)
    langid = FastTextLangId(cfg.langid_model)
    for item in items:
        for model in E.MODELS:
            item[f"{model}_lid"], item[f"{model}_lid_conf"] = langid.predict(item[f"{model}_answer"])
    models = {"base": cfg.models.base, "finetuned": cfg.models.finetuned}
    criteria = cfg.judge.criteria if cfg.judge.enabled else ()
    encoder = cfg.consistency.encoder if cfg.consistency.enabled else None
    report = E.build_report(cfg.run.name, models, items, losses, criteria, time.monotonic() - started, encoder)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out_dir / "report.md").write_text(E.render_markdown(report), encoding="utf-8")
    with open(out_dir / "answers.jsonl", "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    for name, png in E.plots(report).items():
        (out_dir / name).write_bytes(png)
    return report


def main(argv: list[str] | None = None) -> int:
    def body(args) -> int:
        cfg = load_as(EvaluateConfig, args.config, args.overrides)
        report = evaluate(cfg)
        print(f"\nlanguage fidelity (share of answers in the prompt's language), {report['name']}:")
        print("\n".join(E.fidelity_lines(report)))
        if lines := E.consistency_lines(report):
            print("\ncross-lingual consistency (cosine of the answer and the answer to the English question):")
            print("\n".join(lines))
        print(f"report: {Path(cfg.run.output_dir) / 'report.md'}")
        return 0

    parser = job_parser(
        "jobs.evaluate",
        __doc__,
        config_help="YAML evaluation config (configs/evaluate-*.yaml)",
        set_example="prompts.per_language=20",
    )
    return run_main(parser, argv, body, [((ConfigError, FileNotFoundError, ValueError), 2)])


if __name__ == "__main__":
    sys.exit(main())
