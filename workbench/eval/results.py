"""One eval read whole, as the review grid, the CLI and the report see it.

:class:`Results` joins the frozen examples, the predictions, their scores,
the suite checks, the judge's verdicts and the human ratings; it answers the
grid's questions (which rows are regressions, where judge and human
disagree, which fail a metric) and gives the per-model summary with
confidence intervals and the paired difference against the base model.
``refresh()`` re-reads only when a file changed, so the pane can call it
while a generation is running.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.eval import scoring
from workbench.eval.agreement import Agreement, agreement_by_item, pairwise_agreement
from workbench.eval.judge import SingleVerdict
from workbench.eval.judging import Verdicts, load_rubric, load_verdicts
from workbench.eval.metrics import METRICS
from workbench.eval.ratings import Ratings
from workbench.eval.stats import Difference, Summary, aggregate, bootstrap_ci, paired_difference
from workbench.eval.store import EvalDir, ModelRef
from workbench.eval.suites import CaseResult

FILTERS: dict[str, str] = {
    "all": "every example",
    "regressions": "a fine-tuned model does worse than the base (metric, judge or your rating)",
    "disagree": "the judge and your rating are 2+ points apart (or pass against fail)",
    "failures": "an answer fails the main metric or its regression/red-team case",
    "unrated": "examples you have not rated yet",
}
SORTS = ("order", "score", "delta")
"""Example order; the highlighted model's score on the main metric (worst first); its change against the base."""


@dataclass
class Cell:
    """One model's answer to one example, with everything said of it."""

    model: str
    output: str | None  # None: not generated yet
    record: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)
    case: CaseResult | None = None
    verdict: SingleVerdict | None = None
    human: int | None = None

    def value(self, metric: str) -> float | None:
        """A metric's value, or 'judge' / 'human' for the judge's and the person's grade."""
        if metric == "judge":
            return None if self.verdict is None or self.verdict.score is None else float(self.verdict.score)
        if metric == "human":
            return None if self.human is None else float(self.human)
        if metric == "case":
            return None if self.case is None else float(self.case.passed)
        return self.scores.get(metric)


@dataclass
class Row:
    """One example and every model's answer to it."""

    example: dict[str, Any]
    cells: dict[str, Cell]
    note: str = ""

    @property
    def id(self) -> str:
        return str(self.example["id"])

    @property
    def prompt(self) -> str:
        """The last user turn: what the grid shows of the prompt."""
        users = [m for m in self.example.get("messages") or [] if m.get("role") == "user"]
        return str((users or self.example.get("messages") or [{}])[-1].get("content", ""))

    @property
    def reference(self) -> str | None:
        return self.example.get("reference")


@dataclass
class ModelSummary:
    """One model over the whole eval: each metric with its interval, and its change against the base."""

    model: ModelRef
    done: int
    metrics: dict[str, Summary]
    delta: dict[str, Difference]  # against the base model; empty for the base itself
    cases: tuple[int, int]  # (passed, total) of regression and red-team cases
    judge: Summary
    human: Summary


@dataclass(frozen=True)
class Regression:
    """A model significantly worse than the baseline on one metric (``diff``: model minus baseline)."""

    model: str
    metric: str
    diff: Difference

    def describe(self) -> str:
        return f"{self.model}: {self.metric} {self.diff.describe()} against the baseline"


def _higher_is_better(metric: str) -> bool:
    return (
        metric in ("judge", "human", "case")
        or METRICS.get(metric) is None
        or METRICS[metric].higher_is_better is not False
    )


class Results:
    """An eval's examples x models, with scores, verdicts and ratings; see the module docstring."""

    def __init__(self, ev: EvalDir) -> None:
        self.ev = ev
        self.spec = ev.spec()
        self.models: list[ModelRef] = list(self.spec.models)
        self.keys = [m.key for m in self.models]
        self.base: str | None = (
            self.spec.baseline
            if self.spec.baseline in self.keys
            else next((m.key for m in self.models if m.kind == "base"), None)
        )
        self.examples = ev.examples()
        self.schema, self.regex = scoring.task_checks(ev)
        self.ratings = Ratings(ev.path / "ratings.jsonl")
        self.rubric = load_rubric(ev)
        self.predictions: dict[tuple[str, str], dict[str, Any]] = {}
        self.scores: dict[tuple[str, str], dict[str, float | None]] = {}
        self.cases: dict[tuple[str, str], CaseResult] = {}
        self.verdicts = Verdicts({}, {}, None)
        self.similarity: dict[tuple[str, str], float | None] = {}
        self._stamps: dict[str, tuple[int, int]] = {}
        self.changed_ids: set[str] | None = None
        """Examples whose answers the last refresh changed; None when anything may have (verdicts, a forced re-read)."""
        self.primary = self._default_primary()
        self.rows: list[Row] = []
        self.refresh(force=True)

    def _default_primary(self) -> str:
        if any(e.get("expect") for e in self.examples):
            return "case"
        if self.schema is not None or self.regex:
            return "schema_valid"
        return "token_f1" if any(e.get("reference") is not None for e in self.examples) else "json_valid"

    def _changed(self, *paths: Path) -> bool:
        changed = False
        for path in paths:
            try:
                st = path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = (0, 0)
            if self._stamps.get(str(path)) != stamp:
                self._stamps[str(path)] = stamp
                changed = True
        return changed

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read what changed on disk (predictions, judge, similarity); True when anything did."""
        ev = self.ev
        preds = self._changed(ev.predictions_path)
        judged = self._changed(ev.path / "judge.jsonl", scoring.similarity_path(ev))
        if not (force or preds or judged):
            return False
        self.changed_ids = None if (force or judged) else set()
        if force or preds:
            new = ev.predictions()
            changed = {k: r for k, r in new.items() if self.predictions.get(k, {}).get("output") != r.get("output")}
            if self.changed_ids is not None:
                self.changed_ids |= {example_id for _model, example_id in changed}
            self.scores.update(scoring.score_predictions(self.examples, changed, schema=self.schema, regex=self.regex))
            self.cases.update(scoring.check_cases(self.examples, changed))
            self.predictions = new
        self.verdicts = load_verdicts(ev, self.predictions)
        self.similarity = scoring.load_similarity(ev, self.examples, self.predictions)
        self._build_rows()
        return True

    def _build_rows(self) -> None:
        rows = []
        for example in self.examples:
            eid = str(example["id"])
            cells = {}
            for key in self.keys:
                record = self.predictions.get((key, eid))
                scores = dict(self.scores.get((key, eid), {}))
                if (key, eid) in self.similarity:
                    scores["similarity"] = self.similarity[(key, eid)]
                cells[key] = Cell(
                    key,
                    None if record is None else str(record.get("output") or ""),
                    record or {},
                    scores,
                    self.cases.get((key, eid)),
                    self.verdicts.single.get((key, eid)),
                    self.ratings.score_of(eid, key),
                )
            rating = self.ratings.get(eid)
            rows.append(Row(example, cells, rating.note if rating else ""))
        self.rows = rows

    def reload_ratings(self) -> None:
        """After a rating changed: the human column of each cell follows the journal."""
        for row in self.rows:
            for key, cell in row.cells.items():
                cell.human = self.ratings.score_of(row.id, key)
            rating = self.ratings.get(row.id)
            row.note = rating.note if rating else ""

    # --- questions the grid asks -------------------------------------------------------

    def worse_than_base(self, row: Row, model: str) -> bool:
        """The model did worse than the base on this example: main metric, judge or human grade."""
        if self.base is None or model == self.base:
            return False
        base, cell = row.cells[self.base], row.cells[model]
        for metric in (self.primary, "judge", "human", *self._held_metrics()):
            b, c = base.value(metric), cell.value(metric)
            if b is not None and c is not None and (c < b if _higher_is_better(metric) else c > b):
                return True
        return False

    def disagrees(self, cell: Cell) -> bool:
        j, h = cell.value("judge"), cell.value("human")
        if j is None or h is None:
            return False
        if self.rubric.pass_fail:
            return (j >= 1) != (h >= 3)  # a person's 1-5: 3 and up counts as a pass
        return abs(j - h) >= 2

    def fails(self, cell: Cell) -> bool:
        if cell.output is None:
            return False
        if cell.case is not None:
            return not cell.case.passed
        value = cell.value(self.primary)
        meta = METRICS.get(self.primary)
        if value is None or meta is None or meta.kind != "rate":
            return False
        return value < 0.5 if meta.higher_is_better else value > 0.5

    def matches(self, row: Row, name: str) -> bool:
        if name == "regressions":
            return any(self.worse_than_base(row, m) for m in self.keys)
        if name == "disagree":
            return any(self.disagrees(c) for c in row.cells.values())
        if name == "failures":
            return any(self.fails(c) for c in row.cells.values())
        if name == "unrated":
            rating = self.ratings.get(row.id)
            return all(c.human is None for c in row.cells.values() if c.output is not None) and not (
                rating and rating.choices
            )
        return True

    def view(
        self, filter_name: str = "all", search: str = "", sort: str = "order", model: str | None = None
    ) -> list[Row]:
        """The rows the grid shows: filtered, searched (prompt, reference, answers, note), sorted."""
        needle = search.casefold().strip()
        rows = [r for r in self.rows if self.matches(r, filter_name)]
        if needle:
            rows = [
                r
                for r in rows
                if needle
                in "\n".join(
                    [r.prompt, r.reference or "", r.note, *(c.output or "" for c in r.cells.values())]
                ).casefold()
            ]
        model = model or (self.keys[-1] if self.keys else None)
        if sort == "order" or model is None:
            return rows
        sign = 1 if _higher_is_better(self.primary) else -1

        def key(row: Row) -> float:
            value = row.cells[model].value(self.primary)
            if value is None:
                return float("inf")
            if sort == "delta" and self.base is not None:
                base = row.cells[self.base].value(self.primary)
                return float("inf") if base is None else sign * (value - base)
            return sign * value

        return sorted(rows, key=key)  # worst first

    # --- the whole eval ------------------------------------------------------------------

    def summaries(self, metric_keys: Sequence[str] | None = None) -> list[ModelSummary]:
        """Per model: every metric with a 95% bootstrap interval, and its paired difference against the base."""
        keys = list(metric_keys or [k for k in METRICS if k != "similarity" or self.similarity])
        out = []
        for ref in self.models:
            cells = [row.cells[ref.key] for row in self.rows]
            done = [c for c in cells if c.output is not None]
            per = aggregate([{k: c.value(k) for k in keys} for c in done]) if done else {}
            delta: dict[str, Difference] = {}
            if self.base is not None and ref.key != self.base and done:
                base_cells = [row.cells[self.base] for row in self.rows]
                for k in [*keys, "judge", "human"]:
                    delta[k] = paired_difference([c.value(k) for c in cells], [b.value(k) for b in base_cells])
            results = [c.case for c in done if c.case is not None]
            out.append(
                ModelSummary(
                    ref,
                    len(done),
                    per,
                    delta,
                    (sum(r.passed for r in results), len(results)),
                    bootstrap_ci([c.value("judge") for c in done], metric="judge"),
                    bootstrap_ci([c.value("human") for c in done], metric="human"),
                )
            )
        return out

    def regressions(
        self, models: Sequence[str] | None = None, summaries: Sequence[ModelSummary] | None = None
    ) -> list[Regression]:
        """Where a model did significantly worse than the eval's baseline (``baseline`` in eval.yaml: a
        revalidation's release column), metric by metric over the examples both answered; [] with no baseline.

        Regression and red-team cases are the gate's own business (each failing case fails it); neutral
        figures (length) have no worse.
        """
        if not self.spec.baseline or self.spec.baseline not in self.keys:
            return []
        chosen = [k for k in (models or self.keys) if k != self.spec.baseline]
        keys = self._held_metrics()
        if self.verdicts.single:
            keys.append("judge")
        out = []
        for summary in summaries if summaries is not None else self.summaries([k for k in keys if k in METRICS]):
            if summary.model.key not in chosen:
                continue
            for metric in keys:
                diff = summary.delta.get(metric)
                if diff is None or not diff.significant or diff.mean is None:
                    continue
                if (diff.mean < 0) == _higher_is_better(metric):
                    out.append(Regression(summary.model.key, metric, diff))
        return out

    @property
    def expected_answers(self) -> int:
        """Answers the eval will have when complete: every row for each model, a frozen one's copies only."""
        return sum(
            sum(1 for row in self.rows if (m.key, row.id) in self.predictions) if m.frozen else len(self.rows)
            for m in self.models
        )

    @property
    def compared_with(self) -> str:
        """What the deltas are against, in words: ``the base``, or ``the release`` of a revalidation."""
        if self.spec.baseline and self.spec.baseline in self.keys:
            return "the release" if self.spec.baseline.startswith("release:") else "the baseline"
        return "the base"

    def _held_metrics(self) -> list[str]:
        """With an explicit baseline: every metric with a better direction that says something here."""
        if not self.spec.baseline:
            return []
        return [k for k in METRICS if k != "case" and METRICS[k].higher_is_better is not None and self.has_metric(k)]

    def has_metric(self, metric: str) -> bool:
        """Whether the metric says anything for this eval (a summary column is worth its width)."""
        if metric == "case":
            return bool(self.cases)
        if metric == "judge":
            return bool(self.verdicts.single)
        if metric == "human":
            return any(r.scores for r in self.ratings.by_id.values())
        if metric == "similarity":
            return bool(self.similarity)
        if metric in ("exact_match", "token_f1", "rouge_l"):
            return metric == self.primary or (
                metric in ("exact_match", "token_f1") and any(e.get("reference") for e in self.examples)
            )
        if metric == "schema_valid":
            return self.schema is not None or bool(self.regex)
        return metric == "refusal"

    def agreement(self) -> dict[str, Agreement]:
        """Judge against human, per rubric item (and overall), on the answers both graded."""
        return agreement_by_item(list(self.verdicts.single.values()), self.ratings.records(), scale=self.rubric.scale)

    def pair_agreement(self) -> Agreement:
        return pairwise_agreement(list(self.verdicts.pairs.values()), self.ratings.records())

    def counts(self) -> Mapping[str, int]:
        """Rows per filter, for the filter bar."""
        return {name: sum(self.matches(r, name) for r in self.rows) for name in FILTERS}
