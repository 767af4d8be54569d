"""Watching a run for a UI: incremental reads of its files and the chart data built from them.

A :class:`RunWatcher` reads only what is new on each :meth:`~RunWatcher.poll`
(cheap enough to call a few times a second from a worker thread), through the
same :class:`~workbench.train.follow.RunFollower` as ``workbench logs -f``, and
keeps the history in memory; :func:`chart_data` turns that history into plain
series a screen can plot without computing anything itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from workbench.train.detector import OK, Verdict, diagnose
from workbench.train.follow import FollowEvent, RunFollower
from workbench.train.rundir import RunDir, RunStatus, as_float

SYSTEM_HISTORY = 600  # samples kept for the system charts (~10 minutes at 1 Hz)
LOG_LINES = 400  # train.log lines kept for the log view
LOG_WINDOW = 65536  # the log view starts from (and never reads more at once than) the last 64 KiB


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


WatchUpdate = FollowEvent
"""What a poll found (the follower's event); empty lists when nothing new."""


class RunWatcher:
    """Follows one run directory (with the one :class:`RunFollower`); keeps its history for charts.

    The whole metric history and the recent system samples stay in memory; when the follower
    says a file was replaced or truncated, what was kept from it is dropped before the new
    contents are added, so nothing is counted twice.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.follower = RunFollower(run, log_window=LOG_WINDOW)
        self.records: list[dict[str, Any]] = []
        self.samples: deque[dict[str, Any]] = deque(maxlen=SYSTEM_HISTORY)
        self._log: deque[str] = deque(maxlen=LOG_LINES)

    @property
    def status(self) -> RunStatus | None:
        return self.follower.status

    @property
    def bad_lines(self) -> list[int]:
        """Line numbers of corrupt metrics lines (skipped, everything else shown)."""
        return self.follower.metrics.bad_lines

    def poll(self) -> WatchUpdate:
        update = self.follower.poll()
        if update.restarted:
            self.records = []
        if update.samples_restarted:
            self.samples.clear()
        self.records.extend(update.records)
        self.samples.extend(update.samples)
        return update

    def log_tail(self, lines: int = 200) -> list[str]:
        """The last lines of train.log, the one being written included (new bytes only after the first call)."""
        tail = self.follower.log
        new = tail.read_new()
        if tail.restarted:
            self._log.clear()
        self._log.extend(new)
        shown = list(self._log)
        if partial := tail.partial():
            shown.append(partial)
        return shown[-lines:]


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
