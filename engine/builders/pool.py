"""The pool every builder reads: accepted rows grouped by seed, and the English originals.

English is not a row of the run: each translated row carries its seed's English source in the
src_* fields, so the pool derives one English row per seed from them. Rows without an English
instruction there (X-Instruction's generation mode: an English instruction written for a
target-language text) have no English original; builders that need one skip them. (The
train/validation split is a cut over seed ranks that actors/dataflow/build_pipeline.py makes across pools.)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

ENGLISH = "en"
# The row columns the builders read (engine.records.SCHEMA has more): jobs.build loads only these.
ROW_COLUMNS = (
    "id",
    "seed_id",
    "lang",
    "instruction",
    "input",
    "output",
    "src_instruction",
    "src_input",
    "src_output",
    "model",
    "prompt_version",
    "source",
)


@dataclass(frozen=True)
class Pool:
    rows: tuple[dict, ...]
    """Accepted rows (lang != en), in a stable order."""
    english: dict[str, dict]
    """seed_id -> the seed's English original, shaped like a row (lang 'en', no model)."""
    seeds: frozenset[str]
    """Every seed id of the pool, with or without an English original."""
    by_seed: dict[str, dict[str, dict]] = field(default_factory=dict)
    """seed_id -> {lang: row}, English included: the index-aligned translations of one seed
    (seeds with an English original only)."""

    @property
    def aligned(self) -> tuple[dict, ...]:
        """Rows that are translations of an English original (the pool's `english`)."""
        return tuple(row for row in self.rows if row["seed_id"] in self.english)


def query_text(row: dict) -> str:
    """A row's instruction and its input as one user turn (the input follows after a blank line)."""
    instruction, given = (row.get("instruction") or "").strip(), (row.get("input") or "").strip()
    return f"{instruction}\n\n{given}" if given else instruction


def english_row(row: dict) -> dict:
    return {
        "id": f"{row['seed_id']}:{ENGLISH}",
        "seed_id": row["seed_id"],
        "lang": ENGLISH,
        "instruction": row.get("src_instruction"),
        "input": row.get("src_input"),
        "output": row.get("src_output"),
        # The English text is the seed itself: no model wrote it.
        "model": None,
        "prompt_version": None,
        "source": row.get("source"),
    }


def has_english_original(row: dict) -> bool:
    return bool((row.get("src_instruction") or "").strip())


def build_pool(accepted: list[dict]) -> Pool:
    rows = sorted(
        (r for r in accepted if r.get("lang") and r["lang"] != ENGLISH),
        key=lambda r: (r["lang"], r["seed_id"], r["id"]),
    )
    english: dict[str, dict] = {}
    by_seed: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        if row["lang"] in by_seed[row["seed_id"]]:
            raise ValueError(
                f"two accepted rows for seed {row['seed_id']} in {row['lang']}: "
                "the run folder mixes recipes or prompt versions"
            )
        by_seed[row["seed_id"]][row["lang"]] = row
        if has_english_original(row):
            english.setdefault(row["seed_id"], english_row(row))
    for seed_id, original in english.items():
        by_seed[seed_id][ENGLISH] = original
    aligned = {seed_id: langs for seed_id, langs in by_seed.items() if seed_id in english}
    return Pool(tuple(rows), dict(sorted(english.items())), frozenset(by_seed), aligned)
