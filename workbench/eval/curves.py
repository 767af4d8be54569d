"""A run's checkpoints scored on the task, beside its loss: choose the checkpoint by the metric, not only by loss."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench.eval.results import Results
from workbench.eval.stats import Difference, Summary, bootstrap_ci, paired_difference
from workbench.train.rundir import RunDir, as_float


@dataclass
class Curve:
    """One run's checkpoints in an eval: the metric per step and the run's losses."""

    run_id: str
    metric: str
    points: list[tuple[int, str, Summary]]  # (step, model key, the metric over the eval's examples)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    gap: Difference | None = None
    """The metric's paired difference between the metric's pick and the loss's pick, when they differ."""

    @property
    def tied(self) -> bool:
        """Every checkpoint has the same mean: the metric cannot choose."""
        means = {round(s.mean, 9) for _step, _key, s in self.points if s.mean is not None}
        return len(self.points) > 1 and len(means) == 1

    @property
    def best_by_metric(self) -> int | None:
        """The step with the highest mean (the earliest of equals: the least trained); None when all tie."""
        scored = [(s.mean, -step) for step, _key, s in self.points if s.mean is not None]
        return None if not scored or self.tied else -max(scored)[1]

    @property
    def best_by_loss(self) -> int | None:
        """The step of the lowest eval loss among the checkpoints' steps (the one load_best would keep)."""
        steps = {step for step, _key, _s in self.points}
        losses = [(loss, step) for step, loss in self.eval_loss if step in steps]
        return min(losses)[1] if losses else None

    def verdict(self) -> str:
        """One line: do metric and loss choose the same checkpoint?"""
        m, loss = self.best_by_metric, self.best_by_loss
        if self.tied:
            return f"every checkpoint scores the same on {self.metric}: it cannot choose" + (
                f"; eval loss picks step {loss}" if loss is not None else ""
            )
        if m is None:
            return "no checkpoint of this run has a score yet"
        if loss is None or m == loss:
            return f"best checkpoint: step {m}" + (" (by the metric and by eval loss)" if loss is not None else "")
        text = f"the metric picks step {m}, eval loss picks step {loss}"
        if self.gap is not None and self.gap.mean is not None and not self.gap.significant:
            return text + f", but the gap ({self.gap.describe()}) is within noise: evaluate more examples to tell"
        return text + ": choose by the metric the task is judged on"


def runs_with_checkpoints(results: Results) -> list[str]:
    """Runs that have two or more checkpoints (or adapters) in this eval: those a curve can be drawn for."""
    counts: dict[str, int] = {}
    for ref in results.models:
        if ref.run_id and ref.step is not None:
            counts[ref.run_id] = counts.get(ref.run_id, 0) + 1
    return [run for run, n in counts.items() if n >= 2]


FALLBACKS = ("token_f1", "rouge_l", "similarity", "judge", "human")
"""What a curve shows when the main metric ties on every checkpoint (all valid JSON, say)."""


def checkpoint_curve(results: Results, run_id: str, metric: str | None = None) -> Curve:
    """The metric of each checkpoint of run_id, by step, with the run's losses.

    Without ``metric``: the eval's main one, or, when that ties on every checkpoint, the first of
    :data:`FALLBACKS` that tells them apart.
    """
    if metric is None:
        for candidate in (results.primary, *FALLBACKS):
            curve = checkpoint_curve(results, run_id, candidate)
            if curve.points and any(s.mean is not None for _st, _k, s in curve.points) and not curve.tied:
                return curve
        return checkpoint_curve(results, run_id, results.primary)
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
    by_key = {key: step for step, (key, _s) in by_step.items()}
    if run_path is not None and (run_path / "metrics.jsonl").is_file():
        for record in RunDir(run_path).metrics():
            step = record.get("step")
            if not isinstance(step, int):
                continue
            if (loss := as_float(record.get("eval_loss"))) is not None:
                curve.eval_loss.append((step, loss))
            elif (loss := as_float(record.get("loss"))) is not None:
                curve.train_loss.append((step, loss))
    m, loss_pick = curve.best_by_metric, curve.best_by_loss
    if m is not None and loss_pick is not None and m != loss_pick:
        key_m, key_l = (next(k for k, st in by_key.items() if st == step) for step in (m, loss_pick))
        curve.gap = paired_difference(
            [r.cells[key_m].value(metric) for r in results.rows], [r.cells[key_l].value(metric) for r in results.rows]
        )
    return curve
