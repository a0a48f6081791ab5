import pyarrow as pa
import pytest

from engine.records import SCHEMA, empty_row, to_table


def test_a_partial_row_takes_the_empty_rows_values_for_every_missing_column():
    table = to_table([{"id": "a", "status": "rejected", "reason": "parse_truncated"}])
    assert table.schema == SCHEMA
    row = table.to_pylist()[0]
    assert (row["id"], row["status"], row["reason"]) == ("a", "rejected", "parse_truncated")
    assert {k: v for k, v in row.items() if k not in ("id", "status", "reason")} == {
        k: v for k, v in empty_row().items() if k not in ("id", "status", "reason")
    }


def test_full_rows_keep_every_value_nested_ones_included_and_extra_keys_are_dropped():
    rows = [
        {
            **empty_row(),
            "id": f"r{i}",
            "lang": "fr",
            "attempts": i,
            "lid_confidence": 0.5,
            "output_embedding": [0.25, -0.5],
            "scores": [{"round": 0, "criterion": "fluency", "score": 4.0}],
            "protected_spans": ["`x`"],
            "not_a_column": 1,
        }
        for i in range(3)
    ]
    table = to_table(rows)
    assert table.num_rows == 3 and "not_a_column" not in table.column_names
    assert table.equals(pa.Table.from_pylist(rows, schema=SCHEMA))


def test_a_value_of_the_wrong_type_is_an_error_not_a_silent_null():
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        to_table([{"id": "a", "attempts": "three"}])
