"""Watching a run for a UI: incremental reads of its files and the chart data built from them.

A :class:`RunWatcher` reads only what is new on each :meth:`~RunWatcher.poll`
(cheap enough to call a few times a second from a worker thread) and keeps
the history in memory; :func:`chart_data` turns that history into plain
series a screen can plot without computing anything itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from workbench.train.detector import OK, Verdict, diagnose
from workbench.train.rundir import JsonlTail, RunDir, RunStatus, as_float

SYSTEM_HISTORY = 600  # samples kept for the system charts (~10 minutes at 1 Hz)


@dataclass
class Series:
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, step: float, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def thinned(self, max_points: int) -> Series:
        """At most ~max_points points for drawing: per bucket of steps, its min and max (peaks survive)."""
        n = len(self.steps)
        if n <= max_points or max_points < 4:
            return self
        out = Series()
        buckets = max_points // 2
        for b in range(buckets):
            lo, hi = b * n // buckets, (b + 1) * n // buckets
            if lo >= hi:
                continue
            idx = range(lo, hi)
            i_min = min(idx, key=self.values.__getitem__)
            i_max = max(idx, key=self.values.__getitem__)
            for i in sorted({i_min, i_max}):
                out.add(self.steps[i], self.values[i])
        return out


@dataclass
class ChartData:
    """Everything the Train pane plots for one run."""

    train_loss: Series
    eval_loss: Series
    learning_rate: Series
    tokens_per_s: Series
    best: tuple[int, float] | None  # (step, eval loss)
    verdict: Verdict
    latest: dict[str, Any]  # the last train record


def chart_data(records: list[dict[str, Any]]) -> ChartData:
    """Series for the charts, the best eval point and the detector's verdict."""
    train, evals, lr, tps = Series(), Series(), Series(), Series()
    latest: dict[str, Any] = {}
    for r in records:
        step = r.get("step")
        if step is None:
            continue
        kind = r.get("type")
        if kind == "train":
            latest = r
            for key, series in (("loss", train), ("learning_rate", lr), ("tokens_per_s", tps)):
                value = as_float(r.get(key))
                if value is not None:
                    series.add(step, value)
        elif kind == "eval":
            value = as_float(r.get("eval_loss"))
            if value is not None:
                evals.add(step, value)
    best = None
    if evals:
        i = min(range(len(evals.values)), key=evals.values.__getitem__)
        best = (int(evals.steps[i]), evals.values[i])
    return ChartData(train, evals, lr, tps, best, diagnose(records) if records else OK, latest)


@dataclass
class WatchUpdate:
    """What a poll found; empty lists when nothing new."""

    status: RunStatus
    records: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    status_changed: bool
    bad_lines: int

    @property
    def changed(self) -> bool:
        return bool(self.records or self.samples or self.status_changed)


class RunWatcher:
    """Follows one run directory; keeps its whole metric history and recent system samples."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._metrics = JsonlTail(run.metrics_path)
        self._system = JsonlTail(run.system_path)
        self.records: list[dict[str, Any]] = []
        self.samples: deque[dict[str, Any]] = deque(maxlen=SYSTEM_HISTORY)
        self.status: RunStatus | None = None

    @property
    def bad_lines(self) -> list[int]:
        """Line numbers of corrupt metrics lines (skipped, everything else shown)."""
        return self._metrics.bad_lines

    def poll(self) -> WatchUpdate:
        status = self.run.status()
        changed = self.status is None or status.raw != self.status.raw or status.state != self.status.state
        self.status = status
        records = self._metrics.read_new()
        samples = self._system.read_new()
        self.records.extend(records)
        self.samples.extend(samples)
        return WatchUpdate(status, records, samples, changed, len(self._metrics.bad_lines))

    def log_tail(self, lines: int = 200) -> list[str]:
        """The last lines of train.log (reads at most the last 64 KiB)."""
        try:
            with open(self.run.log_path, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - 65536))
                text = fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


@dataclass
class GpuView:
    """One GPU's history and latest figures; absent figures stay None."""

    index: int
    name: str
    util: Series
    mem_used: Series
    mem_total_gb: float | None = None
    temp_c: float | None = None
    power_w: float | None = None


@dataclass
class SystemView:
    """CPU and RAM over time (x = seconds since the first sample shown) and per-GPU views."""

    cpu: Series
    ram_used: Series
    ram_total_gb: float | None
    gpus: list[GpuView]
    latest: dict[str, Any]


def system_view(samples: list[dict[str, Any]] | deque[dict[str, Any]]) -> SystemView:
    cpu, ram = Series(), Series()
    gpus: dict[int, GpuView] = {}
    t0 = samples[0].get("time", 0.0) if samples else 0.0
    latest: dict[str, Any] = {}
    for s in samples:
        x = round(float(s.get("time", t0)) - t0, 1)
        latest = s
        if isinstance(s.get("cpu_percent"), int | float):
            cpu.add(x, s["cpu_percent"])
        if isinstance(s.get("ram_used_gb"), int | float):
            ram.add(x, s["ram_used_gb"])
        for g in s.get("gpus") or []:
            idx = int(g.get("index", 0))
            view = gpus.setdefault(idx, GpuView(idx, str(g.get("name", f"GPU {idx}")), Series(), Series()))
            if isinstance(g.get("util_percent"), int | float):
                view.util.add(x, g["util_percent"])
            if isinstance(g.get("mem_used_gb"), int | float):
                view.mem_used.add(x, g["mem_used_gb"])
            view.mem_total_gb = g.get("mem_total_gb", view.mem_total_gb)
            view.temp_c = g.get("temp_c", view.temp_c)
            view.power_w = g.get("power_w", view.power_w)
    return SystemView(cpu, ram, latest.get("ram_total_gb"), [gpus[k] for k in sorted(gpus)], latest)
