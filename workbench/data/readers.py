"""Read each file type into records that remember where they came from.

A reader never gives up on the first broken row: a line that is not JSON or
not UTF-8 becomes a record with an ``error`` and the reader carries on, so the
loader can report every problem at once. Each record keeps its source text
and, for JSONL, CSV and JSON, the exact bytes it came from, so a later rewrite
can put an unreadable row back as it was. Bytes that are not UTF-8 are read
with the ``surrogateescape`` handler (each becomes a lone surrogate U+DC80 to
U+DCFF) and go back to bytes the same way.

Where a syntax error stops the reading (JSON, CSV), the rest of the file
becomes one record marked ``tail``: it is reported, and a rewrite puts it back,
as it was, at the end.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.formats import type_name
from workbench.errors import DataError

_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_LIST_KEYS = ("data", "train", "rows", "examples", "records", "items", "instances")
_MESSAGE_FIELDS = frozenset({"messages", "conversations", "prompt", "completion", "chosen", "rejected"})
_ESCAPED = re.compile("[\udc80-\udcff]")  # undecodable bytes, kept by the surrogateescape handler
_BOM = "\ufeff"
_WHITESPACE = re.compile(r"\s*")


@dataclass
class Record:
    """One row as read, before its shape is checked."""

    index: int
    """0-based position among the source's rows (blank lines not counted)."""
    line: int | None
    """1-based physical line where the row starts; None where rows have no lines."""
    value: Any
    """The parsed row; None when ``error`` is set."""
    raw: str
    """The row's source text, for showing; for Parquet and datasets, the row as JSON."""
    raw_bytes: bytes | None = None
    """The exact source bytes (JSONL line, CSV record's lines, JSON item), line ending included; None for
    Parquet and datasets. For a ``tail``, the rest of the file."""
    error: str | None = None
    """Why the row could not be read."""
    tail: bool = False
    """The reading stopped here: ``raw_bytes`` is everything from here to the end of the file."""


@dataclass
class Read:
    """What a reader found: the file type it read and the records."""

    file_type: str
    unit: str
    """How rows are located in messages: ``line``, ``item`` or ``row``."""
    records: list[Record]
    notes: list[str] = field(default_factory=list)
    suffix: str = ""
    """Added to the file name in messages, e.g. ``[train]`` for a split of a DatasetDict."""
    frame: tuple[bytes, bytes] | None = None
    """JSON arrays: the bytes up to and including the ``[`` of the rows, and those after the last item read
    (the closing ``]``, an enclosing object's rest, or a ``tail``); a rewrite puts the rows between them."""
    columns: list[str] | None = None
    """CSV: the header's column names, in order."""


def looks_like_dataset(path: Path, sniff: int = 4096) -> bool:
    """Whether a file is worth offering as a dataset, from its name and first bytes only.

    JSONL, CSV and Parquet files are; a ``.json`` file is when it holds an array, JSONL, or an
    object with rows under a usual key (``data``, ``train``...). App state, tokenizer and model
    configs (single objects) are not.
    """
    file_type = file_type_for_name(path)
    if file_type != "json":
        return file_type is not None
    try:
        with open(path, "rb") as fh:
            head = fh.read(sniff).decode("utf-8", "replace")
    except OSError:
        return False
    text = head.lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        return True
    first_line = text.split("\n", 1)[0]
    try:
        if isinstance(json.loads(first_line), dict) and "\n" in text.strip():
            return True  # JSONL named .json
    except ValueError:
        pass
    return text.startswith("{") and any(re.search(rf'"{key}"\s*:\s*\[', text) for key in _LIST_KEYS)


def file_type_for_name(path: Path) -> str | None:
    """The file type a name implies (``.jsonl`` -> ``jsonl``), for files yet to be written; None if unknown."""
    return _EXTENSIONS.get(path.suffix.lower())


def file_type_of(path: Path) -> str:
    """The reader to use, from the extension (a directory is a datasets dir)."""
    if path.is_dir():
        if not ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            raise DataError(
                f"{path}: a directory, but not one saved by datasets' save_to_disk (no dataset_dict.json or state.json)"
            )
        return "datasets"
    if not path.exists():
        raise DataError(f"{path}: no such file")
    file_type = _EXTENSIONS.get(path.suffix.lower())
    if file_type is None:
        known = ", ".join(sorted(_EXTENSIONS))
        suffix = path.suffix or "(no extension)"
        raise DataError(f"{path}: unknown file type {suffix!r}; expected {known} or a datasets directory")
    return file_type


def read(path: Path, file_type: str, split: str = "train") -> Read:
    """Read ``path`` as ``file_type``; ``split`` picks a split of a DatasetDict."""
    if file_type == "jsonl":
        return Read("jsonl", "line", read_jsonl_lines(io.BytesIO(path.read_bytes())))
    if file_type == "json":
        return _read_json(path)
    if file_type == "csv":
        return _read_csv(path)
    if file_type == "parquet":
        return Read("parquet", "row", _read_parquet(path))
    if file_type == "datasets":
        return _read_datasets(path, split)
    raise DataError(f"{path}: unknown file type {file_type!r}")


def read_jsonl_lines(lines: Iterable[bytes]) -> list[Record]:
    """One record per non-blank line; splitting on ``\\n`` only keeps each line's bytes exact."""
    records: list[Record] = []
    for number, raw_bytes in enumerate(lines, 1):
        data = raw_bytes[len(codecs.BOM_UTF8) :] if number == 1 and raw_bytes.startswith(codecs.BOM_UTF8) else raw_bytes
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            shown = data.decode("utf-8", "replace").rstrip("\r\n")
            why = f"not valid UTF-8 (byte 0x{data[err.start]:02x} at column {err.start + 1}); save the file as UTF-8"
            records.append(Record(len(records), number, None, shown, raw_bytes, why))
            continue
        if not text.strip():
            continue
        value: Any = None
        error: str | None = None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            error = f"not valid JSON: {err.msg} at column {err.colno}"
        if error is None and not isinstance(value, dict):
            value, error = None, f"expected a JSON object on each line, got {type_name(value)}"
        records.append(Record(len(records), number, value, text.rstrip("\r\n"), raw_bytes, error))
    return records


def _read_json(path: Path) -> Read:
    """A JSON array, an object holding the rows under a key, or JSONL named .json."""
    data = path.read_bytes()
    text = data.decode("utf-8-sig", "surrogateescape")
    start = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if start == len(text):
        return Read("json", "item", [])
    if text[start] == "[":
        return _json_rows(text, start)
    if _looks_like_jsonl(text):
        note = f"{path.name} holds one JSON object per line; read it as JSONL"
        return Read("jsonl", "line", read_jsonl_lines(io.BytesIO(data)), [note])
    try:
        top = json.loads(text)
    except json.JSONDecodeError as err:
        error = f"not valid JSON: {err.msg} (line {err.lineno} column {err.colno})"
        return Read("json", "item", [Record(0, err.lineno, None, _line_at(text, err.lineno), None, error)])
    if not isinstance(top, dict):
        raise DataError(f"{path}: expected a JSON array of objects, got {type_name(top)}")
    key = _rows_key(top, path)
    if key is None:  # a single row
        line = text.count("\n", 0, start) + 1
        return Read("json", "item", [_checked(Record(0, line, top, text.strip()), text)])
    found = _json_rows(text, _member_start(text, start, key), nested=True)
    found.notes.append(f"read the rows under the key {key!r}")
    return found


def _json_rows(text: str, start: int, nested: bool = False) -> Read:
    """The rows of the array at ``start``, and the text around them (``Read.frame``)."""
    records, end = _walk_array(text, start, nested)
    bom = _BOM if text.startswith(_BOM) else ""
    frame = (_bytes(bom + text[: start + 1]), _bytes(text[end:]))
    return Read("json", "item", records, frame=frame)


def _member_start(text: str, start: int, key: str) -> int:
    """Where the value of ``key`` starts in the object at ``start`` (the last one, as ``json.loads`` keeps)."""
    decoder = json.JSONDecoder()
    found = -1
    pos = _WHITESPACE.match(text, start + 1).end()  # type: ignore[union-attr]
    while not text.startswith("}", pos):
        name, pos = decoder.raw_decode(text, pos)
        pos = _WHITESPACE.match(text, pos).end() + 1  # type: ignore[union-attr]  # past the ':'
        pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
        if name == key:
            found = pos
        _, pos = decoder.raw_decode(text, pos)
        pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    return found


def _walk_array(text: str, start: int, nested: bool = False) -> tuple[list[Record], int]:
    """Decode items one by one, so each keeps its line and source text; also where the last item ended.

    A syntax error ends the walk: JSON gives no safe point to resume from, so
    the error record says the rest of the file was not read, and keeps it
    (from the end of the last item read) as a ``tail``.
    """
    newlines = [m.start() for m in re.finditer("\n", text)]
    line_of = lambda pos: bisect.bisect_left(newlines, pos) + 1  # noqa: E731
    decoder = json.JSONDecoder()
    records: list[Record] = []
    pos = last = start + 1

    def stop(at: int, message: str) -> tuple[list[Record], int]:
        line = line_of(at)
        shown = _line_at(text, line)
        records.append(Record(len(records), line, None, shown, _bytes(text[last:]), message, tail=True))
        return records, last

    while True:
        pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):
            break
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            line = line_of(err.pos)
            return stop(
                err.pos,
                f"not valid JSON: {err.msg} (line {line} column {err.colno}); the rest of the file was not read",
            )
        source = text[pos:end]
        records.append(_checked(Record(len(records), line_of(pos), item, source, _bytes(source)), source))
        last = end
        pos = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("]", pos):
            return stop(pos, "not valid JSON: expected ',' or ']' after an item; the rest of the file was not read")
    rest = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if rest < len(text) and not nested:  # (what follows a nested array, json.loads has already accepted)
        return stop(rest, "not valid JSON: extra data after the array")
    return records, last


def _looks_like_jsonl(text: str) -> bool:
    """JSONL named .json: its first line alone is a whole object and more lines follow."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except json.JSONDecodeError:
        return False


def _rows_key(top: dict[str, Any], path: Path) -> str | None:
    """The key holding the rows: a usual name, or the only list of objects."""
    lists = [k for k, v in top.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    for key in _LIST_KEYS:
        if key in lists:
            return key
    if len(lists) == 1:
        return lists[0]
    if len(lists) > 1:
        keys = ", ".join(lists)
        raise DataError(f"{path}: several keys hold lists of rows ({keys}); save one of them as its own file")
    return None


def _read_csv(path: Path) -> Read:
    """CSV with a header row; cells that hold JSON message lists are parsed.

    A blank line, or one whose cells are all empty, is not a row (cells of spaces are text, so they make one).
    A ``csv.Error`` (a stray carriage return, a field over the size limit) stops the reading: the rest of the
    file, from the record it is in, is kept as a ``tail``.
    """
    text = path.read_bytes().decode("utf-8-sig", "surrogateescape")
    lines = re.findall(r"[^\n]*\n|[^\n]+$", text)
    reader = csv.reader(lines)
    records: list[Record] = []
    header: list[str] = []
    last = 0
    try:
        header = [name.strip() for name in next(reader, [])]
        last = reader.line_num
        for cells in reader:
            first, last = last + 1, reader.line_num
            source = "".join(lines[first - 1 : last])
            raw = source.rstrip("\r\n")
            if not any(cells) or not raw.strip():
                continue
            if len(cells) != len(header):
                error = f"expected {len(header)} columns ({', '.join(header)}), got {len(cells)}"
                records.append(_shown(Record(len(records), first, None, raw, _bytes(source), error)))
                continue
            row = {k: v for k, c in zip(header, cells) if (v := csv_value(k, c)) is not None}
            record = Record(len(records), first, row, raw, _bytes(source))
            records.append(_checked(record, "".join(header) + raw))  # the header's names are in the row too
    except csv.Error as err:
        line = reader.line_num
        error = f"not valid CSV: {err}; the rest of the file (from line {last + 1}) was not read"
        tail = _bytes("".join(lines[last:]))
        records.append(Record(len(records), line, None, _line_at(text, line), tail, error, tail=True))
    return Read("csv", "line", records, columns=header)


def csv_value(key: str, cell: str) -> Any:
    """CSV has only strings: empty is absent, true/false is a label, JSON lists are messages."""
    if cell == "":
        return None
    if key == "label" and cell.strip().lower() in ("true", "false", "1", "0"):
        return cell.strip().lower() in ("true", "1")
    if key in _MESSAGE_FIELDS and cell.lstrip().startswith("["):
        try:
            value = json.loads(cell)
        except json.JSONDecodeError:
            return cell
        return value if isinstance(value, list) else cell
    return cell


def _read_parquet(path: Path) -> list[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: cannot read as Parquet: {err}") from err
    return [Record(i, None, row, _dump(row)) for i, row in enumerate(rows)]


def _read_datasets(path: Path, split: str) -> Read:
    from datasets import DatasetDict, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot load the saved dataset: {err}") from err
    suffix = ""
    if isinstance(dataset, DatasetDict):
        if split not in dataset:
            raise DataError(f"{path}: no split {split!r}; the dataset has: {', '.join(dataset) or 'no splits'}")
        dataset, suffix = dataset[split], f"[{split}]"
    records = [Record(i, None, row, _dump(row)) for i, row in enumerate(dataset.to_list())]
    return Read("datasets", "row", records, suffix=suffix)


def _checked(record: Record, source: str) -> Record:
    """Flag a row whose source text holds bytes that were not UTF-8 (read with surrogateescape).

    The source is what is looked at, not the parsed value: a JSON escape such as ``"\\udc80"`` in a
    valid UTF-8 file is a lone surrogate in the value, but nothing is wrong with the file.
    """
    if _ESCAPED.search(source):
        record.value, record.error = None, "not valid UTF-8; save the file as UTF-8"
        _shown(record)
    return record


def _shown(record: Record) -> Record:
    """Undecodable bytes shown as U+FFFD in ``raw`` (``raw_bytes`` keeps them)."""
    record.raw = record.raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return record


def _bytes(text: str) -> bytes:
    """Text read with surrogateescape back to the exact bytes it came from."""
    return text.encode("utf-8", "surrogateescape")


def _line_at(text: str, line: int) -> str:
    lines = text.split("\n")
    shown = lines[line - 1] if 0 < line <= len(lines) else ""
    return shown.rstrip("\r").encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
