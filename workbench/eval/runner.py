"""Start, stop and resume an eval's generator. Every function returns at once.

The generator runs detached exactly like a training worker (see
:func:`workbench.detach.spawn_detached`): its own session, no terminal, output to
``eval.log``. Resuming is launching again: the worker skips every (model, example)
pair that already has a prediction.
"""

from __future__ import annotations

import time

from workbench.detach import spawn_detached, stop_worker
from workbench.eval.store import EvalDir, EvalError
from workbench.train.rundir import LIVE_STATES

WORKER = "workbench.eval.worker"


def launch(ev: EvalDir) -> EvalDir:
    """Start the eval's generator in the background; refuses while one is at work."""
    status = ev.status()
    if ev.locked() or status.state in LIVE_STATES:
        raise EvalError(f"eval {ev.id} is already {status.state}; stop it first")
    ev.spec()  # a broken eval.yaml fails here, in the caller's hands, not in a detached process
    raw = ev.read_status_raw()
    raw.update(eval_id=ev.id, state="starting", heartbeat=time.time(), error=None, error_tail=None, pid=None)
    ev.write_status(raw)
    ev.stop_path.unlink(missing_ok=True)
    pid = spawn_detached(WORKER, ev.path, ev.log_path)
    raw = ev.read_status_raw()
    if not raw.get("pid"):  # the worker writes its own pid once it holds the lock
        raw["pid"] = pid
        ev.write_status(raw)
    return ev


def stop(ev: EvalDir, *, timeout: float = 0.0) -> str:
    """Ask the generator to stop after the batch in hand; wait up to ``timeout`` seconds."""
    state = ev.status().state
    if state not in LIVE_STATES:
        raise EvalError(f"eval {ev.id} is {state}, not running")
    return stop_worker(ev, timeout=timeout)


def check_resumable(ev: EvalDir) -> None:
    """Raise unless the eval has predictions missing and no generator at work."""
    status = ev.status()
    if ev.locked() or status.state in LIVE_STATES:
        raise EvalError(f"eval {ev.id} is already {status.state}; stop it first")
    if sum(ev.progress().values()) >= len(ev.examples()) * len(ev.spec().models):
        raise EvalError(f"eval {ev.id} already has every prediction; create a new eval instead")


def resume(ev: EvalDir) -> EvalDir:
    """Go on with a stopped, failed or lost eval; the predictions it has are kept."""
    check_resumable(ev)
    return launch(ev)


__all__ = ["check_resumable", "launch", "resume", "stop"]
