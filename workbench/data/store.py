"""An editable dataset that never loses a change: the core of the Data pane.

Open a dataset file and you get a :class:`DatasetSession`: its examples with a
review status (pending, accepted, rejected, flagged) and a note each, undo and
redo, and saving back in the file's own type and shape.

Nothing is lost:

* Every change is appended to a journal beside the file (``.NAME.journal``)
  and fsynced before the call returns, so a change the UI shows survives a
  ``kill -9``, a dropped SSH session or a power cut. Opening the dataset again
  replays the journal and says how many changes it recovered.
* Saving writes a temporary file, fsyncs it and renames it over the original,
  after copying the original once to ``NAME.orig`` (the file as it was before
  the workbench first changed it). Review state goes to ``NAME.review.json``.
* Lines that could not be read (bad JSON, bad UTF-8) are written back byte for
  byte where they were, and listed with their line numbers; where a syntax
  error stopped the reading, the rest of the file goes back as it was, last.
  Rows that parse but do not fit the dataset's shape are loaded as examples to
  fix, flagged (in CSV they stay lines, kept as they were).
* A save writes every row or none: a value the file type cannot hold (a lone
  surrogate in CSV or Parquet, a cell CSV would read back as something else,
  a column Parquet cannot type) refuses the save with a DataError naming the
  line (or row) and the field; the journal still holds every edit.
* One writer: an exclusive lock beside the file; a second session on the same
  dataset opens read-only and says who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.findings import DataFinding
from workbench.data.formats import Shape, type_name, validate_row
from workbench.data.load import BadRow, load_rows
from workbench.data.readers import csv_value, file_type_for_name, file_type_of
from workbench.data.view import ExampleView, view
from workbench.errors import DataError
from workbench.fileio import atomic_write_bytes

STATUSES = ("pending", "accepted", "rejected", "flagged")
REVIEW_VERSION = 1
_SURROGATE = re.compile("[\ud800-\udfff]")  # not characters: UTF-8 cannot encode them


class ReadOnlyError(DataError):
    """A change was attempted on a session opened read-only."""


@dataclass
class Example:
    """One example and its review state."""

    id: int
    """Stable within a session: the position in the file at open, then new ids for added examples."""
    row: dict[str, Any]
    status: str = "pending"
    note: str = ""
    deleted: bool = False
    origin: int | None = None
    """0-based record position in the source file; None for examples added in the workbench."""
    line: int | None = None
    """1-based source line, where the file type has lines."""
    source: str = "file"
    """``file``, ``added``, ``duplicate``, ``synthetic``, ``chat`` or ``production`` (a served model's request)."""
    source_info: dict[str, Any] | None = None
    """Where a ``production`` example came from (request id, time, server, model, why it was picked): kept in
    the review state, not in the data file, whose rows are what trains."""
    raw: bytes | None = field(default=None, repr=False)
    """The source line's exact bytes (JSONL) while the row is unedited: saving writes them back as they were."""
    problems: list[str] = field(default_factory=list)
    """Why the row does not fit the dataset's shape (it loads anyway, flagged, to be fixed)."""
    _view: ExampleView | None = field(default=None, repr=False, compare=False)
    _text: str | None = field(default=None, repr=False, compare=False)

    def view(self, shape: Shape) -> ExampleView:
        if self._view is None:
            self._view = view(self.row, shape)
        return self._view

    def search_text(self, shape: Shape) -> str:
        if self._text is None:
            self._text = self.view(shape).text()
        return self._text

    def _changed(self) -> None:
        self._view = None
        self._text = None


@dataclass
class KeptLine:
    """A source line (or item) that could not be read; written back as it was."""

    bad: BadRow
    origin: int  # its record position in the source

    @property
    def line(self) -> int | None:
        return self.bad.line


@dataclass
class Change:
    """One user action: what it set, with the values before, so it can be undone."""

    label: str
    atoms: list[tuple[int, str, Any, Any]]  # (example id, key, old, new); key: row, status, note, deleted
    created: list[dict[str, Any]] = field(default_factory=list)  # examples this change brought into being

    def inverse(self) -> Change:
        return Change(self.label, [(i, k, new, old) for i, k, old, new in reversed(self.atoms)])


def _write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, durable=True)


def _json_bytes(value: Any, **kwargs: Any) -> bytes:
    """JSON as UTF-8, non-ASCII characters as they are; a value holding lone surrogates (a JSON escape such as
    ``"\\udc80"`` reads as one) is written with ASCII escapes instead, which read back the same."""
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    if _SURROGATE.search(text):
        text = json.dumps(value, ensure_ascii=True, **kwargs)
    return text.encode()


def row_hash(row: dict[str, Any]) -> str:
    """A row's content key for the review file: fields without a value left out, so that a row read back from
    Parquet or a datasets directory (every column in every row, None where a row had none) keys as it was saved."""
    return _hash({k: v for k, v in row.items() if v is not None})


def _hash(row: dict[str, Any]) -> str:
    return hashlib.sha1(_json_bytes(row, sort_keys=True)).hexdigest()[:16]


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode())
                h.update(p.read_bytes())
        return h.hexdigest()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class DatasetSession:
    """An open dataset: examples, review state, undo/redo, the journal and the lock."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.file_type = file_type_of(self.path)
        self.readonly_reason = "opened read-only" if readonly else ""
        self.notes: list[str] = []
        """What the user should know about this open: recovered changes, a lock held elsewhere..."""
        self.recovered = 0
        self._lock_fh: io.TextIOWrapper | None = None
        self._journal_fh: io.BufferedWriter | None = None
        self._undo: list[Change] = []
        self._redo: list[Change] = []
        self._seq = 0
        self._saved_seq = 0  # _seq at the last save (or open)
        self._saved_hash: str | None = None  # the file hash recorded by the last save's review file
        self._listeners: list[Callable[[Change], None]] = []
        if not readonly:
            self._take_lock()
        self._load()
        self._read_review()
        self._counts: Counter[str] = Counter(e.status for e in self.examples if not e.deleted)
        if not self.readonly:
            self._recover()
            self._open_journal()

    # --- paths --------------------------------------------------------------

    def _beside(self, suffix: str, hidden: bool = True) -> Path:
        name = self.path.name.rstrip("/")
        return self.path.parent / (f".{name}{suffix}" if hidden else f"{name}{suffix}")

    @property
    def journal_path(self) -> Path:
        return self._beside(".journal")

    @property
    def lock_path(self) -> Path:
        return self._beside(".lock")

    @property
    def review_path(self) -> Path:
        return self._beside(".review.json", hidden=False)

    @property
    def original_path(self) -> Path:
        return self._beside(".orig", hidden=False)

    @property
    def readonly(self) -> bool:
        return bool(self.readonly_reason)

    # --- opening ------------------------------------------------------------

    def _take_lock(self) -> None:
        try:
            fh = open(self.lock_path, "a+")  # noqa: SIM115 - held open for the session: the flock lives as long as it does
        except OSError as err:
            self.readonly_reason = f"read-only: cannot create {self.lock_path.name} beside the file ({err.strerror})"
            return
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            self.readonly_reason = f"read-only: {holder} has this dataset open for editing; close it there to edit here"
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"workbench pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}")
        fh.flush()
        self._lock_fh = fh

    def _load(self) -> None:
        result = load_rows(self.path, skip_bad=True) if self.path.exists() else None
        if result is None:
            raise DataError(f"{self.path}: no such file")
        self.shape = result.shape
        self.conversational = result.conversational
        self.file_type = result.file_type
        self._frame = result.frame if self.file_type == "json" else None
        self._columns = result.columns if self.file_type == "csv" else None
        self.base_hash = file_hash(self.path)
        self.examples: list[Example] = []
        self.kept: list[KeptLine] = []
        self.notes += result.notes
        entries: list[tuple[int, Example | KeptLine]] = []
        raw_lines = _jsonl_lines(self.path) if self.file_type == "jsonl" else None
        for row, line, origin in zip(result.rows, result.row_lines, result.row_indexes):
            raw = raw_lines[line - 1] if raw_lines is not None and line is not None else None
            entries.append((origin, Example(0, row, origin=origin, line=line, raw=raw)))
        for bad in result.bad_rows:
            origin = bad.index if bad.index is not None else 0
            if isinstance(bad.value, dict) and self.file_type != "csv":
                # Readable but the wrong shape: an example to fix, not a line to keep aside (a CSV line is
                # kept as it was: its cells alone do not say what the row was meant to hold).
                raw = bad.raw_bytes if self.file_type == "jsonl" else None
                example = Example(
                    0, bad.value, "flagged", origin=origin, line=bad.line, raw=raw, problems=[bad.message]
                )
                entries.append((origin, example))
            else:
                entries.append((origin, KeptLine(bad, origin)))
        entries.sort(key=lambda e: e[0])
        for _, item in entries:
            if isinstance(item, Example):
                item.id = len(self.examples)
                self.examples.append(item)
            else:
                self.kept.append(item)
        self._next_id = len(self.examples)
        if self.kept:
            where = ", ".join(str(k.line) for k in self.kept[:10] if k.line) + (" …" if len(self.kept) > 10 else "")
            self.notes.append(
                f"{len(self.kept)} line(s) could not be read ({where}); "
                "they are kept as they are and written back on save"
            )
        fixable = sum(1 for e in self.examples if e.problems)
        if fixable:
            self.notes.append(f"{fixable} row(s) do not fit the {self.shape.label} shape; they are flagged to fix")

    def _read_review(self) -> None:
        """Apply the review state saved beside the file, matched by row content."""
        if not self.review_path.exists():
            return
        try:
            saved = json.loads(self.review_path.read_text())
            entries = saved["rows"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.notes.append(f"{self.review_path.name}: unreadable ({err}); review state starts fresh")
            return
        by_hash: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_hash.setdefault(entry.get("h", ""), []).append(entry)
        unmatched = 0
        for ex in self.examples:
            # One key for identical rows, whatever columns hold None: identical rows then take their entries in
            # order (two keys for one content swapped the statuses of identical rows, one edited, after a save).
            bucket = by_hash.get(row_hash(ex.row))
            if not bucket and None in ex.row.values():
                bucket = by_hash.get(_hash(ex.row))  # a review file written before the key left None out
            if bucket:
                entry = bucket.pop(0)
                if entry.get("status") in STATUSES and not ex.problems:
                    ex.status = entry["status"]
                ex.note = entry.get("note", "") or ex.note
                ex.source = entry.get("source", ex.source)
                info = entry.get("source_info")
                ex.source_info = info if isinstance(info, dict) else ex.source_info
        unmatched = sum(len(b) for b in by_hash.values())
        if unmatched:
            self.notes.append(
                f"{unmatched} review entries in {self.review_path.name} match no row "
                "(the file was changed outside the workbench); those rows start as pending"
            )
        self._saved_hash = saved.get("file_sha256")

    def _recover(self) -> None:
        """Replay the journal of changes not yet saved."""
        if not self.journal_path.exists():
            return
        lines = self.journal_path.read_bytes().splitlines()
        if not lines:
            return
        try:
            header = json.loads(lines[0])
        except ValueError:
            header = {}
        if header.get("base") != self.base_hash:
            if self._saved_hash == self.base_hash:
                self.journal_path.unlink()  # a save finished but was cut before the journal was reset
                return
            aside = self.journal_path.with_name(f"{self.journal_path.name}.orphan-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(self.journal_path, aside)
            self.notes.append(
                f"The file changed outside the workbench since unsaved edits were made; "
                f"those edits were not applied and are kept in {aside.name}"
            )
            return
        replayed = 0
        for raw in lines[1:]:
            try:
                entry = json.loads(raw)
            except ValueError:
                break  # a torn last line: the change was never acknowledged
            change = Change(entry["label"], [tuple(a) for a in entry["atoms"]], entry.get("created", []))
            self._apply(change, kind=entry["kind"], record=False)
            self._seq = entry["seq"]
            replayed += 1
        self.recovered = replayed
        if replayed:
            self.notes.append(f"Recovered {replayed} unsaved change(s) from the journal")

    def _open_journal(self) -> None:
        fresh = not self.journal_path.exists() or self.journal_path.stat().st_size == 0
        self._journal_fh = open(self.journal_path, "ab")  # noqa: SIM115 - the journal stays open until close()
        if fresh:
            self._write_journal({"base": self.base_hash, "file": self.path.name, "version": REVIEW_VERSION})

    def _write_journal(self, entry: dict[str, Any]) -> None:
        assert self._journal_fh is not None
        self._journal_fh.write(_json_bytes(entry) + b"\n")
        self._journal_fh.flush()
        os.fsync(self._journal_fh.fileno())

    def close(self) -> None:
        if self._journal_fh is not None:
            self._journal_fh.close()
            self._journal_fh = None
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> DatasetSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ------------------------------------------------------------

    def __len__(self) -> int:
        return sum(self._counts[s] for s in STATUSES)

    def visible(self) -> list[Example]:
        return [e for e in self.examples if not e.deleted]

    def get(self, example_id: int) -> Example:
        return self.examples[example_id]

    def sources(self) -> Counter[str]:
        """Examples per source (deleted ones left out): what the Data pane's source filter can show."""
        return Counter(e.source for e in self.examples if not e.deleted)

    def counts(self) -> Counter[str]:
        """Examples per status (deleted ones left out), plus ``total``; kept up to date by every change."""
        out = Counter({s: self._counts[s] for s in STATUSES})
        out["total"] = sum(out.values())
        return out

    def unsaved(self) -> int:
        """Changes (undo and redo count as changes) not yet saved to the file; they are in the journal."""
        return self._seq - self._saved_seq

    def query(
        self,
        *,
        status: str | Iterable[str] | None = None,
        pattern: str | None = None,
        findings: dict[int, list[DataFinding]] | None = None,
        check: str | None = None,
        ids: Iterable[int] | None = None,
        sort: str | None = None,
        source: str | None = None,
    ) -> list[Example]:
        """The examples a filter lets through, in file order or sorted.

        ``pattern`` is a case-insensitive regex over all the example's text; ``check`` keeps
        examples with a finding of that check (``findings`` maps example id to findings; the
        check ``any`` keeps those with any). ``sort``: ``length``, ``-length``, ``score``, ``-score``
        (the lowest LLM critic or similarity score first), ``findings`` (most severe first). ``source``
        keeps the examples from one source (``production``, ``chat``, ``file``...).
        """
        wanted = {status} if isinstance(status, str) else set(status) if status else None
        regex = None
        if pattern:
            try:
                regex = re.compile(pattern, re.IGNORECASE)
            except re.error as err:
                raise DataError(f"filter {pattern!r}: not a valid regular expression ({err})") from None
        allowed = set(ids) if ids is not None else None
        out = []
        for e in self.examples:
            if e.deleted or (wanted and e.status not in wanted) or (allowed is not None and e.id not in allowed):
                continue
            if source is not None and e.source != source:
                continue
            if check and findings is not None:
                mine = findings.get(e.id, ())
                if not any(check == "any" or f.check == check for f in mine):
                    continue
            if regex and not regex.search(e.search_text(self.shape)):
                continue
            out.append(e)
        if sort:
            out = self._sorted(out, sort, findings or {})
        return out

    def _sorted(self, items: list[Example], how: str, findings: dict[int, list[DataFinding]]) -> list[Example]:
        reverse = how.startswith("-")
        key = how.lstrip("-")
        if key == "length":
            return sorted(items, key=lambda e: len(e.search_text(self.shape)), reverse=reverse)
        if key == "score":

            def score(e: Example) -> float:
                scores = [f.score for f in findings.get(e.id, ()) if f.score is not None]
                return min(scores) if scores else float("inf")

            return sorted(items, key=score, reverse=reverse)
        if key == "findings":
            from workbench.data.findings import severity_rank

            def worst(e: Example) -> tuple[int, int]:
                mine = findings.get(e.id, ())
                return (min((severity_rank(f.severity) for f in mine), default=9), -len(mine))

            return sorted(items, key=worst, reverse=reverse)
        raise DataError(f"unknown sort {how!r}; expected length, score or findings (prefix - to reverse)")

    # --- changing -----------------------------------------------------------

    def on_change(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyError(f"{self.path.name} is {self.readonly_reason}")

    def _commit(self, change: Change) -> Change | None:
        """Apply a new user action: journal first (durable), then memory."""
        if not change.atoms:
            return None
        self._check_writable()
        self._apply(change, kind="do", record=True)
        return change

    def _apply(self, change: Change, *, kind: str, record: bool) -> None:
        for spec in change.created:
            if spec["id"] >= len(self.examples):
                while len(self.examples) < spec["id"]:  # ids are dense; fill any gap defensively
                    self.examples.append(Example(len(self.examples), {}, deleted=True, source="gap"))
                self.examples.append(
                    Example(
                        spec["id"],
                        spec["row"],
                        status=spec.get("status", "pending"),
                        deleted=True,
                        source=spec.get("source", "added"),
                        source_info=spec.get("source_info"),
                    )
                )
                self._next_id = max(self._next_id, spec["id"] + 1)
        if record:
            self._seq += 1
            self._write_journal(
                {
                    "seq": self._seq,
                    "kind": kind,
                    "label": change.label,
                    "atoms": [list(a) for a in change.atoms],
                    "created": change.created,
                    "time": round(time.time(), 3),
                }
            )
        for example_id, key, _old, new in change.atoms:
            ex = self.examples[example_id]
            if not ex.deleted:
                self._counts[ex.status] -= 1
            setattr(ex, key, new)
            if not ex.deleted:
                self._counts[ex.status] += 1
            if key == "row":
                ex._changed()
                ex.problems = []
                ex.raw = None
        if kind == "do":
            self._undo.append(change)
            self._redo.clear()
        elif kind == "undo":
            self._redo.append(self._undo.pop())
        elif kind == "redo":
            self._undo.append(self._redo.pop())
        for listener in self._listeners:
            listener(change)

    def set_status(self, ids: Iterable[int], status: str, label: str | None = None) -> Change | None:
        if status not in STATUSES:
            raise DataError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        atoms = [(i, "status", self.examples[i].status, status) for i in ids if self.examples[i].status != status]
        return self._commit(Change(label or f"{status} {len(atoms)}", atoms))

    def set_note(self, example_id: int, note: str) -> Change | None:
        old = self.examples[example_id].note
        return self._commit(Change("note", [(example_id, "note", old, note)] if old != note else []))

    def flag(self, example_id: int, note: str) -> Change | None:
        ex = self.examples[example_id]
        atoms = [(example_id, "status", ex.status, "flagged")] if ex.status != "flagged" else []
        if note != ex.note:
            atoms.append((example_id, "note", ex.note, note))
        return self._commit(Change("flag", atoms))

    def set_row(self, example_id: int, row: dict[str, Any]) -> Change | None:
        """Replace an example's content; the result must fit the dataset's shape."""
        problems = self.row_problems(row)
        if problems:
            raise DataError(f"example {example_id}: " + "; ".join(problems))
        old = self.examples[example_id].row
        return self._commit(Change("edit", [(example_id, "row", old, row)] if old != row else []))

    def row_problems(self, row: Any) -> list[str]:
        """Why a row does not fit this dataset's shape, in words ([] when it does)."""
        return [f"field {f!r}: {m}" if f else m for f, m in validate_row(row, self.shape, self.conversational)]

    def add(
        self,
        rows: Iterable[dict[str, Any]],
        *,
        status: str = "pending",
        source: str = "added",
        source_info: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    ) -> list[int]:
        """New examples (pending unless told), appended at the end; returns their ids.

        ``source_info``: where they came from (one dict for all rows, or one per row), journaled with the change
        and saved in the review state, so it survives a save, a reopen and a crash, and goes with an undo."""
        self._check_writable()
        rows = list(rows)
        if source_info is None or isinstance(source_info, dict):
            infos: list[dict[str, Any] | None] = [source_info] * len(rows)
        else:
            infos = list(source_info)
            if len(infos) != len(rows):
                raise DataError(f"new examples: {len(rows)} row(s) but {len(infos)} source_info entries")
        created: list[dict[str, Any]] = []
        atoms: list[tuple[int, str, Any, Any]] = []
        for row, info in zip(rows, infos):
            problems = self.row_problems(row)
            if problems:
                raise DataError("new example: " + "; ".join(problems))
            new_id = self._next_id + len(created)
            spec: dict[str, Any] = {"id": new_id, "row": row, "status": status, "source": source}
            if info is not None:
                spec["source_info"] = dict(info)
            created.append(spec)
            atoms.append((new_id, "deleted", True, False))
        if not created:
            return []
        self._commit(Change(f"add {len(created)}", atoms, created))
        return [c["id"] for c in created]

    def duplicate(self, example_id: int) -> int:
        ex = self.examples[example_id]
        return self.add([json.loads(json.dumps(ex.row))], status="pending", source="duplicate")[0]

    def delete(self, ids: Iterable[int]) -> Change | None:
        atoms = [(i, "deleted", False, True) for i in ids if not self.examples[i].deleted]
        return self._commit(Change(f"delete {len(atoms)}", atoms))

    def undo(self) -> Change | None:
        self._check_writable()
        if not self._undo:
            return None
        change = self._undo[-1]
        self._apply(_as_record(change.inverse(), change.label), kind="undo", record=True)
        return change

    def redo(self) -> Change | None:
        self._check_writable()
        if not self._redo:
            return None
        change = self._redo[-1]
        self._apply(_as_record(change, change.label), kind="redo", record=True)
        return change

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    # --- saving -------------------------------------------------------------

    def save(self) -> Path:
        """Write the dataset in its own type and shape, atomically; the original is kept as NAME.orig."""
        self._check_writable()
        if self.file_type == "datasets":
            raise DataError(
                f"{self.path}: saving a datasets directory in place is not supported; "
                "export it to a .jsonl or .parquet file instead"
            )
        data = self._encode(self._ordered(self.visible()), keep_bad=True)  # a refusal here has touched nothing
        if not self.original_path.exists():
            shutil.copy2(self.path, self.original_path)
        new_hash = hashlib.sha256(data).hexdigest()
        # Order matters for a crash at any point: the review file first (it names the new content's
        # hash, so a journal left over from a cut save is known as already saved), then the data,
        # then a fresh journal on the new content.
        self._write_review(new_hash)
        _write(self.path, data)
        self.base_hash = new_hash
        self._saved_hash = new_hash
        self._saved_seq = self._seq
        if self._journal_fh is not None:
            self._journal_fh.close()
        _write(
            self.journal_path,
            json.dumps({"base": self.base_hash, "file": self.path.name, "version": REVIEW_VERSION}).encode() + b"\n",
        )
        self._journal_fh = open(self.journal_path, "ab")  # noqa: SIM115 - the journal stays open until close()
        return self.path

    def export(self, path: str | Path, *, statuses: Iterable[str] = ("accepted",)) -> int:
        """Write the examples with these statuses (accepted only, by default) to a new file; returns the count."""
        wanted = set(statuses)
        return self.write_examples(path, [e for e in self.visible() if e.status in wanted])

    def write_examples(self, path: str | Path, examples: list[Example]) -> int:
        """Write examples to a file (atomically) in the type its extension names, in this dataset's shape."""
        path = Path(path)
        target_type = file_type_for_name(path)
        if target_type is None:
            raise DataError(
                f"{path}: cannot tell the file type from {path.suffix or 'no extension'!r}; "
                "use .jsonl, .json, .csv or .parquet"
            )
        _write(path, self._encode(list(examples), keep_bad=False, file_type=target_type))
        return len(examples)

    def _ordered(self, examples: list[Example]) -> list[Example | KeptLine]:
        """Examples in order, with unreadable source lines put back before the example that followed them."""
        out: list[Example | KeptLine] = []
        pending = sorted(self.kept, key=lambda k: k.origin)
        i = 0
        for ex in examples:
            while i < len(pending) and ex.origin is not None and pending[i].origin < ex.origin:
                out.append(pending[i])
                i += 1
            out.append(ex)
        out.extend(pending[i:])
        return out

    def _encode(self, items: list[Any], *, keep_bad: bool, file_type: str | None = None) -> bytes:
        """The file's bytes. ``keep_bad``: a save in place, kept lines and the file's framing included.

        Raises DataError (naming the line or row, and the field) for a value the type cannot hold.
        """
        file_type = file_type or self.file_type
        if not keep_bad:
            items = [x for x in items if isinstance(x, Example)]
        if file_type == "jsonl":
            out = []
            for item in items:
                if isinstance(item, KeptLine):
                    raw = _kept_bytes(item.bad)
                else:
                    raw = item.raw if item.raw is not None else self._json(item)
                out.append(raw if raw.endswith(b"\n") else raw + b"\n")
            return b"".join(out)
        if file_type == "json":
            # A tail (the unread rest of the file) is already the end of the frame: rows go before it.
            parts = [
                _kept_bytes(item.bad) if isinstance(item, KeptLine) else self._json(item, indent=2)
                for item in items
                if not (isinstance(item, KeptLine) and item.bad.tail)
            ]
            before, after = (self._frame if keep_bad else None) or (b"[", b"\n]\n")
            return before + (b"\n" + b",\n".join(parts) if parts else b"") + after
        if file_type == "csv":
            return self._encode_csv(items, exact=keep_bad)
        if file_type == "parquet":
            return self._encode_parquet([item for item in items if isinstance(item, Example)])
        raise DataError(f"cannot write {file_type!r} files; use .jsonl, .json, .csv or .parquet")

    def _where(self, ex: Example) -> str:
        """Where an example came from, for messages: ``d.csv:12``, ``d.parquet: row 3`` or a new example."""
        if ex.origin is None:
            return f"{self.path.name}: new example {ex.id}"
        if ex.line is not None:
            return f"{self.path.name}:{ex.line}"
        return f"{self.path.name}: row {ex.origin}"

    def _json(self, ex: Example, indent: int | None = None) -> bytes:
        try:
            return _json_bytes(ex.row, indent=indent)
        except (TypeError, ValueError) as err:
            raise DataError(f"{self._where(ex)}: cannot be written as JSON: {err}") from None

    def _encode_csv(self, items: list[Example | KeptLine], *, exact: bool) -> bytes:
        """Header, then each row or kept line (as its bytes). ``exact``: refuse a cell that would read back
        as something else (a save in place); an export writes objects and numbers as their text."""
        rows = [item.row for item in items if isinstance(item, Example)]
        columns = list(dict.fromkeys([*(self._columns or []), *(k for r in rows for k in r)]))
        for name in columns:
            if _SURROGATE.search(name):
                raise DataError(f"{self.path.name}: column {name!r}: {_SURROGATE_WHY}")
        out = [_csv_line(columns).encode()]
        for item in items:
            if isinstance(item, KeptLine):
                raw = _kept_bytes(item.bad)
                out.append(raw if raw.endswith(b"\n") or item.bad.tail else raw + b"\n")
                continue
            cells = []
            for name in columns:
                value = item.row.get(name)
                cell = _csv_cell(value)
                if _SURROGATE.search(cell):
                    raise DataError(f"{self._where(item)}: field {name!r}: {_SURROGATE_WHY}")
                back = csv_value(name, cell)
                if exact and not _same(back, value):
                    raise DataError(
                        f"{self._where(item)}: field {name!r}: a CSV cell cannot hold {type_name(value)} "
                        f"{_short(value)}: it would read back as {type_name(back)} {_short(back)}; "
                        "edit the field, or export to .jsonl to keep it"
                    )
                cells.append(cell)
            if exact and "" in item.row.values():
                # An empty cell reads back as a missing field: refuse where the shape needs the field.
                back_row = {k: v for k, v in item.row.items() if v != ""}
                missing = validate_row(back_row, self.shape, self.conversational)
                if missing and not validate_row(item.row, self.shape, self.conversational):
                    name = missing[0][0] or next(k for k, v in item.row.items() if v == "")
                    raise DataError(
                        f"{self._where(item)}: field {name!r}: an empty text is a missing field in CSV, and the "
                        f"{self.shape.label} shape needs it; write some text, or export to .jsonl to keep it empty"
                    )
            out.append(_csv_line(cells).encode())
        return b"".join(out)

    def _encode_parquet(self, examples: list[Example]) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for ex in examples:
            for name, value in ex.row.items():
                if _has_surrogate(name) or _has_surrogate(value):
                    raise DataError(f"{self._where(ex)}: field {name!r}: {_SURROGATE_WHY}")
        rows = [ex.row for ex in examples]
        # Column by column over every row's keys (from_pylist would keep only the first row's keys).
        columns: dict[str, Any] = {}
        for name in dict.fromkeys(k for r in rows for k in r):
            values = [r.get(name) for r in rows]
            try:
                columns[name] = pa.array(values)
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as err:
                ex = examples[_first_untypable(values)]
                raise DataError(
                    f"{self._where(ex)}: field {name!r}: {type_name(ex.row.get(name))} does not fit one Parquet column "
                    f"with the other rows' values ({err}); edit the field, or export to .jsonl"
                ) from None
        sink = io.BytesIO()
        try:
            pq.write_table(pa.table(columns), sink)
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise DataError(f"{self.path.name}: cannot be written as Parquet: {err}") from None
        return sink.getvalue()

    def _write_review(self, content_hash: str) -> None:
        rows = []
        for ex in self.visible():
            entry: dict[str, Any] = {"h": row_hash(ex.row), "status": ex.status}
            if ex.note:
                entry["note"] = ex.note
            if ex.source != "file":
                entry["source"] = ex.source
            if ex.source_info:
                entry["source_info"] = ex.source_info
            rows.append(entry)
        payload = {
            "version": REVIEW_VERSION,
            "file": self.path.name,
            "file_sha256": content_hash,
            "journal_seq": self._seq,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "rows": rows,
        }
        _write(self.review_path, _json_bytes(payload))

    # --- analysis helpers ---------------------------------------------------

    def rows_of(self, examples: Iterable[Example]) -> list[dict[str, Any]]:
        return [e.row for e in examples]

    def iter_views(self) -> Iterator[tuple[Example, ExampleView]]:
        for e in self.visible():
            yield e, e.view(self.shape)


def _as_record(change: Change, label: str) -> Change:
    return Change(label, change.atoms)


def _jsonl_lines(path: Path) -> list[bytes]:
    """The file's lines as bytes, split on \\n only (as the JSONL reader counts them)."""
    return list(io.BytesIO(path.read_bytes()))


_SURROGATE_WHY = (
    "holds a lone surrogate (U+D800 to U+DFFF, not a character), which cannot be written as UTF-8; "
    "edit it out and save again"
)


def _kept_bytes(bad: BadRow) -> bytes:
    """A kept line's exact source bytes."""
    return bad.raw_bytes if bad.raw_bytes is not None else bad.raw.encode("utf-8", "surrogateescape")


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_surrogate(v) for v in value)
    return False


def _first_untypable(values: list[Any]) -> int:
    """The first position at which the values stop fitting one Arrow array (a binary search over prefixes)."""
    import pyarrow as pa

    lo, hi = 1, len(values)  # values[:hi] fails
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            pa.array(values[:mid])
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            hi = mid
        else:
            lo = mid + 1
    return hi - 1


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return _json_bytes(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_line(cells: list[str]) -> str:
    """One CSV record. A cell with a comma, quote, CR or LF is quoted (csv.writer leaves a lone CR bare when
    lines end in LF, and the reader then stops at it), and so is a blank one, which alone would read as no row."""
    quoted = [
        f'"{c.replace(chr(34), chr(34) * 2)}"' if _NEEDS_QUOTES.search(c) or (c and not c.strip()) else c for c in cells
    ]
    return ",".join(quoted) + "\n"


_NEEDS_QUOTES = re.compile('[,"\r\n]')


def _same(back: Any, value: Any) -> bool:
    """Whether a CSV cell reads back as the value it was written from (an empty string is an absent field)."""
    if back is None or value is None or value == "":
        return (back is None) == (value is None or value == "")
    return back == value or (type(back) is type(value) and _json_bytes(back) == _json_bytes(value))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def open_dataset(path: str | Path, *, readonly: bool = False) -> DatasetSession:
    """Open a dataset for review and editing (read-only when another session holds it)."""
    return DatasetSession(Path(path), readonly=readonly)
