"""Ring (a): seed files read in pieces (the job's Ray Data reader reads each piece on a worker)
give exactly the seeds, bad records and messages of one sequential read, wherever the pieces
are cut: mid-line, at a newline, inside a multi-byte character, between CRLF's two bytes."""

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.inputs.seeds import SeedError, count_piece, load_seed_table, number_pieces, plan_pieces, validate_piece

LINES = [
    b"\xef\xbb\xbf" + json.dumps({"instruction": "Name a colour.", "output": "Red."}).encode(),
    b"",
    b"   ",
    json.dumps({"id": "x", "instruction": "caf\u00e9 \u2028 z", "output": "o"}, ensure_ascii=False).encode(),
    b'{"id": "y", "instruction": "caf\xe9"}',
    b"{broken",
    json.dumps({"id": "x", "instruction": "again", "output": "r"}).encode() + b"\r",
    json.dumps({"instruction": "No id here.", "output": "c"}).encode(),
    json.dumps({"id": 7, "instruction": 3, "output": "c"}).encode(),
    json.dumps(
        {"id": "z", "instruction": "\u65e5\u672c\u8a9e\u306e\u6587", "output": "ok"}, ensure_ascii=False
    ).encode(),
]


def as_tuples(bad):
    return [(b.id, b.source, b.reason) for b in bad]


@pytest.mark.parametrize("piece_bytes", [1, 2, 3, 5, 8, 13, 40, 97, 1000])
def test_pieces_read_what_one_read_reads(tmp_path, piece_bytes):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b"\n".join(LINES))  # no newline at the end
    whole, whole_bad = load_seed_table([str(path)], "skip")
    pieces, pieces_bad = load_seed_table([str(path)], "skip", piece_bytes=piece_bytes)
    assert pieces.equals(whole)
    assert as_tuples(pieces_bad) == as_tuples(whole_bad)
    assert [row["id"] for row in whole.to_pylist()] == ["seeds.jsonl#0", "x", "seeds.jsonl#5", "z"]
    assert len(plan_pieces([str(path)], piece_bytes)) == -(-path.stat().st_size // piece_bytes)


def test_random_files_in_random_pieces(tmp_path):
    rng = random.Random(5)
    for trial in range(40):
        path = tmp_path / f"s{trial}.jsonl"
        path.write_bytes(b"\n".join(rng.choice(LINES) for _ in range(rng.randrange(1, 20))) + rng.choice([b"\n", b""]))
        for mode in ("skip", "error"):

            def read(path=path, mode=mode, **kw):
                try:
                    table, bad = load_seed_table([str(path)], mode, None, **kw)
                    return table.to_pylist(), as_tuples(bad)
                except SeedError as error:
                    return str(error)

            assert read(piece_bytes=rng.randrange(1, 60)) == read()


def test_strict_mode_names_the_first_bad_line_whichever_piece_holds_it(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b"\n".join(LINES[:4] + [b"{broken"] + LINES[:1]) + b"\n")
    for piece_bytes in (None, 4, 30):
        with pytest.raises(SeedError, match=r"seeds.jsonl:5: malformed JSON"):
            load_seed_table([str(path)], piece_bytes=piece_bytes)


def test_line_numbers_continue_across_pieces(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(
        b"".join(
            json.dumps({"id": f"s{i}", "instruction": "Hi.", "output": "Yes."}).encode() + b"\n" for i in range(50)
        )
    )
    pieces = plan_pieces([str(path)], 100)
    pieces = number_pieces(pieces, [count_piece(piece) for piece in pieces])
    sources = [s for piece in pieces for table in validate_piece(piece) for s in table.column("source").to_pylist()]
    assert sources == [f"{path}:{n}" for n in range(1, 51)]


def test_parquet_row_groups_are_pieces(tmp_path):
    path = tmp_path / "seeds.parquet"
    rows = [
        {"id": f"p{i}", "instruction": "Hi.", "input": None, "output": "Yes." if i != 7 else None} for i in range(20)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=6)
    assert len(plan_pieces([str(path)])) == 4
    seeds, bad = load_seed_table([str(path)], "skip")
    assert seeds.num_rows == 19 and [b.source for b in bad] == [f"{path}:#7"]


def test_a_malformed_json_file_stops_even_with_skip(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text('[{"id": 1,')
    with pytest.raises(SeedError, match="seeds.json:1: malformed JSON"):
        load_seed_table([str(path)], "skip")


def test_resolution_needs_the_source_of_bad_rows_only(tmp_path):
    """The job's driver gets each record's source only where the record is bad (to keep it small),
    and asks for a duplicate's and its first copy's: the same bad records and messages."""
    import pyarrow.compute as pc

    from engine.inputs.seeds import resolve_records

    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b"\n".join(LINES + LINES[3:4]) + b"\n")
    full = pa.concat_tables([table for piece in plan_pieces([str(path)]) for table in validate_piece(piece)])
    error = full.column("error")
    lean = full.set_column(
        full.schema.get_field_index("source"),
        "source",
        pc.if_else(pc.is_null(error), pa.scalar(None, pa.string()), full.column("source")),
    )
    asked = []

    def source_of(row):
        asked.append(row)
        return full.column("source")[row].as_py()

    kept, bad = resolve_records(lean, "skip", None, [str(path)], source_of)
    table, expected = load_seed_table([str(path)], "skip")
    assert full.take(pa.array(kept)).select(table.column_names).equals(table)
    assert as_tuples(bad) == as_tuples(expected) and sum("duplicate seed id 'x'" in b.reason for b in bad) == 2
    assert asked and all(error[row].as_py() is None for row in asked)
    with pytest.raises(SeedError, match=r"seeds.jsonl:5: not valid UTF-8"):
        resolve_records(lean, "error", None, [str(path)], source_of)
