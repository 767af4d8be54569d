"""What a run's metrics say: divergence and overfitting (the detector), a flat loss, an eval loss far above train.

The records are metrics.jsonl's, or those :func:`records_from_text` finds in
a pasted log.
"""

from __future__ import annotations

import math
import re
from statistics import mean, median
from typing import Any

from workbench.advise.diagnosis import (
    FLAT_CAUSE,
    FLAT_FIX,
    NAN_CAUSE,
    OVERFIT_CAUSE,
    Confidence,
    Diagnosis,
    instability_fix,
    overfit_fix,
)
from workbench.config.schema import RunConfig
from workbench.train.detector import diagnose as detect
from workbench.train.detector import series as metric_series
from workbench.train.rundir import as_float

FLAT_WINDOW = 20
"""Logged train steps the flat-loss check looks at."""
FLAT_TOLERANCE = 0.02
"""Relative change of the train loss over the window below which it counts as flat."""


_LOGGED = re.compile(r"['\"](loss|eval_loss|learning_rate|grad_norm|step)['\"]\s*:\s*['\"]?([-+\w.]+)")


def records_from_text(text: str) -> list[dict[str, Any]]:
    """Metric records from logged dicts in text (the Trainer's ``{'loss': ...}`` lines, metrics.jsonl lines).

    A line without a step gets its position among the logged lines as the step.
    """
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        pairs = {k: as_float(v) for k, v in _LOGGED.findall(line)}
        if "loss" not in pairs and "eval_loss" not in pairs:
            continue
        step = pairs.pop("step", None)
        record: dict[str, Any] = {k: v for k, v in pairs.items() if v is not None}
        record["step"] = int(step) if step is not None and math.isfinite(step) else len(records) + 1
        record["type"] = "eval" if "eval_loss" in pairs else "train"
        records.append(record)
    return records


def _series(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, value) of one metric, finite values only, in order."""
    return [(step, value) for step, value in metric_series(records, key) if math.isfinite(value)]


def metric_diagnoses(records: list[dict[str, Any]], config: RunConfig | None) -> list[Diagnosis]:
    """Divergence and overfitting (the detector), a flat loss, and an eval loss far above train."""
    found: list[Diagnosis] = []
    verdict = detect(records)
    if verdict.kind == "diverged":
        keys = ("loss", "eval_loss", "grad_norm")
        blown = all(len(_series(records, k)) == len(metric_series(records, k)) for k in keys)  # all finite
        found.append(
            Diagnosis(
                "loss_exploded" if blown else "nan_loss",
                "the loss blew up: training diverged (learning rate too high, or no warmup)" if blown else NAN_CAUSE,
                instability_fix(None, config),
                verdict.message,
                "high",
            )
        )
    elif verdict.kind == "overfitting":
        found.append(Diagnosis("overfitting", OVERFIT_CAUSE, overfit_fix(None, config), verdict.message, "high"))
    for check in (_flat_loss, _eval_gap):
        diagnosis = check(records, config)
        if diagnosis is not None:
            found.append(diagnosis)
    return found


def _flat_loss(records: list[dict[str, Any]], config: RunConfig | None, window: int = FLAT_WINDOW) -> Diagnosis | None:
    """A train loss that moved less than FLAT_TOLERANCE over the last ``window`` logged steps, without ever learning."""
    train = [r for r in records if r.get("type", "train") == "train" and as_float(r.get("loss")) is not None]
    points = _series(train, "loss")
    losses = [v for _, v in points]
    if len(losses) < window or len(losses) < len(train):  # too short, or not finite (divergence covers it)
        return None
    last = losses[-window:]
    k = max(3, window // 4)
    head, tail = mean(last[:k]), mean(last[-k:])
    change = abs(tail - head) / max(abs(head), 1e-8)
    if change >= FLAT_TOLERANCE:
        return None
    span = (
        f"train loss {head:.4g} -> {tail:.4g} ({change:.1%}) over the last {window} logged steps "
        f"({points[-window][0]}-{points[-1][0]})"
    )
    lrs = [v for _, v in _series(train[-window:], "learning_rate")]
    norms = [v for _, v in _series(train[-window:], "grad_norm")]
    confidence: Confidence = "high"
    if lrs and max(lrs) == 0:
        cause = "the learning rate is 0: the learning-rate schedule is stuck at 0, so nothing moves"
        span += "; learning_rate 0 throughout"
    elif max(abs(v) for v in last) < 1e-6:
        cause = "the loss is 0: no token counts toward it, so the labels are all masked"
    elif norms and max(norms) == 0:
        cause = "the gradients are 0: the labels are all masked, or no parameter is trainable"
        span += "; grad_norm 0 throughout"
    else:
        start = median(losses[:3])
        if start > 0 and (start - tail) / start > 0.10:
            return None  # it learned, then levelled off: convergence, not a fault
        cause, confidence = FLAT_CAUSE, "medium"
        span += f"; {(tail - start) / start if start else 0:+.0%} since the first logged loss"
    if config is not None:
        span += f"; train.learning_rate {config.train.learning_rate:g}, train.lr_scheduler {config.train.lr_scheduler}"
    return Diagnosis("flat_loss", cause, FLAT_FIX, span, confidence)


def _eval_gap(records: list[dict[str, Any]], config: RunConfig | None, factor: float = 2.0) -> Diagnosis | None:
    """Eval loss far above train from the first evaluation, and above where train started: the splits differ."""
    evals, train = _series(records, "eval_loss"), _series(records, "loss")
    if not evals or len(train) < 2:
        return None
    step, first_eval = evals[0]
    near = [v for s, v in train if s <= step][-3:] or [v for _, v in train[:3]]
    train_now, train_start = mean(near), median(v for _, v in train[:3])
    if train_now <= 0 or first_eval < factor * train_now or first_eval <= 1.1 * train_start:
        return None  # a gap that opened by memorizing would sit below where train started
    return Diagnosis(
        "split_mismatch",
        "eval loss is far above train loss from the first evaluation: the validation data likely differs from the "
        "training data (another chat template or format, another shape, or another distribution)",
        (
            "compare data.val with data.train: same shape and same template (`workbench data inspect` on both)",
            "to confirm, drop data.val and let data.val_ratio hold out part of train: if the gap closes, the val "
            "file is the odd one",
            "apply data.system_prompt to both splits alike",
        ),
        f"first eval loss {first_eval:.4g} at step {step} vs train loss {train_now:.4g} (started at {train_start:.4g})",
        "medium",
    )
