"""The one mapping from a run config onto TRL's ``SFTConfig`` / ``DPOConfig`` and PEFT's ``LoraConfig``.

Every consumer takes its trainer arguments from :func:`training_arguments`:
the training worker (:func:`workbench.train.worker.build_trainer`, which the
probe of :mod:`workbench.config.probe` builds its trainer with), the TRL CLI
export and the Python script export (:mod:`workbench.config.export`). What
differs between them is only what they know:

* the step count: the worker counts its training examples, an export knows
  it when it is given the dataset size (or ``train.max_steps`` is set). The
  eval/save interval follows from it by :func:`schedule`, one rule for all;
* the precision: the worker resolves ``precision: auto`` on the machine that
  trains (:func:`machine_precision`), the TRL export on the exporting machine,
  the script when it runs (:mod:`workbench.config.precision` says how);
* process-level settings (``use_cpu``, tqdm, dataloader workers), which are
  the worker's own and not part of a config.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

from workbench.config.batching import BatchingPlan, plan_batching
from workbench.config.distributed import resolve_backend
from workbench.config.precision import Precision, PrecisionPlan, machine_plan, plan_precision
from workbench.config.schema import RunConfig
from workbench.config.validate import Hardware, eval_interval

#: Per precision: the dtype the base model loads in, and the trainer's mixed-precision flags. Both flags
#: are always given: TRL turns bf16 on when neither is set.
PRECISIONS: dict[Precision, tuple[str, dict[str, bool]]] = {
    "bf16": ("bfloat16", {"bf16": True, "fp16": False}),
    "fp16": ("float32", {"bf16": False, "fp16": True}),  # fp16 AMP needs fp32 master weights
    "fp32": ("float32", {"bf16": False, "fp16": False}),
}

#: Without a known step count, the eval interval as a share of the run (TRL's own float form): about ten
#: evaluations, as the workbench's ``total_steps // 10``.
EVAL_SHARE = 0.1

#: QLoRA's ``BitsAndBytesConfig`` arguments (4-bit NF4, nested quantization, bf16 compute).
QUANTIZATION: dict[str, Any] = {
    "load_in_4bit": True,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_use_double_quant": True,
    "bnb_4bit_compute_dtype": "bfloat16",
}


class Schedule(NamedTuple):
    """The eval and save intervals: steps (int), a share of the run (float below 1), and why when not exact."""

    eval_steps: int | float
    save_steps: int | float
    note: str | None = None


# --- precision ---------------------------------------------------------------------------------------------


def precision_plan(precision: str, hardware: Hardware) -> PrecisionPlan:
    """How a config's ``train.precision`` trains on ``hardware``, and why (see :mod:`workbench.config.precision`)."""
    return plan_precision(precision, cuda=hardware.cuda, gpu_bf16=hardware.bf16, cpu_bf16=hardware.cpu_bf16)


def resolve_precision(precision: str, hardware: Hardware) -> Precision:
    """The concrete precision: ``auto`` is bf16 on a GPU that has it, fp16 on other GPUs, bf16 autocast on a
    CPU with native bf16 (AMX or AVX512-BF16), else fp32."""
    return precision_plan(precision, hardware).precision


def machine_precision(precision: str) -> Precision:
    """The concrete precision on this machine, as the worker trains (torch and the CPU's flags; no NVML query)."""
    return machine_plan(precision).precision


def precision_arguments(precision: Precision, *, cuda: bool = True) -> tuple[str, dict[str, bool]]:
    """The base model's load dtype (a torch dtype name) and the trainer flags for a concrete precision.

    On a CPU (``cuda`` False) bf16 autocasts over fp32 weights.
    """
    dtype, flags = PRECISIONS[precision]
    return ("float32" if not cuda else dtype), dict(flags)


@functools.cache
def checkpointing_key() -> str:
    """The installed transformers' name for activation checkpointing (renamed in transformers 5)."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


# --- the mapping -------------------------------------------------------------------------------------------


def schedule(config: RunConfig, steps: int | None) -> Schedule:
    """Eval and save intervals for a run of ``steps`` optimizer steps (None: not known).

    With the step count: ``eval.eval_steps``, else about ten evaluations
    (:func:`~workbench.config.validate.eval_interval`); checkpoints at
    ``eval.save_steps``, else at each evaluation. Without it and without
    ``eval.eval_steps``: evaluate at each checkpoint when ``eval.save_steps``
    is set, else every :data:`EVAL_SHARE` of the run, which TRL rounds up
    (the workbench rounds ``total_steps / 10`` down), with a note saying so.
    """
    e = config.eval
    if steps or e.eval_steps:
        every = eval_interval(config, steps)
        return Schedule(every, e.save_steps or every)
    if e.save_steps:
        return Schedule(
            e.save_steps,
            e.save_steps,
            "eval.eval_steps unset and the step count unknown: evaluating at each checkpoint (save_steps); "
            "export with the dataset size for the workbench's exact interval",
        )
    return Schedule(
        EVAL_SHARE,
        EVAL_SHARE,
        f"eval.eval_steps unset and the step count unknown: TRL evaluates every {EVAL_SHARE:g} of the run "
        "(rounded up), the workbench every total_steps // 10 steps; export with the dataset size for the exact "
        "interval",
    )


def training_arguments(
    config: RunConfig,
    *,
    output_dir: str,
    steps: int | None,
    has_eval: bool,
    precision: Precision | None = None,
    batching: BatchingPlan | None = None,
    cuda: bool | None = None,
) -> dict[str, Any]:
    """Keyword arguments of TRL's ``SFTConfig`` / ``DPOConfig`` for this config.

    ``steps`` is the run's optimizer step count when known (see
    :func:`~workbench.config.validate.total_steps`), which settles the eval
    interval (:func:`schedule`). ``precision``, when given, adds the
    mixed-precision flags (:func:`precision_arguments`); without it the
    caller decides them where it trains (the script does, at run time).
    ``batching`` is the plan for the attention implementation that trains
    (:func:`~workbench.config.batching.plan_batching`); without it, the plan
    for an unknown one (padding-free only when the config says so). TRL
    refuses padding-free rows with a ``max_length`` unless it packs, so then
    ``max_length`` is None here and the worker truncates the tokenized
    examples itself (:func:`workbench.train.packed.truncate`).

    A run of several processes (the config's ``distributed`` section) adds
    DDP's settings: the collective backend (``auto`` resolved for ``cuda``,
    whether CUDA GPUs train; left to accelerate when that is not known) and
    no search for unused parameters (every trainable parameter is used in
    each step, so the search would only cost time).
    """
    t, e = config.train, config.eval
    plan = batching or plan_batching(config, None)
    when = schedule(config, steps)
    args: dict[str, Any] = {
        "output_dir": output_dir,
        "run_name": config.name,
        "seed": config.seed,
        "data_seed": config.seed,
        "trust_remote_code": config.trust_remote_code,
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler,
        "warmup_steps": t.warmup_ratio,  # transformers 5: a value below 1 is a share of the steps
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "optim": t.optimizer,
        "num_train_epochs": t.epochs,
        "max_steps": t.max_steps or -1,
        "max_length": None if plan.padding_free and not plan.packing else t.max_length,
        "train_sampling_strategy": "group_by_length" if plan.group_by_length else "random",
        "logging_steps": e.logging_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": when.eval_steps,
        "save_strategy": "steps",
        "save_steps": when.save_steps,
        "save_total_limit": e.save_total_limit,
        "load_best_model_at_end": e.load_best and has_eval,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "report_to": "none",
    }
    # TRL turns checkpointing on by default: say exactly what the config says.
    args[checkpointing_key()] = t.gradient_checkpointing
    if t.liger_kernel:
        args["use_liger_kernel"] = True
    if config.method == "dpo":
        args["beta"] = t.dpo_beta
    else:
        args["packing"] = plan.packing  # TRL's best-fit packing, padding-free itself
        args["padding_free"] = plan.padding_free and not plan.packing
    if precision is not None:
        args.update(precision_arguments(precision)[1])
    d = config.distributed
    if d.launched:
        args["ddp_find_unused_parameters"] = False
        if d.backend != "auto" or cuda is not None:
            args["ddp_backend"] = resolve_backend(d.backend, bool(cuda))
    return args


def peft_arguments(config: RunConfig) -> dict[str, Any] | None:
    """Keyword arguments of PEFT's ``LoraConfig``, or None for full fine-tuning."""
    if config.finetune == "full":
        return None
    lora = config.lora
    return {
        "r": lora.r,
        "lora_alpha": _number(lora.alpha),
        "lora_dropout": lora.dropout,
        "target_modules": lora.target_modules,
        "use_rslora": lora.rslora,
        "use_dora": lora.dora,
        "task_type": "CAUSAL_LM",
    }


def quantization_arguments(config: RunConfig) -> dict[str, Any] | None:
    """Keyword arguments of transformers' ``BitsAndBytesConfig`` (QLoRA), or None when the base is not quantized."""
    return dict(QUANTIZATION) if config.finetune == "qlora" else None


def _number(value: float) -> int | float:
    """2.0 as 2 (TRL's lora_alpha is an int field), 0.5 as is."""
    return int(value) if float(value).is_integer() else value
