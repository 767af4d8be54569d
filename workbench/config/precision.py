"""Which precision a run trains in, and why: ``precision: auto`` picks the fastest one that trains correctly.

On a CUDA GPU: bf16 where the GPU has it (Ampere and newer), else fp16
autocast over fp32 master weights. On a CPU: bf16 autocast over fp32 weights
where the CPU computes bf16 natively (AMX or AVX512-BF16, read from the CPU's
feature flags, never assumed), else fp32. Without native support bf16 runs
emulated and is slower than fp32, so ``auto`` never picks it there.

Measured on the bundled model (2-core AMD EPYC with AVX512-BF16, batch 4,
LoRA r 16): fp32 88 tokens/s, bf16 autocast 171 tokens/s; the loss curves of
the demo in each precision are compared by ``bench/precision_parity.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Precision = Literal["bf16", "fp16", "fp32"]

#: CPU feature flags (as Linux's /proc/cpuinfo names them) that compute bf16 natively, best first.
CPU_BF16_FLAGS: dict[str, str] = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


@functools.cache
def cpu_bf16_feature(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The name of this CPU's native bf16 instructions ("AMX-BF16", "AVX512-BF16"), None when it has none.

    Read from the kernel's feature flags: on a machine without /proc/cpuinfo
    (macOS, Windows) this says None, and ``auto`` stays at fp32 there.
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break  # every core lists the same flags
    return next((name for flag, name in CPU_BF16_FLAGS.items() if flag in flags), None)


@dataclass(frozen=True)
class PrecisionPlan:
    """How a run trains: the concrete precision, the weights' dtype, the trainer's flags, and why."""

    precision: Precision
    weights: str
    """The dtype the base model loads in (a torch dtype name)."""
    autocast: bool
    """Whether compute runs under autocast over weights kept in a wider dtype."""
    flags: dict[str, bool]
    """TRL's ``bf16`` and ``fp16`` (both always given: TRL turns bf16 on when neither is set)."""
    why: str

    @property
    def label(self) -> str:
        """As the Config pane and the memory estimate name it: "bf16", "bf16 autocast, fp32 weights"…"""
        return f"{self.precision} autocast, {_short(self.weights)} weights" if self.autocast else self.precision


def _short(dtype: str) -> str:
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)


def plan_precision(setting: str, *, cuda: bool, gpu_bf16: bool, cpu_bf16: str | None) -> PrecisionPlan:
    """The plan for a config's ``train.precision`` on hardware described by the keyword arguments.

    ``cpu_bf16`` is the CPU's native bf16 feature (:func:`cpu_bf16_feature`),
    which matters only without a GPU. On a GPU, bf16 loads the weights in
    bf16 (half the memory; PEFT keeps the adapter in fp32); on a CPU it
    autocasts over fp32 weights, which TRL's default does too and which
    runs as fast here, with exact weights.
    """
    if setting not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"unknown precision {setting!r}")
    if cuda:
        if setting == "bf16" or (setting == "auto" and gpu_bf16):
            why = "the GPU computes bf16" if gpu_bf16 else "set in the config (this GPU has no native bf16)"
            return PrecisionPlan("bf16", "bfloat16", False, {"bf16": True, "fp16": False}, why)
        if setting in ("auto", "fp16"):
            why = "the GPU has no bf16 (pre-Ampere): fp16 autocast" if setting == "auto" else "set in the config"
            return PrecisionPlan("fp16", "float32", True, {"bf16": False, "fp16": True}, why)
        return PrecisionPlan("fp32", "float32", False, {"bf16": False, "fp16": False}, "set in the config")
    if setting == "bf16" or (setting == "auto" and cpu_bf16):
        if not cpu_bf16:
            why = "set in the config (this CPU has no AMX or AVX512-BF16: bf16 runs emulated, slower than fp32)"
        else:
            why = f"{'set in the config' if setting == 'bf16' else 'no CUDA GPU'}; the CPU computes bf16 natively ({cpu_bf16})"
        return PrecisionPlan("bf16", "float32", True, {"bf16": True, "fp16": False}, why)
    if setting == "fp16":  # refused by validation: fp16 autocast needs CUDA
        return PrecisionPlan("fp16", "float32", True, {"bf16": False, "fp16": True}, "set in the config")
    why = "set in the config" if setting == "fp32" else "no CUDA GPU, and the CPU has no AMX or AVX512-BF16"
    return PrecisionPlan("fp32", "float32", False, {"bf16": False, "fp16": False}, why)


def machine_plan(setting: str) -> PrecisionPlan:
    """The plan on this machine, as the worker trains (torch only; no NVML query)."""
    import torch

    cuda = torch.cuda.is_available()
    return plan_precision(
        setting,
        cuda=cuda,
        gpu_bf16=cuda and torch.cuda.is_bf16_supported(),
        cpu_bf16=None if cuda else cpu_bf16_feature(),
    )
