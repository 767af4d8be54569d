"""What ``workbench data inspect FILE`` shows: a file's shape, size, problems and examples.

The report is plain data; the CLI prints it or dumps ``to_dict()`` as JSON.
Bad rows never stop it: the file is loaded with ``skip_bad=True`` and they
are listed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.formats import Shape, describe, type_name
from workbench.data.load import BadRow, load_rows
from workbench.data.normalize import normalization_notes, normalize
from workbench.errors import DataError


@dataclass
class InspectReport:
    """A dataset file at a glance."""

    path: str
    file_type: str
    shape: Shape
    conversational: bool
    method: str
    row_count: int
    """Good rows loaded."""
    bad_rows: list[BadRow]
    examples: list[dict[str, Any]]
    """The first few rows normalized for ``method``: what the trainer will get."""
    field_counts: dict[str, int]
    """How many good rows have each key (with a value)."""
    field_types: dict[str, dict[str, int]]
    """For each key, how many rows hold each type: a mix points at a problem."""
    notes: list[str] = field(default_factory=list)
    normalize_error: str | None = None
    """Why the rows cannot be used for ``method`` (e.g. DPO on SFT data)."""

    @property
    def bad_count(self) -> int:
        return len(self.bad_rows)

    @property
    def shape_description(self) -> str:
        """e.g. ``conversational prompt-completion shape: prompt, completion``."""
        return describe(self.shape, self.conversational)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``--json``."""
        return {
            "path": self.path,
            "file_type": self.file_type,
            "shape": self.shape.value,
            "shape_description": self.shape_description,
            "conversational": self.conversational,
            "method": self.method,
            "row_count": self.row_count,
            "bad_count": self.bad_count,
            "bad_rows": [b.to_dict() for b in self.bad_rows],
            "examples": self.examples,
            "field_counts": self.field_counts,
            "field_types": self.field_types,
            "notes": self.notes,
            "normalize_error": self.normalize_error,
        }


def inspect_file(
    path: str | Path,
    *,
    shape: Shape | str | None = None,
    method: str = "sft",
    n_examples: int = 3,
    split: str = "train",
    system_prompt: str | None = None,
) -> InspectReport:
    """Load ``path`` keeping bad rows aside and describe it.

    Raises DataError only when nothing can be read at all (missing or empty
    file, unknown shape, every row bad); the error then lists the bad rows.
    """
    result = load_rows(path, shape=shape, split=split, skip_bad=True)
    notes = list(result.notes)
    examples: list[dict[str, Any]] = []
    error = None
    try:
        normalized = normalize(result.rows, result.shape, method, system_prompt)
    except DataError as err:
        error = str(err)
    else:
        examples = normalized[:n_examples]
        notes += normalization_notes(result.shape, method, result.rows)
        if len(normalized) != len(result.rows):
            notes.append(f"{len(normalized)} of {len(result.rows)} rows are kept for {method}")
    if result.bad_rows:
        notes.append(f"{result.bad_count} bad rows skipped")
    counts: Counter[str] = Counter()
    types: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for row in result.rows:
        for key, value in row.items():
            if value is not None:
                counts[key] += 1
                types[key][type_name(value)] += 1
    return InspectReport(
        path=str(path),
        file_type=result.file_type,
        shape=result.shape,
        conversational=result.conversational,
        method=method,
        row_count=result.row_count,
        bad_rows=result.bad_rows,
        examples=examples,
        field_counts=dict(counts.most_common()),
        field_types={k: dict(v) for k, v in types.items()},
        notes=notes,
        normalize_error=error,
    )
