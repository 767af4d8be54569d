"""Follow a run from its files: new metric records, system samples, log lines and status changes.

:class:`RunFollower` is the one follower of a run directory: ``workbench logs -f`` and
``train --attach`` (through :func:`follow`) and the Train pane (through
:class:`~workbench.train.watch.RunWatcher`) all read a run with it. Each poll reads
``status.json`` and only the bytes appended to ``metrics.jsonl``, ``system.jsonl`` (and
``train.log`` when asked) since the last one (:class:`~workbench.train.rundir.LineTail`); a
file replaced or truncated under it is read again from the start and the event says so.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from workbench.fmt import duration
from workbench.train.rundir import LIVE_STATES, JsonlTail, LogTail, RunDir, RunStatus


@dataclass
class FollowEvent:
    """What changed in a run since the last poll."""

    status: RunStatus
    records: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    status_changed: bool = False
    restarted: bool = False
    """metrics.jsonl was replaced or truncated: ``records`` are read from its start, drop the old ones."""
    samples_restarted: bool = False
    """The same for system.jsonl and ``samples``."""
    log_restarted: bool = False
    """The same for train.log and ``log_lines``."""
    bad_lines: int = 0
    """Corrupt metrics lines skipped so far."""

    @property
    def finished(self) -> bool:
        return self.status.state not in LIVE_STATES

    @property
    def changed(self) -> bool:
        return bool(
            self.records
            or self.samples
            or self.log_lines
            or self.status_changed
            or self.restarted
            or self.samples_restarted
            or self.log_restarted
        )


class RunFollower:
    """Reads a run directory incrementally; keeps no history (see RunWatcher for that)."""

    def __init__(self, run: RunDir, *, system: bool = True, log_window: int | None = None) -> None:
        self.run = run
        self.metrics = JsonlTail(run.metrics_path)
        self.system = JsonlTail(run.system_path) if system else None
        self.log = LogTail(run.log_path, window=log_window)
        self.status: RunStatus | None = None

    def poll(self, *, log: bool = False) -> FollowEvent:
        """Read what is new: the status, new metric records and system samples, and new log lines if `log`."""
        status = self.run.status()
        changed = self.status is None or status.raw != self.status.raw or status.state != self.status.state
        self.status = status
        records = self.metrics.read_new()
        samples = self.system.read_new() if self.system is not None else []
        lines = self.log.read_new() if log else []
        return FollowEvent(
            status,
            records,
            samples,
            lines,
            changed,
            restarted=self.metrics.restarted,
            samples_restarted=self.system is not None and self.system.restarted,
            log_restarted=log and self.log.restarted,
            bad_lines=len(self.metrics.bad_lines),
        )


def follow(run: RunDir, *, interval: float = 0.5, include_log: bool = False) -> Iterator[FollowEvent]:
    """Yield the whole history first, then what is new every `interval` seconds until the run ends."""
    follower = RunFollower(run, system=False)
    while True:
        event = follower.poll(log=include_log)
        yield event
        if event.finished:
            # one last read: the worker writes its final records before the final status
            tail = follower.poll(log=include_log)
            if tail.records or tail.log_lines or tail.restarted or tail.log_restarted:
                yield tail
            return
        time.sleep(interval)


def _fmt(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, int | float) else str(value)


def describe(record: dict[str, Any]) -> str | None:
    """One readable line for a metrics record (None for records not worth a line)."""
    kind = record.get("type")
    step = record.get("step")
    if kind == "train":
        parts = [f"step {step:>5}  loss {_fmt(record.get('loss'))}"]
        if "learning_rate" in record:
            parts.append(f"lr {_fmt(record['learning_rate'], '.2e')}")
        if "tokens_per_s" in record:
            parts.append(f"{_fmt(record['tokens_per_s'], '.0f')} tok/s")
        return "  ".join(parts)
    if kind == "eval":
        return f"step {step:>5}  eval_loss {_fmt(record.get('eval_loss'))}"
    if kind == "verdict":
        return f"step {step:>5}  !! {record.get('kind', '').upper()}: {record.get('message', '')}"
    if kind == "summary":
        return f"training finished after {duration(record.get('train_runtime_s'))}"
    return None


def progress_line(status: RunStatus, last: dict[str, Any] | None, width: int = 24) -> str:
    """The one-line progress bar: step/total, loss, lr, tokens/s, ETA."""
    total = status.total_steps or 0
    done = min(status.step / total, 1.0) if total else 0.0
    bar = "#" * int(done * width) + "-" * (width - int(done * width))
    parts = [f"[{bar}] {status.step}/{total or '?'}", status.state]
    if last:
        if "loss" in last:
            parts.append(f"loss {_fmt(last['loss'])}")
        if "learning_rate" in last:
            parts.append(f"lr {_fmt(last['learning_rate'], '.2e')}")
        if "tokens_per_s" in last:
            parts.append(f"{_fmt(last['tokens_per_s'], '.0f')} tok/s")
        if "eta_s" in last and status.state == "running":
            parts.append(f"ETA {duration(last['eta_s'])}")
    return "  ".join(parts)


def print_follow(run: RunDir, out: TextIO | None = None, *, interval: float = 0.5) -> str:
    """Follow a run in a terminal (stdout when `out` is None) until it ends; returns the final state."""
    out = out if out is not None else sys.stdout
    tty = out.isatty()
    last_train: dict[str, Any] | None = None
    best: tuple[float, Any] | None = None  # (eval loss, step)
    state = "unknown"
    for event in follow(run, interval=interval):
        state = event.status.state
        if event.restarted:
            last_train, best = None, None
            out.write(("\r\033[K" if tty else "") + f"{run.metrics_path.name} was replaced; reading it again\n")
        for record in event.records:
            if record.get("type") == "train":
                last_train = record
                if tty:
                    continue  # the progress line shows it
            line = describe(record)
            loss = record.get("eval_loss")
            if isinstance(loss, int | float):
                if best is None or loss < best[0]:
                    best = (loss, record.get("step"))
                    line = f"{line}  (best so far)"
                else:
                    line = f"{line}  ({100 * (loss / best[0] - 1):+.1f}% vs best {best[0]:.4f} at step {best[1]})"
            if line:
                out.write(("\r\033[K" if tty else "") + line + "\n")
        if tty:
            out.write("\r\033[K" + progress_line(event.status, last_train))
        out.flush()
    if tty:
        out.write("\n")
    status = run.status()
    summary = f"run {run.id}: {status.state} at step {status.step}"
    if best is not None:
        summary += f", best eval_loss {best[0]:.4f} at step {best[1]}"
    out.write(summary + "\n")
    if status.error:
        out.write(f"error: {status.error}\n")
    if status.state == "lost":
        out.write("the worker stopped sending heartbeats; see train.log, or `workbench resume` it\n")
    out.flush()
    return state
