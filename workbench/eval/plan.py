"""Planning a new eval from a user's choices: which models, which examples, which checks.

The Eval pane's dialog and ``workbench eval new`` both end here. A dataset
split and any regression / red-team suites can go into one eval; a
``schema.json`` beside the dataset is used as the task's schema unless one is
named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.eval.candidates import examples_from_dataset, examples_from_suite
from workbench.eval.store import EvalDir, EvalError, EvalSpec, GenerationSettings, ModelRef, create_eval
from workbench.workspace import SCHEMA_NAME


@dataclass
class Plan:
    """What an eval will be made of, and the problems met while reading its inputs (shown, not hidden)."""

    spec: EvalSpec
    examples: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        cases = sum(1 for e in self.examples if e.get("expect"))
        parts = [f"{len(self.spec.models)} model(s) x {len(self.examples)} example(s)"]
        if cases:
            parts.append(f"{cases} of them regression/red-team cases")
        if self.spec.schema_path:
            parts.append(f"schema {Path(self.spec.schema_path).name}")
        return ", ".join(parts)


def parse_selection(text: str | None) -> list[int] | None:
    """'3,5,10-12' -> [3, 5, 10, 11, 12] (dataset rows, 0-based); empty -> None (every row)."""
    if not text or not text.strip():
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise EvalError(f"rows {text!r}: expected row indexes such as 3,5,10-12") from None
    return out


def schema_beside(dataset: str | Path | None) -> Path | None:
    """The task's JSON Schema when one sits beside the dataset (``schema.json``)."""
    if dataset is None:
        return None
    path = Path(dataset).parent / SCHEMA_NAME
    return path.resolve() if path.is_file() else None


def plan_eval(
    models: Sequence[ModelRef],
    *,
    data: str | Path | None = None,
    suites: Sequence[str | Path] = (),
    limit: int | None = None,
    selection: Sequence[int] | None = None,
    settings: GenerationSettings | None = None,
    name: str | None = None,
    schema: str | Path | None = None,
    regex: str | None = None,
    auto_schema: bool = True,
) -> Plan:
    """The spec and frozen examples of an eval of ``models`` on a dataset and/or suites."""
    if not models:
        raise EvalError("choose at least one model to evaluate")
    if data is None and not suites:
        raise EvalError("choose a dataset (the test split) or a regression/red-team suite")
    examples: list[dict[str, Any]] = []
    problems: list[str] = []
    if data is not None:
        examples += examples_from_dataset(Path(data), selection=list(selection) if selection else None, limit=limit)
    for suite in suites:
        cases, bad = examples_from_suite(suite)
        examples += cases
        problems += bad
    if schema is None and auto_schema:
        schema = schema_beside(data)
    first = Path(data) if data is not None else Path(suites[0])
    spec = EvalSpec(
        name=name or first.stem,
        dataset=str(first.resolve()),
        source="dataset" if data is not None else "suite",
        selection=list(selection) if selection else None,
        models=list(models),
        generation=settings or GenerationSettings(),
        schema=str(Path(schema).resolve()) if schema else None,
        regex=regex,
        suites=[str(Path(s).resolve()) for s in suites],
    )
    return Plan(spec, examples, problems)


def create_from_plan(workspace: str | Path, plan: Plan) -> EvalDir:
    return create_eval(workspace, plan.spec, plan.examples)
