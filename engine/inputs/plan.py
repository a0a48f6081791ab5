"""Plan which seeds each language translates (sPhinX per-language sampling).

Each language draws its own sample, sized by its resource tier, so different languages see
different seeds. The sample depends only on (plan seed, language, the seed list in order), so the
same config always gives the same plan, and adding a language leaves the other languages' samples
unchanged (adding, removing or reordering seeds draws every sample anew).

With seed clusters (select.by: clusters) each language's sample is stratified instead
(engine.cluster.stratified_select): a quota of q covers min(q, k) clusters rather than whatever a
uniform draw happens to hit, and the rest of the quota follows the cluster sizes.

A plan holds indices, not text and not ids: a TaskPlan is the columnar seed table once (Arrow)
and an index of six bytes per task (seed index as int32, language as an int16 dictionary code).
The task rows, their ids (engine.records.row_id of seed id, language, recipe and prompt version)
and their source text are assembled from the two (`assemble_tasks`), batch by batch, inside the
pipeline that translates them, so the driver never holds a string per planned row. Where the
driver needs the ids (the plan fingerprint, resume's anti-join, the finalise's check) it derives
them a slice at a time (`TaskPlan.id_chunks`, `PlannedIds`).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.inputs.seeds import SEED_SCHEMA
from engine.languages import Language
from engine.protocols import SeedTable
from engine.reasons import make_reason
from engine.records import row_id
from engine.selection.cluster import stratified_select

INDEX_SCHEMA = pa.schema([("seed_index", pa.int32()), ("lang", pa.dictionary(pa.int16(), pa.string()))])
ID_KEY = b"babelforge.row_id"  # index metadata: recipe and prompt version, which every row id hashes
ID_STEP = 1 << 16  # rows whose ids the driver derives at once


def language_rng(plan_seed: int, lang: str) -> random.Random:
    digest = hashlib.sha256(f"{plan_seed}:{lang}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sample_indices(count: int, lang: str, quota: int, plan_seed: int) -> np.ndarray:
    """Sorted positions of `lang`'s uniform sample of `quota` out of `count` seeds."""
    if quota >= count:
        return np.arange(count, dtype=np.int64)
    return np.array(sorted(language_rng(plan_seed, lang).sample(range(count), quota)), dtype=np.int64)


def stratified_indices(labels: np.ndarray, lang: str, quota: int, plan_seed: int) -> np.ndarray:
    """Like sample_indices, stratified over the seeds' cluster labels (one per seed, in order)."""
    if quota >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    return np.asarray(stratified_select(labels, quota, language_rng(plan_seed, lang).getrandbits(64)), dtype=np.int64)


def plan_fingerprint(ids) -> str:
    """sha256 of the sorted planned ids joined by newlines: of a list, an Arrow array, or anything
    with `id_chunks()` (PlannedIds, TaskPlan), read a slice at a time. Ids of 20 lowercase hex
    characters (engine.records.row_id) are held as 10 bytes each and sorted as bytes, others as
    Arrow strings; hex sorts as its bytes do, and Arrow sorts UTF-8 by bytes (code-point order),
    so the digest is that of the sorted list of strings."""
    if hasattr(ids, "id_chunks"):
        chunks = ids.id_chunks()
    elif isinstance(ids, pa.ChunkedArray):
        chunks = ids.chunks
    else:
        chunks = [ids if isinstance(ids, pa.Array) else pa.array(list(ids), pa.string())]
    packed, others = [], []
    for chunk in chunks:
        hexed = pc.fill_null(pc.match_substring_regex(chunk, "^[0-9a-f]{20}$"), False)
        packed.append(_pack_hex(chunk.filter(hexed)))
        others.append(chunk.filter(pc.invert(hexed)))
    digests = np.concatenate(packed) if packed else np.zeros(0, "S10")
    del packed
    digests.sort()  # in place: 10 bytes a hex id, twice at the peak
    rest = pa.chunked_array(others, pa.string()) if others else pa.chunked_array([], pa.string())
    rest = pc.take(rest, pc.sort_indices(rest)).to_pylist() if len(rest) else []
    digest = hashlib.sha256()
    first = True

    def emit(text: bytes) -> None:
        nonlocal first
        digest.update(text if first else b"\n" + text)
        first = False

    view = _HexView(digests)
    done = 0
    for other in rest:  # few (rows decided before planning): each at its place among the hex ids
        at = bisect.bisect_left(view, other)
        for start in range(done, at, ID_STEP):
            emit(_unpack_hex(digests[start : min(at, start + ID_STEP)]))
        done = at
        emit(other.encode())
    step = ID_STEP
    for start in range(done, len(digests), step):
        emit(_unpack_hex(digests[start : start + step]))
    return digest.hexdigest()


_NIBBLE = np.full(256, 255, dtype=np.uint8)
_NIBBLE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_NIBBLE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def _pack_hex(array: pa.Array) -> np.ndarray:
    """20-character hex strings (no nulls) → 10-byte values (numpy S10), in order."""
    if not len(array):
        return np.zeros(0, "S10")
    offsets = np.frombuffer(array.buffers()[1], np.int32)[array.offset : array.offset + len(array) + 1]
    # every string is 20 bytes
    data = np.frombuffer(array.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, 20)
    nibbles = _NIBBLE[data]
    return np.ascontiguousarray(nibbles[:, 0::2] << 4 | nibbles[:, 1::2]).view("S10").ravel()


def _unpack_hex(values: np.ndarray) -> bytes:
    """10-byte values → their 20-character hex strings joined by newlines."""
    raw = np.frombuffer(values.tobytes(), np.uint8).reshape(-1, 10)
    out = np.full((len(raw), 21), ord("\n"), dtype=np.uint8)
    out[:, 0:20:2], out[:, 1:20:2] = _HEX[raw >> 4], _HEX[raw & 15]
    return out.tobytes()[:-1]


class _HexView:
    """Sorted 10-byte values read as their hex strings, for bisect."""

    def __init__(self, values: np.ndarray):
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> str:
        return self.values[i].ljust(10, b"\0").hex()


def task_ids(
    seed_ids: pa.Array | pa.ChunkedArray, langs: pa.Array | pa.ChunkedArray, recipe: str, prompt_version: str
) -> pa.Array:
    """The row ids of tasks (seed id, language) (engine.records.row_id), as one Arrow array."""
    langs = langs.cast(pa.string()) if pa.types.is_dictionary(langs.type) else langs
    return pa.array(
        [row_id(seed, lang, recipe, prompt_version) for seed, lang in zip(seed_ids.to_pylist(), langs.to_pylist())],
        pa.string(),
    )


def index_version(index: pa.Table) -> tuple[str, str]:
    """(recipe, prompt version) from an index's metadata (build_task_plan puts them there)."""
    recipe, _, version = ((index.schema.metadata or {}).get(ID_KEY) or b"").decode().partition("\x1f")
    return recipe, version


def assemble_tasks(index: pa.Table, seeds: SeedTable, recipe: str) -> pa.Table:
    """Task rows (engine.records.TASK_COLUMNS, plus cluster where the seeds have one) for the index
    rows: the seed text is taken from the seed table here, batch by batch, and the row ids derived
    (the prompt version comes with the index's metadata; an index with an id column keeps its ids)."""
    picked = seeds.take(index.column("seed_index"))
    if "id" in index.column_names:
        ids = index.column("id")
    else:
        ids = task_ids(picked.column("id"), index.column("lang"), recipe, index_version(index)[1])
    columns = {
        "id": ids,
        "seed_id": picked.column("id"),
        "recipe": pa.repeat(pa.scalar(recipe, pa.string()), index.num_rows),
        "lang": index.column("lang").cast(pa.string()),
        "src_instruction": picked.column("instruction"),
        "src_input": picked.column("input"),
        "src_output": picked.column("output"),
        "source": picked.column("source"),
    }
    if "cluster" in seeds.column_names:
        columns["cluster"] = picked.column("cluster")
    return pa.table(columns)


@dataclass(frozen=True)
class TaskPlan:
    """The planned tasks as indices: `seeds` (columnar, once) and `index` (INDEX_SCHEMA, one row
    per task, in plan order: language by language, each sample in seed order; its metadata names
    the recipe and prompt version that the row ids hash)."""

    seeds: SeedTable  # a pyarrow.Table, or the job's actors.dataflow.seeds.SeedView
    index: pa.Table
    recipe: str

    @property
    def num_rows(self) -> int:
        return self.index.num_rows

    def __len__(self) -> int:
        return self.index.num_rows

    def id_chunks(self, step: int | None = None):
        """The row ids, `step` (ID_STEP) tasks at a time, in plan order (derived, never stored)."""
        step = step or ID_STEP
        seed_ids, version = self.seeds.column("id"), index_version(self.index)[1]
        for start in range(0, self.index.num_rows, step):
            part = self.index.slice(start, step)
            yield task_ids(seed_ids.take(part.column("seed_index")), part.column("lang"), self.recipe, version)

    def without(self, done: pa.Array | pa.ChunkedArray) -> TaskPlan:
        """The plan less the ids in `done` (an Arrow anti-join, a slice of the plan at a time: no
        Python set of ids)."""
        if len(done) == 0:
            return self
        if isinstance(done, pa.ChunkedArray):
            done = done.combine_chunks() if done.num_chunks else pa.array([], pa.string())
        keep = pa.chunked_array([pc.invert(pc.is_in(ids, value_set=done)) for ids in self.id_chunks()], pa.bool_())
        return TaskPlan(self.seeds, self.index.filter(keep), self.recipe)

    def first_per_language(self, count: int) -> TaskPlan:
        """The first `count` tasks of each language, in plan order (a qualification probe)."""
        codes = pc.dictionary_encode(self.index.column("lang")).combine_chunks().indices.to_numpy()
        order = np.argsort(codes, kind="stable")
        ranked = codes[order]
        starts = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1] if len(ranked) else np.zeros(0, np.int64)
        rank = np.empty(len(codes), np.int64)
        rank[order] = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
        return TaskPlan(self.seeds, self.index.filter(pa.array(rank < count)), self.recipe)

    def for_languages(self, codes) -> TaskPlan:
        """The tasks of these languages only."""
        keep = pc.is_in(self.index.column("lang"), value_set=pa.array(list(codes), pa.string()))
        return TaskPlan(self.seeds, self.index.filter(keep), self.recipe)

    def rows_per_language(self) -> dict[str, int]:
        counts = pc.value_counts(self.index.column("lang")).to_pylist()
        return {entry["values"]: entry["counts"] for entry in counts}

    def tasks(self, start: int = 0, length: int | None = None) -> pa.Table:
        """The task rows, text included, of index rows [start, start + length)."""
        return assemble_tasks(self.index.slice(start, length), self.seeds, self.recipe)


@dataclass(frozen=True)
class PlannedIds:
    """Every id a run must end with, without holding them: the plan's (derived a slice at a time)
    and a few extra ones (rows decided before planning). len(), id_chunks(), plan_fingerprint."""

    plan: TaskPlan
    extra: pa.Array

    def __len__(self) -> int:
        return self.plan.num_rows + len(self.extra)

    def id_chunks(self, step: int | None = None):
        yield from self.plan.id_chunks(step)
        if len(self.extra):
            yield self.extra

    def to_arrow(self) -> pa.ChunkedArray:
        """Every id at once (where a caller needs them all, e.g. to name what is missing)."""
        return pa.chunked_array(list(self.id_chunks()), pa.string())


def plan_index(
    seed_ids: pa.Array | pa.ChunkedArray, languages: Sequence[Language], pick, recipe: str, prompt_version: str
) -> pa.Table:
    """INDEX_SCHEMA rows, language by language: `pick(language)` gives the sorted seed positions;
    the metadata names the recipe and prompt version (the ids are derived from them and the seed ids)."""
    codes = [language.code for language in languages]
    positions, langs = [], []
    for number, language in enumerate(languages):
        chosen = pick(language)
        positions.append(np.asarray(chosen, dtype=np.int32))
        langs.append(np.full(len(chosen), number, dtype=np.int16))
    schema = INDEX_SCHEMA.with_metadata({ID_KEY: f"{recipe}\x1f{prompt_version}".encode()})
    if not languages:
        return schema.empty_table()
    lang = pa.DictionaryArray.from_arrays(pa.array(np.concatenate(langs), pa.int16()), pa.array(codes, pa.string()))
    return pa.table([pa.array(np.concatenate(positions), pa.int32()), lang], schema=schema)


def build_task_plan(
    seeds: SeedTable,
    languages: Sequence[Language],
    mode: str,
    quotas: dict[str, int],
    plan_seed: int,
    recipe: str,
    prompt_version: str,
    labels: np.ndarray | None = None,
) -> TaskPlan:
    """The plan over a seed table (SEED_SCHEMA columns). `labels` (one cluster label per seed, in
    order) makes per-language samples stratified instead of uniform."""
    count = seeds.num_rows

    def pick(language: Language) -> np.ndarray:
        quota = quotas[language.tier]
        if mode == "all":
            return np.arange(count, dtype=np.int64)
        if labels is not None:
            return stratified_indices(labels, language.code, quota, plan_seed)
        return sample_indices(count, language.code, quota, plan_seed)

    return TaskPlan(seeds, plan_index(seeds.column("id"), languages, pick, recipe, prompt_version), recipe)


def build_text_task_plan(
    texts, languages: Sequence[Language], quotas: dict[str, int], plan_seed: int, recipe: str, prompt_version: str
) -> tuple[TaskPlan, list[dict]]:
    """X-Instruction: each language samples its own texts by tier quota. Returns (plan, rows for
    texts whose language is not a target), so that nothing read is lost."""
    pools: dict[str, list[int]] = {}
    for position, text in enumerate(texts):
        pools.setdefault(text.lang, []).append(position)
    targets = {language.code for language in languages}
    table = pa.table(
        {
            "id": [t.id for t in texts],
            "instruction": [""] * len(texts),
            "input": [""] * len(texts),
            "output": [t.text for t in texts],
            "source": [t.source for t in texts],
        },
        schema=SEED_SCHEMA,
    )

    def pick(language: Language) -> np.ndarray:
        pool = pools.get(language.code, [])
        chosen = sample_indices(len(pool), language.code, quotas[language.tier], plan_seed)
        return np.asarray(pool, dtype=np.int64)[chosen] if len(chosen) else np.zeros(0, dtype=np.int64)

    plan = TaskPlan(table, plan_index(table.column("id"), languages, pick, recipe, prompt_version), recipe)
    untargeted = [
        {
            "id": row_id(text.id, text.lang, recipe, prompt_version),
            "seed_id": text.id,
            "recipe": recipe,
            "lang": text.lang,
            "src_output": text.text,
            "source": text.source,
            "reason": make_reason("not_a_target_language"),
        }
        for text in texts
        if text.lang not in targets
    ]
    return plan, untargeted
