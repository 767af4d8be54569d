"""The generator worker: ``python -m workbench.eval.worker EVAL_DIR``.

Started detached by :mod:`workbench.eval.runner` (or run in the foreground by ``workbench
eval new --wait``), it holds the eval directory's lock for its whole life, generates with
:func:`workbench.eval.generate.generate` and reports only through files: status.json
(state, done / total, the model at work, a heartbeat every few seconds, even in the middle
of a long batch) and eval.log. SIGTERM, SIGINT or a STOP file stop it after the batch in
hand (state ``stopped``); an error leaves ``failed`` with its summary.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

from workbench.detach import worker_main
from workbench.eval.generate import GenerationProgress, generate
from workbench.eval.scoring import write_scores
from workbench.eval.store import EvalDir, EvalError
from workbench.train.rundir import HEARTBEAT_INTERVAL, StatusWriter


def _heartbeat(ev: EvalDir, status: StatusWriter, cancel: threading.Event, done: threading.Event) -> None:
    """Keeps status.json fresh during long batches and turns a STOP file into a cancel."""
    while not done.wait(HEARTBEAT_INTERVAL):
        if ev.stop_path.exists() and not cancel.is_set():
            cancel.set()
        if cancel.is_set() and status.get("state") == "running":
            status.update(state="stopping")
        else:
            status.beat()


def run_eval(
    ev: EvalDir,
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[GenerationProgress], None] | None = None,
    handle_signals: bool = True,
    log: Callable[[str], None] | None = None,
) -> str:
    """Generate the eval's missing predictions in this process; returns the final state.

    ``log`` takes the lines meant for eval.log: by default they are printed (the detached
    worker's stdout is eval.log); in the foreground, :func:`append_to_log` keeps the
    terminal for the progress line.
    """
    cancel = cancel or threading.Event()
    say = log or (lambda text: print(text, flush=True))
    previous = {}
    if handle_signals and threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: object) -> None:
            if signum == signal.SIGINT and cancel.is_set():
                raise KeyboardInterrupt  # a second Ctrl-C does not wait for the batch
            cancel.set()

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal never stops an eval
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    try:
        return _run_locked(ev, cancel, progress, say)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_locked(
    ev: EvalDir,
    cancel: threading.Event,
    progress: Callable[[GenerationProgress], None] | None,
    say: Callable[[str], None],
) -> str:
    with ev.exclusive():
        status = StatusWriter(
            ev.writer,
            {
                **ev.read_status_raw(),
                "eval_id": ev.id,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "error": None,
                "finished": None,
            },
        )
        status.update(state="starting", started=time.time())
        if ev.stop_path.exists():  # stopped while it was starting up
            cancel.set()
        done = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(ev, status, cancel, done), daemon=True)
        beat.start()

        def on_progress(p: GenerationProgress) -> None:
            state = "stopping" if cancel.is_set() else "running"
            status.update(
                state=state,
                done=p.done,
                total=p.total,
                model=p.model,
                phase=p.phase,
                model_done=p.model_done,
                model_total=p.model_total,
                examples_per_s=p.examples_per_s,
            )
            if p.phase == "loading":
                say(f"[workbench] loading {p.model}")
            elif p.phase == "generating":
                say(
                    f"[workbench] {p.model}: {p.model_done}/{p.model_total} "
                    f"({p.examples_per_s or 0:.2f} examples/s); {p.done}/{p.total} in all"
                )
            if progress is not None:
                progress(p)

        try:
            spec = ev.spec()
            say(f"[workbench] eval {ev.id}: {len(spec.models)} model(s) x {len(ev.examples())} example(s)")
            final = generate(ev, cancel=cancel, progress=on_progress)
            if final == "completed":  # before the status says so: whoever sees 'completed' finds the scores
                try:
                    say(f"[workbench] scores written to {write_scores(ev).name}")
                except Exception as exc:
                    say(f"[workbench] could not write scores.jsonl: {type(exc).__name__}: {exc}")
            counts = ev.progress()
            status.update(
                state=final,
                finished=time.time(),
                done=sum(counts.values()),
                total=sum(counts.get(m.key, 0) if m.frozen else len(ev.examples()) for m in spec.models),
            )
            say(f"[workbench] eval {final}")
            return final
        except KeyboardInterrupt:  # the foreground user insisted: the batch in hand is lost, the rest kept
            status.update(state="stopped", finished=time.time(), done=sum(ev.progress().values()))
            raise
        except BaseException as exc:
            say(traceback.format_exc().rstrip())
            summary = f"{type(exc).__name__}: {exc}".strip()
            status.update(
                state="failed",
                error=summary[:2000],
                finished=time.time(),
                error_tail=traceback.format_exc().splitlines()[-15:],
            )
            return "failed"
        finally:
            done.set()
            beat.join(timeout=5)
            ev.stop_path.unlink(missing_ok=True)


def append_to_log(ev: EvalDir) -> Callable[[str], None]:
    """A ``log`` for :func:`run_eval` that appends to the eval's eval.log."""

    def log(text: str) -> None:
        with open(ev.log_path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    return log


def main(argv: list[str] | None = None) -> int:
    return worker_main(
        sys.argv[1:] if argv is None else argv,
        "python -m workbench.eval.worker EVAL_DIR",
        lambda path, _extra: run_eval(EvalDir(path)),
        EvalDir,
        EvalError,
    )


if __name__ == "__main__":
    sys.exit(main())
