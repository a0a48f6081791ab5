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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
# Small per-seed columns a reader may compute beside the fields (actors/dataflow/seeds.py): the seed
# language check's verdict (engine.text.checks.seed_language_reason) and the exact-dedup key
# (engine.selection.dedup.text_key of instruction and input).
LANGUAGE_VERDICT = "langid_verdict"
DEDUP_KEY = "dedup_key"


def task_texts(seeds: pa.Table) -> list[str]:
    """What seed selection embeds of each seed (a table with instruction and input columns): the
    task, its instruction and input, not the answer."""
    return [
        f"{i}\n{x}".strip() for i, x in zip(seeds.column("instruction").to_pylist(), seeds.column("input").to_pylist())
    ]


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


def _decode(raw: bytes, uri: str, first_line: int = 1) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = first_line + raw[: error.start].count(b"\n")
        raise SeedError(f"{uri}:{line}: not valid UTF-8 (byte {error.start})") from None


def _open_text(uri: str) -> str:
    return _decode(_read_bytes(uri), uri)


def _records(uri: str) -> Iterator[tuple[str, Any]]:
    """(location, record) pairs of one file, a record that cannot be decoded as its SeedError;
    location is file:line for JSONL, file:#index otherwise. JSONL and Parquet are read as the
    pieces are (the whole file as one piece): one decoding loop for both readers."""
    kind = _kind(uri)
    if kind in ("jsonl", "parquet"):
        for piece in plan_pieces([uri], piece_bytes=WHOLE_FILE):
            for where, record, _, _ in _piece_records(piece):
                yield where, record
    elif kind == "json":
        try:
            data = json.loads(_open_text(uri))
        except json.JSONDecodeError as error:
            raise SeedError(f"{uri}:{error.lineno}: malformed JSON ({error.msg})") from None
        if not isinstance(data, list):
            raise SeedError(f"{uri}: a .json seed file must hold a list of records")
        for index, record in enumerate(data):
            yield f"{uri}:#{index}", record
    else:
        from datasets import load_from_disk  # heavy: only for this format

        dataset = load_from_disk(uri)
        if hasattr(dataset, "keys"):  # a DatasetDict: take the train split
            dataset = dataset["train"] if "train" in dataset else dataset[next(iter(dataset.keys()))]
        for index, record in enumerate(dataset):
            yield f"{uri}:#{index}", record


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
        raise SeedError(
            f"{where}: field 'messages' must hold one user turn then one assistant turn (got roles {roles})"
        )
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


def load_seed_table(
    paths: tuple[str, ...] | list[str],
    on_bad_record: str = "error",
    limit: int | None = None,
    piece_bytes: int | None = None,
) -> tuple[pa.Table, list[BadRecord]]:
    """Read every path into one columnar table (SEED_SCHEMA) and the bad records, in this process:
    the same pieces, checks and resolution as the job's Ray Data reader (actors/dataflow/seeds.py),
    run one piece after another. Raises SeedError unless on_bad_record == 'skip'."""
    pieces = plan_pieces(paths, piece_bytes)
    pieces = number_pieces(pieces, [count_piece(piece) if piece.kind == "jsonl" else (0, 0) for piece in pieces])
    checked = [table for piece in pieces for table in validate_piece(piece)]
    meta = pa.concat_tables(checked).sort_by("ord") if checked else VALIDATED_SCHEMA.empty_table()
    kept, bad = resolve_records(meta, on_bad_record, limit, paths, lambda row: meta.column("source")[row].as_py())
    return meta.take(pa.array(kept, pa.int64())).select(SEED_SCHEMA.names).combine_chunks(), bad


# --- Reading in pieces -------------------------------------------------------------------------
# A seed file is split into pieces that are read and checked independently (by Ray Data workers
# in the job): byte ranges of a JSONL file, row groups of a Parquet file, a whole JSON or saved
# Hugging Face dataset. Every record gets an order key (`ord`: file number and line or index), so
# the records' order, hence ids without an `id` field, duplicates and `limit`, do not depend on
# which piece finished first. resolve_records then decides, over small columns only (ord, id,
# error), which records are kept and which are bad, with exactly the sequential rules of _load.

PIECE_BYTES = 32 << 20  # a JSONL piece: big enough that per-piece costs vanish, small enough to spread
WHOLE_FILE = 1 << 62  # piece_bytes that makes a JSONL file one piece
FILE_SHIFT = 40  # ord = file number << FILE_SHIFT | line number (JSONL) or record index + 1
VALIDATED_SCHEMA = pa.schema(
    [
        ("ord", pa.int64()),
        *((name, pa.string()) for name in SEED_SCHEMA.names),
        ("error", pa.string()),
        ("fallback", pa.string()),
        ("named", pa.bool_()),
        ("fatal", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class SeedPiece:
    """One independently readable part of a seed file. JSONL: the lines that start in bytes
    [start, stop), the first of them line `first_line` and record `first_index` of the file."""

    uri: str
    kind: str  # jsonl, json, parquet, hf
    file: int  # position of the file in the paths read
    start: int = 0  # jsonl: byte offset; parquet: row group
    stop: int = 0  # jsonl: byte end
    first_line: int = 1
    first_index: int = 0  # parquet: the row group's first row


def _kind(uri: str) -> str:
    lower = uri.lower().rstrip("/")
    for suffix in ("jsonl", "json", "parquet"):
        if lower.endswith("." + suffix):
            return suffix
    if (
        "://" not in uri
        and Path(uri).is_dir()
        and any((Path(uri) / name).exists() for name in ("dataset_info.json", "dataset_dict.json"))
    ):
        return "hf"
    raise SeedError(f"{uri}: unknown seed format (use .jsonl, .json, .parquet or a saved Hugging Face dataset)")


def _file_size(uri: str) -> int:
    fs, path = _resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise SeedError(f"{uri}: seed file not found")
    return info.size


def plan_pieces(paths, piece_bytes: int | None = None) -> list[SeedPiece]:
    """The pieces of every path, from file metadata only (sizes, Parquet footers); a missing file
    or an unknown format is a SeedError here, before any record is read."""
    step = max(1, piece_bytes or PIECE_BYTES)
    pieces: list[SeedPiece] = []
    for number, raw_uri in enumerate(paths):
        uri = str(raw_uri)
        kind = _kind(uri)
        if kind == "jsonl":
            size = _file_size(uri)
            bounds = list(range(0, size, step)) or [0]
            pieces += [SeedPiece(uri, kind, number, start, min(start + step, size)) for start in bounds]
        elif kind == "parquet":
            _file_size(uri)
            fs, path = _resolve(uri)
            with fs.open_input_file(path) as handle:
                meta = pq.ParquetFile(handle).metadata
            first = 0
            for group in range(meta.num_row_groups):
                pieces.append(SeedPiece(uri, kind, number, group, 0, 1, first))
                first += meta.row_group(group).num_rows
            if not meta.num_row_groups:
                pieces.append(SeedPiece(uri, kind, number, -1))
        else:
            if kind == "json":
                _file_size(uri)
            pieces.append(SeedPiece(uri, kind, number))
    return pieces


def _piece_lines(piece: SeedPiece) -> Iterator[tuple[int, bytes]]:
    """(line number counted from the piece's first line, raw bytes without the newline) of the
    lines that start inside the piece's byte range.

    Binary lines end at b"\\n" only, unlike str.splitlines(): JSON strings may hold raw U+2028,
    U+0085, \\x0c, which splitlines() would break a record at; "\\r" of CRLF files is JSON
    whitespace. Streamed, so a large seed file is never in memory whole, and decoded line by line
    (_piece_records), so one line of bad bytes is one bad record, not a lost file."""
    fs, path = _resolve(piece.uri)
    try:
        handle = fs.open_input_file(path)
    except FileNotFoundError:
        raise SeedError(f"{piece.uri}: seed file not found") from None
    with handle:
        position = piece.start
        if piece.start:
            handle.seek(piece.start - 1)
        with io.BufferedReader(handle, READ_BUFFER) as reader:
            if piece.start:
                position += len(reader.readline()) - 1  # the rest of the line that started before
            number = piece.first_line
            while position < piece.stop:
                raw_line = reader.readline()
                if not raw_line:
                    break
                position += len(raw_line)
                if number == 1:
                    raw_line = raw_line.removeprefix(codecs.BOM_UTF8)
                yield number, raw_line.removesuffix(b"\n")
                number += 1


def _is_blank(raw_line: bytes) -> bool:
    try:
        return not raw_line.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False  # a bad record, not a blank line


def count_piece(piece: SeedPiece) -> tuple[int, int]:
    """(lines, records) that start in a JSONL piece: what number_pieces needs to number the next."""
    lines = records = 0
    for _, raw_line in _piece_lines(piece):
        lines += 1
        records += not _is_blank(raw_line)
    return lines, records


def number_pieces(pieces: list[SeedPiece], counts: list[tuple[int, int]]) -> list[SeedPiece]:
    """The pieces with each JSONL piece's first line and record index, from count_piece of the
    pieces before it in the same file."""
    numbered, line, index, current = [], 1, 0, None
    for piece, (lines, records) in zip(pieces, counts):
        if piece.file != current:
            line, index, current = 1, 0, piece.file
        if piece.kind == "jsonl":
            piece = SeedPiece(piece.uri, piece.kind, piece.file, piece.start, piece.stop, line, index)
            line, index = line + lines, index + records
        numbered.append(piece)
    return numbered


def _piece_records(piece: SeedPiece) -> Iterator[tuple[str, Any, int, int]]:
    """(location, record or its SeedError, index in the file, order within the file)."""
    uri = piece.uri
    if piece.kind == "jsonl":
        index = piece.first_index
        for number, raw_line in _piece_lines(piece):
            where = f"{uri}:{number}"
            try:
                line = _decode(raw_line, uri, number)
            except SeedError as error:
                yield where, error, index, number
                index += 1
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                record = SeedError(f"{where}: malformed JSON ({error.msg} at column {error.colno})")
            yield where, record, index, number
            index += 1
    elif piece.kind == "parquet":
        if piece.start < 0:
            return
        fs, path = _resolve(uri)
        index = piece.first_index
        with fs.open_input_file(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=COLUMN_BATCH, row_groups=[piece.start]):
                for record in batch.to_pylist():
                    yield f"{uri}:#{index}", record, index, index + 1
                    index += 1
    else:  # a JSON list or a saved Hugging Face dataset: read whole, by one worker
        for index, (where, record) in enumerate(_records(uri)):
            yield where, record, index, index + 1


def validate_piece(piece: SeedPiece, batch_rows: int = COLUMN_BATCH) -> Iterator[pa.Table]:
    """The piece's records checked, as VALIDATED_SCHEMA tables of at most batch_rows: a good
    record has its fields and a null error; a bad one its message (file, line, field). A file
    that cannot be read at all (a malformed .json) is one row with `fatal` set."""
    columns: dict[str, list] = {name: [] for name in VALIDATED_SCHEMA.names}
    base = piece.file << FILE_SHIFT

    def add(
        ord_: int, seed: Seed | None, where: str, error: str | None, fallback, named: bool, fatal: bool = False
    ) -> None:
        columns["ord"].append(base | ord_)
        for name in SEED_SCHEMA.names:
            columns[name].append(getattr(seed, name) if seed else None)
        columns["source"][-1] = where
        columns["error"].append(error)
        columns["fallback"].append(fallback)
        columns["named"].append(named)
        columns["fatal"].append(fatal)

    def flush() -> pa.Table:
        table = pa.table(columns, schema=VALIDATED_SCHEMA)
        for values in columns.values():
            values.clear()
        return table

    records = _piece_records(piece)
    while True:
        try:
            item = next(records, None)
        except SeedError as error:  # the file as a whole: nothing of it can be read
            add(0, None, piece.uri, str(error), None, False, fatal=True)
            break
        if item is None:
            break
        where, record, index, order = item
        named = isinstance(record, dict) and record.get("id") is not None
        try:
            seed = _normalise(record, where, index)
        except SeedError as error:
            add(order, None, where, str(error), str(record["id"]) if named else None, named)
        else:
            add(order, seed, where, None, None, named)
        if len(columns["ord"]) >= batch_rows:
            yield flush()
    if columns["ord"]:
        yield flush()


def resolve_records(
    meta: pa.Table, on_bad_record: str, limit: int | None, paths, source_of, kind: str = "seed"
) -> tuple[np.ndarray, list[BadRecord]]:
    """Which checked records are kept: (their rows in `meta`, the bad records), by _load's rules
    in file order: a repeated id is a bad record naming the first; `limit` good records end the
    read; a bad record raises SeedError unless on_bad_record == 'skip' (a fatal one always).

    `meta`: VALIDATED_SCHEMA's ord, id, error, source (needed only on bad rows), fallback, named
    and fatal columns, sorted by ord. `source_of(row)` gives the source of a good row (a duplicate
    and the first copy it names); it is called only for duplicates."""
    rows = meta.num_rows
    ok = pc.is_null(meta.column("error")).to_numpy(zero_copy_only=False) if rows else np.zeros(0, bool)
    good = np.flatnonzero(ok)
    ids = meta.column("id")
    first_of = np.zeros(0, np.int64)
    is_first = np.ones(len(good), bool)
    if len(good):
        good_ids = ids.take(pa.array(good, pa.int64()))
        groups = pc.index_in(good_ids, value_set=pc.unique(good_ids)).to_numpy(zero_copy_only=False)
        _, first = np.unique(groups, return_index=True)
        is_first[:] = False
        is_first[first] = True
        first_of = good[first[groups]]  # per good row: the row of the first good record with its id
    kept = good[is_first]
    cut = rows
    if limit is not None and len(kept) >= limit:
        cut = int(kept[limit - 1]) + 1
        kept = kept[:limit]
    duplicate_first = dict(zip(good[~is_first].tolist(), first_of[~is_first].tolist()))
    bad_rows = sorted(
        [int(row) for row in np.flatnonzero(~ok) if row < cut] + [row for row in duplicate_first if row < cut]
    )
    if not bad_rows:
        if not len(kept):
            raise SeedError(f"no {kind} records found in {list(paths)}")
        return kept, []
    columns = {
        name: meta.column(name).take(pa.array(bad_rows, pa.int64())).to_pylist()
        for name in ("id", "error", "source", "fallback", "named", "fatal")
    }
    fallbacks = [
        row_id if row in duplicate_first and named else fallback
        for row, row_id, fallback, named in zip(bad_rows, columns["id"], columns["fallback"], columns["named"])
    ]
    kept_ids = ids.take(pa.array(kept, pa.int64())) if len(kept) else pa.array([], pa.string())
    at = pc.index_in(pa.array(fallbacks, pa.string()), value_set=kept_ids).to_pylist()
    bad: list[BadRecord] = []
    bad_ids: set[str] = set()
    for number, row in enumerate(bad_rows):
        # a copy's row passed its checks
        where = source_of(row) if row in duplicate_first else columns["source"][number]
        if row in duplicate_first:
            first = source_of(duplicate_first[row])
            message = f"{where}: field 'id': duplicate {kind} id '{columns['id'][number]}' (first at {first})"
        else:
            message = columns["error"][number]
        if columns["fatal"][number] or on_bad_record != "skip":
            raise SeedError(message)
        fallback = fallbacks[number]
        seen_before = at[number] is not None and kept[at[number]] < row
        unusable = fallback is None or not fallback.strip() or seen_before or fallback in bad_ids
        bad_id = f"bad:{where}" if unusable else fallback
        bad_ids.add(bad_id)
        bad.append(BadRecord(bad_id, where, make_reason("bad_record", f" {message.removeprefix(where + ': ')}")))
    return kept, bad


def _load(paths, normalise, kind: str, on_bad_record: str, limit: int | None) -> tuple[list, list[BadRecord]]:
    """Records of every path through `normalise`, with ids unique across all files."""
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
                unusable = (
                    fallback is None or not str(fallback).strip() or str(fallback) in seen or str(fallback) in bad_ids
                )
                bad_id = f"bad:{where}" if unusable else str(fallback)
                bad_ids.add(bad_id)
                bad.append(
                    BadRecord(bad_id, where, make_reason("bad_record", f" {str(error).removeprefix(where + ': ')}"))
                )
                continue
            seen[item.id] = where
            count += 1
            items.append(item)
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


def load_texts(
    paths: tuple[str, ...] | list[str], on_bad_record: str = "error", limit: int | None = None
) -> tuple[list[Text], list[BadRecord]]:
    """Read target-language texts ({id, lang, text}); the same formats and bad-record rules as seeds."""
    return _load(paths, _normalise_text, "text", on_bad_record, limit)
