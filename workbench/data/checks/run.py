"""The rule-based dataset critic: every example checked, the dataset summarised.

:func:`critique` runs the checks of :data:`CHECKS` over rows of any shape and
returns a :class:`CritiqueReport`: :class:`~workbench.data.findings.DataFinding`
objects (one problem of one example, with the evidence and a fix) and a
:class:`~workbench.data.checks.summary.DatasetSummary`. It runs without a
network; with no tokenizer, lengths are words. 100k examples take about 12 s
on two cores without a tokenizer, 24 s with one (see
``bench/critique_speed.py``); ``progress`` and ``cancel`` let a UI show and
stop it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.data.checks.consistency import Convention, check_consistency
from workbench.data.checks.coverage import Coverage, coverage
from workbench.data.checks.example import Example
from workbench.data.checks.lang import check_language_mismatch
from workbench.data.checks.lengths import (
    TRUNCATIONS,
    Meter,
    TokenMeter,
    WordMeter,
    check_length_outliers,
    check_too_long,
)
from workbench.data.checks.pii import check_pii
from workbench.data.checks.rules import (
    RowCheck,
    check_empty_output,
    check_invisible_input,
    check_merged_instructions,
    check_placeholder_output,
    check_preference_pair,
    check_role_order,
)
from workbench.data.checks.summary import DatasetSummary, TurnCounter, summarise
from workbench.data.findings import DataFinding, severity_rank
from workbench.data.formats import Shape
from workbench.errors import DataError

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
class CritiqueReport:
    """What the critic found: findings sorted by example then severity, and the summary."""

    findings: list[DataFinding]
    summary: DatasetSummary
    cancelled: bool = False

    def by_index(self) -> dict[int, list[DataFinding]]:
        """Example index → its findings, worst first."""
        out: dict[int, list[DataFinding]] = {}
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
    findings: list[DataFinding] = []
    turns = TurnCounter()
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
    summary = summarise(
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
    turns: TurnCounter,
    findings: list[DataFinding],
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
