"""The dataset at a glance, from one critique run: lengths, turns and roles, answer formats, conventions, coverage."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.data.checks.consistency import Convention
from workbench.data.checks.coverage import Coverage
from workbench.data.checks.example import FORMATS, Example
from workbench.data.checks.lengths import Histogram, Lengths, histogram
from workbench.data.findings import SEVERITIES, DataFinding
from workbench.data.formats import Shape
from workbench.data.view import Turn


@dataclass
class TurnStats:
    """How the conversations are built."""

    turns: dict[str, int]
    """Turns per example (as text, for JSON) → examples."""
    mean_turns: float
    roles: dict[str, int]
    """Role → turns with it, over every example."""
    with_system: int
    """Examples with a system prompt."""
    multi_turn: int
    """Examples with more than one user turn."""


@dataclass
class DatasetSummary:
    """The dataset at a glance; plain data, JSON-ready with :meth:`to_dict`."""

    examples: int
    """Rows given."""
    checked: int
    """Rows looked at (fewer than ``examples`` when cancelled)."""
    shape: str
    length_unit: str
    """``tokens`` with a tokenizer, ``words (no tokenizer)`` without."""
    checks_run: list[str]
    skipped: dict[str, str]
    """Check id → why it did not run (no tokenizer, no max_length, cancelled...)."""
    by_check: dict[str, int]
    """Check id → findings; every check run is listed, with 0 when it found nothing."""
    by_severity: dict[str, int]
    examples_flagged: int
    """Examples with at least one finding."""
    prompt_lengths: Histogram | None
    response_lengths: Histogram | None
    turns: TurnStats
    output_formats: dict[str, int]
    """Answer format (json object, json array, list, code, prose, empty, placeholder...) → examples."""
    conventions: list[Convention] = field(default_factory=list)
    coverage: Coverage | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """The summary as plain text, for the Data pane and the CLI."""
        flagged = sum(self.by_severity.values())
        severities = ", ".join(f"{n:,} {s}" for s, n in self.by_severity.items() if n) or "none"
        lines = [
            f"{self.checked:,} of {self.examples:,} examples checked ({self.shape}): "
            f"{flagged:,} findings on {self.examples_flagged:,} examples ({severities})"
        ]
        found = sorted(((n, c) for c, n in self.by_check.items() if n), reverse=True)
        if found:
            lines.append("By check: " + ", ".join(f"{c} {n:,}" for n, c in found))
        for name, hist in (("Prompt", self.prompt_lengths), ("Answer", self.response_lengths)):
            if hist is not None:
                lines.append(
                    f"{name} length ({self.length_unit}): {hist.sparkline()}  min {hist.min:,}, "
                    f"median {hist.median:,.0f}, p95 {hist.p95:,.0f}, max {hist.max:,}"
                )
        t = self.turns
        roles = ", ".join(f"{r} {n:,}" for r, n in t.roles.items())
        lines.append(
            f"Turns: {t.mean_turns:g} per example; roles {roles}; "
            f"{t.with_system:,} with a system prompt, {t.multi_turn:,} multi-turn"
        )
        lines.append(
            "Answers: " + ", ".join(f"{f} {n:,}" for f, n in sorted(self.output_formats.items(), key=lambda kv: -kv[1]))
        )
        if self.conventions:
            lines.append("Conventions:\n" + "\n".join(f"  {c.text}" for c in self.conventions))
        if self.coverage is not None:
            lines.append(self.coverage.text())
        if self.notes:
            lines.append("Notes:\n" + "\n".join(f"  {note}" for note in self.notes))
        return "\n".join(lines)


def summarise(
    rows: Sequence[Any],
    shape: Shape,
    examples: list[Example],
    lengths: Lengths,
    turns: TurnStats,
    selected: list[str],
    skipped: dict[str, str],
    findings: list[DataFinding],
    conventions: list[Convention],
    overview: Coverage | None,
    notes: list[str],
) -> DatasetSummary:
    by_check = {c: 0 for c in selected if c not in skipped}
    by_check.update(Counter(f.check for f in findings))
    by_severity = {s: 0 for s in SEVERITIES} | dict(Counter(f.severity for f in findings))
    formats = Counter(ex.format for ex in examples)
    notes = notes + [f"{check}: skipped, {why}" for check, why in skipped.items()]
    if lengths.estimated:
        notes.append("lengths are words, not tokens: pass a tokenizer for token counts")
    return DatasetSummary(
        examples=len(rows),
        checked=len(examples),
        shape=shape.value,
        length_unit=lengths.unit,
        checks_run=[c for c in selected if c not in skipped],
        skipped=skipped,
        by_check=by_check,
        by_severity=by_severity,
        examples_flagged=len({f.index for f in findings}),
        prompt_lengths=histogram([n for n in lengths.prompt if n is not None]),
        response_lengths=histogram([n for n in lengths.response if n is not None]),
        turns=turns,
        output_formats={f: formats[f] for f in FORMATS if formats[f]},
        conventions=conventions,
        coverage=overview,
        notes=notes,
    )


class TurnCounter:
    """Tallies turns and roles example by example, for :class:`TurnStats`."""

    def __init__(self) -> None:
        self.turns: Counter[int] = Counter()
        self.roles: Counter[str] = Counter()
        self.with_system = self.multi_turn = 0

    def add(self, turns: Sequence[Turn]) -> None:
        self.turns[len(turns)] += 1
        self.roles.update(t.role for t in turns)
        self.with_system += any(t.role == "system" for t in turns)
        self.multi_turn += sum(t.role == "user" for t in turns) > 1

    def stats(self) -> TurnStats:
        examples = sum(self.turns.values())
        total = sum(n * count for n, count in self.turns.items())
        return TurnStats(
            turns={str(n): self.turns[n] for n in sorted(self.turns)},
            mean_turns=round(total / examples, 2) if examples else 0.0,
            roles=dict(self.roles.most_common()),
            with_system=self.with_system,
            multi_turn=self.multi_turn,
        )
