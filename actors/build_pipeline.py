"""The distributed build: engine/builders' group functions run on Ray Data, files written by the workers.

    summary = build_on_ray(run_dir, config, staging_folder)      # jobs.build wraps it in swap_in

    accepted.parquet ──read_parquet──▶ rows (translated languages only)
      ├─ groupby(seed_id).count()             ──▶ seed ranks ──▶ the validation cut (counts, two passes)
      ├─ groupby(seed_id).map_groups(seed)    ──▶ CrossIn candidates, QAlign, TransLLM, X-Instruction
      │                                           CrossIn kept under each mode's cut (counts per mode)
      ├─ groupby(seed_id) English originals ┐
      └─ rows ─────────────────────────────┴▶ groupby(lang).map_groups(language) ──▶ sPhinX N-shot
    examples ──▶ mix: quotas from counts per dataset × language, rows kept/repeated under rank cuts
             ──▶ map_batches(write parts) into <out>/<dataset>/<split>.{parquet,jsonl}/part-*.*
    counts (aggregations) ──▶ build.json, README.md (written by the driver)

The driver holds the config, counts (per dataset × split × language × mode, per rank bucket) and
the few candidates that straddle a cut; never rows. Which examples are built depends on the rows
and the config only: every "the first N" is a hash-rank cut (engine/builders/ranks.py), found by
counting ranks per bucket (pass one) and sorting the one bucket the cut falls in (pass two).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.builders import MIX
from engine.builders.crossin import BUILDER as CROSSIN
from engine.builders.crossin import crossin_quotas
from engine.builders.groups import BUILT_SCHEMA, english_of_seed, language_examples, seed_examples, wants_english_rows
from engine.builders.mixing import mix_quotas
from engine.builders.output import ROWS_PER_FILE, write_part
from engine.builders.pool import ENGLISH, ROW_COLUMNS
from engine.builders.ranks import KEEP_ALL, KEEP_NONE, Cut, copies, crossin_rank, mix_rank, seed_rank, validation_count
from engine.builders.sphinx import BUILDER as SPHINX
from engine.builders.summary import dataset_entries, make_summary, source_file
from engine.config import BUILDER_DATASETS, Config, redacted
from engine.runfolder import RunFolder

log = logging.getLogger("babelforge.build")

BUCKET_BITS = 10  # ranks counted in 1,024 buckets: the cut's bucket holds about 1/1,024 of a group
ROW_SCHEMA = pa.schema([pa.field(name, pa.string()) for name in ROW_COLUMNS])
RankOf = Callable[[pa.Table], tuple[list[str], np.ndarray, list[str]]]
"""batch -> (group of each row, rank of each row as uint64, key of each row)."""


# --- cuts from counts ---------------------------------------------------------------------------


def _ranks(values) -> np.ndarray:
    return np.fromiter(values, dtype=np.uint64)


def find_cuts(ds, rank_of: RankOf, quotas: dict[str, int]) -> dict[str, Cut]:
    """For each group, the cut keeping its `quota` lowest (rank, key): pass one counts ranks per
    (group, bucket), pass two brings back only the rows of the bucket each cut falls in."""
    if not quotas:
        return {}
    wanted = set(quotas)
    shift = np.uint64(64 - BUCKET_BITS)

    def buckets(batch: pa.Table) -> pa.Table:
        groups, ranks, _ = rank_of(batch)
        keep = np.array([g in wanted for g in groups], dtype=bool)
        return pa.table({"group": pa.array(groups, pa.string()).filter(keep), "bucket": pa.array((ranks >> shift).astype(np.int64)[keep])})

    counts: dict[str, dict[int, int]] = {}
    for row in ds.map_batches(buckets, batch_format="pyarrow").groupby(["group", "bucket"]).count().take_all():
        counts.setdefault(row["group"], {})[int(row["bucket"])] = int(row["count()"])
    boundary: dict[str, tuple[int, int]] = {}  # group -> (bucket the cut falls in, rows needed from it)
    cuts: dict[str, Cut] = {}
    for group, quota in quotas.items():
        seen = 0
        for bucket in sorted(counts.get(group, {})):
            if seen + counts[group][bucket] >= quota:
                boundary[group] = (bucket, quota - seen)
                break
            seen += counts[group][bucket]
        if quota <= 0:
            cuts[group] = KEEP_NONE
        elif group not in boundary:
            cuts[group] = KEEP_ALL
    pending = {group: b for group, b in boundary.items() if group not in cuts}
    if not pending:
        return cuts
    targets = {(group, bucket) for group, (bucket, _) in pending.items()}

    def straddling(batch: pa.Table) -> pa.Table:
        groups, ranks, keys = rank_of(batch)
        picked = [i for i, (g, b) in enumerate(zip(groups, (ranks >> shift).tolist())) if (g, b) in targets]
        return pa.table({"group": pa.array([groups[i] for i in picked], pa.string()), "rank": pa.array(ranks[picked], pa.uint64()),
                         "key": pa.array([keys[i] for i in picked], pa.string())})

    near: dict[str, list[tuple[int, str]]] = {}
    for row in ds.map_batches(straddling, batch_format="pyarrow").take_all():
        near.setdefault(row["group"], []).append((int(row["rank"]), row["key"]))
    for group, (_, needed) in pending.items():
        cuts[group] = Cut(*sorted(near[group])[needed - 1])
    return cuts


def keeps(cut: Cut, ranks: np.ndarray, keys: list[str]) -> np.ndarray:
    return np.array([cut.keeps(int(r), k) for r, k in zip(ranks, keys)], dtype=bool)


# --- the group steps ----------------------------------------------------------------------------


def translated_only(batch: pa.Table) -> pa.Table:
    lang = pc.fill_null(batch.column("lang"), "")
    return batch.filter(pc.and_(pc.not_equal(lang, ""), pc.not_equal(lang, ENGLISH)))


def conform(batch: pa.Table) -> pa.Table:
    """The builder columns as strings; a column an older run folder lacks comes as nulls."""
    columns = [batch.column(n).cast(pa.string()) if n in batch.column_names else pa.nulls(batch.num_rows, pa.string()) for n in ROW_COLUMNS]
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA)


def built_table(examples: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(examples, schema=BUILT_SCHEMA) if examples else BUILT_SCHEMA.empty_table()


class Validation:
    """seed_id -> held out? (the split's cut over seed ranks), picklable for Ray tasks."""

    def __init__(self, seed: int, cut: Cut):
        self.seed, self.cut = seed, cut

    def __call__(self, seed_id: str) -> bool:
        return self.cut.keeps(seed_rank(self.seed, seed_id), seed_id)


class LanguageGroup:
    """sPhinX N-shot over one language's rows; the knn embedder loads once per actor, never in the driver."""

    def __init__(self, config, validation: Validation):
        self.config, self.validation = config, validation
        s = config.sphinx
        self.embed = None
        if s.retrieval == "knn" and s.shots > 0:
            from actors.embed import load_embedder

            self.embed = load_embedder(s.embedder)

    def __call__(self, group: pa.Table) -> pa.Table:
        rows = group.to_pylist()
        return built_table(language_examples(rows[0]["lang"], rows, self.config, self.validation, self.embed))


def with_english_original(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.not_equal(pc.utf8_trim_whitespace(pc.fill_null(batch.column("src_instruction"), "")), ""))


def english_rows(group: pa.Table) -> pa.Table:
    original = english_of_seed(group.to_pylist())
    return pa.Table.from_pylist([original] if original else [], schema=ROW_SCHEMA)


# --- the build ----------------------------------------------------------------------------------


def _counts(ds, columns: list[str]) -> list[dict]:
    return ds.groupby(columns).count().take_all()


def build_on_ray(run_dir: RunFolder, config: Config, out: RunFolder, partitions: int | None = None) -> dict:
    """Build every dataset of `config.build` from the run's accepted rows into `out` (the workers
    write the part files, the driver the card and build.json); returns the summary.
    `partitions` sets how many blocks the rows are read into (the built examples do not depend on it)."""
    import ray

    build, started = config.build, time.monotonic()
    read_kwargs = {"override_num_blocks": partitions} if partitions else {}
    rows = ray.data.read_parquet(run_dir.path("accepted.parquet"), filesystem=run_dir.fs, **read_kwargs)
    rows = rows.map_batches(lambda b: conform(translated_only(b)), batch_format="pyarrow").materialize()
    if partitions:
        rows = rows.repartition(partitions).materialize()
    accepted_rows = rows.count()

    # The split: a cut over seed ranks, from the number of seeds.
    seeds = rows.groupby("seed_id").count().materialize()
    n_seeds = seeds.count() if accepted_rows else 0
    held_out = validation_count(n_seeds, build.validation_share)
    seed_cut = find_cuts(seeds, lambda b: (["seeds"] * b.num_rows, _ranks(seed_rank(build.seed, s) for s in b.column("seed_id").to_pylist()),
                                          b.column("seed_id").to_pylist()), {"seeds": held_out}).get("seeds", KEEP_NONE)
    validation = Validation(build.seed, seed_cut)

    parts = []
    if accepted_rows and any(name != SPHINX for name in build.builders):
        per_seed = rows.groupby("seed_id").map_groups(
            lambda g: built_table(seed_examples(g.to_pylist(), build, validation)), batch_format="pyarrow").materialize()
        if CROSSIN in build.builders:
            per_seed = keep_crossin_quotas(per_seed, build)
        parts.append(per_seed)
    if accepted_rows and SPHINX in build.builders:
        by_lang = rows
        if wants_english_rows(build):
            originals = rows.map_batches(with_english_original, batch_format="pyarrow") \
                .groupby("seed_id").map_groups(english_rows, batch_format="pyarrow")
            by_lang = rows.union(originals)
        workers = max(1, int(ray.available_resources().get("CPU", 1)))
        parts.append(by_lang.groupby("lang").map_groups(LanguageGroup, fn_constructor_args=(build, validation),
                                                        batch_format="pyarrow", concurrency=(1, workers)).materialize())
    examples = (parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]).materialize() if parts else None

    names = [name for builder in build.builders for name in BUILDER_DATASETS[builder]]
    tally = tally_of(examples)
    if build.mix.enabled:
        names.append(MIX)
        if examples is not None:
            mixed = mix_rows(examples, tally, names[:-1], build)
            tally = {**tally, **tally_of(mixed)}
            examples = examples.union(mixed)
    written = write_examples(examples, out, build.formats) if examples is not None else 0
    repeated = repeats_of(examples) if examples is not None else {}
    provenance = provenance_counts(rows) if accepted_rows else {"models": {}, "prompt_versions": {}, "sources": {}}
    summary = make_summary(dataset_entries(tally, names, repeated), accepted_rows,
                           {"train": n_seeds - held_out, "validation": held_out}, provenance,
                           redacted(config)["build"], config.model.license)
    log.info("built %d examples from %d rows over %d seeds in %.1fs", written, accepted_rows, n_seeds, time.monotonic() - started)
    return summary


def keep_crossin_quotas(per_seed, build):
    """CrossIn's candidates kept under each mode's cut; the other datasets pass through."""
    modes = build.crossin.modes
    only = per_seed.map_batches(lambda b: b.filter(pc.equal(b.column("dataset"), CROSSIN)), batch_format="pyarrow")
    available = {row["mode"]: int(row["count()"]) for row in _counts(only, ["mode"])}
    quotas = crossin_quotas(available, modes, build.crossin.size)
    seed = build.seed

    def rank_of(batch: pa.Table):
        crossin = pc.equal(batch.column("dataset"), CROSSIN).to_pylist()
        modes_, ids = batch.column("mode").to_pylist(), batch.column("id").to_pylist()
        groups = [m if c else "" for m, c in zip(modes_, crossin)]
        return groups, _ranks(crossin_rank(seed, m, i) if c else 0 for m, i, c in zip(modes_, ids, crossin)), ids

    cuts = find_cuts(per_seed, rank_of, {mode: q for mode, q in quotas.items() if q < available.get(mode, 0)})

    def keep(batch: pa.Table) -> pa.Table:
        groups, ranks, ids = rank_of(batch)
        mask = [not g or cuts.get(g, KEEP_ALL).keeps(int(r), i) for g, r, i in zip(groups, ranks, ids)]
        return batch.filter(pa.array(mask, pa.bool_()))

    return per_seed.map_batches(keep, batch_format="pyarrow").materialize()


def mix_rows(examples, tally: dict, names: list[str], build):
    """The mix: training rows drawn per dataset × language by quota (repeats by rank order), and
    every validation row of the mixed datasets once."""
    mix = build.mix
    mixed = [n for n in names if not mix.ratios or mix.ratios.get(n, 0) > 0]
    available: dict[str, dict[str, int]] = {n: {} for n in names}
    for (dataset, split, lang, _, _), n in tally.items():
        if split == "train":
            available[dataset][lang] = available[dataset].get(lang, 0) + n
    quotas = mix_quotas({n: available[n] for n in mixed}, mix.ratios, mix.size, mix.anchor_share, mix.temperature)
    plan = {f"{d}\x1f{lang}": copies(q, available[d].get(lang, 0)) for (d, lang), q in quotas.items()}
    seed, mixed_set = build.seed, set(mixed)

    def rank_of(batch: pa.Table):
        datasets, langs, ids = (batch.column(c).to_pylist() for c in ("dataset", "lang", "id"))
        splits = batch.column("split").to_pylist()
        groups = [f"{d}\x1f{lang}" if s == "train" and d in mixed_set else "" for d, lang, s in zip(datasets, langs, splits)]
        return groups, _ranks(mix_rank(seed, d, lang, i) if g else 0 for d, lang, i, g in zip(datasets, langs, ids, groups)), ids

    sizes = {f"{d}\x1f{lang}": available[d].get(lang, 0) for (d, lang) in quotas}
    cuts = find_cuts(examples, rank_of, {g: extra for g, (_, extra) in plan.items() if 0 < extra < sizes[g]})

    def draw(batch: pa.Table) -> pa.Table:
        groups, ranks, ids = rank_of(batch)
        splits, datasets = batch.column("split").to_pylist(), batch.column("dataset").to_pylist()
        take, copy = [], []
        for i, (g, r, k) in enumerate(zip(groups, ranks, ids)):
            if g:
                whole, extra = plan.get(g, (0, 0))
                n = whole + (1 if extra and cuts.get(g, KEEP_ALL).keeps(int(r), k) else 0)
            else:
                n = 1 if splits[i] == "validation" and datasets[i] in mixed_set else 0
            take += [i] * n
            copy += list(range(n))
        picked = batch.take(pa.array(take, pa.int64()))
        picked = picked.set_column(picked.schema.get_field_index("dataset"), "dataset", pa.array([MIX] * len(take), pa.string()))
        return picked.set_column(picked.schema.get_field_index("copy"), "copy", pa.array(copy, pa.int32()))

    return examples.map_batches(draw, batch_format="pyarrow").materialize()


def tally_of(examples) -> dict:
    if examples is None:
        return {}
    return {(r["dataset"], r["split"], r["lang"], r["builder"] or "(none)", r["mode"] or "(none)"): int(r["count()"])
            for r in _counts(examples, ["dataset", "split", "lang", "builder", "mode"])}


def repeats_of(examples) -> dict[str, int]:
    drawn_again = examples.map_batches(
        lambda b: b.filter(pc.and_(pc.greater(b.column("copy"), 0), pc.equal(b.column("split"), "train"))), batch_format="pyarrow")
    return {r["dataset"]: int(r["count()"]) for r in _counts(drawn_again, ["dataset"])}


def provenance_counts(rows) -> dict:
    def keys(batch: pa.Table) -> pa.Table:
        kinds, values = [], []
        for kind, column in (("models", "model"), ("prompt_versions", "prompt_version")):
            kinds += [kind] * batch.num_rows
            values += [v or "(none)" for v in batch.column(column).to_pylist()]
        kinds += ["sources"] * batch.num_rows
        values += [source_file(v) for v in batch.column("source").to_pylist()]
        return pa.table({"kind": pa.array(kinds, pa.string()), "key": pa.array(values, pa.string())})

    found: dict[str, Counter] = {"models": Counter(), "prompt_versions": Counter(), "sources": Counter()}
    for r in _counts(rows.map_batches(keys, batch_format="pyarrow"), ["kind", "key"]):
        found[r["kind"]][r["key"]] += int(r["count()"])
    return {kind: dict(sorted(c.items())) for kind, c in found.items()}


def write_examples(examples, out: RunFolder, formats) -> int:
    """Each batch writes one part file per (dataset, split) it holds, at most ROWS_PER_FILE rows."""
    root, fs = out.root, out.fs

    def write(batch: pa.Table) -> pa.Table:
        folder = RunFolder(root, fs)
        written = []
        keys = pc.binary_join_element_wise(batch.column("dataset"), batch.column("split"), "\x1f")
        for key in sorted(set(keys.to_pylist())):
            dataset, split = key.split("\x1f")
            part = batch.filter(pc.equal(keys, key))
            # Within a part, rows sorted by id: the files' content depends on the rows alone.
            part = part.take(pc.sort_indices(part, [("id", "ascending"), ("copy", "ascending")]))
            write_part(part, folder, dataset, split, formats, uuid.uuid4().hex[:16])
            written.append(part.num_rows)
        return pa.table({"rows": pa.array(written, pa.int64())})

    result = examples.map_batches(write, batch_format="pyarrow", batch_size=ROWS_PER_FILE)
    return int(sum(r["rows"] for r in result.take_all()))

