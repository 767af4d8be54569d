"""Start a worker process that outlives whoever started it; name its directory.

Training runs and evals share this: the worker gets a session of its own, no
terminal and no stdin, and writes its output to a log file in its directory,
so closing the terminal, losing SSH or quitting the app never reaches it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from workbench.fileio import atomic_write_text
from workbench.train.rundir import LIVE_STATES


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
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env, cwd=str(workdir),
        )
    return proc.pid


def stop_worker(target: WorkerDir, *, timeout: float = 0.0) -> str:
    """Ask a directory's worker to stop at its next safe point; wait up to ``timeout`` seconds; the state then.

    The STOP file reaches a worker still starting up; SIGTERM goes only to one that holds the
    lock, whose handler is installed by then (one still importing torch would die of it without a word).
    """
    status = target.status()
    atomic_write_text(target.stop_path, str(time.time()))
    if status.pid and target.locked():
        try:
            os.kill(status.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = target.status().state
        if state not in LIVE_STATES:
            return state
        time.sleep(0.2)
    return target.status().state
