"""A run of several processes: ``python -m workbench.train.launch RUN_DIR [--resume]``.

The runner starts this module detached, exactly as it starts the one-process
worker (:func:`workbench.detach.spawn_detached`), and it becomes torchrun's
elastic agent: it calls ``torch.distributed.run`` in this process (or
``accelerate launch`` with the run's accelerate config, which calls torchrun
the same way), which starts ``python -m workbench.train.worker RUN_DIR`` once
per process and watches them. The equivalent command line is printed at the
top of train.log. So the pid that status.json names is the agent's, and
everything a detached run promises holds: it lives in its own session, rank 0
holds the lock and beats the heartbeat, and ``lost`` means the same.

Every process's output reaches train.log through torchrun's ``--tee``, each
line labelled ``[rankN]:``.

Signals. SIGTERM (``workbench stop``) asks for a graceful stop through the
run's STOP file: rank 0 reads it at the end of every step and all processes
agree to stop after that same step (:func:`workbench.train.callbacks.agree`).
The agent does not forward SIGTERM, so a checkpoint that takes long to save
is never cut short by its shutdown timeout. SIGINT and SIGQUIT keep
torchrun's meaning (forwarded to every process, which stop gracefully, then
shut down after :data:`SHUTDOWN_TIMEOUT`); SIGHUP is ignored, as by the worker.

When the agent returns, :func:`finish` makes status.json say how the run
ended. A process that died fails the run with its own error: each writes
its exception to ``errors/rank-N.json`` in the run directory, and the
earliest is the cause (later ones are mostly its echo, a peer's connection
closing); one killed outright is named by torchrun's record of its exit.
A Slurm job (:mod:`workbench.config.slurm`) runs torchrun itself and calls
``python -m workbench.train.launch --finish RUN_DIR EXIT_CODE`` after it.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from workbench.config.distributed import accelerate_path, torchrun_args
from workbench.config.schema import RunConfig, load_config
from workbench.errors import RunError, WorkbenchError
from workbench.fileio import atomic_write_text
from workbench.train.rundir import HEARTBEAT_INTERVAL, LIVE_STATES, STALE_AFTER, RunDir, rank_failure

WORKER = "workbench.train.worker"

SHUTDOWN_TIMEOUT = 120
"""Seconds torchrun gives its processes to end after SIGINT (or, in a Slurm job, SIGTERM) before killing them:
long enough for a graceful stop to save its checkpoint."""

LINE_PREFIX = "[rank${rank}]:"
"""How torchrun labels each process's lines in train.log."""


def launcher_args(config: RunConfig, run: RunDir, *, resume: bool, log_dir: str) -> tuple[str, list[str]]:
    """Which launcher runs the worker ("torchrun" or "accelerate") and its arguments, worker included.

    One node is a standalone rendezvous on a free local port; more meet at
    ``rdzv_endpoint`` under ``rdzv_id`` (default: the run id). The accelerate
    config sets FSDP or DeepSpeed; the process counts come from the run's own
    config, so the derived figures and the run agree.
    """
    d = config.distributed
    worker = ["-m", WORKER, str(run.path), *(["--resume"] if resume else [])]
    tee = ["--tee", "3", "--log_dir", log_dir]
    path = accelerate_path(config)
    if path is None:
        rdzv = torchrun_args(
            d.nproc_per_node,
            d.nnodes,
            rdzv_endpoint=d.rdzv_endpoint if d.nnodes > 1 else None,
            rdzv_id=d.rdzv_id or run.id,
            node_rank=d.node_rank,
        )
        return "torchrun", [*rdzv, *tee, *worker]
    args = ["--config_file", str(path), "--num_processes", str(d.world_size), "--num_machines", str(d.nnodes)]
    if d.nnodes > 1 and d.rdzv_endpoint:
        host, _, port = d.rdzv_endpoint.rpartition(":")
        args += ["--main_process_ip", host, "--main_process_port", port]
        args += ["--machine_rank", str(d.node_rank)] if d.node_rank is not None else ["--rdzv_backend", "c10d"]
    else:
        args += ["--main_process_port", str(free_port())]
    if d.world_size > 1:
        args.append("--multi_gpu")
    return "accelerate", [*args, *tee, *worker]


def free_port() -> int:
    """A TCP port free on this machine now (for accelerate's single-node rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _run_launcher(kind: str, args: list[str]) -> None:
    """Run torchrun's or accelerate's launch in this process: it returns when every worker has ended."""
    if kind == "accelerate":
        from accelerate.commands.launch import launch_command, launch_command_parser

        launch_command(launch_command_parser().parse_args(args))
        return
    from torch.distributed.run import parse_args, run

    run(parse_args(args))


def _outcome(exc: BaseException) -> tuple[str | None, int | None]:
    """What the launcher's exception says: a failure to report (None: a signal, a clean exit) and the rank at fault."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if isinstance(exc, ChildFailedError):
        rank, failure = exc.get_first_failure()
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit code {failure.exitcode}"
        return f"ended with {how}", rank
    if isinstance(exc, SignalException):
        print(f"[workbench] the launcher got {exc.sigval.name}: its processes were told to stop", flush=True)
        return None, None
    if isinstance(exc, SystemExit):  # accelerate turns a signal into an exit code
        return (None if exc.code in (0, None) else f"accelerate launch exited with {exc.code}"), None
    return f"the launcher failed: {type(exc).__name__}: {exc}", None


def finish(
    run: RunDir, failure: str | None = None, *, rank: int | None = None, owner: int | None = None, clean: bool = False
) -> int:
    """Make status.json say how a run of several processes ended; the launcher's exit code.

    ``failure`` is the launcher's account of the end, ``rank`` the process it
    blames first. That process's recorded exception names the failure (else
    the earliest one recorded, see :meth:`RunDir.rank_errors`), else the
    launcher's account; a status still live when every process is gone failed
    without saying why. A run that completed or stopped keeps its state.
    ``owner`` is the launcher's pid: a status that names another (a resumed
    run's new launcher) is not this launcher's to settle. ``clean``: torchrun
    returned, every process having exited 0; a status still ``starting`` then
    belongs to a machine whose processes did not include rank 0 (one node of
    several, each with its own run directory), and it completed.
    """
    try:
        with run.exclusive():
            raw = run.read_status_raw()
            state, world = raw.get("state"), raw.get("world_size", "?")
            if (owner is not None and raw.get("pid") != owner) or state in ("completed", "stopped", "diverged"):
                return 0 if failure is None else 1
            errors = run.rank_errors()
            if clean and not errors and state == "starting":
                note = "this machine's processes completed; rank 0, on another machine, kept the run's record"
                raw.update(state="completed", note=note, ended=time.time())
                run.write_status(raw)
                return 0
            cause = next((e for e in errors if e.get("rank") == rank), None) if rank is not None else None
            cause = cause or (errors[0] if errors and rank is None else None)
            if cause is not None:
                error = rank_failure(cause, world)
                raw.update(failed_rank=cause.get("rank"), error_tail=cause.get("traceback"))
            elif failure or state in LIVE_STATES:
                error = f"rank {rank} of {world} {failure}" if rank is not None else failure or ""
                error = error or "the processes ended without a final status (see train.log)"
            else:
                return 1
            raw.update(state="failed", error=error[:2000], ended=time.time())
            run.write_status(raw)
            print(f"[workbench] run failed: {error}", flush=True)
            return 1
    except RunError:
        return 1  # a worker still holds the run: it writes its own end


def _keep_alive(run: RunDir, done: threading.Event) -> None:
    """Keep a ``starting`` run's heartbeat from going stale while its processes start (rank 0 beats once it
    holds the lock), so a slow start never reads as lost.

    It beats only a heartbeat half-way to stale: rank 0 usually holds the lock long before, and this
    read-and-replace never races its first writes. On a machine that does not host rank 0 (one node
    of several, each with its own run directory) the run stays ``starting`` until the launcher ends.
    """
    while not done.wait(HEARTBEAT_INTERVAL):
        if run.locked():
            continue
        raw = run.read_status_raw()
        if raw.get("state") == "starting" and time.time() - float(raw.get("heartbeat") or 0) > STALE_AFTER / 2:
            raw["heartbeat"] = time.time()
            run.write_status(raw)


def _ask_stop(run: RunDir) -> None:
    """SIGTERM: the STOP file rank 0 reads (``workbench stop`` wrote one already; a plain ``kill`` did not)."""
    if not run.stop_path.exists():
        atomic_write_text(run.stop_path, '{"reason": "stop requested"}')


def launch_main(run: RunDir, resume: bool) -> int:
    """Be the agent of the run's processes until they end; then settle its status."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _ask_stop(run))
    os.environ.setdefault("PET_SIGNALS_TO_HANDLE", "SIGINT,SIGQUIT")  # torchrun's flags, read from PET_*
    os.environ.setdefault("PET_SHUTDOWN_TIMEOUT", str(SHUTDOWN_TIMEOUT))
    os.environ.setdefault("TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE", LINE_PREFIX)
    run.clear_rank_errors()
    with tempfile.TemporaryDirectory(prefix="workbench-ranks-") as log_dir:
        try:
            config = load_config(run.config_path)
            kind, args = launcher_args(config, run, resume=resume, log_dir=log_dir)
        except WorkbenchError as exc:
            return finish(run, str(exc))
        # torchrun would give each process one thread; share the cores instead (CPU runs need them)
        cores = max(1, (os.cpu_count() or 1) // config.distributed.nproc_per_node)
        os.environ.setdefault("OMP_NUM_THREADS", str(cores))
        print(f"[workbench] {kind} {shlex.join(args)}", flush=True)
        done = threading.Event()
        beat = threading.Thread(target=_keep_alive, args=(run, done), daemon=True)
        beat.start()
        failure, rank, clean = None, None, False
        try:
            _run_launcher(kind, args)
            clean = True
        except BaseException as exc:
            traceback.print_exc()
            failure, rank = _outcome(exc)
        finally:
            done.set()
            beat.join(timeout=5)
    return finish(run, failure, rank=rank, owner=os.getpid(), clean=clean)


USAGE = """usage: python -m workbench.train.launch RUN_DIR [--resume]   be the agent of a run's processes
       python -m workbench.train.launch --prepare CONFIG WORKSPACE [HOST:PORT [RDZV_ID]]
                                                 create a run (met at that rendezvous), print its directory
       python -m workbench.train.launch --reopen RUN_DIR             mark a run to resume, print its directory
       python -m workbench.train.launch --finish RUN_DIR EXIT_CODE   settle a run after its processes ended

The last three are the steps of a scheduler's job that runs torchrun itself (the Slurm export)."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wanted = {"--prepare": 3, "--reopen": 2, "--finish": 3}
    if not argv or len(argv) < wanted.get(argv[0], 1):
        print(USAGE, file=sys.stderr)
        return 2
    command = argv[0]
    try:
        if command == "--prepare":
            from workbench.train.runner import prepare

            config = load_config(argv[1])
            meet = dict(zip(("rdzv_endpoint", "rdzv_id"), argv[3:5]))
            config.distributed = type(config.distributed).model_validate({**config.distributed.model_dump(), **meet})
            print(prepare(config, argv[2]).path)
        elif command == "--reopen":
            from workbench.train.runner import reopen

            print(reopen(RunDir(Path(argv[1]).resolve())).path)
        elif command == "--finish":
            code = argv[2]
            return finish(RunDir(Path(argv[1]).resolve()), None if code == "0" else f"torchrun exited with {code}")
        else:
            return launch_main(RunDir(Path(argv[0]).resolve()), "--resume" in argv[1:])
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
