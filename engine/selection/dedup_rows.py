"""Duplicates as rows: a dropped seed or output becomes a rejected row with reason
`duplicate_of:<id>` (exact) or `near_duplicate_of:<id>:<cosine>` (an accepted output close to an
earlier one of its language in the multilingual encoder), so the run's counts still add up to
everything read and planned."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.inputs.seeds import Seed
from engine.reasons import make_reason
from engine.records import ACCEPTED, REJECTED, decided_row
from engine.selection.cluster import normalise_rows
from engine.selection.dedup import duplicate_reason, exact_duplicates, near_duplicate_matches, text_key

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
