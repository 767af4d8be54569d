"""A run's checkpoints scored on the task, beside its loss: choose the checkpoint by the metric, not only by loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.eval.results import Results
from workbench.eval.stats import Summary, bootstrap_ci
from workbench.train.rundir import RunDir, as_float


@dataclass
class Curve:
    """One run's checkpoints in an eval: the metric per step and the run's losses."""

    run_id: str
    metric: str
    points: list[tuple[int, str, Summary]]  # (step, model key, the metric over the eval's examples)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    train_loss: list[tuple[int, float]] = field(default_factory=list)

    @property
    def best_by_metric(self) -> int | None:
        scored = [(s.mean, step) for step, _key, s in self.points if s.mean is not None]
        return max(scored)[1] if scored else None

    @property
    def best_by_loss(self) -> int | None:
        """The step of the lowest eval loss among the checkpoints' steps (the one load_best would keep)."""
        steps = {step for step, _key, _s in self.points}
        losses = [(loss, step) for step, loss in self.eval_loss if step in steps]
        return min(losses)[1] if losses else None

    def verdict(self) -> str:
        """One line: do metric and loss choose the same checkpoint?"""
        m, loss = self.best_by_metric, self.best_by_loss
        if m is None:
            return "no checkpoint of this run has a score yet"
        if loss is None or m == loss:
            return f"best checkpoint: step {m}" + (" (by the metric and by eval loss)" if loss is not None else "")
        return f"the metric picks step {m}, eval loss picks step {loss}: choose by the metric the task is judged on"


def runs_with_checkpoints(results: Results) -> list[str]:
    """Runs that have two or more checkpoints (or adapters) in this eval: those a curve can be drawn for."""
    counts: dict[str, int] = {}
    for ref in results.models:
        if ref.run_id and ref.step is not None:
            counts[ref.run_id] = counts.get(ref.run_id, 0) + 1
    return [run for run, n in counts.items() if n >= 2]


def checkpoint_curve(results: Results, run_id: str, metric: str | None = None) -> Curve:
    """The metric (default: the eval's main one) of each checkpoint of run_id, by step, with the run's losses."""
    metric = metric or results.primary
    by_step: dict[int, tuple[str, Summary]] = {}
    run_path: Path | None = None
    for ref in results.models:
        if ref.run_id != run_id or ref.step is None:
            continue
        cells = [row.cells[ref.key] for row in results.rows if row.cells[ref.key].output is not None]
        summary = bootstrap_ci([c.value(metric) for c in cells], metric=metric)
        if ref.kind == "checkpoint" or ref.step not in by_step:
            by_step[ref.step] = (ref.key, summary)
        run_path = run_path or Path(ref.path).parent
    curve = Curve(run_id, metric, [(step, key, s) for step, (key, s) in sorted(by_step.items())])
    if run_path is not None and (run_path / "metrics.jsonl").is_file():
        for record in RunDir(run_path).metrics():
            step = record.get("step")
            if not isinstance(step, int):
                continue
            if (loss := as_float(record.get("eval_loss"))) is not None:
                curve.eval_loss.append((step, loss))
            elif (loss := as_float(record.get("loss"))) is not None:
                curve.train_loss.append((step, loss))
    return curve
