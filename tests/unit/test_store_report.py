"""Ring (a): the run folder's row store and the report built from it."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.records import ACCEPTED, REJECTED, SCHEMA, to_table
from engine.report.aggregate import RunFigures
from engine.report.counts import reason_kind, render_markdown, render_summary, report_from_figures
from engine.runfolder import SHARDS, RowStore

CONFIG = {"run": {"name": "unit"}, "recipe": "sphinx", "model": {"name": "fake-model"}}


def row(row_id: str, lang: str | None = "fr", status: str = ACCEPTED, reason: str | None = None, **extra) -> dict:
    return {
        "id": row_id,
        "seed_id": row_id,
        "recipe": "sphinx",
        "lang": lang,
        "status": status,
        "reason": reason,
        **extra,
    }


def rejected(row_id: str, reason: str, lang: str | None = "fr", **extra) -> dict:
    return row(row_id, lang, REJECTED, reason, **extra)


def build_report(table: pa.Table, planned: int, bad_records: int, seconds: float, config: dict) -> dict:
    """The report of a whole (small) table: its figures read at once (a run merges them group by group)."""
    return report_from_figures(RunFigures.of(table), planned, bad_records, seconds, config)


def read_all(store: RowStore) -> pa.Table:
    """Every row the store's shards hold, in SCHEMA (what finalise reads, here at once)."""
    return pa.concat_tables(
        [SCHEMA.empty_table(), *(store.folder.read_parquet(name).cast(SCHEMA) for name in store.shard_names())]
    )


def done_ids(store: RowStore) -> set[str]:
    return set(store.done_id_array().to_pylist())


def test_write_then_read_all_roundtrip(tmp_path):
    store = RowStore(tmp_path)
    first = [row("a", instruction="Bonjour", protected_spans=["`x`"], attempts=1, attempt_reasons=[])]
    second = [rejected("b", "span_missing:[[1]]", attempt_reasons=["parse_no_json", "span_missing:[[1]]"], attempts=2)]
    shard = store.write(to_table(first))
    store.write(to_table(second))
    assert shard.parent == tmp_path / "shards" and shard.name.startswith("part-") and shard.suffix == ".parquet"
    table = read_all(store)
    assert table.schema == SCHEMA
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["a"]["instruction"] == "Bonjour" and rows["a"]["protected_spans"] == ["`x`"]
    assert rows["b"]["attempt_reasons"] == ["parse_no_json", "span_missing:[[1]]"] and rows["b"]["attempts"] == 2
    assert done_ids(store) == {"a", "b"}
    assert len(store.shards()) == 2


def test_write_drops_extra_columns_and_orders_by_schema(tmp_path):
    store = RowStore(tmp_path)
    table = to_table([row("a")]).append_column("scratch", pa.array([1]))
    reordered = table.select(list(reversed(table.column_names)))
    store.write(reordered)
    assert read_all(store).schema == SCHEMA


def test_write_without_a_schema_column_fails(tmp_path):
    with pytest.raises(KeyError):
        RowStore(tmp_path).write(pa.table({"id": ["a"]}))


def test_empty_store(tmp_path):
    store = RowStore(tmp_path)
    assert done_ids(store) == set()
    assert read_all(store).num_rows == 0 and read_all(store).schema == SCHEMA
    assert store.clean_partial() == 0


def test_stale_temporary_is_ignored_then_removed(tmp_path):
    store = RowStore(tmp_path)
    store.write(to_table([row("done")]))
    stale = (tmp_path / SHARDS) / ".part-x.parquet.tmp"
    pq.write_table(to_table([row("half-written")]), stale)  # a killed writer's leftover
    assert done_ids(store) == {"done"}
    assert read_all(store).column("id").to_pylist() == ["done"]
    assert store.clean_partial() == 1
    assert not stale.exists()
    assert done_ids(store) == {"done"}


def test_write_leaves_no_temporary(tmp_path):
    store = RowStore(tmp_path)
    store.write(to_table([row("a")]))
    assert [p.name for p in (tmp_path / SHARDS).iterdir() if not p.name.startswith("part-")] == []


def test_reopening_the_folder_sees_earlier_shards(tmp_path):
    RowStore(tmp_path).write(to_table([row("a"), row("b")]))
    assert done_ids(RowStore(tmp_path)) == {"a", "b"}


ROWS = [
    row("1", "fr", prompt_tokens=100, completion_tokens=40, attempts=1, lid_method="fasttext"),
    row("2", "fr", prompt_tokens=120, completion_tokens=60, attempts=2, lid_method="fasttext"),
    rejected("3", "span_missing:[[2]]", "fr", prompt_tokens=90, completion_tokens=30, attempts=2),
    row("4", "ha", prompt_tokens=80, completion_tokens=20, attempts=1, lid_method="script"),
    rejected("5", "span_missing:[[1]]", "ha", prompt_tokens=70, completion_tokens=10, attempts=2),
    rejected("6", "wrong_language:en", "ha", prompt_tokens=60, completion_tokens=15, attempts=2),
    rejected("bad:seeds.jsonl:9", "bad_record: field 'output' is missing or null", None),
]


def make_report(rows=ROWS, planned=len(ROWS), seconds=10.0) -> dict:
    return build_report(to_table(rows), planned, 1, seconds, CONFIG)


def test_report_counts_add_up():
    report = make_report()
    assert (report["planned"], report["accepted"], report["rejected"]) == (7, 3, 4)
    assert report["adds_up"] is True
    assert report["bad_records"] == 1
    assert (report["run"], report["recipe"], report["model"]) == ("unit", "sphinx", "fake-model")


def test_report_notices_missing_rows():
    report = make_report(planned=9)
    assert report["adds_up"] is False


def test_reasons_are_grouped_by_kind_most_common_first():
    report = make_report()
    assert report["reject_reasons"] == {"span_missing": 2, "wrong_language": 1, "bad_record": 1}
    assert list(report["reject_reasons"])[0] == "span_missing"


def test_per_language_numbers():
    languages = make_report()["languages"]
    assert list(languages) == ["(input)", "fr", "ha"]
    fr, ha = languages["fr"], languages["ha"]
    assert (fr["planned"], fr["accepted"], fr["rejected"], fr["completion_tokens"]) == (3, 2, 1, 130)
    assert fr["reasons"] == {"span_missing": 1}
    assert (ha["planned"], ha["accepted"], ha["rejected"]) == (3, 1, 2)
    assert ha["reasons"] == {"span_missing": 1, "wrong_language": 1}
    assert languages["(input)"]["reasons"] == {"bad_record": 1}
    assert sum(entry["planned"] for entry in languages.values()) == len(ROWS)


def test_token_and_speed_numbers():
    report = make_report()
    assert report["tokens"] == {"prompt": 520, "completion": 175, "completion_per_accepted": round(175 / 3, 1)}
    assert report["attempts_histogram"] == {0: 1, 1: 2, 2: 4}
    assert report["lid_methods"] == {"fasttext": 2, "script": 1}
    assert report["rows_per_second"] == 0.7
    assert report["completion_tokens_per_second"] == 17.5


def test_report_of_nothing_accepted_in_no_time():
    report = make_report([rejected("1", "too_long")], planned=1, seconds=0.0)
    assert report["tokens"]["completion_per_accepted"] is None
    assert report["rows_per_second"] is None and report["completion_tokens_per_second"] is None
    assert report["adds_up"] is True


def test_report_of_an_empty_run():
    report = build_report(SCHEMA.empty_table(), 0, 0, 1.0, CONFIG)
    assert (report["planned"], report["accepted"], report["rejected"], report["adds_up"]) == (0, 0, 0, True)
    assert "Planned 0 = accepted 0 + rejected 0" in render_markdown(report)


@pytest.mark.parametrize(
    "reason, kind",
    [
        ("span_missing:[[3]]", "span_missing"),
        ("length_ratio:4.20", "length_ratio"),
        ("bad_record: field 'id': duplicate", "bad_record"),
        ("untranslated", "untranslated"),
        ("", ""),
        (None, ""),
    ],
)
def test_reason_kind(reason, kind):
    assert reason_kind(reason) == kind


def test_markdown_contains_the_numbers():
    text = render_markdown(make_report())
    assert "# Run report: unit" in text
    assert "**Planned 7 = accepted 3 + rejected 4**" in text and "does not add up" not in text
    assert "| fr | 3 | 2 | 1 | 67% | span_missing 1 |" in text
    assert "| ha | 3 | 1 | 2 | 33% | span_missing 1, wrong_language 1 |" in text
    assert "| span_missing | 2 |" in text
    assert "prompt tokens: 520" in text and "generated tokens: 175 (17.5 per second)" in text


def test_markdown_flags_a_plan_that_does_not_add_up():
    assert "does not add up" in render_markdown(make_report(planned=8))


def test_summary_contains_the_numbers_and_the_run_folder():
    text = render_summary(make_report(), "runs/unit")
    assert "planned 7 = accepted 3 + rejected 4" in text
    assert "span_missing 2, wrong_language 1, bad_record 1" in text
    assert "tokens: 520 prompt, 175 generated" in text
    assert "runs/unit/accepted.parquet" in text
    fr_line = next(line for line in text.splitlines() if line.strip().startswith("fr "))
    assert fr_line.split() == ["fr", "3", "2", "1"]
