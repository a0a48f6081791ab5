"""Read English seed pairs and normalise them to (id, instruction, input, output).

Accepts Alpaca-style records (instruction / input / output) and chat-style records (messages),
from JSONL, JSON or Parquet files, local or any pyarrow filesystem URI, and Hugging Face datasets
saved with `save_to_disk`. A bad record is either an error naming file, line and field, or (with
on_bad_record=skip) a rejected row with the same words as its reason.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Seed:
    id: str
    instruction: str
    input: str
    output: str
    source: str  # "file:line", for messages that point a person at the record


@dataclass(frozen=True)
class BadRecord:
    id: str
    source: str
    reason: str


class SeedError(ValueError):
    """A seed record that cannot be used; the message names the file, line and field."""


def _open_text(uri: str) -> str:
    fs, path = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), str(Path(uri).resolve()))
    with fs.open_input_stream(path) as stream:
        raw = stream.read()
    # Editors on Windows write a byte-order mark; json.loads would call line 1 malformed.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SeedError(f"{uri}:{line}: not valid UTF-8 (byte {error.start})") from None


def _records(uri: str) -> Iterator[tuple[str, Any]]:
    """(location, record) pairs; location is file:line for JSONL, file:#index otherwise."""
    lower = uri.lower().rstrip("/")
    if lower.endswith(".jsonl"):
        # split("\n"), not splitlines(): JSON strings may hold raw U+2028, U+0085, \x0c, which
        # splitlines() would break a record at; "\r" of CRLF files is JSON whitespace.
        for number, line in enumerate(_open_text(uri).split("\n"), start=1):
            if not line.strip():
                continue
            try:
                yield f"{uri}:{number}", json.loads(line)
            except json.JSONDecodeError as error:
                yield f"{uri}:{number}", SeedError(f"{uri}:{number}: malformed JSON ({error.msg} at column {error.colno})")
    elif lower.endswith(".json"):
        try:
            data = json.loads(_open_text(uri))
        except json.JSONDecodeError as error:
            raise SeedError(f"{uri}:{error.lineno}: malformed JSON ({error.msg})") from None
        if not isinstance(data, list):
            raise SeedError(f"{uri}: a .json seed file must hold a list of records")
        for index, record in enumerate(data):
            yield f"{uri}:#{index}", record
    elif lower.endswith(".parquet"):
        for index, record in enumerate(pq.read_table(uri).to_pylist()):
            yield f"{uri}:#{index}", record
    elif Path(uri).is_dir() and any((Path(uri) / name).exists() for name in ("dataset_info.json", "dataset_dict.json")):
        from datasets import load_from_disk  # heavy: only for this format

        dataset = load_from_disk(uri)
        if hasattr(dataset, "keys"):  # a DatasetDict: take the train split
            dataset = dataset["train"] if "train" in dataset else dataset[next(iter(dataset.keys()))]
        for index, record in enumerate(dataset):
            yield f"{uri}:#{index}", record
    else:
        raise SeedError(f"{uri}: unknown seed format (use .jsonl, .json, .parquet or a saved Hugging Face dataset)")


def _text_field(record: dict, field: str, where: str, required: bool) -> str:
    value = record.get(field)
    if value is None:
        if required:
            raise SeedError(f"{where}: field '{field}' is missing or null")
        return ""
    if not isinstance(value, str):
        raise SeedError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise SeedError(f"{where}: field '{field}' is empty")
    return value


def _from_messages(record: dict, where: str) -> tuple[str, str]:
    messages = record["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise SeedError(f"{where}: field 'messages' must be a list of {{role, content}} objects")
    turns = [m for m in messages if m.get("role") != "system"]
    roles = [m.get("role") for m in turns]
    if roles != ["user", "assistant"]:
        raise SeedError(f"{where}: field 'messages' must hold one user turn then one assistant turn (got roles {roles})")
    user = _text_field(turns[0], "content", f"{where} messages[user]", required=True)
    assistant = _text_field(turns[1], "content", f"{where} messages[assistant]", required=True)
    return user, assistant


def _normalise(record: Any, where: str, index: int) -> Seed:
    if isinstance(record, SeedError):
        raise record
    if not isinstance(record, dict):
        raise SeedError(f"{where}: a record must be an object, got {type(record).__name__}")
    seed_id = record.get("id", f"{Path(where.rsplit(':', 1)[0]).name}#{index}")
    if not isinstance(seed_id, (str, int)) or isinstance(seed_id, bool) or str(seed_id).strip() == "":
        raise SeedError(f"{where}: field 'id' must be a non-empty string or integer")
    if "messages" in record:
        instruction, output = _from_messages(record, where)
        return Seed(str(seed_id), instruction, "", output, where)
    instruction = _text_field(record, "instruction", where, required=True)
    input_text = _text_field(record, "input", where, required=False)
    output = _text_field(record, "output", where, required=True)
    return Seed(str(seed_id), instruction, input_text, output, where)


def load_seeds(paths: tuple[str, ...] | list[str], on_bad_record: str = "error", limit: int | None = None) -> tuple[list[Seed], list[BadRecord]]:
    """Read every path; returns (seeds, bad records). Raises SeedError unless on_bad_record == 'skip'."""
    seeds: list[Seed] = []
    bad: list[BadRecord] = []
    seen: dict[str, str] = {}
    bad_ids: set[str] = set()
    for uri in paths:
        for index, (where, record) in enumerate(_records(str(uri))):
            try:
                seed = _normalise(record, where, index)
                if seed.id in seen:
                    raise SeedError(f"{where}: field 'id': duplicate seed id '{seed.id}' (first at {seen[seed.id]})")
            except SeedError as error:
                if on_bad_record != "skip":
                    raise
                fallback = record.get("id") if isinstance(record, dict) else None
                # A bad record becomes a row with this id, so it must be unique among bad records too.
                unusable = fallback is None or not str(fallback).strip() or str(fallback) in seen or str(fallback) in bad_ids
                bad_id = f"bad:{where}" if unusable else str(fallback)
                bad_ids.add(bad_id)
                bad.append(BadRecord(bad_id, where, f"bad_record: {str(error).removeprefix(where + ': ')}"))
                continue
            seen[seed.id] = where
            seeds.append(seed)
            if limit is not None and len(seeds) >= limit:
                return seeds, bad
    if not seeds and not bad:
        raise SeedError(f"no seed records found in {list(paths)}")
    return seeds, bad


def seeds_table(seeds: list[Seed]) -> pa.Table:
    return pa.Table.from_pylist([seed.__dict__ for seed in seeds])
