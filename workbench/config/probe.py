"""Measure one real training step: seconds per optimizer step and peak memory.

:func:`probe_step` builds the trainer exactly as the training worker does
(:func:`workbench.train.worker.build_trainer`, in a temporary run directory)
on the first few training examples, runs one untimed warm-up step and then
``steps`` timed optimizer steps (each with all its accumulation micro-batches).

Memory is measured two ways depending on the device:

* on a GPU, ``torch.cuda.max_memory_allocated`` over the steps: the figure the
  estimate's allocated peak (:attr:`~workbench.config.memory.MemoryEstimate.allocated`)
  predicts; ``nvidia-smi`` shows more (CUDA context, allocator cache);
* on a CPU, the growth of the process's resident memory (RSS, sampled every
  few milliseconds) from before the trainer is built: weights, tokenizer,
  datasets, Python objects and what the C allocator keeps. It is labelled
  ``cpu rss`` and is not comparable with a GPU figure. For a like-for-like
  check of the estimate, one more step runs under ``torch.profiler`` with
  memory profiling, whose allocation events give the peak of live tensor
  bytes (:attr:`ProbeResult.tensor_peak_bytes`): CPU kernels, so compare it
  with ``estimate_memory(..., device="cpu")``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from workbench.config.memory import apply_changes
from workbench.config.schema import RunConfig

_RSS_INTERVAL = 0.005
_NEVER = 10**9
"""An eval/save interval no probe reaches."""


@dataclass(frozen=True)
class ProbeResult:
    """What one measured step cost."""

    seconds_per_step: float
    """Mean wall time of the timed optimizer steps (warm-up excluded)."""
    peak_bytes: int
    """GPU: max_memory_allocated. CPU: peak RSS growth of the process (see ``peak_kind``)."""
    device: str
    note: str
    peak_kind: str = "cuda allocated"
    """``cuda allocated`` or ``cpu rss``: the two are not comparable."""
    tensor_peak_bytes: int | None = None
    """Peak of live tensor bytes: the same as ``peak_bytes`` on a GPU, from the profiler on a CPU."""
    batch_shape: tuple[int, int] | None = None
    """The largest (rows, tokens) micro-batch behind the peak (GPU: all steps; CPU: the profiled step)."""
    steps: int = 1


def probe_step(config: RunConfig, *, steps: int = 1, tensor_peak: bool = True) -> ProbeResult:
    """Run ``steps`` real optimizer steps (after one warm-up) and measure time and peak memory.

    ``tensor_peak`` (CPU only) runs one more, untimed step under the profiler
    to count live tensor bytes (a step after the first, so the optimizer's
    states exist as they do for the rest of a run). Raises what the trainer
    raises (a :class:`~workbench.errors.WorkbenchError` for bad data or a bad
    model).
    """
    import torch
    from transformers.utils import logging as hf_logging

    from workbench.train.rundir import RunDir
    from workbench.train.worker import build_trainer

    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    cuda = torch.cuda.is_available()
    profile = tensor_peak and not cuda
    probe_config = _probe_config(config, 1 + steps + int(profile))
    clock = _make_clock(steps, profile=profile, cuda=cuda)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    rss = _RssSampler()
    trainer = None
    try:
        with tempfile.TemporaryDirectory(prefix="workbench-probe-") as tmp:
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            else:
                rss.start()
            with contextlib.redirect_stdout(io.StringIO()):
                trainer, _ = build_trainer(RunDir(tmp), probe_config, clock)
                hook = trainer.model.register_forward_pre_hook(clock.see_batch, with_kwargs=True)
                clock.trainer = trainer
                try:
                    trainer.train()
                finally:
                    hook.remove()
            peak = torch.cuda.max_memory_allocated() - base if cuda else 0
    finally:
        rss.stop()
        hf_logging.set_verbosity(verbosity)
        del trainer
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    seconds = sum(clock.times) / len(clock.times) if clock.times else float("nan")
    shape = clock.longest(last_only=profile)
    device = _device_name(cuda)
    t = config.train
    batch = f"batch {t.batch_size} × accumulation {t.grad_accum}"
    longest = f", longest micro-batch {shape[0]} × {shape[1]} tokens" if shape else ""
    if cuda:
        note = f"{batch}{longest}; max_memory_allocated (nvidia-smi shows more: CUDA context, allocator cache)"
        return ProbeResult(seconds, peak, device, note, "cuda allocated", peak, shape, steps)
    tensors = f"; live tensors peaked at {clock.tensor_peak / 2**30:.2f} GiB" if clock.tensor_peak else ""
    note = (
        f"CPU RSS growth (weights, data, allocator caching), not comparable to a GPU figure; {batch}{longest}{tensors}"
    )
    return ProbeResult(seconds, rss.peak_growth, device, note, "cpu rss", clock.tensor_peak, shape, steps)


def _probe_config(config: RunConfig, total_steps: int) -> RunConfig:
    """The config trimmed to a probe: a few steps on the first examples, no evaluation or checkpoints."""
    t = config.train
    return apply_changes(
        config,
        {
            "train.max_steps": total_steps,
            "data.max_train_examples": 2 * t.batch_size * t.grad_accum * total_steps,  # the trainer may drop some
            "data.max_eval_examples": 1,
            "eval.eval_steps": _NEVER,
            "eval.save_steps": _NEVER,
            "eval.load_best": False,
            "eval.early_stopping_patience": None,
            "eval.stop_on_overfit": False,
            "eval.logging_steps": _NEVER,
        },
    )


def _make_clock(timed: int, *, profile: bool, cuda: bool) -> Any:
    """A trainer callback: a warm-up step, ``timed`` steps, then one profiled for live tensor bytes when ``profile``."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.tensor_peak: int | None = None
            self.trainer: Any = None
            self.shapes: list[list[tuple[int, int]]] = []  # micro-batch shapes, per step
            self._start = 0.0
            self._base = 0
            self._profiler: Any = None

        def see_batch(self, module: Any, args: tuple, kwargs: dict) -> None:
            """Forward pre-hook: note the (rows, tokens) of each training micro-batch."""
            ids = kwargs.get("input_ids", args[0] if args else None)
            if self.shapes and ids is not None and getattr(ids, "ndim", 0) == 2:
                self.shapes[-1].append((int(ids.shape[0]), int(ids.shape[1])))

        def longest(self, *, last_only: bool) -> tuple[int, int] | None:
            seen = [s for step in (self.shapes[-1:] if last_only else self.shapes) for s in step]
            return max(seen, key=lambda s: s[0] * s[1]) if seen else None

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.shapes.append([])
            if state.global_step == 1 + timed and profile:
                self._base = _live_tensor_bytes(self.trainer)
                self._profiler = _start_profiler()
            if cuda:
                import torch

                torch.cuda.synchronize()
            self._start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if cuda:
                import torch

                torch.cuda.synchronize()
            elapsed = time.perf_counter() - self._start
            if self._profiler is not None:
                self.tensor_peak = self._base + _profiled_peak(self._profiler)
                self._profiler = None
            elif 1 < state.global_step <= 1 + timed:
                self.times.append(elapsed)
            control.should_evaluate = control.should_save = False  # transformers evaluates and saves at the end
            return control

    return Clock()


def _start_profiler() -> Any:
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    prof.__enter__()
    return prof


def _profiled_peak(prof: Any) -> int:
    """Stop the profiler; the highest net allocation it saw (allocation events' running total)."""
    prof.__exit__(None, None, None)
    peak = 0
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        fields = node.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and str(fields.device) == "cpu":
            peak = max(peak, int(fields.total_allocated))
        stack.extend(node.children)
    return peak


def _live_tensor_bytes(trainer: Any) -> int:
    """Bytes of the tensors alive between steps: parameters, buffers, gradients, optimizer states."""
    import torch

    seen: dict[int, int] = {}

    def add(t: Any) -> None:
        if isinstance(t, torch.Tensor) and t.device.type == "cpu":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()

    model = trainer.model
    for p in model.parameters():
        add(p)
        add(p.grad)
    for b in model.buffers():
        add(b)
    optimizer = getattr(trainer, "optimizer", None)
    for state in getattr(optimizer, "state", {}).values():
        for value in state.values():
            add(value)
    return sum(seen.values())


class _RssSampler:
    """This process's peak RSS growth: sampled in a thread, and the kernel's high-water mark when it rose.

    ``ru_maxrss`` catches spikes between samples, but only counts when the
    probe set a new high for the process (an app that was bigger before
    leaves it unchanged); the samples cover that case.
    """

    def __init__(self) -> None:
        self.peak_growth = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = 0
        self._high_water = 0

    def start(self) -> None:
        import psutil

        process = psutil.Process(os.getpid())
        self._base = process.memory_info().rss
        self._high_water = _max_rss()

        def loop() -> None:
            while not self._stop.wait(_RSS_INTERVAL):
                self.peak_growth = max(self.peak_growth, process.memory_info().rss - self._base)

        self._thread = threading.Thread(target=loop, name="probe-rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join()
        self._thread = None
        high_water = _max_rss()
        if high_water > self._high_water:
            self.peak_growth = max(self.peak_growth, high_water - self._base)


def _max_rss() -> int:
    """The process's resident-memory high-water mark in bytes (Linux reports KiB)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _device_name(cuda: bool) -> str:
    import torch

    if cuda:
        index = torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"cpu ({torch.get_num_threads()} threads)"
