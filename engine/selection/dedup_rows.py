"""Duplicates as rows: a dropped seed or output becomes a rejected row with reason
`duplicate_of:<id>`, so the run's counts still add up to everything read and planned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from engine.selection.dedup import duplicate_reason, exact_duplicates, text_key
from engine.records import ACCEPTED, REJECTED, row_id
from engine.inputs.seeds import Seed


def seed_key(seed: Seed) -> str:
    """A seed's task is its instruction + input: the same task twice is a duplicate, whatever the answer."""
    return text_key(seed.instruction, seed.input)


def duplicate_rows(duplicates: Mapping[str, str], seeds: Sequence[Seed], recipe: str) -> list[dict]:
    """One rejected row per dropped seed (not per language), so the plan still accounts for it."""
    return [
        {
            "id": row_id(seed.id, "", recipe, "dedup"),
            "seed_id": seed.id,
            "recipe": recipe,
            "status": REJECTED,
            "reason": duplicate_reason(duplicates[seed.id]),
            "src_instruction": seed.instruction,
            "src_input": seed.input,
            "src_output": seed.output,
            "source": seed.source,
        }
        for seed in seeds
        if seed.id in duplicates
    ]


def reject_duplicate_outputs(table: pa.Table) -> pa.Table:
    """Accepted rows whose generated instruction + input repeats an earlier accepted row of the same
    language become rejected duplicate_of:<row id>. Earlier = by (seed_id, id), not by shard order,
    so every finalise of the same rows gives the same answer."""
    accepted = table.filter(pc.equal(table.column("status"), ACCEPTED))
    rows = sorted(accepted.select(["id", "seed_id", "lang", "instruction", "input"]).to_pylist(), key=lambda r: (r["seed_id"] or "", r["id"]))
    keys = [f"{row['lang']}\x1f{text_key(row['instruction'], row['input'])}" for row in rows]
    duplicates = exact_duplicates([row["id"] for row in rows], keys)
    if not duplicates:
        return table
    ids = table.column("id").to_pylist()
    status = [REJECTED if row_id in duplicates else value for row_id, value in zip(ids, table.column("status").to_pylist())]
    reason = [duplicate_reason(duplicates[row_id]) if row_id in duplicates else value for row_id, value in zip(ids, table.column("reason").to_pylist())]
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status, pa.string()))
    return table.set_column(table.schema.get_field_index("reason"), "reason", pa.array(reason, pa.string()))
