"""Plan which seeds each language translates (sPhinX per-language sampling).

Each language draws its own sample, sized by its resource tier, so different languages see
different seeds. The sample depends only on (plan seed, language, the seed list in order), so the
same config always gives the same plan, and adding a language leaves the other languages' samples
unchanged (adding, removing or reordering seeds draws every sample anew).

With seed clusters (select.by: clusters) each language's sample is stratified instead
(engine.cluster.stratified_select): a quota of q covers min(q, k) clusters rather than whatever a
uniform draw happens to hit, and the rest of the quota follows the cluster sizes.

A plan holds ids, not text: a TaskPlan is the columnar seed table once (Arrow) and an index of
one small row per task (row id, seed index, language as a dictionary code). The task rows with
their source text are assembled from the two (`assemble_tasks`), batch by batch, inside the
pipeline that translates them, so no seed text is ever copied once per language in the driver.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.reasons import make_reason
from engine.selection.cluster import stratified_select
from engine.languages import Language
from engine.records import row_id
from engine.inputs.seeds import SEED_SCHEMA, Seed, seeds_table

INDEX_SCHEMA = pa.schema([("id", pa.string()), ("seed_index", pa.int32()), ("lang", pa.dictionary(pa.int16(), pa.string()))])


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


def sample_for_language(seeds: Sequence[Seed], lang: str, quota: int, plan_seed: int) -> list[Seed]:
    return [seeds[i] for i in sample_indices(len(seeds), lang, quota, plan_seed)]


def sample_stratified_for_language(seeds: Sequence[Seed], clusters: Mapping[str, int], lang: str, quota: int, plan_seed: int) -> list[Seed]:
    """Like sample_for_language, stratified over the seeds' clusters (seed id → cluster)."""
    labels = np.array([clusters[seed.id] for seed in seeds], dtype=np.int64)
    return [seeds[i] for i in stratified_indices(labels, lang, quota, plan_seed)]


def plan_fingerprint(ids) -> str:
    """sha256 of the sorted planned ids joined by newlines (a list or an Arrow array of strings);
    Arrow sorts UTF-8 by bytes, which is code-point order, so both give the same digest."""
    array = pa.chunked_array([pa.array(ids, pa.string())]) if isinstance(ids, (list, tuple)) else ids
    ordered = pc.take(array, pc.sort_indices(array))
    digest = hashlib.sha256()
    step = 1 << 16
    for start in range(0, len(ordered), step):
        if start:
            digest.update(b"\n")
        digest.update("\n".join(ordered.slice(start, step).to_pylist()).encode())
    return digest.hexdigest()


def assemble_tasks(index: pa.Table, seeds: pa.Table, recipe: str) -> pa.Table:
    """Task rows (engine.records.TASK_COLUMNS, plus cluster where the seeds have one) for the index
    rows: the seed text is taken from the seed table here, batch by batch."""
    picked = seeds.take(index.column("seed_index"))
    columns = {
        "id": index.column("id"),
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
    """The planned tasks as ids: `seeds` (columnar, once) and `index` (INDEX_SCHEMA, one row per
    task, in plan order: language by language, each sample in seed order)."""

    seeds: pa.Table
    index: pa.Table
    recipe: str

    @property
    def num_rows(self) -> int:
        return self.index.num_rows

    def __len__(self) -> int:
        return self.index.num_rows

    @property
    def ids(self) -> pa.ChunkedArray:
        return self.index.column("id")

    def without(self, done: pa.Array | pa.ChunkedArray) -> TaskPlan:
        """The plan less the ids in `done` (an Arrow anti-join: no Python set of ids)."""
        if len(done) == 0:
            return self
        if isinstance(done, pa.ChunkedArray):
            done = done.combine_chunks() if done.num_chunks else pa.array([], pa.string())
        keep = pc.invert(pc.is_in(self.ids, value_set=done))
        return TaskPlan(self.seeds, self.index.filter(keep), self.recipe)

    def tasks(self, start: int = 0, length: int | None = None) -> pa.Table:
        """The task rows, text included, of index rows [start, start + length)."""
        return assemble_tasks(self.index.slice(start, length), self.seeds, self.recipe)

    def to_pylist(self) -> list[dict]:
        return self.tasks().to_pylist()


def plan_index(seed_ids: pa.Array | pa.ChunkedArray, languages: Sequence[Language], pick, recipe: str, prompt_version: str) -> pa.Table:
    """INDEX_SCHEMA rows, language by language: `pick(language)` gives the sorted seed positions."""
    codes = [language.code for language in languages]
    ids, positions, langs = [], [], []
    for number, language in enumerate(languages):
        chosen = pick(language)
        chosen_ids = seed_ids.take(pa.array(chosen, pa.int64())).to_pylist() if len(chosen) else []
        ids.append(pa.array([row_id(seed, language.code, recipe, prompt_version) for seed in chosen_ids], pa.string()))
        positions.append(np.asarray(chosen, dtype=np.int32))
        langs.append(np.full(len(chosen), number, dtype=np.int16))
    if not languages:
        return INDEX_SCHEMA.empty_table()
    lang = pa.DictionaryArray.from_arrays(pa.array(np.concatenate(langs), pa.int16()), pa.array(codes, pa.string()))
    return pa.table([pa.chunked_array(ids, pa.string()), pa.array(np.concatenate(positions), pa.int32()), lang], schema=INDEX_SCHEMA)


def build_task_plan(
    seeds: pa.Table,
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


def build_plan(seeds: Sequence[Seed], languages: Sequence[Language], mode: str, quotas: dict[str, int], plan_seed: int,
               recipe: str, prompt_version: str, clusters: Mapping[str, int] | None = None) -> list[dict]:
    """One task row per (seed, language), columns as engine.records.TASK_COLUMNS: build_task_plan
    as Python rows, for small callers. `clusters` (seed id → cluster) makes samples stratified."""
    labels = np.array([clusters[seed.id] for seed in seeds], dtype=np.int64) if clusters is not None else None
    return build_task_plan(seeds_table(seeds), languages, mode, quotas, plan_seed, recipe, prompt_version, labels).to_pylist()


def build_text_task_plan(texts, languages: Sequence[Language], quotas: dict[str, int], plan_seed: int, recipe: str, prompt_version: str) -> tuple[TaskPlan, list[dict]]:
    """X-Instruction: each language samples its own texts by tier quota. Returns (plan, rows for
    texts whose language is not a target), so that nothing read is lost."""
    pools: dict[str, list[int]] = {}
    for position, text in enumerate(texts):
        pools.setdefault(text.lang, []).append(position)
    targets = {language.code for language in languages}
    table = pa.table(
        {"id": [t.id for t in texts], "instruction": [""] * len(texts), "input": [""] * len(texts),
         "output": [t.text for t in texts], "source": [t.source for t in texts]},
        schema=SEED_SCHEMA,
    )

    def pick(language: Language) -> np.ndarray:
        pool = pools.get(language.code, [])
        chosen = sample_indices(len(pool), language.code, quotas[language.tier], plan_seed)
        return np.asarray(pool, dtype=np.int64)[chosen] if len(chosen) else np.zeros(0, dtype=np.int64)

    plan = TaskPlan(table, plan_index(table.column("id"), languages, pick, recipe, prompt_version), recipe)
    untargeted = [
        {"id": row_id(text.id, text.lang, recipe, prompt_version), "seed_id": text.id, "recipe": recipe, "lang": text.lang,
         "src_output": text.text, "source": text.source, "reason": make_reason("not_a_target_language")}
        for text in texts if text.lang not in targets
    ]
    return plan, untargeted


def build_text_plan(texts, languages: Sequence[Language], quotas: dict[str, int], plan_seed: int, recipe: str, prompt_version: str) -> tuple[list[dict], list[dict]]:
    """build_text_task_plan with the tasks as Python rows."""
    plan, untargeted = build_text_task_plan(texts, languages, quotas, plan_seed, recipe, prompt_version)
    return plan.to_pylist(), untargeted
