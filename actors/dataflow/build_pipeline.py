"""The distributed build: engine/builders' group functions run on Ray Data, files written by the workers.

    summary = build_on_ray(run_dir, config, staging_folder)      # jobs.build wraps it in swap_in

    accepted.parquet ──read_parquet──▶ rows (translated languages only)
      ├─ map_groups(seed_id, seed)  ──▶ CrossIn candidates, QAlign, TransLLM, X-Instruction,
      │                                 and one marker per seed (its English original, if any)
      │     markers ──▶ the validation cut; CrossIn candidates ──▶ each mode's cut (counts, two passes)
      └─ rows + English originals ──map_groups(lang, language)──▶ sPhinX N-shot
    examples ──map_batches(write parts)──▶ <out>/<dataset>/<split>.{parquet,jsonl}/part-*.*  (+ counts)
             ──▶ mix: quotas from the counts per dataset × language, rows kept/repeated under rank cuts,
                 written the same way
    counts ──▶ build.json, README.md (written by the driver)

The driver holds the config, counts (per dataset × split × language × mode, per rank bucket) and
the few candidates that straddle a cut; never rows. Counts are summed from per-block partial
counts (one small table per block), which costs a plain map instead of a shuffle; the two group
steps are hash shuffles on plain Ray tasks (actors/dataflow/group_shuffle.py). Which examples are built
depends on the rows and the config only: every "the first N" is a hash-rank cut
(engine/builders/ranks.py), found by counting ranks per bucket (pass one) and sorting the one
bucket the cut falls in (pass two).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.dataflow.group_shuffle import map_groups
from engine.builders import MIX
from engine.builders.crossin import BUILDER as CROSSIN
from engine.builders.crossin import crossin_quotas
from engine.builders.groups import BUILT_SCHEMA, english_of_seed, language_examples, seed_examples, wants_english_rows
from engine.builders.mixing import mix_quotas
from engine.builders.output import ROWS_PER_FILE, write_part
from engine.builders.pool import ENGLISH, ROW_COLUMNS
from engine.builders.ranks import (
    KEEP_ALL,
    KEEP_NONE,
    Cut,
    copies,
    crossin_rank,
    keeps_each,
    mix_rank,
    seed_rank,
    validation_count,
)
from engine.builders.sphinx import BUILDER as SPHINX
from engine.builders.summary import dataset_entries, make_summary, rows_license, source_file
from engine.config import BUILDER_DATASETS, Config, MixConfig, redacted
from engine.runfolder import RunFolder

log = logging.getLogger("babelforge.build")

BUCKETS = 1024  # ranks counted per bucket; the bucket a cut falls in is all the driver sees of a group
ROWS_PER_SHUFFLE_PARTITION = 50_000  # a group-by shuffles into about this many rows per partition
SEED_MARK, ENGLISH_MARK = "~seed", "~english"  # marker rows of the seed pass (not datasets)
ROW_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in ROW_COLUMNS])
RankOf = Callable[[pa.Table], tuple[pa.Array, np.ndarray, pa.Array]]
"""batch -> (group of each row, "" for none; rank of each row as uint64; key of each row). Ranks
are columns, hashed once where the rows are made: the cut passes and the steps that apply the
cuts read them, they never hash again."""


# --- counts and cuts ----------------------------------------------------------------------------


def grouped(groups) -> tuple[list[str], np.ndarray]:
    """The distinct groups of a string column and, per row, the index of its group among them."""
    groups = pc.fill_null(groups, "")
    encoded = pc.dictionary_encode(groups.combine_chunks() if isinstance(groups, pa.ChunkedArray) else groups)
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def per_group(values: list[str], which: np.ndarray, of: Callable[[str], object], dtype) -> np.ndarray:
    """`of(group)` for each row's group, computed once per distinct group."""
    return np.array([of(v) for v in values], dtype=dtype)[which]


def cut_mask(cuts: dict[str, Cut], groups, ranks: np.ndarray, keys, default: Cut = KEEP_ALL) -> np.ndarray:
    """Whether each row is kept by its group's cut (`default` for a group without one)."""
    values, which = grouped(groups)
    return keeps_each([cuts.get(v, default) for v in values], which, ranks, keys)


def summed(ds, partial: Callable[[pa.Table], pa.Table], keys: list[str]) -> Counter:
    """Counts per key over a dataset: each block counts its own rows (`partial` gives one row per
    input row, with the key columns), the driver adds the small per-block tables up."""

    def count_block(batch: pa.Table) -> pa.Table:
        table = partial(batch)
        # use_threads=False: Acero numbers every thread that ever calls it and fails past its pool's
        # size ("thread index N is out of range"), which a long-lived Ray worker's threads reach.
        return (
            table.group_by(keys, use_threads=False).aggregate([([], "count_all")])
            if table.num_rows
            else pa.table(
                {**{k: pa.array([], table.schema.field(k).type) for k in keys}, "count_all": pa.array([], pa.int64())}
            )
        )

    return added_up(ds.map_batches(count_block, batch_format="pyarrow", batch_size=None), keys)


def added_up(counts, keys: list[str]) -> Counter:
    """The small per-block count tables of `counts` (key columns + count_all) added up by key."""
    total: Counter = Counter()
    for block in counts.iter_batches(batch_format="pyarrow", batch_size=None):
        for row in block.to_pylist():
            total[tuple(row[k] for k in keys)] += row["count_all"]
    return total


def bucket_of(ranks: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """Each rank's bucket among `buckets` equal slices of the rank range (per row): monotonic in
    rank, so the candidates of one bucket are contiguous in rank order."""
    return (((ranks >> np.uint64(32)) * buckets.astype(np.uint64)) >> np.uint64(32)).astype(np.int64)


def find_cuts(
    ds, rank_of: RankOf, quotas_of: Callable[[dict[str, int]], dict[str, int]], buckets: dict[str, int] | None = None
) -> tuple[dict[str, Cut], dict[str, int]]:
    """Per group, the cut keeping its `quota` lowest (rank, key), and the groups' sizes. Pass one
    counts ranks per (group, bucket), `quotas_of(sizes)` then sets the quotas; pass two brings back
    only the candidates of the bucket each cut falls in."""
    buckets = buckets or {}

    def located(batch: pa.Table):
        """rank_of's columns, the distinct groups, and each row's group index and rank bucket."""
        groups, ranks, keys = rank_of(batch)
        values, which = grouped(groups)
        return (
            groups,
            ranks,
            keys,
            values,
            which,
            bucket_of(ranks, per_group(values, which, lambda g: buckets.get(g, BUCKETS), np.uint64)),
        )

    def bucketed(batch: pa.Table) -> pa.Table:
        groups, _, _, values, which, where = located(batch)
        keep = per_group(values, which, bool, bool)
        return pa.table({"group": groups.filter(pa.array(keep)), "bucket": pa.array(where[keep], pa.int64())})

    histogram: dict[str, dict[int, int]] = {}
    for (group, bucket), n in summed(ds, bucketed, ["group", "bucket"]).items():
        histogram.setdefault(group, {})[bucket] = n
    sizes = {group: sum(h.values()) for group, h in histogram.items()}
    quotas = quotas_of(sizes)
    cuts: dict[str, Cut] = {}
    pending: dict[str, tuple[int, int]] = {}  # group -> (the bucket its cut falls in, candidates needed from it)
    for group, quota in quotas.items():
        if quota <= 0:
            cuts[group] = KEEP_NONE
            continue
        if quota >= sizes.get(group, 0):
            cuts[group] = KEEP_ALL
            continue
        seen = 0
        for bucket in sorted(histogram[group]):
            if seen + histogram[group][bucket] >= quota:
                pending[group] = (bucket, quota - seen)
                break
            seen += histogram[group][bucket]
    if not pending:
        return cuts, sizes

    def straddling(batch: pa.Table) -> pa.Table:
        groups, ranks, keys, values, which, where = located(batch)
        picked = pa.array(where == per_group(values, which, lambda g: pending.get(g, (-1, 0))[0], np.int64))
        return pa.table(
            {
                "group": groups.filter(picked),
                "rank": pa.array(ranks, pa.uint64()).filter(picked),
                "key": keys.filter(picked).cast(pa.string()),
            }
        )

    near: dict[str, list[tuple[int, str]]] = {}
    for block in ds.map_batches(straddling, batch_format="pyarrow", batch_size=None).iter_batches(
        batch_format="pyarrow", batch_size=None
    ):
        for row in block.to_pylist():
            near.setdefault(row["group"], []).append((int(row["rank"]), row["key"]))
    for group, (_, needed) in pending.items():
        cuts[group] = Cut(*sorted(near[group])[needed - 1])
    return cuts, sizes


# --- the group steps ----------------------------------------------------------------------------


def translated_only(batch: pa.Table) -> pa.Table:
    lang = pc.fill_null(batch.column("lang"), "")
    return batch.filter(pc.and_(pc.not_equal(lang, ""), pc.not_equal(lang, ENGLISH)))


def conform(batch: pa.Table) -> pa.Table:
    """The builder columns as strings; a column an older run folder lacks comes as nulls."""
    columns = [
        batch.column(n).cast(pa.string()) if n in batch.column_names else pa.nulls(batch.num_rows, pa.string())
        for n in ROW_COLUMNS
    ]
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA)


# The seed pass's output: examples, plus one marker row per seed whose text columns hold the seed's
# English original (what the language pass needs for 'en'), so one shuffle serves both.
# Ranks ride along as columns: `rank_group`/`rank` (the validation split's for markers, CrossIn's
# for its candidates) and `seed_rank` (the seed's, which sets every example's split).
TEXT_COLUMNS = ("instruction", "input", "output")
RANK_COLUMNS = [pa.field("rank_group", pa.string()), pa.field("rank", pa.uint64()), pa.field("seed_rank", pa.uint64())]
SEED_SCHEMA = pa.schema([*BUILT_SCHEMA, *(pa.field(n, pa.string()) for n in TEXT_COLUMNS), *RANK_COLUMNS])
MIX_RANK = pa.field("mix_rank", pa.uint64())  # the mix's rank of a training example (0 for validation)


class Validation:
    """seed_id -> held out? (the split's cut over seed ranks), picklable for Ray tasks."""

    def __init__(self, seed: int, cut: Cut):
        self.seed, self.cut = seed, cut

    def __call__(self, seed_id: str) -> bool:
        return self.cut.keeps(seed_rank(self.seed, seed_id), seed_id)


def never(seed_id: str) -> bool:
    return False


class SeedGroup:
    """The per-seed examples of one seed (split set later, once the validation cut is known)."""

    def __init__(self, build):
        self.build = build

    def __call__(self, rows: list[dict]) -> list[dict]:
        examples = seed_examples(rows, self.build, never)
        original = english_of_seed(rows)
        seed, seed_id = self.build.seed, rows[0]["seed_id"]
        own_rank = seed_rank(seed, seed_id)
        ranks = {seed_id: own_rank}
        for example in examples:
            s = example["seed_id"]
            example["seed_rank"] = ranks[s] if s in ranks else ranks.setdefault(s, seed_rank(seed, s))
            if example["dataset"] == CROSSIN:
                example["rank_group"], example["rank"] = (
                    example.get("mode") or "",
                    crossin_rank(seed, example.get("mode"), example["id"]),
                )
            else:
                example["rank_group"], example["rank"] = "", 0
        marker = (
            {"dataset": ENGLISH_MARK, **{k: original[k] for k in ("id", "seed_id", "lang", "source", *TEXT_COLUMNS)}}
            if original
            else {"dataset": SEED_MARK, "id": seed_id, "seed_id": seed_id}
        )
        marker.update(rank_group="~seeds", rank=own_rank, seed_rank=own_rank)
        return [*examples, marker]


class MixRanked:
    """Adds the mix's rank of each training example (hashed once here; the mix's passes read it)."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, batch: pa.Table) -> pa.Table:
        columns = (batch.column(c).to_pylist() for c in ("dataset", "lang", "id", "split"))
        ranks = np.fromiter(
            (mix_rank(self.seed, d, lang, i) if s == "train" else 0 for d, lang, i, s in zip(*columns)),
            dtype=np.uint64,
            count=batch.num_rows,
        )
        return batch.append_column(MIX_RANK, pa.array(ranks, pa.uint64()))


def english_originals(batch: pa.Table) -> pa.Table:
    """The seed pass's English markers as rows (lang 'en', no model) for the language pass."""
    part = batch.filter(pc.equal(batch.column("dataset"), ENGLISH_MARK))
    return pa.Table.from_arrays(
        [part.column(n) if n in part.column_names else pa.nulls(part.num_rows, pa.string()) for n in ROW_COLUMNS],
        schema=ROW_SCHEMA,
    )


class LanguageGroup:
    """sPhinX N-shot over one language's rows; the knn embedder loads once per reducer, never in the driver."""

    def __init__(self, build, validation: Validation):
        self.build, self.validation = build, validation
        s = build.sphinx
        self.embed = None
        if s.retrieval == "knn" and s.shots > 0:
            from actors.engines.embed import load_embedder

            self.embed = load_embedder(s.embedder)

    def __call__(self, rows: list[dict]) -> list[dict]:
        return language_examples(rows[0]["lang"], rows, self.build, self.validation, self.embed)


# --- the build ----------------------------------------------------------------------------------


def shuffle_partitions(rows: int) -> int:
    return max(2, min(64, rows // ROWS_PER_SHUFFLE_PARTITION + 1))


def build_on_ray(run_dir: RunFolder, config: Config, out: RunFolder, partitions: int | None = None) -> dict:
    """Build every dataset of `config.build` from the run's accepted rows into `out` (the workers
    write the part files, the driver the card and build.json); returns the summary.
    `partitions` sets how many blocks the rows are read into and how many reducers each group step
    has (the built examples do not depend on it)."""
    import ray

    read_kwargs = {"override_num_blocks": partitions} if partitions else {}
    return build_rows(
        ray.data.read_parquet(run_dir.path("accepted.parquet"), filesystem=run_dir.fs, **read_kwargs),
        config,
        out,
        partitions,
    )


def build_rows(rows, config: Config, out: RunFolder, partitions: int | None = None) -> dict:
    """build_on_ray from `rows`, a Ray dataset of the run's accepted rows (engine.records.SCHEMA
    columns, or the builders' ROW_COLUMNS at least)."""
    build, started, seed = config.build, time.monotonic(), config.build.seed
    stage = StageClock()
    rows = rows.map_batches(lambda b: conform(translated_only(b)), batch_format="pyarrow")
    rows = (rows.repartition(partitions) if partitions else rows).materialize()
    accepted_rows = rows.count()
    shuffle = partitions or shuffle_partitions(accepted_rows)
    provenance = provenance_counts(rows)
    stage("read %d accepted rows", accepted_rows)

    # One shuffle by seed: per-seed examples and a marker per seed.
    per_seed = map_groups(rows, "seed_id", SeedGroup, (build,), SEED_SCHEMA, shuffle)
    stage("per-seed examples (group by seed)")

    # The split's cut (over the markers' seed ranks) and CrossIn's per mode, from one count.
    modes = build.crossin.modes if CROSSIN in build.builders else {}

    def is_marker(batch: pa.Table):
        return pc.is_in(batch.column("dataset"), value_set=pa.array([SEED_MARK, ENGLISH_MARK]))

    def rank_of(batch: pa.Table):
        keys = pc.if_else(is_marker(batch), batch.column("seed_id"), batch.column("id"))
        return batch.column("rank_group").combine_chunks(), batch.column("rank").to_numpy(), keys.combine_chunks()

    def quotas_of(sizes: dict[str, int]) -> dict[str, int]:
        available = {m: sizes.get(m, 0) for m, share in modes.items() if share > 0}
        return {
            "~seeds": validation_count(sizes.get("~seeds", 0), build.validation_share),
            **crossin_quotas(available, modes, build.crossin.size),
        }

    cuts, sizes = find_cuts(per_seed, rank_of, quotas_of)
    stage("validation and CrossIn cuts")
    n_seeds = sizes.get("~seeds", 0)
    held_out = validation_count(n_seeds, build.validation_share)
    validation = Validation(seed, cuts.get("~seeds", KEEP_NONE))

    def finish_seed_examples(batch: pa.Table) -> pa.Table:
        # CrossIn's candidates under their mode's cut (every other example has group "": kept).
        groups, ranks, keys = rank_of(batch)
        mask = cut_mask(cuts, groups, ranks, keys) & ~is_marker(batch).to_numpy(zero_copy_only=False)
        kept = batch.filter(pa.array(mask))
        held = keeps_each(
            [validation.cut],
            np.zeros(kept.num_rows, np.int64),
            kept.column("seed_rank").to_numpy(),
            kept.column("seed_id"),
        )
        kept = kept.select(BUILT_SCHEMA.names)
        split = pc.if_else(pa.array(held), "validation", "train")
        return kept.set_column(kept.schema.get_field_index("split"), "split", split)

    parts = [per_seed.map_batches(finish_seed_examples, batch_format="pyarrow")]
    if SPHINX in build.builders:
        by_lang = (
            rows.union(per_seed.map_batches(english_originals, batch_format="pyarrow"))
            if wants_english_rows(build)
            else rows
        )
        parts.append(map_groups(by_lang, "lang", LanguageGroup, (build, validation), BUILT_SCHEMA, shuffle))
    if build.mix.enabled:
        parts = [part.map_batches(MixRanked(seed), batch_format="pyarrow") for part in parts]
    examples = parts[0].union(*parts[1:]).materialize() if len(parts) > 1 else parts[0].materialize()
    del per_seed
    stage("examples%s", " with sPhinX N-shot (group by language)" if SPHINX in build.builders else "")

    tally = write_examples(examples, out, build.formats)
    stage("%d examples written", sum(tally.values()))
    if build.mix.enabled:
        mixed = write_examples(mix_rows(examples, tally, built_datasets(build), build.mix), out, build.formats)
        tally.update(mixed)
        stage("mix: %d examples written", sum(mixed.values()))
    summary = summary_of(config, tally, accepted_rows, n_seeds, held_out, provenance)
    log.info(
        "built %d examples from %d rows over %d seeds in %.1fs",
        sum(tally.values()),
        accepted_rows,
        n_seeds,
        time.monotonic() - started,
    )
    return summary


def summary_of(
    config: Config, tally: Counter, accepted_rows: int, n_seeds: int, held_out: int, provenance: dict
) -> dict:
    """build.json's content: the datasets' counts from write_examples' tally (per dataset, split,
    language, builder, mode, drawn again?) and the rows' own counts."""
    names = built_datasets(config.build) + ([MIX] if config.build.mix.enabled else [])
    repeated, counts = Counter(), Counter()
    for (dataset, split, lang, builder, mode, copy), n in tally.items():
        counts[(dataset, split, lang, builder, mode)] += n
        if split == "train" and copy:
            repeated[dataset] += n
    return make_summary(
        dataset_entries(dict(counts), names, dict(repeated)),
        accepted_rows,
        {"train": n_seeds - held_out, "validation": held_out},
        provenance,
        redacted(config)["build"],
        rows_license(provenance["models"], config.model.license, config.mt.backend, config.mt.license),
    )


def built_datasets(build) -> list[str]:
    """The datasets the builders of `build` make, in the config's order (the mix not included)."""
    return [name for builder in build.builders for name in BUILDER_DATASETS[builder]]


def empty_summary(config: Config) -> dict:
    """The summary of a build from no accepted rows (every configured dataset, empty), without Ray."""
    return summary_of(config, Counter(), 0, 0, 0, {kind: {} for kind in PROVENANCE_KINDS})


class StageClock:
    """Logs each stage of the build as it ends, with its time: a long build says where it is. The
    record carries `stage` and `stage_s` too (benchmarks.build_scale collects them)."""

    def __init__(self):
        self.last = time.monotonic()

    def __call__(self, what: str, *args) -> None:
        now = time.monotonic()
        log.info(
            "build: " + what + " (%.1fs)",
            *args,
            now - self.last,
            extra={"stage": what % args, "stage_s": round(now - self.last, 1)},
        )
        self.last = now


def mix_rows(examples, tally: Counter, names: list[str], mix: MixConfig):
    """The mix: training rows drawn per dataset × language by quota (repeats by rank order), and
    every validation row of the mixed datasets once."""
    mixed = [n for n in names if not mix.ratios or mix.ratios.get(n, 0) > 0]
    available: dict[str, dict[str, int]] = {n: {} for n in names}
    for (dataset, split, lang, *_), n in tally.items():
        if split == "train" and dataset in available:
            available[dataset][lang] = available[dataset].get(lang, 0) + n
    quotas = mix_quotas({n: available[n] for n in mixed}, mix.ratios, mix.size, mix.anchor_share, mix.temperature)
    plan = {f"{d}\x1f{lang}": copies(q, available[d].get(lang, 0)) for (d, lang), q in quotas.items()}
    sizes = {f"{d}\x1f{lang}": available[d].get(lang, 0) for (d, lang) in quotas}
    planned, mixed_set = pa.array(list(plan), pa.string()), pa.array(mixed, pa.string())

    def rank_of(batch: pa.Table):
        joined = pc.fill_null(pc.binary_join_element_wise(batch.column("dataset"), batch.column("lang"), "\x1f"), "")
        drawn = pc.and_(pc.equal(batch.column("split"), "train"), pc.is_in(joined, value_set=planned))
        groups = pc.if_else(pc.fill_null(drawn, False), joined, "")
        return groups.combine_chunks(), batch.column(MIX_RANK.name).to_numpy(), batch.column("id").combine_chunks()

    needs = {g: extra for g, (_, extra) in plan.items() if 0 < extra < sizes[g]}
    # Buckets per group ~ sqrt(size): the driver sees about as many counts as straddling candidates.
    cuts, _ = (
        find_cuts(examples, rank_of, lambda _sizes: needs, {g: max(1, math.isqrt(sizes[g])) for g in needs})
        if needs
        else ({}, {})
    )

    def draw(batch: pa.Table) -> pa.Table:
        # Each training row `whole` times, once more if its group draws extras and its rank is
        # under the group's cut; each validation row of a mixed dataset once.
        groups, ranks, ids = rank_of(batch)
        values, which = grouped(groups)
        whole = per_group(values, which, lambda g: plan[g][0] if g else 0, np.int64)
        extra = per_group(values, which, lambda g: bool(g) and plan[g][1] > 0, bool) & cut_mask(
            cuts, groups, ranks, ids
        )
        validation = pc.and_(
            pc.equal(batch.column("split"), "validation"), pc.is_in(batch.column("dataset"), value_set=mixed_set)
        )
        n = np.where(
            per_group(values, which, bool, bool),
            whole + extra,
            pc.fill_null(validation, False).to_numpy(zero_copy_only=False),
        )
        take = np.repeat(np.arange(batch.num_rows, dtype=np.int64), n)
        copy = np.arange(len(take), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        picked = batch.take(pa.array(take, pa.int64()))
        picked = picked.set_column(
            picked.schema.get_field_index("dataset"), "dataset", pa.array([MIX] * len(take), pa.string())
        )
        return picked.set_column(
            picked.schema.get_field_index("copy"), "copy", pa.array(copy.astype(np.int32), pa.int32())
        )

    return examples.map_batches(draw, batch_format="pyarrow")


PROVENANCE_KINDS = ("models", "prompt_versions", "sources")


def provenance_counts(rows) -> dict:
    def keys(batch: pa.Table) -> pa.Table:
        kinds, values = [], []
        for kind, column in (("models", "model"), ("prompt_versions", "prompt_version")):
            kinds += [kind] * batch.num_rows
            values += [v or "(none)" for v in batch.column(column).to_pylist()]
        kinds += ["sources"] * batch.num_rows
        values += [source_file(v) for v in batch.column("source").to_pylist()]
        return pa.table({"kind": pa.array(kinds, pa.string()), "key": pa.array(values, pa.string())})

    found: dict[str, Counter] = {kind: Counter() for kind in PROVENANCE_KINDS}
    for (kind, key), n in summed(rows, keys, ["kind", "key"]).items():
        found[kind][key] += n
    return {kind: dict(sorted(c.items())) for kind, c in found.items()}


TALLY_KEYS = ["dataset", "split", "lang", "builder", "mode", "copy"]


def write_examples(examples, out: RunFolder, formats) -> Counter:
    """Each batch writes one part file per (dataset, split) it holds, at most ROWS_PER_FILE rows;
    returns the counts per (dataset, split, lang, builder, mode, drawn again?)."""
    root, fs = out.root, out.fs

    def write(batch: pa.Table) -> pa.Table:
        folder = RunFolder(root, fs)
        keys = pc.binary_join_element_wise(batch.column("dataset"), batch.column("split"), "\x1f")
        for key in sorted(set(keys.to_pylist())):
            dataset, split = key.split("\x1f")
            part = batch.filter(pc.equal(keys, key))
            # Within a part, rows sorted by id: a file's content depends on its rows alone.
            part = part.take(pc.sort_indices(part, [("id", "ascending"), ("copy", "ascending")]))
            write_part(part, folder, dataset, split, formats, uuid.uuid4().hex[:16])
        counted = batch.select(TALLY_KEYS[:-1]).append_column("copy", pc.greater(batch.column("copy"), 0))
        return counted.group_by(TALLY_KEYS, use_threads=False).aggregate([([], "count_all")])  # see summed

    return added_up(examples.map_batches(write, batch_format="pyarrow", batch_size=ROWS_PER_FILE), TALLY_KEYS)
