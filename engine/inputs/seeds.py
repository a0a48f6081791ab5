"""Read English seed pairs and normalise them to (id, instruction, input, output).

Accepts Alpaca-style records (instruction / input / output) and chat-style records (messages),
from JSONL, JSON or Parquet files, local or any pyarrow filesystem URI, and Hugging Face datasets
saved with `save_to_disk`. A bad record is either an error naming file, line and field, or (with
on_bad_record=skip) a rejected row with the same words as its reason.
"""

from __future__ import annotations

import codecs
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from engine.reasons import make_reason


@dataclass(frozen=True)
class Seed:
    id: str
    instruction: str
    input: str
    output: str
    source: str  # "file:line", for messages that point a person at the record


SEED_SCHEMA = pa.schema([(name, pa.string()) for name in ("id", "instruction", "input", "output", "source")])
COLUMN_BATCH = 1 << 15  # seeds turned into Arrow columns at a time while reading
READ_BUFFER = 1 << 20


def seeds_table(seeds) -> pa.Table:
    """Seeds as one columnar table (SEED_SCHEMA): the text once, a few bytes of overhead a seed."""
    return pa.table({name: [getattr(seed, name) for seed in seeds] for name in SEED_SCHEMA.names}, schema=SEED_SCHEMA)


@dataclass(frozen=True)
class BadRecord:
    id: str
    source: str
    reason: str


class SeedError(ValueError):
    """A seed record that cannot be used; the message names the file, line and field."""


def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), str(Path(uri).resolve()))


def _read_bytes(uri: str) -> bytes:
    fs, path = _resolve(uri)
    try:
        with fs.open_input_stream(path) as stream:
            raw = stream.read()
    except FileNotFoundError:
        raise SeedError(f"{uri}: seed file not found") from None
    # Editors on Windows write a byte-order mark; json.loads would call line 1 malformed.
    return raw.removeprefix(codecs.BOM_UTF8)


def _lines(uri: str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes without the newline), streamed: a seed file is never read whole."""
    fs, path = _resolve(uri)
    try:
        stream = fs.open_input_stream(path)
    except FileNotFoundError:
        raise SeedError(f"{uri}: seed file not found") from None
    with stream, io.BufferedReader(stream, READ_BUFFER) as reader:
        for number, raw_line in enumerate(reader, start=1):
            if number == 1:
                raw_line = raw_line.removeprefix(codecs.BOM_UTF8)
            yield number, raw_line.removesuffix(b"\n")


def _decode(raw: bytes, uri: str, first_line: int = 1) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + raw[: error.start].count(b"\n")
        raise SeedError(f"{uri}:{line}: not valid UTF-8 (byte {error.start})") from None


def _open_text(uri: str) -> str:
    return _decode(_read_bytes(uri), uri)


def _records(uri: str) -> Iterator[tuple[str, Any]]:
    """(location, record) pairs; location is file:line for JSONL, file:#index otherwise."""
    lower = uri.lower().rstrip("/")
    if lower.endswith(".jsonl"):
        # Binary lines end at b"\n" only, unlike str.splitlines(): JSON strings may hold raw
        # U+2028, U+0085, \x0c, which splitlines() would break a record at; "\r" of CRLF files is
        # JSON whitespace. Streamed, so a large seed file is never in memory whole.
        # Decoded line by line, so one line of bad bytes is one bad record, not a lost file.
        for number, raw_line in _lines(uri):
            try:
                line = _decode(raw_line, uri, number)
            except SeedError as error:
                yield f"{uri}:{number}", error
                continue
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
        if "://" not in uri and not Path(uri).exists():
            raise SeedError(f"{uri}: seed file not found")
        fs, path = _resolve(uri)
        index = 0
        with fs.open_input_file(path) as handle:  # row groups in batches, never the whole file at once
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=COLUMN_BATCH):
                for record in batch.to_pylist():
                    yield f"{uri}:#{index}", record
                    index += 1
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


def _record_id(record: Any, where: str, index: int):
    """The record's id (or `<file>#<index>` where it has none), after checking it is an object;
    a record the reader could not decode arrives as its SeedError and is raised here."""
    if isinstance(record, SeedError):
        raise record
    if not isinstance(record, dict):
        raise SeedError(f"{where}: a record must be an object, got {type(record).__name__}")
    return record.get("id", f"{Path(where.rsplit(':', 1)[0]).name}#{index}")


def _normalise(record: Any, where: str, index: int) -> Seed:
    seed_id = _record_id(record, where, index)
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
    return _load(paths, _normalise, "seed", on_bad_record, limit)


def load_seed_table(paths: tuple[str, ...] | list[str], on_bad_record: str = "error", limit: int | None = None) -> tuple[pa.Table, list[BadRecord]]:
    """load_seeds as one columnar table (SEED_SCHEMA), built while reading: no Seed objects kept."""
    batches: list[pa.Table] = []
    pending: list[Seed] = []

    def keep(seed: Seed) -> None:
        pending.append(seed)
        if len(pending) >= COLUMN_BATCH:
            batches.append(seeds_table(pending))
            pending.clear()

    _, bad = _load(paths, _normalise, "seed", on_bad_record, limit, keep)
    batches.append(seeds_table(pending))
    return pa.concat_tables(batches).combine_chunks(), bad


def _load(paths, normalise, kind: str, on_bad_record: str, limit: int | None, keep=None) -> tuple[list, list[BadRecord]]:
    """Records of every path through `normalise`, with ids unique across all files; `keep` (if
    given) receives each good item instead of the returned list."""
    items: list = []
    bad: list[BadRecord] = []
    count = 0
    seen: dict[str, str] = {}
    bad_ids: set[str] = set()
    for uri in paths:
        for index, (where, record) in enumerate(_records(str(uri))):
            try:
                item = normalise(record, where, index)
                if item.id in seen:
                    raise SeedError(f"{where}: field 'id': duplicate {kind} id '{item.id}' (first at {seen[item.id]})")
            except SeedError as error:
                if on_bad_record != "skip":
                    raise
                fallback = record.get("id") if isinstance(record, dict) else None
                # A bad record becomes a row with this id, so it must be unique among bad records too.
                unusable = fallback is None or not str(fallback).strip() or str(fallback) in seen or str(fallback) in bad_ids
                bad_id = f"bad:{where}" if unusable else str(fallback)
                bad_ids.add(bad_id)
                bad.append(BadRecord(bad_id, where, make_reason("bad_record", f" {str(error).removeprefix(where + ': ')}")))
                continue
            seen[item.id] = where
            count += 1
            if keep is None:
                items.append(item)
            else:
                keep(item)
            if limit is not None and count >= limit:
                return items, bad
    if not count and not bad:
        raise SeedError(f"no {kind} records found in {list(paths)}")
    return items, bad


@dataclass(frozen=True)
class Text:
    """A natural target-language text (X-Instruction's input): the response a pair is built around."""

    id: str
    lang: str
    text: str
    source: str


def _normalise_text(record: Any, where: str, index: int) -> Text:
    from engine.languages import get_language

    text_id = _record_id(record, where, index)
    text = _text_field(record, "text", where, required=True)
    lang = _text_field(record, "lang", where, required=True).strip()
    try:
        get_language(lang)
    except ValueError as error:
        raise SeedError(f"{where}: field 'lang': {error}") from None
    return Text(str(text_id), lang, text, where)


def load_texts(paths: tuple[str, ...] | list[str], on_bad_record: str = "error", limit: int | None = None) -> tuple[list[Text], list[BadRecord]]:
    """Read target-language texts ({id, lang, text}); the same formats and bad-record rules as seeds."""
    return _load(paths, _normalise_text, "text", on_bad_record, limit)
