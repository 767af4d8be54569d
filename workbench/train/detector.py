"""Overfitting and divergence detection: a pure function over metric records.

The worker calls :func:`diagnose` after each log or eval event and records
the verdict; the Train pane calls it on what it has read. Same input, same
verdict, anywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

from workbench.train.rundir import as_float


@dataclass(frozen=True)
class Verdict:
    """What the detector concluded, and from which step on it holds."""

    kind: str  # "ok", "overfitting" or "diverged"
    step: int | None = None  # the step the verdict was reached at
    since_step: int | None = None  # where the trouble began (the best eval, or the first bad loss)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


OK = Verdict("ok")


def series(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, value) of one metric in logged order, for records that have both; NaN and inf are kept."""
    out = []
    for r in records:
        value = as_float(r.get(key))
        if value is not None and r.get("step") is not None:
            out.append((int(r["step"]), value))
    return out


def diagnose(
    records: list[dict[str, Any]],
    *,
    patience: int = 3,
    min_rise: float = 0.02,
    explode_factor: float = 3.0,
) -> Verdict:
    """Divergence first (it is urgent), then overfitting.

    Overfitting: the best eval loss is ``patience`` or more evaluations back,
    the evaluations since trend upward (least-squares slope), the latest is at
    least ``min_rise`` (relative) above the best, and the train loss since the
    best fell. One noisy eval neither raises nor clears it.

    Divergence: a NaN or infinite train/eval loss or grad norm, or a train loss
    ``explode_factor`` times above the median of the first logged losses.
    """
    verdict = _divergence(records, explode_factor)
    return verdict if verdict.kind != "ok" else _overfitting(records, patience, min_rise)


def _divergence(records: list[dict[str, Any]], explode_factor: float) -> Verdict:
    for key in ("loss", "eval_loss", "grad_norm"):
        for step, value in series(records, key):
            if not math.isfinite(value):
                return Verdict("diverged", step, step, f"{key} became {value} at step {step}")
    train = series(records, "loss")
    if len(train) >= 4:
        base = median(v for _, v in train[:3])
        step, last = train[-1]
        if base > 0 and last > explode_factor * base:
            start = next(s for s, v in train if v > explode_factor * base)
            return Verdict(
                "diverged",
                step,
                start,
                f"train loss {last:.3g} at step {step} is {last / base:.1f}x its starting level {base:.3g}",
            )
    return OK


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of value against step."""
    n = len(points)
    mx = sum(s for s, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((s - mx) ** 2 for s, _ in points)
    return sum((s - mx) * (v - my) for s, v in points) / var if var else 0.0


def _overfitting(records: list[dict[str, Any]], patience: int, min_rise: float) -> Verdict:
    evals = series(records, "eval_loss")
    if len(evals) < patience + 1:
        return OK
    best_i = min(range(len(evals)), key=lambda i: evals[i][1])
    since_best = evals[best_i:]
    if len(since_best) < patience + 1:
        return OK  # the best is too recent to call a turn
    best_step, best = evals[best_i]
    step, last = evals[-1]
    if last < best * (1 + min_rise) or _slope(since_best) <= 0:
        return OK
    train = series(records, "loss")
    before = [v for s, v in train if s <= best_step][-3:]
    since = [v for s, v in train if s > best_step]
    if not before or not since or sum(since) / len(since) >= sum(before) / len(before):
        return OK  # both rising is not overfitting; divergence or a bad LR would show elsewhere
    return Verdict(
        "overfitting",
        step,
        best_step,
        f"eval loss rose from {best:.4f} at step {best_step} to {last:.4f} at step {step} "
        f"while train loss kept falling: the model is memorizing the training set",
    )
