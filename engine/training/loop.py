"""The pure pieces of fine-tuning: chat-template tokenisation with the loss masked to the
completion, packing, padding, DeepSpeed config resolution and the step / data-position
bookkeeping that makes a resumed run continue where the killed one stopped.

No ray, no torch: the tokenizer is any object with `apply_chat_template(messages, tokenize=False,
add_generation_prompt=...)`, `encode(text, add_special_tokens=False)` and `eos_token`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

IGNORE_INDEX = -100  # labels with this value carry no loss (torch's cross-entropy default)


def prompt_messages(row: dict) -> tuple[list[dict], str]:
    """(messages the model is given, completion the loss is on) of a built example.

    `prompt`/`completion` (jobs.build's columns; N-shot demonstrations are inside the prompt) win;
    a row with only `messages` trains on its last assistant turn.
    """
    if row.get("prompt") is not None and row.get("completion") is not None:
        return [{"role": "user", "content": row["prompt"]}], row["completion"]
    messages = list(row.get("messages") or [])
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError(
            f"row {row.get('id')!r} has neither prompt/completion nor messages ending in an assistant turn"
        )
    return [dict(m) for m in messages[:-1]], messages[-1]["content"]


def tokenize_example(tokenizer, messages: list[dict], completion: str, max_length: int) -> dict | None:
    """input_ids and labels of one example, labels IGNORE_INDEX over the prompt; None when the
    prompt alone leaves no room for a completion token.

    The prompt is tokenised exactly as at inference (template + generation prompt), and the
    completion is the rest of the templated conversation (so end-of-turn tokens are learnt).
    """
    prompt_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": completion}], tokenize=False, add_generation_prompt=False
    )
    if full_text.startswith(prompt_text) and len(full_text) > len(prompt_text):
        completion_text = full_text[len(prompt_text) :]
    else:  # a template that rewrites earlier turns when an answer follows: plain text + EOS
        completion_text = completion + (tokenizer.eos_token or "")
    prompt_ids = list(tokenizer.encode(prompt_text, add_special_tokens=False))
    completion_ids = list(tokenizer.encode(completion_text, add_special_tokens=False))
    if len(prompt_ids) >= max_length or not completion_ids:
        return None
    completion_ids = completion_ids[: max_length - len(prompt_ids)]
    return {
        "input_ids": prompt_ids + completion_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    }


def tokenize_rows(tokenizer, rows: Iterable[dict], max_length: int) -> tuple[list[dict], Counter]:
    """Tokenised examples (input_ids, labels, position_ids, lang, id) and counters of what was dropped."""
    out, counts = [], Counter()
    for row in rows:
        messages, completion = prompt_messages(row)
        example = tokenize_example(tokenizer, messages, completion, max_length)
        if example is None:
            counts["dropped_prompt_too_long"] += 1
            continue
        counts["examples"] += 1
        example["position_ids"] = list(range(len(example["input_ids"])))
        example["lang"] = row.get("lang") or "und"
        example["id"] = row.get("id") or ""
        out.append(example)
    return out, counts


TOKEN_COLUMNS = ("input_ids", "labels", "position_ids", "lang", "id")


def tokenized_columns(
    tokenizer, rows: Iterable[dict], max_length: int, packing: bool
) -> tuple[dict[str, list], Counter]:
    """Built example rows → the training columns (TOKEN_COLUMNS), packed when asked, and the counters."""
    examples, counts = tokenize_rows(tokenizer, rows, max_length)
    if packing:
        examples = pack_examples(examples, max_length)
    return {name: [example[name] for example in examples] for name in TOKEN_COLUMNS}, counts


def pack_examples(examples: list[dict], max_length: int) -> list[dict]:
    """Greedy packing in order: whole examples concatenated up to max_length. position_ids restart
    at each example, which transformers turns into a block-diagonal causal mask (no attention
    across examples) when no attention_mask is passed."""
    packed: list[dict] = []
    current: dict | None = None
    for example in examples:
        n = len(example["input_ids"])
        if current is None or len(current["input_ids"]) + n > max_length:
            current = {"input_ids": [], "labels": [], "position_ids": [], "langs": [], "ids": []}
            packed.append(current)
        current["input_ids"] += example["input_ids"]
        current["labels"] += example["labels"]
        current["position_ids"] += list(range(n))
        current["langs"].append(example["lang"])
        current["ids"].append(example["id"])
    return [
        {
            "input_ids": p["input_ids"],
            "labels": p["labels"],
            "position_ids": p["position_ids"],
            "lang": p["langs"][0] if len(set(p["langs"])) == 1 else "mixed",
            "id": ",".join(p["ids"]),
        }
        for p in packed
    ]


def collate(rows: list[dict], pad_id: int) -> dict[str, list[list[int]]]:
    """Right-pad a micro-batch. The padding gets its own position_ids run (0, 1, ...), so it is
    a separate block of the packed-sequence mask and no real token attends to it."""
    width = max(len(row["input_ids"]) for row in rows)
    batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for row in rows:
        pad = width - len(row["input_ids"])
        batch["input_ids"].append(list(row["input_ids"]) + [pad_id] * pad)
        batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * pad)
        batch["position_ids"].append(list(row["position_ids"]) + list(range(pad)))
    return batch


def count_tokens(rows: list[dict]) -> tuple[int, int]:
    """(real tokens, tokens with a loss) of a micro-batch's rows, before padding."""
    real = sum(len(row["input_ids"]) for row in rows)
    trained = sum(1 for row in rows for label in row["labels"] if label != IGNORE_INDEX)
    return real, trained


def batch_digest(batch: dict[str, list[list[int]]]) -> str:
    """A short hash of a micro-batch's tokens: equal digests, equal data order."""
    return hashlib.sha256(json.dumps(batch["input_ids"]).encode()).hexdigest()[:12]


AUTO = "auto"


def resolve_deepspeed_config(ds: dict[str, Any], max_steps: int) -> dict[str, Any]:
    """DeepSpeed's config with our defaults and "auto" values filled; the input is not changed.

    Micro-batch and accumulation default to 1; `train_batch_size` is left for DeepSpeed to derive
    (it knows the world size). Scheduler `total_num_steps: auto` becomes max_steps and
    `warmup_num_steps: auto` a tenth of it.
    """
    out = copy.deepcopy(ds)
    out.setdefault("train_micro_batch_size_per_gpu", 1)
    out.setdefault("gradient_accumulation_steps", 1)
    if out.get("train_batch_size") == AUTO:
        del out["train_batch_size"]
    params = out.get("scheduler", {}).get("params", {})
    if params.get("total_num_steps") == AUTO:
        params["total_num_steps"] = max_steps
    if params.get("warmup_num_steps") == AUTO:
        params["warmup_num_steps"] = max(1, max_steps // 10)
    leftovers = [path for path, value in _walk(out) if value == AUTO]
    if leftovers:
        raise ValueError(f"deepspeed config: 'auto' is not supported at {', '.join(leftovers)}; give a value")
    return out


def _walk(node: Any, path: str = "deepspeed") -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    else:
        yield path, node


def steps_for_epochs(rows: int, world_size: int, micro_batch: int, accumulation: int, epochs: int) -> int:
    """Optimizer steps of `epochs` passes when each worker gets rows // world_size rows."""
    micro_per_epoch = (rows // world_size) // micro_batch
    steps = epochs * micro_per_epoch // accumulation
    if steps < 1:
        raise ValueError(
            f"{rows} rows over {world_size} workers at micro-batch {micro_batch} × accumulation {accumulation} "
            "make no optimizer step: more data, fewer workers or smaller batches"
        )
    return steps


CPU_WORKER_ENV = {"DS_ACCELERATOR": "cpu", "THP_MEM_ALLOC_ENABLE": "1"}
"""What every CPU training worker gets unless `scaling.worker_env` says otherwise: DeepSpeed's CPU
accelerator (rather than the one it would detect on import), and torch's CPU allocator
on transparent huge pages (2 MiB blocks with madvise(MADV_HUGEPAGE); the kernel's `madvise` mode, the
common default, is enough). A step's gradients and optimizer buffers (the 113 MB embedding's among
them) are allocated and freed every step and arrive as fresh pages: on 4 KiB pages 110-170 thousand
page faults a second per rank, as many per token under Ray Train as in a direct launch, but a Ray
Train rank paid more for them (0.81-0.92 of a direct launch's throughput). Huge pages take 98% of the
faults away, and Ray Train then ran at 0.94-1.07 of a direct launch in the same batch and 0.95, 0.85
and 1.12 by medians in three training-suite runs (on 2 cores; benchmarks/results/training-probe-2026-12-07.md)."""


def worker_env(use_gpu: bool, configured: dict[str, str]) -> dict[str, str]:
    """Environment variables of a training worker: the job's CPU defaults under the configured ones."""
    return {**({} if use_gpu else CPU_WORKER_ENV), **configured}


def crowded_cpus_warning(use_gpu: bool, num_workers: int, cpus_per_worker: float, cluster_cpus: float) -> str | None:
    """A warning when CPU training gives every CPU of the cluster to a rank: Ray Train's own
    processes (its controller, the data coordinator) and each rank's Ray threads then have no core
    of their own. Measured on 2 cores: with a core left free (1 worker) Ray Train ran at 1.02-1.16
    of a direct DeepSpeed launch (benchmarks/results/training-probe-2026-12-06.md); with both cores
    given to ranks, at 0.77-0.83 per round before the huge-page default (CPU_WORKER_ENV) and
    0.82-1.18 with it, over three runs that started at different loads
    (benchmarks/results/training-probe-2026-12-07.md)."""
    if use_gpu or num_workers * cpus_per_worker < cluster_cpus:
        return None
    return (
        f"{num_workers} CPU training workers x {cpus_per_worker:g} CPU take all {cluster_cpus:g} CPUs of the cluster: "
        "Ray Train's own processes will share the ranks' cores (measured on 2 cores: 0.82-1.18 of a launch without "
        "Ray per round, depending on what else ran, against 1.02-1.16 with a core left free). Leave a core free "
        "(fewer scaling.num_workers, or a larger cluster) where throughput matters."
    )


@dataclass
class TrainState:
    """Where training is: optimizer steps done, and the data position that goes with them.

    The data order is a function of (seed, epoch) only, so (epoch, micro-batches consumed in it)
    is enough to continue the same order after a restart.
    """

    step: int = 0
    epoch: int = 0
    micro_in_epoch: int = 0
    tokens: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        return cls(**json.loads(text))

    def after_micro_batch(self, tokens: int) -> None:
        self.micro_in_epoch += 1
        self.tokens += tokens

    def next_epoch(self) -> None:
        self.epoch += 1
        self.micro_in_epoch = 0


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Shuffle seed of one worker's epoch: different per epoch and worker, the same on every rerun."""
    return (seed * 1_000_003 + epoch) * 1_009 + rank


def is_due(step: int, every: int, last_step: int) -> bool:
    """Log / checkpoint at every `every`-th step and at the last one."""
    return step == last_step or step % every == 0


def model_dtype(ds_config: dict[str, Any]) -> str:
    """torch dtype name the model is loaded in: what DeepSpeed's precision section trains in."""
    if ds_config.get("bf16", {}).get("enabled"):
        return "bfloat16"
    if ds_config.get("fp16", {}).get("enabled"):
        return "float16"
    return "float32"


def unique_tensors(state: dict, identity=id) -> dict:
    """A state dict with each tensor once, under its first name: tied weights (lm_head = the
    embeddings) share memory, and the loader ties them again from the config. `identity` tells
    two entries are the same tensor (torch: the storage address, offset and shape)."""
    seen, out = set(), {}
    for key, value in state.items():
        if identity(value) not in seen:
            seen.add(identity(value))
            out[key] = value
    return out


class Window:
    """Sums between two reports: loss over micro-batches, real tokens, tokens with a loss."""

    def __init__(self) -> None:
        self.loss, self.micro, self.tokens, self.trained = 0.0, 0, 0, 0

    def add(self, loss: float, rows: list[dict]) -> int:
        tokens, trained = count_tokens(rows)
        self.loss, self.micro, self.tokens, self.trained = (
            self.loss + loss,
            self.micro + 1,
            self.tokens + tokens,
            self.trained + trained,
        )
        return tokens

    def totals(self) -> list[float]:
        return [self.loss, float(self.micro), float(self.tokens), float(self.trained)]

    @staticmethod
    def metrics(totals: list[float], seconds: float) -> dict[str, float]:
        """Metrics from totals summed over every worker: mean loss, tokens/s of the whole group."""
        loss, micro, tokens, trained = totals
        return {
            "loss": loss / max(micro, 1),
            "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
            "tokens": tokens,
            "trained_tokens": trained,
            "seconds": seconds,
        }
