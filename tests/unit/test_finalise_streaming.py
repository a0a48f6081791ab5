"""The streaming finalise (engine/run_outputs.py via actors.dataflow.synthesis.finalise) on fabricated run
folders: the outputs by language, the report equal to the one-table report, results that do not
depend on how the rows were sharded, the plan check, jobs.report on new and old layouts, and a
driver whose memory does not grow with the run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from actors.dataflow.synthesis import finalise
from engine.config import load_config, redacted
from engine.records import ACCEPTED, REJECTED, row_id, to_table
from engine.runfolder import RowStore
from jobs.report import main as report_main
from tests.unit.test_store_report import build_report

ROOT = Path(__file__).resolve().parents[2]
LANGS = ("fr", "es", "ja", "sw")
WORDS = ("alpha", "beta", "gamma", "delta", "épsilon", "zeta", "`ls -la`", "eta", "theta", "iota")


def fabricated_rows(n: int, seed: int = 0, words: int = 6, langs: tuple[str, ...] = LANGS) -> list[dict]:
    """Rows over LANGS (every 31st an unreadable input record with no language), some judged,
    every 11th accepted row repeating an output of its language (an exact duplicate)."""
    rng = random.Random(seed)

    def text(count: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(count))

    rows = []
    for i in range(n):
        lang = None if i % 31 == 30 else langs[i % len(langs)]
        status = ACCEPTED if lang and rng.random() < 0.6 else REJECTED
        rows.append(
            {
                "id": row_id(f"s{i // len(langs)}", lang or "", "sphinx", "translate.v1"),
                "seed_id": f"s{i // len(langs)}",
                "recipe": "sphinx",
                "lang": lang,
                "status": status,
                "reason": None
                if status == ACCEPTED
                else rng.choice(["length_ratio:4.1", "span_missing", "bad_record:seeds.jsonl:3"]),
                "src_instruction": text(words),
                "src_input": text(words),
                "src_output": text(4 * words),
                "instruction": "the same question" if i % 11 == 0 else text(words),
                "input": "" if i % 11 == 0 else text(words),
                "output": text(4 * words),
                "lid_confidence": rng.random(),
                "lid_method": "fasttext",
                "adequacy": rng.random(),
                "attempts": rng.randint(1, 3),
                "rounds": rng.randint(0, 2),
                "cluster": rng.randint(0, 5),
                "scores": [{"round": 0, "criterion": "fidelity", "score": float(rng.randint(0, 2))}] if i % 3 else [],
                "prompt_tokens": rng.randint(50, 300),
                "completion_tokens": rng.randint(50, 300),
                "tokens_draft": 40,
                "model": "m",
                "prompt_version": "translate.v1",
                "source": f"seeds.jsonl:{i}",
            }
        )
    return rows


def write_run(
    run_dir: Path, rows: list[dict], shard_rows: int, shuffle: int | None = None
) -> tuple[RowStore, list[str]]:
    store = RowStore(run_dir)
    ordered = list(rows)
    if shuffle is not None:
        random.Random(shuffle).shuffle(ordered)
    for start in range(0, len(ordered), shard_rows):
        store.write(to_table(ordered[start : start + shard_rows]))
    return store, [row["id"] for row in rows]


def config_for(run_dir: Path):
    return load_config(ROOT / "configs/demo.yaml", [f"run.output_dir={run_dir}", "dedup.exact=true"])


def run_finalise(run_dir: Path, rows: list[dict], shard_rows: int = 50, shuffle: int | None = None) -> dict:
    store, planned = write_run(run_dir, rows, shard_rows, shuffle)
    return finalise(run_dir, config_for(run_dir), planned, 0, 2.0)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("final") / "run"
    rows = fabricated_rows(400)
    return run_dir, rows, run_finalise(run_dir, rows)


def test_rows_are_written_by_language_and_add_up_to_the_plan(finished):
    run_dir, rows, report = finished
    assert sorted(p.name for p in (run_dir / "accepted.parquet").iterdir()) == sorted(LANGS)
    assert sorted(p.name for p in (run_dir / "rejected.parquet").iterdir()) == sorted((*LANGS, "no-language"))
    for lang in LANGS:
        part = pq.read_table(run_dir / f"accepted.parquet/{lang}/part-00000.parquet")
        assert set(part.column("lang").to_pylist()) == {lang} and set(part.column("status").to_pylist()) == {ACCEPTED}
    accepted, rejected = pq.read_table(run_dir / "accepted.parquet"), pq.read_table(run_dir / "rejected.parquet")
    assert accepted.num_rows == report["accepted"] and rejected.num_rows == report["rejected"]
    assert report["planned"] == len(rows) == accepted.num_rows + rejected.num_rows and report["adds_up"]
    ids = accepted.column("id").to_pylist() + rejected.column("id").to_pylist()
    assert sorted(ids) == sorted(row["id"] for row in rows)
    jsonl = read_jsonl(run_dir / "accepted.jsonl"), read_jsonl(run_dir / "rejected.jsonl")
    assert [len(part) for part in jsonl] == [accepted.num_rows, rejected.num_rows]
    in_jsonl = accepted.drop_columns(["output_embedding"])  # the vector stays in the Parquet dataset only
    assert jsonl[0] == in_jsonl.to_pylist(), "the JSONL and the dataset hold the same rows in the same order"
    assert not (run_dir / ".by-language").exists(), "the staging folder is removed"


def test_the_report_equals_the_one_table_report_of_the_written_rows(finished):
    run_dir, rows, report = finished
    table = pa.concat_tables([pq.read_table(run_dir / "accepted.parquet"), pq.read_table(run_dir / "rejected.parquet")])
    # the run's config: the gate section reads its thresholds
    whole = build_report(table, len(rows), 0, 2.0, redacted(config_for(run_dir)))
    assert report == whole
    assert (run_dir / "report.json").read_text() == json.dumps(whole, indent=2, ensure_ascii=False), (
        "the same keys, numbers and order"
    )


def test_exact_duplicates_are_rejected_per_language_first_by_seed_wins(finished):
    run_dir, rows, report = finished
    rejected = pq.read_table(run_dir / "rejected.parquet").to_pylist()
    duplicates = [row for row in rejected if (row["reason"] or "").startswith("duplicate_of:")]
    assert duplicates and report["reject_reasons"]["duplicate_of"] == len(duplicates)
    accepted = {row["id"]: row for row in pq.read_table(run_dir / "accepted.parquet").to_pylist()}
    for row in duplicates:
        first = accepted[row["reason"].split(":", 1)[1]]
        assert first["lang"] == row["lang"] and first["instruction"] == row["instruction"] == "the same question"
        assert (first["seed_id"], first["id"]) < (row["seed_id"], row["id"])


def test_outputs_do_not_depend_on_shard_boundaries_or_order(tmp_path):
    rows = fabricated_rows(300, seed=3)
    one, many = tmp_path / "one", tmp_path / "many"
    first, second = run_finalise(one, rows, shard_rows=300), run_finalise(many, rows, shard_rows=17, shuffle=5)
    assert first == second
    for name in ("accepted.jsonl", "rejected.jsonl", "report.md"):
        assert (one / name).read_bytes() == (many / name).read_bytes(), name
    for status in (ACCEPTED, REJECTED):
        assert pq.read_table(one / f"{status}.parquet").equals(pq.read_table(many / f"{status}.parquet")), status


def test_a_run_folder_that_does_not_match_its_plan_is_an_error(tmp_path):
    rows = fabricated_rows(60)
    store, _ = write_run(tmp_path / "run", rows[:-1] + [rows[0]], shard_rows=20)
    planned = [row["id"] for row in rows]
    with pytest.raises(RuntimeError, match="1 missing, 0 unexpected, 1 duplicated ids"):
        finalise(tmp_path / "run", config_for(tmp_path / "run"), planned, 0, 1.0)


def test_a_second_finalise_replaces_the_first_outputs(finished, tmp_path):
    rows = fabricated_rows(120, seed=9)
    run_dir = tmp_path / "run"
    report = run_finalise(run_dir, rows)
    pq.write_table(to_table(rows[:3]), run_dir / "accepted.parquet/fr/part-00007.parquet")  # a stale file
    again = finalise(run_dir, config_for(run_dir), [row["id"] for row in rows], 0, 2.0)
    assert again == report and pq.read_table(run_dir / "accepted.parquet").num_rows == report["accepted"]


def test_jobs_report_reads_the_language_datasets_and_an_old_single_file_folder(finished, tmp_path):
    run_dir, rows, report = finished
    page = tmp_path / "page.html"
    assert report_main([str(run_dir), "--out", str(page), "--samples-per-language", "4"]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.count('class="sample"') == 4 * (len(LANGS) + 1)  # + the no-language rows
    assert f"of {len(rows)} rows on this page" in html
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.json").write_text((run_dir / "report.json").read_text())
    for status in (ACCEPTED, REJECTED):
        pq.write_table(pq.read_table(run_dir / f"{status}.parquet"), old / f"{status}.parquet")
    assert report_main([str(old), "--samples-per-language", "4"]) == 0
    assert (old / "report.html").read_text(encoding="utf-8").count('class="sample"') == 4 * (len(LANGS) + 1)
    assert (old / "plot-rows_per_language.png").stat().st_size > 5_000


MEASURE = """
import json, re, sys
from pathlib import Path
import pyarrow.parquet as pq
import matplotlib.pyplot  # noqa: F401  (imports are not the finalise's memory)
from engine.config import load_config
from engine.runfolder import RowStore
from actors.dataflow.synthesis import finalise

def status(field):  # KiB. VmHWM is this process's own peak (ru_maxrss would include the parent's at exec)
    return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

run_dir = Path(sys.argv[1])
planned = json.loads((run_dir / "planned.json").read_text())
store = RowStore(run_dir)
pq.read_table(store.shards()[0]).slice(0, 1)  # Arrow's one-time start-up memory (~130 MiB), not the finalise's
config = load_config(sys.argv[2], [f"run.output_dir={run_dir}"])
Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the resident size now
before = status("VmRSS")
report = finalise(run_dir, config, planned, 0, 1.0)
print(json.dumps({"rss_growth": (status("VmHWM") - before) * 1024, "rows": report["planned"]}))
"""


def measure_finalise(run_dir: Path, rows: int) -> tuple[dict, int]:
    """Finalise a fabricated run of `rows` rows (16 languages, ~7 KB of text a row) in a fresh
    process; returns its memory figures and the rows' size in Arrow."""
    data = fabricated_rows(rows, words=90, langs=tuple(f"l{n:02d}" for n in range(16)))
    store, planned = write_run(run_dir, data, shard_rows=1_000)
    size = sum(pq.read_table(path).nbytes for path in store.shards())
    del data
    (run_dir / "planned.json").write_text(json.dumps(planned))
    # Arrow's default allocator (mimalloc) returns freed pages late, more so on a busy machine: the
    # system allocator makes the peak a measure of what was held.
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system"}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(run_dir), str(ROOT / "configs/demo.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["rows"] == rows
    return measured, size


def quietest(run_dir: Path, rows: int) -> tuple[dict, int]:
    """The lower of two measurements of one run: what other work on the machine and the
    allocator's timing add to a peak only ever raises it, never lowers it."""
    first, size = measure_finalise(run_dir / "1", rows)
    second, _ = measure_finalise(run_dir / "2", rows)
    return min(first, second, key=lambda m: m["rss_growth"]), size


def test_finalise_memory_does_not_grow_with_the_run(tmp_path):
    """4,000 then 16,000 rows of realistic size (~27 MB, then ~107 MB in Arrow): the finalise's
    peak memory grows by well under the data's growth. The former finalise held every row twice
    (one concatenated table, then every row as a Python dict): its RSS grew by several times
    the data's growth."""
    small, small_size = quietest(tmp_path / "small", 4_000)
    large, large_size = quietest(tmp_path / "large", 16_000)
    assert large_size > 100 * 2**20 and large_size > 3.5 * small_size
    assert large["rss_growth"] < large_size, (large, large_size)
    assert large["rss_growth"] - small["rss_growth"] < (large_size - small_size) / 2, (
        small,
        large,
        small_size,
        large_size,
    )


def test_finalise_report_and_build_on_an_s3_run_folder(s3_env):
    """The whole end of a run on a real S3-compatible server (moto on 127.0.0.1): shards in,
    datasets by language, JSONL, report and page, jobs.report's reader and jobs.build out."""
    from engine.runfolder import RunFolder
    from jobs.build import build_run
    from jobs.report import load_run

    location = f"s3://{s3_env['BUCKET']}/runs/final"
    folder = RunFolder(location)
    rows = fabricated_rows(240, seed=4)
    for number, start in enumerate(range(0, len(rows), 70)):
        folder.write_parquet(f"shards/part-{number:04d}.parquet", to_table(rows[start : start + 70]))
    config = load_config(ROOT / "configs/demo.yaml", [f"run.output_dir={location}", "dedup.exact=true"])
    report = finalise(folder, config, [row["id"] for row in rows], 0, 2.0)
    assert report["planned"] == 240 and report["adds_up"]
    assert folder.read_parquet("accepted.parquet").num_rows == report["accepted"]
    assert folder.list("accepted.parquet", recursive=True) == [
        f"accepted.parquet/{lang}/part-00000.parquet" for lang in sorted(LANGS)
    ]
    assert len(folder.read_text("rejected.jsonl").splitlines()) == report["rejected"]
    assert json.loads(folder.read_text("report.json")) == json.loads(json.dumps(report))
    assert "<h1>babelforge run: demo</h1>" in folder.read_text("report.html") and folder.exists(
        "plot-rows_per_language.png"
    )
    assert not folder.exists(".by-language"), "the staging folder is removed"
    again, figures, sample = load_run(folder)
    assert again == json.loads(json.dumps(report)) and figures.total_rows == 240 and sample
    summary = build_run(folder, config)
    assert json.loads(folder.read_text("datasets/build.json")) == json.loads(json.dumps(summary))
    assert (
        pq.read_table(folder.path("datasets/sphinx/train.parquet"), filesystem=folder.fs).num_rows
        == summary["datasets"]["sphinx"]["train"]
    )
    assert json.loads(folder.read_text("report.json"))["datasets"]["sphinx"] == summary["datasets"]["sphinx"]
    # jobs.build's command line on the same folder, reading the run's own resolved config from S3.
    from engine.config import redacted
    from jobs.build import main as build_main

    folder.write_text("config.resolved.yaml", yaml.safe_dump(redacted(config), sort_keys=False))
    assert build_main(["--run", location, "--set", "build.builders=[transllm]", "--output", f"{location}/rebuilt"]) == 0
    rebuilt = json.loads(folder.read_text("rebuilt/build.json"))
    assert set(rebuilt["datasets"]) == {"transllm", "mix"} and rebuilt["accepted_rows"] == report["accepted"]


def test_a_run_without_rejected_rows_still_has_a_readable_rejected_dataset(tmp_path):
    rows = [
        row
        for row in fabricated_rows(90, seed=2)
        if row["status"] == ACCEPTED and row["instruction"] != "the same question"
    ]
    report = run_finalise(tmp_path / "run", rows, shard_rows=25)
    assert report["rejected"] == 0 and report["accepted"] == len(rows)
    assert pq.read_table(tmp_path / "run/rejected.parquet").num_rows == 0
    assert (tmp_path / "run/rejected.jsonl").read_text() == ""
    assert report_main([str(tmp_path / "run")]) == 0


def test_a_run_without_accepted_rows_builds_empty_datasets(tmp_path):
    """The demo with the adequacy gate on accepts nothing: jobs.build still runs on it."""
    from jobs.build import build_run

    rows = [
        {**row, "status": REJECTED, "reason": row["reason"] or "low_similarity"} for row in fabricated_rows(40, seed=6)
    ]
    run_dir = tmp_path / "run"
    report = run_finalise(run_dir, rows, shard_rows=15)
    assert report["accepted"] == 0 and pq.read_table(run_dir / "accepted.parquet").num_rows == 0
    summary = build_run(run_dir, config_for(run_dir))
    assert summary["accepted_rows"] == 0 and all(entry["train"] == 0 for entry in summary["datasets"].values())


def reference_budget(rows: list[dict], budget: int, embed, clusters: int, sample_size: int, seed: int) -> list[dict]:
    """The budget written plainly over row dicts (the reference apply_budget_table must agree with):
    the accepted rows of languages over budget get their cluster, and those diversification does
    not keep are rejected with its reason."""
    from engine.selection.budget import diversify_over_budget

    chosen, result = diversify_over_budget(
        [r["instruction"] for r in rows],
        [r["lang"] for r in rows],
        [r["status"] for r in rows],
        budget,
        embed,
        clusters,
        sample_size,
        seed,
    )
    out = list(rows)
    for position, i in enumerate(chosen):
        out[i] = {**rows[i], "cluster": int(result.cluster[position])}
        if result.reason(position) is not None:
            out[i].update(status=REJECTED, reason=result.reason(position))
    return out


def test_the_budget_on_a_language_table_decides_as_on_rows():
    """apply_budget_table (what finalise runs per language) keeps, rejects and labels the same
    rows as the reference budget on the same rows as dicts, and leaves a table within budget untouched."""
    import numpy as np

    from engine.selection.budget import apply_budget_table

    def embed(texts):  # three topics: bread, rivers, anything else
        return np.array(
            [[1.0, 0.0] if "bread" in t else [0.0, 1.0] if "river" in t else [0.6, 0.8] for t in texts],
            dtype=np.float32,
        )

    topics = [
        "Why does bread rise",
        "Where do rivers go",
        "What is a cloud",
        "Why is bread brown",
        "Where do rivers start",
    ]
    rows = [
        {
            "id": f"fr{i}",
            "seed_id": f"s{i}",
            "lang": "fr",
            "status": ACCEPTED,
            "instruction": f"{topics[i % 5]} ({i})? Answer in French.",
        }
        for i in range(12)
    ] + [
        {"id": "fr-rej", "seed_id": "s99", "lang": "fr", "status": REJECTED, "reason": "judge_bad", "instruction": "x"}
    ]
    table = to_table(rows)
    out = apply_budget_table(table, 4, embed, 3, 100, 0)
    expected = reference_budget(table.to_pylist(), 4, embed, 3, 100, 0)
    assert out.to_pylist() == expected
    assert pc.sum(pc.equal(out.column("status"), ACCEPTED)).as_py() == 4
    assert apply_budget_table(table, 50, embed, 3, 100, 0) is table


def test_the_id_tally_is_equal_for_the_same_ids_in_any_order_and_differs_otherwise():
    from engine.run_outputs import IdTally

    ids = [row["id"] for row in fabricated_rows(200)] + ["seed-7:fr", "an id that is not hex"]
    tally = IdTally().add(pa.array(ids))
    shuffled = list(ids)
    random.Random(1).shuffle(shuffled)
    halves = IdTally().add(pa.array(shuffled[:90])).add(pa.chunked_array([pa.array(shuffled[90:])]))
    assert halves == tally and tally.count == len(ids)
    for changed in (
        ids[1:],
        ids + ids[:1],
        ids[:-1] + [ids[0]],
        ids[:-1] + ["another id"],
        ids[:-2] + ["seed-7:es", ids[-1]],
    ):
        assert IdTally().add(pa.array(changed)) != tally, changed
