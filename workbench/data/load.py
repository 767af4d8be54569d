"""Load a dataset file: read it, detect its shape, check every row.

The promise here is that nothing is dropped silently: every row that cannot
be used becomes a :class:`BadRow` naming file, line and field, and loading
either fails listing them all or (``skip_bad=True``) returns them next to the
good rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.formats import Shape, detect_conversational, detect_shape, validate_row
from workbench.data.readers import Read, Record, file_type_of, read
from workbench.errors import DataError

MAX_LISTED = 20
"""How many bad rows an error message lists; the exception keeps them all."""


@dataclass
class BadRow:
    """A row that cannot be used, where it is, and why."""

    file: str
    line: int | None
    """1-based physical line (JSONL, CSV, JSON arrays); None where rows have no lines."""
    field: str | None
    """The first field at fault; None when the row as a whole is (bad JSON, bad encoding)."""
    message: str
    """What was expected and what was found; several problems are joined by ``; ``."""
    raw: str = ""
    """The row's source text, for showing."""
    index: int | None = None
    """0-based position among the source's rows: the JSON item or Parquet/datasets row."""
    unit: str = "line"
    """How the row is located: ``line``, ``item`` (JSON array/object) or ``row`` (Parquet, datasets)."""
    raw_bytes: bytes | None = None
    """The exact source bytes (JSONL, CSV, JSON), so a rewrite can keep the row byte for byte."""
    tail: bool = False
    """A syntax error stopped the reading here: ``raw_bytes`` is the rest of the file."""
    value: Any = None
    """The row as read, when it was read but does not fit the shape; None when it could not be read."""

    @property
    def location(self) -> str:
        """``train.jsonl:17``, ``train.json:12 (item 3)`` or ``train.parquet: row 5``."""
        if self.unit == "line" or (self.unit == "item" and self.index is None):
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        where = f"{self.unit} {self.index}"
        return f"{self.file}:{self.line} ({where})" if self.line is not None else f"{self.file}: {where}"

    def __str__(self) -> str:
        field_part = f" field {self.field!r}:" if self.field else ""
        return f"{self.location}:{field_part} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the raw bytes."""
        return {
            "file": self.file,
            "line": self.line,
            "index": self.index,
            "field": self.field,
            "message": self.message,
            "raw": self.raw,
            "text": str(self),
        }


@dataclass
class LoadResult:
    """The good rows of a file, with where each came from, and the bad ones."""

    path: Path
    file_type: str
    """``jsonl``, ``json``, ``csv``, ``parquet`` or ``datasets``."""
    shape: Shape
    conversational: bool
    rows: list[dict[str, Any]]
    """The good rows as read (not normalized)."""
    row_lines: list[int | None]
    """Each good row's 1-based source line (None for Parquet/datasets/keyed JSON)."""
    row_indexes: list[int]
    """Each good row's 0-based position in the source."""
    bad_rows: list[BadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Things the reader decided that the user should know (e.g. JSONL named .json)."""
    frame: tuple[bytes, bytes] | None = None
    """JSON arrays: the bytes before and after the rows (see ``readers.Read.frame``)."""
    columns: list[str] | None = None
    """CSV: the header's column names."""

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def bad_count(self) -> int:
        return len(self.bad_rows)


def load_rows(
    path: str | Path,
    *,
    shape: Shape | str | None = None,
    split: str = "train",
    skip_bad: bool = False,
) -> LoadResult:
    """Read a dataset, detect (or take) its shape and check every row.

    Raises DataError listing every bad row unless ``skip_bad``; with it, the
    bad rows come back in ``bad_rows``. An empty file, or one with no readable
    row at all, is an error either way: there is nothing to train on.
    """
    path = Path(path)
    file_type = file_type_of(path)
    found = read(path, file_type, split)
    name = f"{path}{found.suffix}"
    if not found.records:
        raise DataError(f"{name}: the file is empty (no rows)", [BadRow(name, None, None, "the file is empty")])
    parsed = [r.value for r in found.records if r.error is None]
    if not parsed:
        bad = [_bad(name, found, r, None, r.error or "") for r in found.records]
        raise DataError(_summary(name, bad, len(found.records), "no row could be read"), bad)
    try:
        if shape is None:
            shape, conversational = detect_shape(parsed)
        else:
            shape = Shape.parse(shape)
            conversational = detect_conversational(parsed, shape)
    except DataError as err:
        raise DataError(f"{name}: {err}") from None
    result = LoadResult(
        path,
        found.file_type,
        shape,
        conversational,
        [],
        [],
        [],
        notes=list(found.notes),
        frame=found.frame,
        columns=found.columns,
    )
    for record in found.records:
        problems = [(None, record.error)] if record.error else validate_row(record.value, shape, conversational)
        if problems:
            message = "; ".join(m if i == 0 or f is None else f"field {f!r}: {m}" for i, (f, m) in enumerate(problems))
            result.bad_rows.append(_bad(name, found, record, problems[0][0], message))
        else:
            result.rows.append(record.value)
            result.row_lines.append(record.line)
            result.row_indexes.append(record.index)
    if result.bad_rows and (not skip_bad or not result.rows):
        headline = "no good rows left" if not result.rows else ""
        raise DataError(_summary(name, result.bad_rows, len(found.records), headline), result.bad_rows)
    return result


def _bad(name: str, found: Read, record: Record, field_name: str | None, message: str) -> BadRow:
    value = record.value if record.error is None else None
    return BadRow(
        name,
        record.line,
        field_name,
        message,
        record.raw,
        record.index,
        found.unit,
        record.raw_bytes,
        record.tail,
        value,
    )


def _summary(name: str, bad: list[BadRow], total: int, headline: str = "") -> str:
    """The error text: a count, the first few bad rows, and what to do."""
    head = f"{name}: {len(bad)} bad row{'s' if len(bad) != 1 else ''} of {total}"
    lines = [head + (f" ({headline})" if headline else "")]
    lines += [f"  {b}" for b in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"  ... and {len(bad) - MAX_LISTED} more")
    if total > len(bad):
        lines.append("Fix these rows, or skip them (skip_bad) to load the good rows; skipped rows are counted.")
    return "\n".join(lines)
