"""A :class:`Diagnosis` (cause, fixes, evidence, confidence) and what text patterns and metric checks share.

The causes and fixes here are found both ways: a pasted log that says the
loss is NaN and a metrics.jsonl whose loss turned NaN get the same advice.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from workbench.config.schema import RunConfig, field_help

Confidence = Literal["high", "medium", "low"]
_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class Diagnosis:
    """A likely cause of a problem, what to change, and the line it rests on."""

    key: str  # a stable id of the cause ("oom", "nan_loss", ...)
    cause: str
    fix: tuple[str, ...]  # concrete steps, naming run config fields
    evidence: str  # the matched line, or the metric facts
    confidence: Confidence

    def text(self) -> str:
        """The diagnosis as a few lines of plain text."""
        lines = [f"{self.cause} ({self.confidence} confidence)", f"  evidence: {self.evidence}"]
        lines += [f"  - {step}" for step in self.fix]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- causes and fixes shared by text patterns and metric checks --------------

NAN_CAUSE = (
    "the loss became NaN or infinite: training diverged (learning rate too high, fp16 overflow, or a batch "
    "with nothing to learn)"
)
FLAT_CAUSE = (
    "the loss does not move: the learning rate is too low, the labels are all masked, or the learning-rate "
    "schedule is stuck at 0"
)
OVERFIT_CAUSE = "overfitting: the model memorizes the training set, so eval loss rises while train loss falls"
FLAT_FIX = (
    "raise train.learning_rate; " + field_help()["train.learning_rate"],
    "check train.lr_scheduler and train.warmup_ratio: a logged learning_rate of 0 means the schedule is stuck",
    "check that answers are not masked away: an empty answer, or a chat template that marks no assistant turn, "
    "leaves nothing to learn",
    "with finetune: lora, check lora.target_modules matched layers (the run logs the trainable parameters)",
)


def instability_fix(match: re.Match[str] | None, config: RunConfig | None) -> tuple[str, ...]:
    """Steps against a loss that became NaN or blew up."""
    steps: list[str] = []
    if config is None:
        steps.append("lower train.learning_rate by 2 to 10x")
        steps.append("train.warmup_ratio: 0.05 or more, and train.max_grad_norm: 1.0")
        steps.append("train.precision: bf16 or fp32 instead of fp16 (fp16 overflows to inf)")
    else:
        t = config.train
        steps.append(f"train.learning_rate: {t.learning_rate:g} -> {t.learning_rate / 5:g}")
        if t.warmup_ratio < 0.05:
            steps.append(f"train.warmup_ratio: {t.warmup_ratio:g} -> 0.05")
        if t.max_grad_norm > 1.0:
            steps.append(f"train.max_grad_norm: {t.max_grad_norm:g} -> 1.0")
        if t.precision == "fp16":
            steps.append("train.precision: bf16 or fp32 instead of fp16 (fp16 overflows to inf)")
    steps.append("look for training examples with an empty answer: a batch with every label masked gives 0/0 = NaN")
    return tuple(steps)


def overfit_fix(match: re.Match[str] | None, config: RunConfig | None) -> tuple[str, ...]:
    steps = [
        "eval.load_best: true, so the final adapter is the checkpoint with the lowest eval loss",
        "eval.stop_on_overfit: true, or eval.early_stopping_patience: 3, to stop when eval loss turns up",
    ]
    if config is not None and not config.train.max_steps:
        steps.append(f"fewer train.epochs: {config.train.epochs:g} -> {max(1.0, config.train.epochs / 2):g}")
    else:
        steps.append("fewer train.epochs (or a lower train.max_steps)")
    steps.append("lower train.learning_rate, or a smaller lora.r with lora.dropout 0.05-0.1")
    steps.append("more, and more varied, training data: memorizing is easy on a small set")
    return tuple(steps)


def merge(*groups: list[Diagnosis]) -> list[Diagnosis]:
    """The diagnoses in order, keeping the first of each cause."""
    seen: set[str] = set()
    out = []
    for group in groups:
        for d in group:
            if d.key not in seen:
                seen.add(d.key)
                out.append(d)
    return out


def by_confidence(found: list[Diagnosis]) -> list[Diagnosis]:
    return sorted(found, key=lambda d: _RANK[d.confidence])
