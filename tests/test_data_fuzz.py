"""Fuzzing the dataset store: open, edit, save and reopen malformed files of all five types.

What is checked (DESIGN.md, reliability promises), for JSONL, JSON, CSV, Parquet and a ``datasets`` directory:

* no crash: opening either works or refuses with a DataError and changes nothing; an edit either applies or
  is refused with a DataError; a save either writes the file or refuses with a DataError naming the line (or
  row) and the field, and then the file is untouched and the journal gives back every edit on reopen;
* nothing lost: every good row of the input is an example at open; after a save and a reopen, every example
  is there in order with its edits, review status and note, and every line that could not be read is there
  byte for byte (a line ending is added where the file's last line had none);
* a ``datasets`` directory cannot be saved in place: the refusal is clean, the journal keeps the edits, and
  an export holds them.

The fast tests run a few hundred cases; the slow one (``-m slow``) runs 10,000.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.data.store import STATUSES, DatasetSession, open_dataset
from workbench.errors import DataError

FILE_TYPES = ["jsonl", "json", "csv", "parquet", "datasets"]
FAST = {"jsonl": 90, "json": 90, "csv": 90, "parquet": 40, "datasets": 15}  # 325 cases
SLOW = {"jsonl": 2700, "json": 2700, "csv": 2800, "parquet": 1300, "datasets": 500}  # 10,000 cases
assert sum(SLOW.values()) >= 10_000

NAMES = {"jsonl": "d.jsonl", "json": "d.json", "csv": "d.csv", "parquet": "d.parquet", "datasets": "ds"}
# Where a refused save must point: ``d.csv:12: field 'prompt'``, ``d.parquet: row 3: field ...``, a new example.
REFUSAL = re.compile(r"(\.\w+:\d+|: row \d+|: new example \d+): field '")

ODD = list("\r\n,\"'\x00\ufeff\u2028[]{}:\\é😀 \t")  # characters that have broken readers and writers
SURROGATES = ["\ud800", "\udbff", "\udc80", "\udcff", "\udfff"]
BAD_BYTES = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\xf0\x9f"]
MARK = "~~BAD~~"  # replaced by bytes that are not UTF-8 once a line is encoded (JSON leaves it as it is)

plain_text = st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from(ODD)), max_size=10)
any_text = st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from(ODD + SURROGATES)), max_size=10)
bad_bytes = st.sampled_from(BAD_BYTES)
endings = st.sampled_from([b"\n", b"\r\n"])


def _has_surrogate(value: Any) -> bool:
    return bool(re.search("[\ud800-\udfff]", json.dumps(value, ensure_ascii=False)))


def _dumps(row: Any, ascii_: bool, indent: int | None = None) -> bytes:
    return json.dumps(row, ensure_ascii=ascii_ or _has_surrogate(row), indent=indent).encode()


def _mark(text: str, at: int) -> str:
    at = at % (len(text) + 1)
    return text[:at] + MARK + text[at:]


def _unmark(data: bytes, bad: bytes) -> bytes:
    return data.replace(MARK.encode(), bad)


# --- JSON rows (JSONL and JSON) ----------------------------------------------

good_row = st.fixed_dictionaries(
    {"prompt": any_text, "completion": any_text},
    optional={"meta": st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2))},
)
wrong_type_row = st.fixed_dictionaries(
    {
        "prompt": st.one_of(st.integers(), st.booleans(), st.dictionaries(plain_text, st.integers(), max_size=1)),
        "completion": any_text,
    }
)
other_row = st.fixed_dictionaries({"foo": st.integers()})
non_object = st.sampled_from([b"3", b'"x"', b"[1]", b"null", b"[]", b"true"])


@st.composite
def json_item(draw: st.DrawFn, good: bool = False) -> tuple[str, Any, bytes]:
    """(kind, row, bytes of one JSON value); ``bad-utf8`` items hold bytes that are not UTF-8 inside a string."""
    kinds = ["good", "good", "good", "wrong-type", "other", "non-object", "bad-utf8"]
    kind = "good" if good else draw(st.sampled_from(kinds))
    ascii_ = draw(st.booleans())
    indent = draw(st.sampled_from([None, None, 2]))
    if kind == "non-object":
        return kind, None, draw(non_object)
    if kind == "bad-utf8":
        row = draw(good_row)
        row["prompt"] = _mark(row["prompt"], draw(st.integers(0, 20)))
        return kind, None, _unmark(_dumps(row, ascii_, indent), draw(bad_bytes))
    row = draw({"good": good_row, "wrong-type": wrong_type_row, "other": other_row}[kind])
    return kind, row, _dumps(row, ascii_, indent)


@st.composite
def jsonl_file(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """A JSONL file and its good rows, in order."""
    lines, good = [], []
    for n in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["item", "item", "item", "not-json", "blank", "bad-utf8-outside"])) if n else "item"
        if kind == "item":
            what, row, data = draw(json_item(good=n == 0))  # (a file with no good row only refuses to open)
            data = data.replace(b"\n", b"")  # one line (an indented dump has no newline inside strings)
            if what == "good":
                good.append(row)
        elif kind == "not-json":
            data = draw(st.binary(max_size=12)).replace(b"\n", b"")
        elif kind == "blank":
            data = draw(st.sampled_from([b"", b"  ", b"\t"]))
        else:
            data = b'{"prompt": "x"' + draw(bad_bytes) + b', "completion": "y"}'
        lines.append(data + draw(endings))
    if draw(st.booleans()):
        lines[-1] = lines[-1].rstrip(b"\r\n")
    bom = b"\xef\xbb\xbf" if draw(st.integers(0, 9)) == 0 else b""
    return bom + b"".join(lines), good


@st.composite
def json_file(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """A JSON array (maybe inside an object), maybe broken: a missing comma, a cut end, extra data after it."""
    items = [draw(json_item(good=True)), *draw(st.lists(json_item(), max_size=6))]  # (no good row: no opening)
    out = bytearray(draw(st.sampled_from([b"", b"\n", b"  "])) + b"[" + draw(st.sampled_from([b"", b"\n  "])))
    good: list[Any] = []
    ends: list[tuple[int, Any]] = []  # where each good item ends, and the row
    broken = False
    for n, (kind, row, data) in enumerate(items):
        out += data
        if kind == "good" and not broken:
            ends.append((len(out), row))
        if n < len(items) - 1:
            sep = draw(st.sampled_from([b",", b", ", b",\n  ", b",\n  ", b" "]))  # " ": a missing comma
            broken = broken or sep == b" "
            out += sep
    ending = draw(st.sampled_from(["close", "close", "close", "extra", "cut"]))
    if ending == "close":
        out += draw(st.sampled_from([b"]", b"\n]", b"\n]\n", b",\n]\n"]))
    elif ending == "extra":
        out += b"]" + draw(st.sampled_from([b" x", b"\n[1]\n", b"\n}"]))
    else:
        out += b"\n]\n"
        del out[len(out) - draw(st.integers(1, min(len(out) - 1, 30))) :]
    wrapped = ending == "close" and not broken and draw(st.integers(0, 3)) == 0
    if wrapped:
        head = b'{"meta": {"v": 1}, "data": '
        out = bytearray(head + bytes(out) + b', "tags": ["a"]}\n')
        ends = [(end + len(head), row) for end, row in ends]
    good = [row for end, row in ends if end <= len(out)]
    bom = b"\xef\xbb\xbf" if draw(st.integers(0, 9)) == 0 else b""
    return bom + bytes(out), good


# --- CSV ---------------------------------------------------------------------

# A cell of a good row: text, but not empty (CSV has no empty string, only a missing field) and not the start of
# a JSON list (the reader parses those in message fields: they are messages, not text).
csv_text = plain_text.filter(lambda t: t != "" and not t.lstrip().startswith("["))


def _csv_cell(text: str, quote: bool) -> str:
    if quote or re.search('[,"\r\n]', text) or (text and not text.strip()):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def csv_file(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """A CSV file, maybe broken (wrong column counts, bytes that are not UTF-8, a bare CR, an open quote)."""
    columns = draw(st.sampled_from([["prompt", "completion"], ["prompt", "completion", "meta"]]))
    header = draw(st.sampled_from([",".join(columns), " , ".join(columns)])).encode()
    eol = draw(endings)
    lines = [header + eol]
    good: list[Any] = []
    swallowed = False  # a bare CR or an open quote: what follows is read as part of it, or kept as the rest
    for n in range(draw(st.integers(1, 7))):
        kinds = ["good", "good", "good", "columns", "bad-utf8", "blank", "bare-cr", "open-quote"]
        kind = draw(st.sampled_from(kinds)) if n else "good"  # (a file with no good row only refuses to open)
        quote = draw(st.booleans())
        cells = [draw(csv_text), draw(csv_text)] + ([draw(plain_text)] if len(columns) == 3 else [])
        if kind == "columns":
            cells = draw(st.lists(plain_text, min_size=1, max_size=4).filter(lambda c: len(c) != len(columns)))
        if kind == "bad-utf8":
            cells[0] = _mark(cells[0], draw(st.integers(0, 10)))
        line = ",".join(_csv_cell(c, quote) for c in cells)
        if kind == "blank":
            line = draw(st.sampled_from(["", "  ", ",", ",,"]))
        elif kind == "bare-cr":
            line = "a\rb," + line
            swallowed = True
        elif kind == "open-quote":
            line = line + ',"open'
            swallowed = True
        elif kind == "good" and not swallowed:
            row = {k: v for k, v in zip(columns, cells) if v != ""}
            good.append(row)
        lines.append(_unmark(line.encode(), draw(bad_bytes)) + eol)
    if draw(st.booleans()):
        lines[-1] = lines[-1].rstrip(b"\r\n")
    bom = b"\xef\xbb\xbf" if draw(st.integers(0, 9)) == 0 else b""
    return bom + b"".join(lines), good


# --- Parquet and datasets ------------------------------------------------------

table_rows = st.lists(
    st.fixed_dictionaries(
        {
            "prompt": st.one_of(plain_text, plain_text, st.none()),
            "completion": st.one_of(plain_text, plain_text, st.none()),
        }
    ),
    min_size=1,
    max_size=7,
)


@st.composite
def table_file(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[Any]]:
    rows = draw(table_rows)
    if draw(st.booleans()):
        metas = draw(st.lists(st.one_of(st.none(), st.integers(-5, 5)), min_size=len(rows), max_size=len(rows)))
        rows = [{**r, "meta": m} for r, m in zip(rows, metas)]
    return rows, rows


FILES = {
    "jsonl": jsonl_file(),
    "json": json_file(),
    "csv": csv_file(),
    "parquet": table_file(),
    "datasets": table_file(),
}

# --- edits ---------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("edit"), st.integers(0, 20), any_text, any_text),
        st.tuples(st.just("status"), st.integers(0, 20), st.sampled_from(STATUSES)),
        st.tuples(st.just("note"), st.integers(0, 20), any_text),
        st.tuples(st.just("add"), any_text, any_text),
        st.tuples(st.just("delete"), st.integers(0, 20)),
        st.tuples(st.just("undo")),
        st.tuples(st.just("redo")),
    ),
    max_size=6,
)


def apply(ds: DatasetSession, edits: list[tuple[Any, ...]]) -> None:
    for op in edits:
        visible = ds.visible()
        kind = op[0]
        pick = visible[op[1] % len(visible)].id if visible and len(op) > 1 and isinstance(op[1], int) else None
        try:
            if kind == "edit" and pick is not None:
                new = {"prompt": op[2], "completion": op[3]}
                ds.set_row(pick, new)
                assert ds.get(pick).row == new
            elif kind == "status" and pick is not None:
                ds.set_status([pick], op[2])
            elif kind == "note" and pick is not None:
                ds.set_note(pick, op[2])
            elif kind == "add":
                ds.add([{"prompt": op[1], "completion": op[2]}])
            elif kind == "delete" and pick is not None and len(visible) > 1:
                ds.delete([pick])
            elif kind == "undo":
                ds.undo()
            elif kind == "redo":
                ds.redo()
        except DataError:
            pass  # a refused edit is allowed; the checks below see that nothing of it stuck


# --- the checks ----------------------------------------------------------------


def _norm(file_type: str, row: Any) -> Any:
    """A row as its file type can hold it: CSV has no empty string (a missing field), Parquet no missing field."""
    if not isinstance(row, dict):
        return row
    if file_type == "csv":
        return {k: v for k, v in row.items() if v not in ("", None)}
    if file_type in ("parquet", "datasets"):
        return {k: v for k, v in row.items() if v is not None}
    return row


def _subsequence(needles: list[Any], haystack: list[Any]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


def _state(ds: DatasetSession, file_type: str) -> dict[str, Any]:
    """What a save and a reopen must give back."""
    visible = ds.visible()
    return {
        "rows": [_norm(file_type, e.row) for e in visible],
        "notes": [e.note for e in visible],
        "kept": [k.bad.raw_bytes for k in ds.kept],
        "statuses": [(e.status, not ds.row_problems(e.row)) for e in visible],
    }


def _same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["rows"] == before["rows"]
    assert after["notes"] == before["notes"]
    assert len(after["kept"]) == len(before["kept"])
    for was, now in zip(before["kept"], after["kept"]):
        assert now in (was, was + b"\n"), (was, now)  # byte for byte
    for (was, ok_before), (now, ok_after) in zip(before["statuses"], after["statuses"]):
        if ok_before and ok_after:
            assert now == was


def _fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def _write(path: Path, file_type: str, content: Any) -> None:
    if file_type in ("parquet", "datasets"):
        if file_type == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(content), path)
        else:
            from datasets import Dataset, disable_progress_bars

            disable_progress_bars()
            Dataset.from_list(content).save_to_disk(str(path))
    else:
        path.write_bytes(content)


def roundtrip(file_type: str, content: Any, good: list[Any], edits: list[tuple[Any, ...]]) -> str:
    """One case; returns what happened (``refused-open``, ``saved``, ``refused-save``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NAMES[file_type]
        _write(path, file_type, content)
        original = _fingerprint(path)
        try:
            ds = open_dataset(path)
        except DataError:
            assert _fingerprint(path) == original
            return "refused-open"
        with ds:
            assert _subsequence([_norm(file_type, r) for r in good], [_norm(file_type, e.row) for e in ds.examples])
            apply(ds, edits)
            state = _state(ds, file_type)
            any_good = any(not ds.row_problems(e.row) for e in ds.visible())
            before = _fingerprint(path)
            try:
                ds.save()
                outcome = "saved"
            except DataError as err:
                message = str(err)
                if file_type == "datasets":
                    assert "export" in message
                else:
                    assert REFUSAL.search(message), message
                assert _fingerprint(path) == before  # a refused save writes nothing
                outcome = "refused-save"
        try:
            again = open_dataset(path)
        except DataError:
            assert not any_good, "the saved file cannot be opened though it has good rows"
            return outcome
        with again:
            if outcome == "saved":
                assert again.recovered == 0
            _same_state(state, _state(again, file_type))
            if file_type == "datasets":
                _check_export(again, Path(tmp))
    return outcome


def _check_export(ds: DatasetSession, tmp: Path) -> None:
    ds.set_status([e.id for e in ds.visible()], "accepted")
    wanted = [_norm("datasets", e.row) for e in ds.visible()]
    assert ds.export(tmp / "out.jsonl") == len(wanted)
    exported = [json.loads(line) for line in (tmp / "out.jsonl").read_bytes().splitlines()]
    assert [_norm("datasets", r) for r in exported] == wanted


def fuzz(file_type: str, cases: int, *, derandomize: bool = False) -> dict[str, int]:
    """Run ``cases`` random cases of one file type; returns how many ended each way.

    ``derandomize`` makes the cases the same on every run (the fast suite must pass every time,
    and its share of saved cases must not depend on luck); the slow run draws new ones each time.
    """
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(case=FILES[file_type], edits=ops)
    def run(case: tuple[Any, list[Any]], edits: list[tuple[Any, ...]]) -> None:
        content, good = case
        outcome = roundtrip(file_type, content, good, edits)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    # Durability (fsync) is tested in test_data_store.py; here it would only make 10,000 cases slow.
    with mock.patch("os.fsync"):
        run()
    return outcomes


@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_open_edit_save_reopen_loses_nothing(file_type: str):
    outcomes = fuzz(file_type, FAST[file_type], derandomize=True)
    assert sum(outcomes.values()) >= FAST[file_type]
    # The cases must reach the save, not stop at a refused open: a third of them at least.
    assert outcomes.get("saved", 0) + outcomes.get("refused-save", 0) >= FAST[file_type] // 3, outcomes


@pytest.mark.slow
@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_ten_thousand_cases_lose_nothing(file_type: str):
    # In CI the same 10,000 cases every time (a submission passes or fails on its own merits);
    # on a developer's machine new ones each run, to keep looking for what the last run missed.
    outcomes = fuzz(file_type, SLOW[file_type], derandomize=bool(os.environ.get("CI")))
    assert sum(outcomes.values()) >= SLOW[file_type]
