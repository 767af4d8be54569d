"""Figures that follow from a config and a few facts: batch, steps, tokens, parameters, time.

:func:`derived` takes what is known (dataset size, processes, parameter
counts, mean example length, a measured step time) and works out the rest.
Anything it cannot work out stays None with the reason, and
:meth:`Derived.lines` shows it as "?" with that reason, so the Config pane
never shows a number it does not have.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from workbench.config.batching import BatchingPlan, padding_share
from workbench.config.precision import PrecisionPlan
from workbench.config.schema import RunConfig
from workbench.config.validate import effective_batch, eval_interval
from workbench.fmt import duration

#: An evaluation batch (forward only) costs about this share of a training micro-batch (forward and backward).
FORWARD_SHARE = 1 / 3

UNKNOWN = "?"


class Line(NamedTuple):
    """One row of the derived figures: what, its value, how it was worked out (or why it is unknown)."""

    label: str
    value: str
    explanation: str


@dataclass
class Derived:
    """The derived figures; None means unknown, and ``why[name]`` says why."""

    effective_batch: int
    examples: int | None = None  # training examples the run uses (after max_train_examples)
    sequences: int | None = None  # training sequences per epoch: examples, or packed sequences with packing
    steps_per_epoch: int | None = None
    total_steps: int | None = None
    epochs: float | None = None  # passes over the data the steps amount to
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_share: float | None = None  # 0-1
    tokens_per_step: int | None = None
    eval_every: int | None = None
    evals: int | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None  # all evaluations together
    run_seconds: float | None = None
    precision: str | None = None  # as the worker trains here ("bf16 autocast, fp32 weights")
    batches: str | None = None  # how micro-batches are made ("padded, grouped by length")
    padding_share: float | None = None  # 0-1: padding tokens in a micro-batch, over an epoch
    world_size: int = 1  # training processes (one per GPU)
    sharding: str | None = None  # how the processes split the training state ("DDP over 2: ...")
    why: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[Line]:
        """Label / value / explanation rows for the UI; unknown values show as "?" with the reason."""
        rows = [
            Line("effective batch", str(self.effective_batch), self.why["effective_batch"]),
            self._line("examples", "examples", self.examples),
            self._line("steps / epoch", "steps_per_epoch", self.steps_per_epoch),
            self._line("total steps", "total_steps", self.total_steps),
            self._line("trainable", "trainable_params", self._params()),
            self._line("tokens / step", "tokens_per_step", self.tokens_per_step, lambda v: f"{v:,}"),
            self._line("precision", "precision", self.precision),
            self._line("batches", "batches", self.batches),
            self._line("padding / step", "padding_share", self.padding_share, lambda v: f"{v:.1%} of tokens"),
            self._line("evaluations", "evals", self.evals),
            self._line("run time", "run_seconds", self.run_seconds, duration),
        ]
        if self.world_size > 1:
            rows.insert(1, Line("processes", f"{self.world_size} ({self.sharding})", self.why["world_size"]))
        return rows

    def _line(self, label: str, name: str, value: Any, show: Callable[[Any], str] = str) -> Line:
        return Line(label, UNKNOWN if value is None else show(value), self.why.get(name, ""))

    def _params(self) -> str | None:
        if self.trainable_params is None:
            return None
        text = _count(self.trainable_params)
        return text if self.trainable_share is None else f"{text} ({self.trainable_share:.2%})"


def has_eval_split(config: RunConfig) -> bool:
    """Whether the run evaluates: a validation file, or a share of train held out."""
    return config.data.val is not None or config.data.val_ratio > 0


def derived(
    config: RunConfig,
    *,
    n_train: int | None = None,
    trainable_params: int | None = None,
    total_params: int | None = None,
    mean_tokens: float | None = None,
    step_seconds: float | None = None,
    n_val: int | None = None,
    lengths: Sequence[int] | None = None,
    precision: PrecisionPlan | None = None,
    batching: BatchingPlan | None = None,
) -> Derived:
    """Work out the derived figures of a run.

    ``n_train`` is the number of training examples after the validation
    split (``max_train_examples`` is applied here too); ``mean_tokens`` the
    mean tokenized length of an example; ``step_seconds`` a measured time
    per optimizer step on this machine; ``n_val`` the validation examples
    (estimated from ``val_ratio`` when not given); ``lengths`` tokens per
    training example (a sample, truncated to ``max_length``), for the share
    of padding under ``batching``; ``precision`` the plan on the machine
    that trains. The config's ``distributed`` section says how many
    processes train (they multiply the effective batch) and how they split
    the training state (:func:`~workbench.config.distributed.sharding`). ``total_params`` is the
    base model's parameter count; with LoRA the share is taken of base plus
    adapter, as PEFT's ``print_trainable_parameters`` does.
    """
    from workbench.config.distributed import sharding

    t, d = config.train, config.distributed
    n = d.world_size
    out = Derived(effective_batch=effective_batch(config), world_size=n, sharding=sharding(config).label)
    out.why["effective_batch"] = (
        f"{t.batch_size} per device × {t.grad_accum} accumulation × {n} process{'es' * (n != 1)}"
    )
    out.why["world_size"] = f"{d.nproc_per_node} per node × {d.nnodes} node{'s' * (d.nnodes != 1)}"
    _steps(out, config, n_train, mean_tokens)
    _params(out, config, trainable_params, total_params)
    _tokens(out, config, mean_tokens)
    _time(out, config, step_seconds, n_val)
    _hardware(out, config, lengths, precision, batching)
    return out


def _hardware(
    out: Derived,
    config: RunConfig,
    lengths: Sequence[int] | None,
    precision: PrecisionPlan | None,
    batching: BatchingPlan | None,
) -> None:
    if precision is None:
        out.why["precision"] = "the hardware is not known"
    else:
        out.precision, out.why["precision"] = precision.label, f"{config.train.precision}: {precision.why}"
    if batching is None:
        out.why["batches"] = out.why["padding_share"] = "the model's attention is not known"
        return
    out.batches, out.why["batches"] = batching.label, batching.why
    if batching.flattened:
        out.padding_share = 0.0
        out.why["padding_share"] = "each micro-batch is one row of whole examples"
    elif not lengths:
        out.why["padding_share"] = "token lengths unknown (is the data readable, the model's tokenizer there?)"
    else:
        rows = config.train.batch_size * (2 if config.method == "dpo" else 1)
        out.padding_share = padding_share(lengths, rows, batching)
        why = f"rows padded to the longest of {rows}, over an epoch of {len(lengths)} examples' token lengths"
        if batching.group_by_length:
            shuffled = padding_share(lengths, rows, dataclasses.replace(batching, group_by_length=False))
            why += f"; shuffled instead: {shuffled:.1%}"
        out.why["padding_share"] = why


def _steps(out: Derived, config: RunConfig, n_train: int | None, mean_tokens: float | None) -> None:
    t, d = config.train, config.data
    if n_train is None:
        out.why["examples"] = "dataset size unknown (is data.train readable?)"
    else:
        out.examples = min(n_train, d.max_train_examples) if d.max_train_examples else n_train
        capped = d.max_train_examples is not None and n_train > d.max_train_examples
        out.why["examples"] = (
            f"first {d.max_train_examples} of {n_train} (max_train_examples)" if capped else "training split"
        )
    if out.examples is not None and t.packing:
        if mean_tokens is None:
            out.why["steps_per_epoch"] = "packing: the sequence count depends on example lengths (unknown)"
        else:
            length = min(mean_tokens, t.max_length)
            out.sequences = max(1, math.ceil(out.examples * length / t.max_length))
            out.why["steps_per_epoch"] = (
                f"about {out.sequences} packed sequences of {t.max_length} tokens "
                f"({out.examples} × {length:.0f} tokens) / effective batch {out.effective_batch}"
            )
    elif out.examples is not None:
        out.sequences = out.examples
        out.why["steps_per_epoch"] = f"{out.examples} examples / effective batch {out.effective_batch}, rounded up"
    else:
        out.why["steps_per_epoch"] = out.why["examples"]
    if out.sequences is not None:
        out.steps_per_epoch = max(1, math.ceil(out.sequences / out.effective_batch))
    if t.max_steps:
        out.total_steps = t.max_steps
        if out.steps_per_epoch:
            out.epochs = t.max_steps / out.steps_per_epoch
            out.why["total_steps"] = f"max_steps (≈ {out.epochs:.2g} epoch{'s' * (out.epochs != 1)})"
        else:
            out.why["total_steps"] = "max_steps"
    elif out.steps_per_epoch is not None:
        out.total_steps = max(1, math.ceil(out.steps_per_epoch * t.epochs))
        out.epochs = t.epochs
        out.why["total_steps"] = f"{out.steps_per_epoch} steps × {t.epochs:g} epochs, rounded up"
    else:
        out.why["total_steps"] = out.why["steps_per_epoch"]


def _params(out: Derived, config: RunConfig, trainable: int | None, total: int | None) -> None:
    out.trainable_params, out.total_params = trainable, total
    if trainable is None:
        out.why["trainable_params"] = "the model's size is unknown (is it loadable?)"
    elif total:
        adapter = config.finetune != "full"  # adapters add their parameters to the base model's
        out.trainable_share = trainable / (total + trainable if adapter else total)
        whole = f"{_count(total)} base + {_count(trainable)} adapter" if adapter else _count(total)
        out.why["trainable_params"] = f"{_count(trainable)} of {whole} parameters"
    else:
        out.why["trainable_params"] = "share unknown: total parameter count unknown"


def _tokens(out: Derived, config: RunConfig, mean_tokens: float | None) -> None:
    t = config.train
    if t.packing:
        out.tokens_per_step = out.effective_batch * t.max_length
        out.why["tokens_per_step"] = f"packing: effective batch {out.effective_batch} × max_length {t.max_length}"
    elif mean_tokens is None:
        out.why["tokens_per_step"] = "mean example length unknown"
    else:
        length = min(mean_tokens, t.max_length)
        out.tokens_per_step = round(out.effective_batch * length)
        cut = f", capped at max_length {t.max_length}" if mean_tokens > t.max_length else ""
        out.why["tokens_per_step"] = f"effective batch {out.effective_batch} × {length:.0f} mean tokens{cut}"


def _time(out: Derived, config: RunConfig, step_seconds: float | None, n_val: int | None) -> None:
    t, d = config.train, config.data
    steps = out.total_steps
    if not has_eval_split(config):
        out.evals = 0
        out.why["evals"] = "no eval split (data.val or data.val_ratio)"
    elif steps is not None:
        out.eval_every = eval_interval(config, steps)
        out.evals = steps // out.eval_every
        out.why["evals"] = f"every {out.eval_every} steps over {steps}"
    else:
        out.why["evals"] = out.why["total_steps"]
    if steps is None or step_seconds is None:
        out.why["run_seconds"] = out.why["total_steps"] if steps is None else "no measured step time (probe a step)"
        return
    out.train_seconds = steps * step_seconds
    out.run_seconds = out.train_seconds
    out.why["run_seconds"] = f"{steps} steps × {step_seconds:.3g} s"
    if not out.evals:
        return
    if n_val is None and d.val is None and out.examples is not None and not d.max_train_examples:
        n_val = round(out.examples * d.val_ratio / (1 - d.val_ratio))  # the share held out beside the training split
    if d.max_eval_examples:  # evaluations use at most this many: a bound when the eval set's size is unknown
        n_val = d.max_eval_examples if n_val is None else min(n_val, d.max_eval_examples)
    if n_val is None:
        out.why["run_seconds"] += "; evaluations not included (eval set size unknown)"
        return
    batches = math.ceil(n_val / (t.batch_size * out.world_size))
    out.eval_seconds = out.evals * batches * step_seconds / t.grad_accum * FORWARD_SHARE
    out.run_seconds += out.eval_seconds
    out.why["run_seconds"] += (
        f" + {out.evals} evaluations of {n_val} examples "
        f"(a forward batch ≈ {FORWARD_SHARE:.2g} of a training micro-batch)"
    )


def _count(n: int) -> str:
    """A parameter count as 1.2M / 135M / 7.2B."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
