"""Follow a run from its files: new metric records, log lines and status changes.

Used by ``workbench logs -f`` and ``train --attach``; the app has its own
worker-based follower over the same :class:`JsonlTail`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from workbench.fmt import duration
from workbench.train.rundir import LIVE_STATES, JsonlTail, RunDir, RunStatus


@dataclass
class FollowEvent:
    """What changed in a run since the last poll."""

    status: RunStatus
    records: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status.state not in LIVE_STATES


def follow(run: RunDir, *, interval: float = 0.5, include_log: bool = False) -> Iterator[FollowEvent]:
    """Yield the whole history first, then what is new every `interval` seconds until the run ends."""
    metrics = JsonlTail(run.metrics_path)
    log_offset = 0
    while True:
        status = run.status()
        records = metrics.read_new()
        lines: list[str] = []
        if include_log:
            try:
                with open(run.log_path, "rb") as fh:
                    fh.seek(log_offset)
                    chunk = fh.read()
                end = chunk.rfind(b"\n") + 1
                log_offset += end
                lines = chunk[:end].decode("utf-8", "replace").splitlines()
            except FileNotFoundError:
                pass
        event = FollowEvent(status, records, lines)
        yield event
        if event.finished:
            # one last read: the worker writes its final records before the final status
            tail = metrics.read_new()
            if tail:
                yield FollowEvent(status, tail, [])
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


def print_follow(run: RunDir, out: TextIO = sys.stdout, *, interval: float = 0.5) -> str:
    """Follow a run in a terminal until it ends; returns the final state."""
    tty = out.isatty()
    last_train: dict[str, Any] | None = None
    best: tuple[float, Any] | None = None  # (eval loss, step)
    state = "unknown"
    for event in follow(run, interval=interval):
        state = event.status.state
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
