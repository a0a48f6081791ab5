"""The evaluation job's model side: a vLLM engine per model as a Ray actor (answers, the judge),
the held-out loss as a Ray task (torch forward passes), and the cross-lingual consistency scores
(jobs/evaluate.py runs them).
"""

from __future__ import annotations

import asyncio
import logging
import time

from engine.rows.judge import judge_schema, parse_score
from engine.training import evaluation as E
from engine.training.config import EvaluateConfig

log = logging.getLogger("babelforge.evaluate")


class ModelActor:
    """One vLLM engine; `generate` runs a list of chat requests concurrently (continuous batching)."""

    def __init__(self, model: str, engine_kwargs: dict, engine_threads: int | None):
        from actors.engines.vllm_generator import VLLMGenerator

        self.generator = VLLMGenerator(model, engine_kwargs, engine_threads)

    async def generate(self, requests: list[list[dict]], params: dict) -> list[dict]:
        from engine.protocols import GenParams

        done = await asyncio.gather(*(self.generator.generate(messages, GenParams(**params)) for messages in requests))
        return [{"text": c.text, "tokens": c.completion_tokens, "finish": c.finish_reason} for c in done]

    def shutdown(self) -> None:
        self.generator.shutdown()


def held_out_loss(model: str, rows: list[dict], max_length: int, threads: int | None) -> dict[str, list[float]]:
    """{lang: [summed completion-token loss, tokens]} of one model on the held-out examples."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from actors.engines.models import resolve_model
    from engine.training.loop import IGNORE_INDEX, prompt_messages, tokenize_example

    if threads:
        torch.set_num_threads(threads)
    path = resolve_model(model)
    tokenizer, net = (
        AutoTokenizer.from_pretrained(path),
        AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(),
    )
    sums: dict[str, list[float]] = {}
    with torch.no_grad():
        for row in rows:
            example = tokenize_example(tokenizer, *prompt_messages(row), max_length)
            if example is None:
                continue
            labels = torch.tensor([example["labels"]])
            tokens = int((labels[:, 1:] != IGNORE_INDEX).sum())  # the model shifts labels by one
            loss = net(input_ids=torch.tensor([example["input_ids"]]), labels=labels).loss.item()
            entry = sums.setdefault(row["lang"], [0.0, 0])
            entry[0] += loss * tokens
            entry[1] += tokens
    return sums


def answer_and_judge(cfg: EvaluateConfig, items: list[dict]) -> None:
    """Fill `<model>_answer` and `<model>_judge` of every item, and `<model>_en_answer` (the answer to
    its English version, each distinct English question asked once) when consistency is on:
    fine-tuned first, then base, whose engine then judges both answers (unless judge.model names
    another model). The English questions are not judged: they are the reference, not the test."""
    import ray

    from actors.engines.vllm_generator import ENGINE_ACTOR_RUNTIME_ENV

    remote = ray.remote(
        num_cpus=cfg.compute.num_cpus, num_gpus=cfg.compute.num_gpus or None, runtime_env=ENGINE_ACTOR_RUNTIME_ENV
    )(ModelActor)
    gen = cfg.generation
    params = {
        "max_tokens": gen.max_tokens,
        "temperature": gen.temperature,
        "repetition_penalty": gen.repetition_penalty,
    }
    questions = E.english_questions(items) if cfg.consistency.enabled else []
    requests = [[{"role": "user", "content": text}] for text in [item["prompt"] for item in items] + questions]
    actor = None
    for model in ("finetuned", "base"):
        started = time.monotonic()
        if actor is not None:
            stop(actor)
        actor = remote.remote(getattr(cfg.models, model), gen.engine_kwargs, cfg.compute.engine_threads)
        outs = ray.get(actor.generate.remote(requests, params))
        for item, out in zip(items, outs):
            item[f"{model}_answer"], item[f"{model}_finish"] = out["text"], out["finish"]
        english = {question: out["text"] for question, out in zip(questions, outs[len(items) :])}
        for item in items:
            if item.get("en_prompt") in english:
                item[f"{model}_en_answer"] = english[item["en_prompt"]]
        log.info(
            "%s: %d answers and %d to English questions in %.0fs",
            model,
            len(items),
            len(questions),
            time.monotonic() - started,
        )
    judge_model = cfg.judge.model or cfg.models.base
    if cfg.judge.enabled and judge_model != cfg.models.base:
        stop(actor)
        actor = remote.remote(judge_model, gen.engine_kwargs, cfg.compute.engine_threads)
    if cfg.judge.enabled:
        started = time.monotonic()
        judge(actor, items, cfg.judge.criteria)
        log.info(
            "judged %d answers on %d criteria in %.0fs",
            2 * len(items),
            len(cfg.judge.criteria),
            time.monotonic() - started,
        )
    stop(actor)


def score_consistency(cfg: EvaluateConfig, items: list[dict]) -> None:
    """Fill `<model>_consistency` of every item paired with English: the cosine between the model's
    answer and its answer to the English version. Encoded here in the driver, once the engines have
    stopped: a few hundred short answers take seconds on one core, not worth an actor."""
    from actors.engines.embed import load_embedder

    paired = [item for item in items if item.get("en_prompt")]
    if not paired:
        log.warning(
            "consistency: no prompt has an English version "
            "(an `en` field, or a seed with an English row in the dataset)"
        )
        return
    c = cfg.consistency
    started = time.monotonic()
    embedder = load_embedder(c.encoder, device=c.encoder_device, threads=c.encoder_threads)
    for model in E.MODELS:
        answers, english = [item[f"{model}_answer"] for item in paired], [item[f"{model}_en_answer"] for item in paired]
        texts = sorted(set(answers) | set(english))  # an English answer is shared by every language asking it
        vectors = embedder.encode(texts)  # the same (query) side for both answers: a symmetric comparison
        row = {text: i for i, text in enumerate(texts)}
        scores = E.cosines(vectors[[row[t] for t in answers]], vectors[[row[t] for t in english]])
        for item, score in zip(paired, scores):
            item[f"{model}_consistency"] = score
    log.info(
        "consistency: %d prompts paired with English, encoded with %s in %.1fs",
        len(paired),
        c.encoder,
        time.monotonic() - started,
    )


def stop(actor) -> None:
    import ray

    ray.get(actor.shutdown.remote())
    ray.kill(actor)


def judge(actor, items: list[dict], criteria) -> None:
    import ray

    jobs = [(item, model, c) for model in E.MODELS for item in items for c in criteria]
    requests = [
        E.answer_judge_messages(c, item["lang"], item["prompt"], item[f"{model}_answer"]) for item, model, c in jobs
    ]
    params = {"max_tokens": 160, "temperature": 0.0, "json_schema": judge_schema()}
    for (item, model, criterion), out in zip(jobs, ray.get(actor.generate.remote(requests, params))):
        item.setdefault(f"{model}_judge", {})[criterion] = parse_score(criterion, out["text"]).score
