"""Start a worker process that outlives whoever started it; name its directory.

Training runs and evals share this: the worker gets a session of its own, no
terminal and no stdin, and writes its output to a log file in its directory,
so closing the terminal, losing SSH or quitting the app never reaches it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path


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
