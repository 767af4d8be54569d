"""System telemetry: CPU and RAM with psutil, every NVIDIA GPU with NVML.

One NVML session per sampler and cached device handles: a sample costs a
few microseconds per query. A query the device does not support, or a
machine with no GPU or no driver, leaves the field out; it never raises.
NVML sees every GPU of the machine whatever CUDA_VISIBLE_DEVICES says, so
one sampler covers all the GPUs the processes of a distributed run use.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil


class SystemSampler:
    """Takes one telemetry sample per call; create once, call often, close at the end.

    The process figures are those of ``pid`` (default: this process); with ``tree`` they add up the
    process and all its descendants (a launcher and the training processes it started).
    """

    def __init__(self, pid: int | None = None, *, tree: bool = False) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.process.cpu_percent(None)  # prime: the first call always returns 0
        self.tree = tree
        self._known: dict[int, psutil.Process] = {self.process.pid: self.process}
        psutil.cpu_percent(None)
        self._nvml: Any = None
        self._handles: list[Any] = []
        self.gpu_error: str | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception as exc:  # no library, no driver, no device: all mean "no GPU figures"
            self._nvml = None
            self.gpu_error = f"{type(exc).__name__}: {exc}"

    @property
    def gpu_count(self) -> int:
        return len(self._handles)

    def _processes(self) -> list[psutil.Process]:
        """The processes measured, each kept across samples (psutil's cpu_percent counts from the last call)."""
        if not self.tree:
            return [self.process]
        try:
            found = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []
        for p in found:
            if p.pid not in self._known:
                p.cpu_percent(None)  # prime: counted from the next sample on
                self._known[p.pid] = p
        live = {p.pid for p in found}
        self._known = {pid: p for pid, p in self._known.items() if pid in live}
        return list(self._known.values())

    def sample(self) -> dict[str, Any]:
        procs = self._processes()
        vm = psutil.virtual_memory()
        record: dict[str, Any] = {
            "time": time.time(),
            "cpu_percent": psutil.cpu_percent(None),
            "process_cpu_percent": self._total(procs, lambda p: p.cpu_percent(None)),
            "ram_used_gb": round((vm.total - vm.available) / 2**30, 3),
            "ram_total_gb": round(vm.total / 2**30, 3),
            "process_rss_gb": self._total(procs, lambda p: p.memory_info().rss / 2**30, 3),
        }
        if self._handles:
            record["gpus"] = [self._gpu(i, h) for i, h in enumerate(self._handles)]
        return {k: v for k, v in record.items() if v is not None}

    def _gpu(self, index: int, handle: Any) -> dict[str, Any]:
        nv = self._nvml
        gpu: dict[str, Any] = {"index": index}
        name = self._safe(lambda: nv.nvmlDeviceGetName(handle))
        if name is not None:
            gpu["name"] = name.decode() if isinstance(name, bytes) else name
        util = self._safe(lambda: nv.nvmlDeviceGetUtilizationRates(handle))
        if util is not None:
            gpu["util_percent"] = util.gpu
        mem = self._safe(lambda: nv.nvmlDeviceGetMemoryInfo(handle))
        if mem is not None:
            gpu["mem_used_gb"] = round(mem.used / 2**30, 3)
            gpu["mem_total_gb"] = round(mem.total / 2**30, 3)
        temp = self._safe(lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
        if temp is not None:
            gpu["temp_c"] = temp
        power = self._safe(lambda: nv.nvmlDeviceGetPowerUsage(handle))
        if power is not None:
            gpu["power_w"] = round(power / 1000, 1)
        return gpu

    @classmethod
    def _total(cls, procs: list[psutil.Process], fn: Any, digits: int = 1) -> float | None:
        """The sum of ``fn`` over the processes that still answer; None when none does."""
        values = [v for p in procs if (v := cls._safe(lambda p=p: fn(p))) is not None]
        return round(sum(values), digits) if values else None

    @staticmethod
    def _safe(fn: Any) -> Any:
        try:
            return fn()
        except Exception:
            return None

    def close(self) -> None:
        if self._nvml is not None:
            self._safe(self._nvml.nvmlShutdown)
            self._nvml = None
            self._handles = []
