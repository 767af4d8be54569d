"""The rule-based dataset checks: every example checked, the dataset summarised.

    report = critique(result.rows, result.shape, tokenizer=tok, max_length=1024)
    for finding in report.findings: ...

:mod:`~workbench.data.checks.run` holds :func:`critique` and the registry of
check ids (:data:`CHECKS`); the checks live in modules by kind:

- :mod:`~workbench.data.checks.rules`: one example at a time (empty or placeholder
  answers, invisible input, merged instructions, role order, preference pairs)
- :mod:`~workbench.data.checks.pii`: emails, phone and card numbers, keys (masked)
- :mod:`~workbench.data.checks.lang`: the language of prompt and answer
- :mod:`~workbench.data.checks.consistency`: answers against the majority conventions
- :mod:`~workbench.data.checks.lengths`: lengths, outliers, truncation, the chat template
- :mod:`~workbench.data.checks.coverage`: topics and labels, and what is under-covered
- :mod:`~workbench.data.checks.summary`: the dataset at a glance

with :mod:`~workbench.data.checks.example` (one row as the checks see it) and
:mod:`~workbench.data.checks.text` (text helpers) under them. Findings are
:class:`workbench.data.findings.DataFinding`, shared with dedup and the LLM critic.
"""

from workbench.data.checks.consistency import Convention
from workbench.data.checks.coverage import Coverage, LabelField, Topic
from workbench.data.checks.lengths import Histogram
from workbench.data.checks.run import CHECKS, CritiqueReport, critique
from workbench.data.checks.summary import DatasetSummary, TurnStats

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
