"""The rule-based dataset critic: every example checked, the dataset summarised.

:func:`critique` runs the checks of :data:`CHECKS` over rows of any shape and
returns a :class:`CritiqueReport`: :class:`~workbench.data.findings.Finding`
objects (one problem of one example, with the evidence and a fix) and a
:class:`DatasetSummary` (lengths, turns and roles, answer formats, the
conventions most answers follow, and what the data covers).

The checks live in helper modules by kind: ``critique_rules`` (one example
at a time), ``critique_pii``, ``critique_lang``, ``critique_consistency``
(majority conventions), ``critique_lengths`` (lengths, outliers, truncation,
the chat template) and ``critique_coverage`` (topics and labels). It runs
without a network; with no tokenizer, lengths are words. 100k examples take
about 12 s on two cores without a tokenizer, 24 s with one (see
``bench/critique_speed.py``); ``progress`` and ``cancel`` let a UI show and
stop it.

    report = critique(result.rows, result.shape, tokenizer=tok, max_length=1024)
    for finding in report.findings: ...
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.data.critique_consistency import Convention, check_consistency
from workbench.data.critique_coverage import Coverage, LabelField, Topic, coverage
from workbench.data.critique_example import FORMATS, Example
from workbench.data.critique_lang import check_language_mismatch
from workbench.data.critique_lengths import (
    TRUNCATIONS,
    Histogram,
    Lengths,
    Meter,
    TokenMeter,
    WordMeter,
    check_length_outliers,
    check_too_long,
    histogram,
)
from workbench.data.critique_pii import check_pii
from workbench.data.critique_rules import (
    RowCheck,
    check_empty_output,
    check_invisible_input,
    check_merged_instructions,
    check_placeholder_output,
    check_preference_pair,
    check_role_order,
)
from workbench.data.findings import SEVERITIES, Finding, severity_rank
from workbench.data.formats import Shape
from workbench.data.view import Turn
from workbench.errors import DataError

__all__ = [
    "CHECKS",
    "Convention",
    "Coverage",
    "CritiqueReport",
    "DatasetSummary",
    "Histogram",
    "LabelField",
    "Topic",
    "TurnStats",
    "critique",
]

CHECKS: dict[str, str] = {
    "empty_output": "the answer (or chosen/rejected) is empty or whitespace only",
    "placeholder_output": "the answer is a placeholder (N/A, TODO, <No Output>, ...), filler or a canned refusal",
    "invisible_input": "the prompt refers to what the model can't see: an attachment, image, URL or file",
    "merged_instructions": "several examples in one: an answer running on into a new instruction or turn",
    "consistency": "answers breaking the majority convention: dates, JSON validity and keys, case, punctuation, lists",
    "length_outlier": "prompts or answers far longer or shorter than the rest (median/MAD)",
    "too_long": "examples over max_length, and whether truncation cuts the answer or only the prompt",
    "role_order": "roles out of order: assistant first, the same role twice, late system turn, no final answer",
    "chat_template": "the tokenizer's chat template fails on a conversation or drops a turn",
    "pii": "emails, phone numbers, card numbers, IBANs, API keys and tokens (values masked)",
    "language_mismatch": "the answer is in another language than the prompt",
    "coverage": "topics of the prompts, label distribution of JSON answers, and what is under-covered",
    "preference_pair": "for preference data, chosen and rejected are the same answer",
}
"""Every check id and what it finds."""

_ROW_CHECKS: dict[str, RowCheck] = {
    "empty_output": check_empty_output,
    "placeholder_output": check_placeholder_output,
    "invisible_input": check_invisible_input,
    "merged_instructions": check_merged_instructions,
    "role_order": check_role_order,
    "pii": check_pii,
    "language_mismatch": check_language_mismatch,
    "preference_pair": check_preference_pair,
}
_ORDER = {check: i for i, check in enumerate(CHECKS)}
_CHUNK = 1000
"""Examples per progress step and cancel check."""


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


@dataclass
class CritiqueReport:
    """What the critic found: findings sorted by example then severity, and the summary."""

    findings: list[Finding]
    summary: DatasetSummary
    cancelled: bool = False

    def by_index(self) -> dict[int, list[Finding]]:
        """Example index → its findings, worst first."""
        out: dict[int, list[Finding]] = {}
        for finding in self.findings:
            out.setdefault(finding.index, []).append(finding)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.summary.to_dict(),
            "cancelled": self.cancelled,
        }


class _Progress:
    """Counts work done, reports it, and answers whether to stop."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None, cancel: threading.Event | None) -> None:
        self.total, self.done = total, 0
        self.progress, self.cancel = progress, cancel

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def tick(self, n: int) -> bool:
        """``n`` more units done; False when the run should stop."""
        self.done = min(self.total, self.done + n)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return not self.cancelled


def critique(
    rows: Sequence[Any],
    shape: Shape | str,
    *,
    tokenizer: Any = None,
    max_length: int | None = None,
    checks: Collection[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    truncation: str = "keep_start",
) -> CritiqueReport:
    """Check every row and summarise the dataset.

    ``tokenizer`` (a Hugging Face tokenizer) makes lengths tokens of the
    rendered chat and enables the ``chat_template`` check; without it lengths
    are words. ``max_length`` enables ``too_long``; ``truncation`` says which
    end the trainer keeps (``keep_start``, TRL's default, cuts the answer's end).
    ``checks`` picks check ids from :data:`CHECKS` (all by default).
    ``progress(done, total)`` is called as work advances; setting ``cancel``
    stops the run soon, and the report holds what was found so far with
    ``cancelled=True``.
    """
    selected = _select(checks)
    shape = Shape.parse(shape)
    if max_length is not None and max_length < 1:
        raise DataError(f"max_length must be a positive number of tokens, not {max_length}")
    if truncation not in TRUNCATIONS:
        raise DataError(f"truncation must be one of {', '.join(TRUNCATIONS)}, not {truncation!r}")
    run = _Progress(2 * len(rows), progress, cancel)
    skipped: dict[str, str] = {}
    template_ok = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))
    if "chat_template" in selected:
        if tokenizer is None:
            skipped["chat_template"] = "no tokenizer given"
        elif not template_ok:
            skipped["chat_template"] = "the tokenizer has no chat template: conversations cannot be rendered"
    render_check = "chat_template" in selected and template_ok
    meter: Meter = WordMeter() if tokenizer is None else TokenMeter(tokenizer, render_check)
    findings: list[Finding] = []
    turns = _TurnCounter()
    examples = _first_pass(rows, shape, selected, meter, turns, findings, run)
    findings += meter.findings
    lengths = meter.lengths

    conventions: list[Convention] = []
    overview: Coverage | None = None
    later = [c for c in ("consistency", "length_outlier", "too_long", "coverage") if c in selected]
    if "too_long" in later and max_length is None:
        skipped["too_long"] = "no max_length given"
        later.remove("too_long")
    for check in later:
        if run.cancelled:
            skipped[check] = "cancelled"
            continue
        if check == "consistency":
            found, conventions = check_consistency(examples)
        elif check == "length_outlier":
            found = check_length_outliers(examples, lengths)
        elif check == "too_long":
            found = check_too_long(examples, lengths, max_length or 0, truncation)
        else:
            overview, found = coverage(examples, lambda: run.cancelled)
        findings += found
        run.tick(len(rows) // len(later))
    notes = []
    if run.cancelled:
        notes.append(f"cancelled after {len(examples):,} of {len(rows):,} examples")
    else:
        run.tick(run.total)

    findings.sort(key=lambda f: (f.index, severity_rank(f.severity), _ORDER.get(f.check, len(_ORDER))))
    summary = _summary(
        rows, shape, examples, lengths, turns.stats(), selected, skipped, findings, conventions, overview, notes
    )
    return CritiqueReport(findings, summary, run.cancelled)


def _select(checks: Collection[str] | None) -> list[str]:
    """The check ids to run, in registry order; an unknown id is an error that lists the known ones."""
    if checks is None:
        return list(CHECKS)
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise DataError(f"unknown check {', '.join(map(repr, unknown))}; expected some of: {', '.join(CHECKS)}")
    return [c for c in CHECKS if c in checks]


def _first_pass(
    rows: Sequence[Any],
    shape: Shape,
    selected: list[str],
    meter: Meter,
    turns: _TurnCounter,
    findings: list[Finding],
    run: _Progress,
) -> list[Example]:
    """Every row as an :class:`Example`, with the one-example checks run, measured and counted, chunk by chunk.

    Each example's view is released once its chunk is done: only what the dataset-wide checks need is kept.
    """
    row_checks = [_ROW_CHECKS[c] for c in selected if c in _ROW_CHECKS]
    examples: list[Example] = []
    for start in range(0, len(rows), _CHUNK):
        chunk = [Example(index, rows[index], shape) for index in range(start, min(start + _CHUNK, len(rows)))]
        for ex in chunk:
            for check in row_checks:
                findings += check(ex)
            turns.add(ex.view.turns)
        meter.measure(chunk)
        for ex in chunk:
            ex.release()
        examples += chunk
        if not run.tick(len(chunk)):
            break
    return examples


def _summary(
    rows: Sequence[Any],
    shape: Shape,
    examples: list[Example],
    lengths: Lengths,
    turns: TurnStats,
    selected: list[str],
    skipped: dict[str, str],
    findings: list[Finding],
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


class _TurnCounter:
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
