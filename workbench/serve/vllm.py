"""The vLLM engine: ``vllm serve BASE --enable-lora --lora-modules name=path ...``, supervised by our worker.

On a GPU server vLLM serves far more requests per second than our engine (paged attention, continuous
batching); ours serves on a CPU and small GPUs without installing anything. The worker of a
``--engine vllm`` server starts the command built here in the same serve directory (its output in
serve.log), probes its ``/health``, keeps status.json's heartbeat, and stops it on STOP/SIGTERM. The
key goes to vLLM in its environment (``VLLM_API_KEY``), never on its command line, where ``ps`` shows it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import ServeError
from workbench.eval.store import ModelRef

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts


def vllm_available() -> bool:
    """Whether vLLM is importable here (found without importing it: importing it takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    if not vllm_available():
        raise ServeError(
            "vLLM is not installed: pip install vllm (on a Linux GPU server with CUDA); "
            "without it use --engine workbench (the default): the built-in engine serves on CPU and small GPUs"
        )


def served_name(ref: ModelRef) -> str:
    """What clients pass as ``model``: the name our engine serves the ref under (one naming for both engines)."""
    from workbench.serve.engine import default_name

    return default_name(ref)


@dataclass
class VllmPlan:
    """What one ``vllm serve`` serves: one base, under a name, and LoRA adapters by name."""

    base: str  # a local model directory (or hub id)
    base_name: str
    loras: dict[str, str] = field(default_factory=dict)  # served name -> adapter directory
    max_rank: int = 16

    @property
    def names(self) -> list[str]:
        return [self.base_name, *self.loras]


def _resolved(spec: str) -> str:
    from workbench.models import resolve_model

    return str(resolve_model(spec).path)


def _rank(adapter: Path) -> int:
    try:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ServeError(f"{adapter}: no readable adapter_config.json; expected a PEFT LoRA adapter") from None
    ranks = [int(config.get("r") or 8), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_plan(refs: Sequence[ModelRef]) -> VllmPlan:
    """One base for every ref (vLLM serves one model with adapters on it); refs on two bases are refused."""
    bases = [r for r in refs if r.kind == "base"]
    adapters = [r for r in refs if r.kind != "base"]
    specs = {r.path for r in bases} | {r.base_model or "bundled" for r in adapters}
    by_path: dict[str, list[str]] = {}
    for spec in sorted(specs):
        by_path.setdefault(_resolved(spec), []).append(spec)
    if len(by_path) > 1:
        listed = "; ".join(f"{', '.join(s)} ({p})" for p, s in by_path.items())
        raise ServeError(f"one server serves one base model with its adapters; these are on different bases: {listed}")
    base = next(iter(by_path))
    base_name = served_name(bases[0]) if bases else "base"
    loras = {served_name(r): r.path for r in adapters}
    need = max((_rank(Path(p)) for p in loras.values()), default=16)
    rank = next((r for r in LORA_RANKS if r >= need), None)
    if rank is None:
        raise ServeError(f"LoRA rank {need} is above the {LORA_RANKS[-1]} that vLLM supports")
    return VllmPlan(base=base, base_name=base_name, loras=loras, max_rank=max(rank, 16))


def vllm_executable() -> list[str]:
    """The ``vllm`` command of this environment (beside the interpreter first, then on PATH)."""
    beside = Path(sys.executable).with_name("vllm")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("vllm")
    return [found] if found else [sys.executable, "-m", "vllm.entrypoints.cli.main"]


def vllm_command(
    plan: VllmPlan, *, host: str, port: int, extra: Sequence[str] = (), executable: Sequence[str] | None = None
) -> list[str]:
    """``vllm serve BASE --host H --port P --served-model-name NAME [--enable-lora ... --lora-modules n=p ...]``."""
    cmd = [*(executable or vllm_executable()), "serve", plan.base, "--host", host, "--port", str(port)]
    cmd += ["--served-model-name", plan.base_name]
    if plan.loras:
        cmd += ["--enable-lora", "--max-loras", str(len(plan.loras)), "--max-lora-rank", str(plan.max_rank)]
        cmd += ["--lora-modules", *(f"{name}={path}" for name, path in plan.loras.items())]
    return [*cmd, *extra]


__all__ = ["VllmPlan", "require_vllm", "served_name", "vllm_available", "vllm_command", "vllm_plan"]
