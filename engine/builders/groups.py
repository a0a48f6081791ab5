"""The builders as functions over groups, the units of work of a distributed build.

    seed_examples(rows_of_one_seed, config, validation)        CrossIn candidates, QAlign, TransLLM, X-Instruction
    english_of_seed(rows_of_one_seed)                          the seed's English original (a row), or None
    language_examples(lang, rows_of_one_language, config, validation, embed)   sPhinX LANG N-shot

Each returns examples tagged with their `dataset` and `split`; what a group makes depends only on
its own rows and the config. What spans groups is decided by counts and hash-rank cuts
(engine/builders/ranks.py): the split (`validation`, a cut over seed ranks), CrossIn's size caps
(`crossin_quotas` over candidates per mode) and the mix (`mixing.mix_quotas`). actors/dataflow/build_pipeline.py
runs these on Ray Data.

SEED_BUILDERS is the registry of per-seed builders; CrossIn (candidates cut later) and sPhinX (per
language) are the two builders with a step of their own.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from engine.builders.crossin import BUILDER as CROSSIN
from engine.builders.crossin import crossin_candidates
from engine.builders.example import EXAMPLE_SCHEMA
from engine.builders.pool import build_pool
from engine.builders.qalign import build_qalign
from engine.builders.retrieval import Embed
from engine.builders.sphinx import BUILDER as SPHINX
from engine.builders.sphinx import sphinx_language
from engine.builders.transllm import build_transllm
from engine.builders.xinstruction import build_xinstruction
from engine.config import BuildConfig

# An example on its way through the build: the example columns, plus which dataset and split it
# belongs to and, for a mix row drawn again, which copy it is (0 = the first). `messages` is left
# out: it repeats prompt and completion, and the writer derives it (example.messages_column), so
# shuffles and materialized blocks carry each text once.
BUILT_SCHEMA = pa.schema(
    [
        *(f for f in EXAMPLE_SCHEMA if f.name != "messages"),
        pa.field("dataset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("copy", pa.int32()),
    ]
)
SEED_BUILDERS = {"qalign": build_qalign, "transllm": build_transllm, "xinstruction": build_xinstruction}

Validation = Callable[[str], bool]
"""seed_id -> True when the seed is held out (a cut over seed ranks)."""


def tagged(examples: list[dict], dataset: str, validation: Validation) -> list[dict]:
    return [
        {**e, "dataset": dataset, "split": "validation" if validation(e["seed_id"]) else "train", "copy": 0}
        for e in examples
    ]


def seed_examples(rows: list[dict], config: BuildConfig, validation: Validation) -> list[dict]:
    """Every per-seed example of one seed's accepted rows; CrossIn's are candidates, each kept
    later if its rank is under its mode's cut (crossin_quotas)."""
    pool = build_pool(rows)
    examples: list[dict] = []
    for name in config.builders:
        if name == CROSSIN:
            modes = config.crossin.modes
            for mode, candidates in crossin_candidates(pool, config.seed).items():
                if modes.get(mode, 0) > 0:
                    examples += tagged(candidates, CROSSIN, validation)
        elif name in SEED_BUILDERS:
            for dataset, built in SEED_BUILDERS[name](pool).items():
                examples += tagged(built, dataset, validation)
    return examples


def english_of_seed(rows: list[dict]) -> dict | None:
    """The English original the pool derives for this seed (from the first row in language order
    that carries one), or None."""
    pool = build_pool(rows)
    return next(iter(pool.english.values()), None)


def language_examples(
    lang: str, rows: list[dict], config: BuildConfig, validation: Validation, embed: Embed | None = None
) -> list[dict]:
    """sPhinX N-shot examples of one language (for 'en': the seeds' English originals)."""
    s = config.sphinx
    held_out = {row["seed_id"] for row in rows if validation(row["seed_id"])}
    return tagged(sphinx_language(lang, rows, held_out, s.shots, s.retrieval, config.seed, embed), SPHINX, validation)


def needs_language_pass(config: BuildConfig) -> bool:
    return SPHINX in config.builders


def wants_english_rows(config: BuildConfig) -> bool:
    return needs_language_pass(config) and config.sphinx.include_english
