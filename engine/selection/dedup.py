"""Deduplication: exact (normalised-text hash) and near (embedding cosine within a cluster), and
the rejected rows it decides (a dropped seed, a repeated output; the section at the end).

Both keep the first occurrence in input order and map every later copy to the id it repeats; the
caller turns that into a rejected row with reason `duplicate_of:<id>`, so removed rows are still
counted. Near-duplicates are searched within a cluster only: it bounds the pairwise work (n²/k
instead of n²) and true near-duplicates land in the same cluster almost always.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.inputs.seeds import Seed
from engine.reasons import make_reason
from engine.records import ACCEPTED, REJECTED, decided_row
from engine.selection.cluster import normalise_rows

BLOCK = 1024  # rows compared at once in near_duplicates: bounds memory to BLOCK × kept floats
_SPACE = re.compile(r"\s+")


def duplicate_reason(of_id: str) -> str:
    return make_reason("duplicate_of", of_id)


def normalise_text(text: str | None) -> str:
    """Case, Unicode form and whitespace folded; punctuation kept ("2+2" and "2-2" differ)."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return _SPACE.sub(" ", folded).strip()


def text_key(*fields: str | None) -> str:
    """Hash of the normalised fields, kept apart so ("a b", "") and ("a", "b") differ."""
    joined = "\x1f".join(normalise_text(field) for field in fields)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def exact_duplicates(ids: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """{id of a later copy: id of the first row with the same key}."""
    first: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for row_id, key in zip(ids, keys, strict=True):
        if key in first:
            duplicates[row_id] = first[key]
        else:
            first[key] = row_id
    return duplicates


def near_duplicates(ids: Sequence[str], embeddings: np.ndarray, threshold: float) -> dict[str, str]:
    """{id: id of the most similar earlier kept row} for rows with cosine >= threshold to one.

    Greedy in input order, so the outcome does not depend on how rows were batched, and a chain
    a~b~c with a and c apart keeps c (it repeats b, which was itself dropped, not a).
    """
    vectors = normalise_rows(embeddings)
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids but {len(vectors)} embeddings: they must be row-aligned")
    return {ids[row]: ids[kept] for row, kept, _ in near_duplicate_matches(vectors, threshold)}


def near_duplicate_matches(vectors: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(row, earlier kept row, cosine) for every row whose best cosine to an earlier kept row is
    >= threshold; `vectors` are unit rows in the order that decides which copy is kept.

    Blockwise: BLOCK rows at a time against the earlier rows in slices of BLOCK (dropped rows
    masked out), so memory stays at BLOCK² floats whatever the number of rows; within a block,
    row by row. Ties go to the earliest kept row."""
    vectors = np.asarray(vectors, dtype=np.float32)
    kept = np.zeros(len(vectors), dtype=bool)
    matches: list[tuple[int, int, float]] = []
    for start in range(0, len(vectors), BLOCK):
        block = vectors[start : start + BLOCK]
        best = np.full(len(block), -np.inf, dtype=np.float32)
        best_row = np.full(len(block), -1, dtype=np.int64)
        for earlier in range(0, start, BLOCK):  # earlier blocks are settled: kept[] is final there
            sims = block @ vectors[earlier : earlier + BLOCK].T
            sims[:, ~kept[earlier : earlier + BLOCK]] = -np.inf
            column = sims.argmax(axis=1)
            value = sims[np.arange(len(block)), column]
            better = value > best
            best[better], best_row[better] = value[better], earlier + column[better]
        inside = block @ block.T
        for offset in range(len(block)):
            row = start + offset
            inner = np.flatnonzero(kept[start:row])
            if len(inner):
                j = int(inner[inside[offset, inner].argmax()])
                if inside[offset, j] > best[offset]:
                    best[offset], best_row[offset] = inside[offset, j], start + j
            if best_row[offset] >= 0 and best[offset] >= threshold:
                matches.append((row, int(best_row[offset]), float(best[offset])))
            else:
                kept[row] = True
    return matches


# ----------------------------------------------------------------------------------------------------
# Duplicates as rows: a dropped seed or output becomes a rejected row with reason
# `duplicate_of:<id>` (exact) or `near_duplicate_of:<id>:<cosine>` (an accepted output close to an
# earlier one of its language in the multilingual encoder), so the run's counts still add up to
# everything read and planned.
# ----------------------------------------------------------------------------------------------------


EMBEDDING = "output_embedding"


def duplicate_rows(
    duplicates: Mapping[str, str], seeds: Sequence[Seed], recipe: str, prompt_version: str
) -> list[dict]:
    """One rejected row per dropped seed (not per language), so the plan still accounts for it:
    a decided row (engine.records.decided_row), its id that of the seed with no language."""
    return [
        decided_row(
            seed.id,
            recipe,
            prompt_version,
            duplicate_reason(duplicates[seed.id]),
            None,
            source=seed.source,
            src_instruction=seed.instruction,
            src_input=seed.input,
            src_output=seed.output,
        )
        for seed in seeds
        if seed.id in duplicates
    ]


def reject_duplicate_outputs(table: pa.Table) -> pa.Table:
    """Accepted rows whose generated instruction + input repeats an earlier accepted row of the same
    language become rejected duplicate_of:<row id>. Earlier = by (seed_id, id), not by shard order,
    so every finalise of the same rows gives the same answer."""
    accepted = table.filter(pc.equal(table.column("status"), ACCEPTED))
    rows = sorted(
        accepted.select(["id", "seed_id", "lang", "instruction", "input"]).to_pylist(),
        key=lambda r: (r["seed_id"] or "", r["id"]),
    )
    keys = [f"{row['lang']}\x1f{text_key(row['instruction'], row['input'])}" for row in rows]
    duplicates = exact_duplicates([row["id"] for row in rows], keys)
    if not duplicates:
        return table
    return _reject(table, {row_id: duplicate_reason(of_id) for row_id, of_id in duplicates.items()})


def _reject(table: pa.Table, reasons: Mapping[str, str]) -> pa.Table:
    """The rows named in `reasons` ({id: reason}) rejected with their reason; the rest unchanged."""
    if not reasons:
        return table
    hit = pc.is_in(table.column("id"), value_set=pa.array(list(reasons), pa.string()))
    mapped = pa.array([reasons.get(row_id) for row_id in table.column("id").to_pylist()], pa.string())
    status = pc.if_else(hit, pa.scalar(REJECTED), table.column("status"))
    reason = pc.if_else(hit, mapped, table.column("reason"))
    table = table.set_column(table.schema.get_field_index("status"), "status", status)
    return table.set_column(table.schema.get_field_index("reason"), "reason", reason)


def near_duplicate_reason(of_id: str, cosine: float) -> str:
    return make_reason("near_duplicate_of", f"{of_id}:{cosine:.3f}")


def near_duplicate_outputs(table: pa.Table, threshold: float) -> dict[str, str]:
    """{row id: near_duplicate_of:<kept id>:<cosine>} among one language's accepted rows.

    Two outputs are near-duplicates when their `output_embedding` cosine is >= threshold and their
    protected spans (code, formulas, URLs: what an embedding reads loosely) are the same. The
    earlier row by (seed_id, id) is kept, greedily (engine.selection.dedup.near_duplicate_matches),
    so the answer does not depend on shards or batches. Rows without a vector are not compared."""
    accepted = table.filter(pc.and_(pc.equal(table.column("status"), ACCEPTED), pc.is_valid(table.column(EMBEDDING))))
    if accepted.num_rows < 2:
        return {}
    accepted = accepted.take(pc.sort_indices(accepted, [("seed_id", "ascending"), ("id", "ascending")]))
    ids = accepted.column("id").to_pylist()
    groups: dict[tuple, list[int]] = {}
    for index, spans in enumerate(accepted.column("protected_spans").to_pylist()):
        groups.setdefault(tuple(sorted(spans or ())), []).append(index)
    vectors = _unit_rows(accepted.column(EMBEDDING))
    reasons: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        for row, kept, cosine in near_duplicate_matches(vectors[members], threshold):
            reasons[ids[members[row]]] = near_duplicate_reason(ids[members[kept]], cosine)
    return reasons


def _unit_rows(column: pa.ChunkedArray) -> np.ndarray:
    """A list<float16> column of equal-length vectors as unit float32 rows."""
    column = column.combine_chunks()
    lengths = pc.list_value_length(column)
    dim = pc.min(lengths).as_py()
    if dim != pc.max(lengths).as_py():
        raise ValueError(
            f"{EMBEDDING} vectors of different lengths in one language: were the rows made with two encoders?"
        )
    return normalise_rows(column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(column), dim))


class NearDuplicateOutputs:
    """A finalise step (engine/run_outputs.py): one language's accepted near-duplicates rejected.
    Its `stats` count the accepted rows compared, those rejected, and the languages whose accepted
    rows carry no vectors to compare (the adequacy gate was off): finalise hands them to the job,
    which says so once."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.stats: Counter = Counter()

    def __call__(self, table: pa.Table) -> pa.Table:
        accepted = pc.equal(table.column("status"), ACCEPTED)
        with_vector = pc.sum(pc.and_(accepted, pc.is_valid(table.column(EMBEDDING)))).as_py() or 0
        if not with_vector and (pc.sum(accepted).as_py() or 0):
            self.stats["languages_without_vectors"] += 1
        reasons = near_duplicate_outputs(table, self.threshold) if with_vector > 1 else {}
        self.stats["compared"] += with_vector
        self.stats["rejected"] += len(reasons)
        return _reject(table, reasons)
