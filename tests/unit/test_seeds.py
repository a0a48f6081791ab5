"""Ring (a): reading seed files; every bad record names its file, line and field."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.inputs.seeds import BadRecord, Seed, SeedError, load_seed_table

REPO = Path(__file__).resolve().parents[2]


def load_seeds(paths, on_bad_record: str = "error", limit: int | None = None) -> tuple[list[Seed], list[BadRecord]]:
    """The seed reader's table as Seed records, for assertions on whole seeds."""
    table, bad = load_seed_table(paths, on_bad_record, limit)
    return [Seed(**row) for row in table.to_pylist()], bad


def pair(
    seed_id: str = "s1",
    instruction: str = "Name three primary colours.",
    output: str = "Red, yellow and blue.",
    **extra,
) -> dict:
    return {"id": seed_id, "instruction": instruction, "input": "", "output": output, **extra}


def chat(seed_id: str, *turns: tuple[str, str]) -> dict:
    return {"id": seed_id, "messages": [{"role": role, "content": content} for role, content in turns]}


def write_jsonl(tmp_path: Path, lines: list, name: str = "seeds.jsonl") -> str:
    """Each item is a dict (dumped as one JSON line) or a str written verbatim."""
    text = "\n".join(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in lines)
    path = tmp_path / name
    path.write_text(text + "\n", encoding="utf-8")
    return str(path)


def seed_error(paths: list[str]) -> str:
    with pytest.raises(SeedError) as caught:
        load_seeds(paths)
    return str(caught.value)


def test_alpaca_records_are_normalised(tmp_path):
    path = write_jsonl(tmp_path, [pair("a"), pair("b", input="the text", category="x")])
    seeds, bad = load_seeds([path])
    assert bad == []
    assert [s.id for s in seeds] == ["a", "b"]
    assert seeds[0] == Seed("a", "Name three primary colours.", "", "Red, yellow and blue.", f"{path}:1")
    assert seeds[1].input == "the text"


def test_missing_and_null_input_become_empty(tmp_path):
    no_input = {"id": "a", "instruction": "Say hi.", "output": "Hi."}
    null_input = {"id": "b", "instruction": "Say hi.", "input": None, "output": "Hi."}
    seeds, _ = load_seeds([write_jsonl(tmp_path, [no_input, null_input])])
    assert [s.input for s in seeds] == ["", ""]


def test_records_without_id_get_file_and_index_ids(tmp_path):
    record = {"instruction": "Say hi.", "output": "Hi."}
    seeds, _ = load_seeds([write_jsonl(tmp_path, [record, "", record])])
    assert [s.id for s in seeds] == ["seeds.jsonl#0", "seeds.jsonl#1"]


def test_integer_ids_become_strings(tmp_path):
    seeds, _ = load_seeds([write_jsonl(tmp_path, [pair(7)])])
    assert seeds[0].id == "7"


@pytest.mark.parametrize(
    "lines, line, words",
    [
        (['{"id": "a", "instruction": "x"'], 1, "malformed JSON"),
        ([pair("a"), "", "", "{not json}"], 4, "malformed JSON"),
        ([pair("a"), {"id": "b", "output": "y"}], 2, "field 'instruction' is missing"),
        ([pair("a", output=None)], 1, "field 'output' is missing or null"),
        ([pair("a", instruction=42)], 1, "field 'instruction' must be a string, got int"),
        ([pair("a", instruction="  ")], 1, "field 'instruction' is empty"),
        ([pair("a", output="\n\t")], 1, "field 'output' is empty"),
        ([pair("a", input=["x"])], 1, "field 'input' must be a string, got list"),
        ([pair("a"), "", '["a", "list"]'], 3, "a record must be an object, got list"),
        ([pair(""), pair("b")], 1, "field 'id' must be a non-empty string"),
        ([pair(True)], 1, "field 'id'"),
        ([pair(["x"])], 1, "field 'id'"),
    ],
)
def test_bad_jsonl_record_names_file_line_and_field(tmp_path, lines, line, words):
    path = write_jsonl(tmp_path, lines)
    message = seed_error([path])
    assert message.startswith(f"{path}:{line}:")
    assert words in message


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "seeds.jsonl"
    good = json.dumps(pair("a")).encode()
    path.write_bytes(good + b"\n\n" + b'{"id": "b", "instruction": "caf\xe9", "output": "x"}\n')
    message = seed_error([str(path)])
    assert message.startswith(f"{path}:3:")
    assert "not valid UTF-8" in message


def test_duplicate_ids_name_both_locations(tmp_path):
    first = write_jsonl(tmp_path, [pair("a"), pair("b")], "one.jsonl")
    second = write_jsonl(tmp_path, [pair("c"), pair("b")], "two.jsonl")
    message = seed_error([first, second])
    assert message.startswith(f"{second}:2:")
    assert "duplicate seed id 'b'" in message
    assert f"first at {first}:2" in message


def test_line_separators_inside_strings_do_not_split_records(tmp_path):
    # JSON allows raw U+2028, U+0085 and form feeds in strings; only "\n" ends a JSONL record.
    text = "First part\u2028second part\x85third\x0cfourth"
    path = write_jsonl(tmp_path, [pair("a", instruction=text), pair("b")])
    seeds, _ = load_seeds([path])
    assert seeds[0].instruction == text
    assert seeds[1].source == f"{path}:2"


def test_crlf_line_endings_and_byte_order_mark(tmp_path):
    path = tmp_path / "seeds.jsonl"
    body = "\r\n".join(json.dumps(pair(i)) for i in ("a", "b")) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    seeds, _ = load_seeds([str(path)])
    assert [s.id for s in seeds] == ["a", "b"]
    assert seeds[1].output == "Red, yellow and blue."


def test_chat_records_with_optional_system_message(tmp_path):
    records = [
        chat("c1", ("user", "What is 2 + 2?"), ("assistant", "4.")),
        chat("c2", ("system", "Be brief."), ("user", "Capital of France?"), ("assistant", "Paris.")),
    ]
    seeds, bad = load_seeds([write_jsonl(tmp_path, records)])
    assert bad == []
    assert [(s.id, s.instruction, s.input, s.output) for s in seeds] == [
        ("c1", "What is 2 + 2?", "", "4."),
        ("c2", "Capital of France?", "", "Paris."),
    ]


@pytest.mark.parametrize(
    "record, words",
    [
        (chat("c", ("user", "Hi"), ("user", "Hello?"), ("assistant", "Hey")), "roles ['user', 'user', 'assistant']"),
        (chat("c", ("user", "Hi")), "roles ['user']"),
        (chat("c", ("assistant", "Hey"), ("user", "Hi")), "roles ['assistant', 'user']"),
        (chat("c", ("user", "Hi"), ("assistant", "Hey"), ("user", "More"), ("assistant", "Sure")), "one user turn"),
        ({"id": "c", "messages": "Hi"}, "field 'messages' must be a list"),
        ({"id": "c", "messages": ["Hi", "Hey"]}, "field 'messages' must be a list"),
        (chat("c", ("user", " "), ("assistant", "Hey")), "messages[user]: field 'content' is empty"),
        (
            {"id": "c", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 3}]},
            "messages[assistant]: field 'content' must be a string",
        ),
    ],
)
def test_bad_chat_records(tmp_path, record, words):
    path = write_jsonl(tmp_path, [record])
    message = seed_error([path])
    assert message.startswith(f"{path}:1")
    assert words in message


def test_json_array_file(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps([pair("a"), chat("b", ("user", "Hi"), ("assistant", "Hello there."))]), encoding="utf-8")
    seeds, _ = load_seeds([str(path)])
    assert [(s.id, s.source) for s in seeds] == [("a", f"{path}:#0"), ("b", f"{path}:#1")]


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"id": "a"}', "must hold a list"),
        ('[\n{"id": "a",\n', "malformed JSON"),
    ],
)
def test_bad_json_array_file(tmp_path, text, words):
    path = tmp_path / "seeds.json"
    path.write_text(text, encoding="utf-8")
    message = seed_error([str(path)])
    assert message.startswith(str(path))
    assert words in message


def test_bad_record_in_json_array_names_its_index(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps([pair("a"), pair("b", output=None)]), encoding="utf-8")
    assert seed_error([str(path)]).startswith(f"{path}:#1: field 'output'")


def test_parquet_file(tmp_path):
    path = tmp_path / "seeds.parquet"
    pq.write_table(pa.Table.from_pylist([pair("a"), pair("b", input="text")]), path)
    seeds, _ = load_seeds([str(path)])
    assert [(s.id, s.input, s.source) for s in seeds] == [("a", "", f"{path}:#0"), ("b", "text", f"{path}:#1")]


def test_parquet_null_output_is_named(tmp_path):
    path = tmp_path / "seeds.parquet"
    pq.write_table(pa.Table.from_pylist([pair("a"), pair("b", output=None)]), path)
    assert seed_error([str(path)]).startswith(f"{path}:#1: field 'output'")


def test_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hf"
    datasets.Dataset.from_list([pair("a"), pair("b")]).save_to_disk(str(folder))
    seeds, _ = load_seeds([str(folder)])
    assert [s.id for s in seeds] == ["a", "b"]
    assert seeds[0].source == f"{folder}:#0"


def test_saved_hugging_face_dataset_dict_reads_train(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hf"
    splits = {
        "test": datasets.Dataset.from_list([pair("t")]),
        "train": datasets.Dataset.from_list([pair("a"), pair("b")]),
    }
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    seeds, _ = load_seeds([str(folder)])
    assert [s.id for s in seeds] == ["a", "b"]


@pytest.mark.parametrize("name", ["seeds.csv", "seeds.txt", "seeds"])
def test_unknown_format(tmp_path, name):
    path = tmp_path / name
    path.write_text("instruction,output\n", encoding="utf-8")
    message = seed_error([str(path)])
    assert "unknown seed format" in message and str(path) in message


def test_empty_file_is_an_error(tmp_path):
    path = write_jsonl(tmp_path, ["", "  "])
    assert "no seed records found" in seed_error([path])


def test_skip_keeps_good_rows_and_reports_bad_ones(tmp_path):
    path = write_jsonl(
        tmp_path,
        [pair("a"), "{broken", pair("b", output=None), pair("a"), pair("c", instruction=5), pair("d")],
    )
    seeds, bad = load_seeds([path], on_bad_record="skip")
    assert [s.id for s in seeds] == ["a", "d"]
    assert [b.source for b in bad] == [f"{path}:{n}" for n in (2, 3, 4, 5)]
    assert all(isinstance(b, BadRecord) and b.reason.startswith("bad_record:") for b in bad)
    assert "malformed JSON" in bad[0].reason
    assert "field 'output'" in bad[1].reason
    assert "duplicate seed id 'a'" in bad[2].reason
    assert "must be a string, got int" in bad[3].reason


def test_skip_gives_every_bad_record_a_unique_id(tmp_path):
    # Bad records become rejected rows keyed by this id: two rows with one id break the run's plan.
    path = write_jsonl(
        tmp_path,
        ["{broken", pair("x", output=None), pair("x", output=None), pair("ok"), pair("ok"), pair("", output=None)],
    )
    seeds, bad = load_seeds([path], on_bad_record="skip")
    ids = [b.id for b in bad]
    assert len(ids) == len(set(ids)) == 5
    assert ids[:2] == [f"bad:{path}:1", "x"]
    assert all(i.strip() for i in ids)
    assert [s.id for s in seeds] == ["ok"]


def test_skip_with_only_bad_records_returns_them(tmp_path):
    seeds, bad = load_seeds([write_jsonl(tmp_path, ["{broken"])], on_bad_record="skip")
    assert seeds == [] and len(bad) == 1


@pytest.mark.parametrize("limit, expected", [(1, ["a"]), (2, ["a", "b"]), (10, ["a", "b", "c"])])
def test_limit(tmp_path, limit, expected):
    seeds, _ = load_seeds([write_jsonl(tmp_path, [pair("a"), pair("b"), pair("c")])], limit=limit)
    assert [s.id for s in seeds] == expected


def test_limit_counts_seeds_across_files(tmp_path):
    first = write_jsonl(tmp_path, [pair("a")], "one.jsonl")
    second = write_jsonl(tmp_path, [pair("b"), pair("c")], "two.jsonl")
    seeds, _ = load_seeds([first, second], limit=2)
    assert [s.id for s in seeds] == ["a", "b"]


def test_project_seed_files_load_cleanly():
    seeds, bad = load_seeds([str(REPO / "data/seeds/english_seeds.jsonl")])
    assert bad == [] and len(seeds) >= 100
    assert len({s.id for s in seeds}) == len(seeds)
    chats, bad = load_seeds([str(REPO / "data/seeds/chat_sample.jsonl")])
    assert bad == [] and chats
    assert all(s.instruction and s.output and s.input == "" for s in chats)
