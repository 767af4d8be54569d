"""Start a worker process that outlives whoever started it; name its directory.

Training runs and evals share this: the worker gets a session of its own, no
terminal and no stdin, and writes its output to a log file in its directory,
so closing the terminal, losing SSH or quitting the app never reaches it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from workbench.fileio import atomic_write_text
from workbench.train.rundir import LIVE_STATES, pid_alive


class WorkerDir(Protocol):
    """What a run or eval directory offers to stop its worker."""

    stop_path: Path

    def status(self) -> Any: ...
    def locked(self) -> bool: ...


def new_dir_id(root: Path, name: str) -> str:
    """``name-YYYYMMDD-HHMMSS`` (with ``-2``, ``-3``... when taken): unique under ``root``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    new_id, n = f"{slug}-{stamp}", 1
    while (root / new_id).exists():
        n += 1
        new_id = f"{slug}-{stamp}-{n}"
    return new_id


def spawn_detached(module: str, workdir: Path, log_path: Path, *args: str) -> int:
    """Run ``python -m module workdir *args`` detached: own session, no stdin, output to log_path."""
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    project_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = project_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(workdir), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd=str(workdir),
        )
    return proc.pid


def stop_worker(target: WorkerDir, *, timeout: float = 0.0, reason: str | None = None) -> str:
    """Ask a directory's worker to stop at its next safe point; wait up to ``timeout`` seconds; the state then.

    The STOP file reaches a worker still starting up; SIGTERM goes only to one that holds the
    lock, whose handler is installed by then (one still importing torch would die of it without a word),
    and only on this machine (a pid names another process elsewhere).
    ``reason`` is written into the STOP file, for a worker that records why it stopped (see :func:`stop_reason`).
    The wait ends when the worker's process has exited too, so a resume right after it starts afresh.
    """
    status = target.status()
    atomic_write_text(target.stop_path, json.dumps({"time": time.time(), "reason": reason}))
    here = getattr(status, "raw", {}).get("host", socket.gethostname()) == socket.gethostname()
    if status.pid and here and target.locked():  # a worker on another machine (a cluster's node) reads the file
        with contextlib.suppress(ProcessLookupError):
            os.kill(status.pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = target.status()
        if now.state not in LIVE_STATES and not (here and pid_alive(getattr(now, "pid", None))):
            return now.state  # ended, and its process (a launcher still settling the status) gone too
        time.sleep(0.2)
    return target.status().state


def stop_reason(stop_path: Path, default: str = "stop requested") -> str:
    """Why a STOP file asks for a stop: the reason its writer gave, else ``default``."""
    try:
        data = json.loads(stop_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) and reason else default


def match_ref(dirs: Sequence[Path], ref: str, created: Callable[[Path], float]) -> list[Path]:
    """The directories a user's reference names: 'last' (the newest by ``created``), an exact id, or an id prefix."""
    if ref in ("last", "latest"):
        return [max(dirs, key=created)] if dirs else []
    exact = [p for p in dirs if p.name == ref]
    return exact or sorted(p for p in dirs if p.name.startswith(ref))


def worker_main(
    argv: list[str],
    usage: str,
    work: Callable[[Path, list[str]], str],
    target: Callable[[Path], Any],
    busy: type[Exception],
    end_key: str = "finished",
) -> int:
    """A detached worker's entry point: run ``work(directory, extra args)``; exit 0 when it completed or stopped.

    ``busy`` (another worker holds the directory) leaves the status alone; any other failure
    before the worker's own handler existed is written into the directory's status.json.
    """
    if not argv:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    path = Path(argv[0]).resolve()
    try:
        final = work(path, argv[1:])
    except busy as exc:
        print(f"[workbench] {exc}", file=sys.stderr, flush=True)
        return 3
    except BaseException as exc:
        traceback.print_exc()
        holder = target(path)
        raw = holder.read_status_raw()
        raw.update({"state": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000], end_key: time.time()})
        holder.write_status(raw)
        return 1
    return 0 if final in ("completed", "stopped") else 1
