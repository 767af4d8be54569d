"""Validation of a run config: one place, many small rules.

A rule is a function ``(config, context) -> iterable of Finding``, registered
with :func:`rule`. The Config pane runs them live, ``workbench check`` prints
them, and the trainer refuses to start when any finding is an error.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from workbench.config.schema import RunConfig

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    """One thing worth telling about a config, tied to the field it concerns."""

    severity: Severity
    field: str
    message: str
    suggestion: Any = None  # a value for `field` that fixes it, when there is one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        fix = f" (suggested: {self.suggestion!r})" if self.suggestion is not None else ""
        return f"{self.severity}: {self.field}: {self.message}{fix}"


@dataclass
class Hardware:
    """What the machine can do, as far as rules care."""

    cuda: bool = False
    bf16: bool = False
    bitsandbytes: bool = False

    @classmethod
    def detect(cls) -> Hardware:
        import torch

        cuda = torch.cuda.is_available()
        return cls(
            cuda=cuda,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
        )


@dataclass
class Context:
    """Facts beyond the config itself that some rules need; None means unknown (rule skipped)."""

    hardware: Hardware = field(default_factory=Hardware)
    n_train: int | None = None  # training examples after the split
    n_val: int | None = None
    data_shape: str | None = None  # detected shape of the training data
    missing_files: list[str] = field(default_factory=list)


Rule = Callable[[RunConfig, Context], Iterable[Finding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def validate(config: RunConfig, context: Context | None = None) -> list[Finding]:
    """Every finding of every rule, errors first."""
    ctx = context or Context()
    findings = [f for r in RULES for f in r(config, ctx)]
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order[f.severity])


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def total_steps(config: RunConfig, n_train: int | None) -> int | None:
    """Optimizer steps the run will take, when the dataset size is known."""
    t = config.train
    if t.max_steps:
        return t.max_steps
    if not n_train:
        return None
    per_epoch = max(1, math.ceil(n_train / (t.batch_size * t.grad_accum)))
    return max(1, math.ceil(per_epoch * t.epochs))


def eval_interval(config: RunConfig, steps: int | None) -> int:
    """The eval interval in steps: the configured one, else about ten evaluations per run."""
    if config.eval.eval_steps:
        return config.eval.eval_steps
    return max(1, (steps or 100) // 10)


# --- the rules --------------------------------------------------------------


@rule
def _data_files(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    for name in ctx.missing_files:
        yield Finding("error", f"data.{name}", f"file not found: {config.resolve(getattr(config.data, name))}")


@rule
def _learning_rate(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    lr = config.train.learning_rate
    if config.method == "dpo":
        lo, hi, typical, what = 1e-7, 5e-5 if config.finetune != "full" else 1e-5, 5e-6, "DPO"
    elif config.finetune == "full":
        lo, hi, typical, what = 5e-6, 1e-4, 2e-5, "full fine-tuning"
    else:
        lo, hi, typical, what = 2e-5, 2e-3, 2e-4, "LoRA"
    if lr > hi * 5 or lr < lo / 5:
        yield Finding("error", "train.learning_rate", f"{lr:g} is far outside the usual range for {what} ({lo:g} to {hi:g})", typical)
    elif lr > hi or lr < lo:
        yield Finding("warning", "train.learning_rate", f"{lr:g} is outside the usual range for {what} ({lo:g} to {hi:g})", typical)


@rule
def _warmup(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    if config.train.warmup_ratio == 0:
        yield Finding("warning", "train.warmup_ratio", "no warmup: the first steps at full learning rate can spike the loss", 0.05)


@rule
def _lora(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    if config.finetune == "full":
        return
    lora = config.lora
    scale = lora.alpha / (math.sqrt(lora.r) if lora.rslora else lora.r)
    if not lora.rslora and lora.r >= 64:
        yield Finding("info", "lora.rslora", f"rank {lora.r}: rsLoRA scaling keeps large ranks learning", True)
    if scale > 8:
        yield Finding("warning", "lora.alpha", f"scale alpha/r = {scale:g} is high; the usual is 1 to 2", lora.r * 2)
    elif scale < 0.25:
        yield Finding("warning", "lora.alpha", f"scale alpha/r = {scale:g} is low; updates will barely move the model", lora.r * 2)
    if lora.dropout > 0.3:
        yield Finding("warning", "lora.dropout", f"dropout {lora.dropout:g} is unusually high (0 to 0.1 is typical)", 0.05)


@rule
def _epochs(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    if not config.train.max_steps and config.train.epochs > 3:
        yield Finding(
            "warning", "train.epochs",
            f"{config.train.epochs:g} epochs: a task set is usually memorized after 3; watch eval loss", 3,
        )


@rule
def _steps(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    steps = total_steps(config, ctx.n_train)
    if steps is not None and steps < 10:
        t = config.train
        yield Finding(
            "warning", "train.grad_accum",
            f"only {steps} optimizer steps (effective batch {t.batch_size * t.grad_accum}): too few to learn or to judge",
            1 if t.grad_accum > 1 else None,
        )


@rule
def _evaluation(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    has_val = config.data.val is not None or config.data.val_ratio > 0
    e = config.eval
    if not has_val:
        if e.early_stopping_patience:
            yield Finding("error", "eval.early_stopping_patience", "early stopping needs an eval split (data.val or data.val_ratio)", None)
        if e.load_best:
            yield Finding("error", "eval.load_best", "choosing the best checkpoint needs an eval split (data.val or data.val_ratio)", False)
        if e.stop_on_overfit:
            yield Finding("error", "eval.stop_on_overfit", "overfitting is seen on eval loss: add data.val or data.val_ratio", False)
    if e.save_steps and e.eval_steps and e.load_best and e.save_steps % e.eval_steps:
        yield Finding(
            "error", "eval.save_steps",
            f"with load_best, checkpoints must fall on evaluations: save_steps ({e.save_steps}) must be a multiple of eval_steps ({e.eval_steps})",
            e.eval_steps,
        )
    steps = total_steps(config, ctx.n_train)
    if steps and e.eval_steps and e.eval_steps > steps:
        yield Finding("warning", "eval.eval_steps", f"eval every {e.eval_steps} steps but the run has only {steps}: no evaluation", max(1, steps // 10))


@rule
def _hardware(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    hw = ctx.hardware
    p = config.train.precision
    if p == "bf16" and not hw.bf16:
        yield Finding("error", "train.precision", "bf16 is not supported here (needs an Ampere or newer GPU)", "auto")
    if p == "fp16" and not hw.cuda:
        yield Finding("error", "train.precision", "fp16 mixed precision needs a CUDA GPU", "auto")
    if config.finetune == "qlora":
        if not hw.cuda:
            yield Finding("error", "finetune", "QLoRA (4-bit) needs a CUDA GPU", "lora")
        elif not hw.bitsandbytes:
            yield Finding("error", "finetune", "QLoRA needs the bitsandbytes package (pip install bitsandbytes)", "lora")


@rule
def _method_vs_data(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    shape = ctx.data_shape
    if shape is None:
        return
    is_pref = shape.startswith("preference")
    if config.method == "dpo" and not is_pref:
        yield Finding("error", "method", f"DPO needs preference pairs (prompt, chosen, rejected); the training data is {shape}", "sft")
    elif config.method == "sft" and is_pref:
        yield Finding("info", "method", f"the training data is {shape}: SFT will train on the chosen answers only", "dpo")


@rule
def _trust_remote_code(config: RunConfig, ctx: Context) -> Iterable[Finding]:
    if config.trust_remote_code:
        yield Finding("warning", "trust_remote_code", "the model repository's Python code will run on this machine", False)
