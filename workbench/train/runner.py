"""Start, stop, resume and list runs. Every function returns at once.

A run's worker is started in a session of its own with no terminal: closing
the terminal, losing SSH or quitting the app never reaches it. Watchers learn
everything from the run directory (see :mod:`workbench.train.rundir`). A run
of several processes (the config's ``distributed`` section) starts the same
way, through its launcher (:mod:`workbench.train.launch`), which is torchrun's
agent and starts one worker per process.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench.config.schema import RunConfig, dump_config, load_config
from workbench.detach import match_ref, new_dir_id, spawn_detached, stop_worker
from workbench.errors import ConfigError, RunError
from workbench.train.rundir import FINAL_STATES, LIVE_STATES, RunDir, atomic_write_text, read_jsonl
from workbench.workspace import Workspace


def runs_dir(workspace: str | Path) -> Path:
    """``runs/`` of the workspace (see :class:`workbench.workspace.Workspace`)."""
    return Workspace(workspace).runs_dir


def resolved_copy(config: RunConfig) -> RunConfig:
    """The config with every path made absolute, as the run directory records it."""
    data = config.data.model_copy(
        update={
            name: str(config.resolve(getattr(config.data, name)).resolve())
            for name in ("train", "val", "test")
            if getattr(config.data, name)
        }
    )
    update: dict[str, Any] = {"data": data, "model": config.resolved_model(), "base_dir": None}
    accelerate = config.resolve(config.distributed.accelerate_config)
    if accelerate is not None:
        update["distributed"] = config.distributed.model_copy(update={"accelerate_config": str(accelerate.resolve())})
    return config.model_copy(update=update)


def _spawn(run: RunDir, *extra: str) -> int:
    """Start the worker detached (own session, no stdin, output to train.log); several processes: their launcher.

    A config that cannot be read goes to the worker, which reports it in the run's status.
    """
    try:
        launched = load_config(run.config_path).distributed.launched
    except ConfigError:
        launched = False
    module = "workbench.train.launch" if launched else "workbench.train.worker"
    return spawn_detached(module, run.path, run.log_path, *extra)


def launch(
    config: RunConfig | str | Path, workspace: str | Path, *, check: bool = True, meta: dict[str, Any] | None = None
) -> RunDir:
    """Validate the config, create runs/<id>/ and start its worker; returns the run.

    ``meta`` goes into the run's status.json as it is (a sweep's trial names its sweep there).
    """
    run = prepare(config, workspace, check=check, meta=meta)
    _record_pid(run, _spawn(run))
    return run


def prepare(
    config: RunConfig | str | Path, workspace: str | Path, *, check: bool = True, meta: dict[str, Any] | None = None
) -> RunDir:
    """Validate the config and create runs/<id>/ with its config and a ``starting`` status, without starting it.

    :func:`launch` starts it at once; a scheduler's job (the Slurm export) starts its processes itself.
    """
    if not isinstance(config, RunConfig):
        config = load_config(config)
    if check:
        from workbench.config.check import check_config

        report = check_config(config)
        if report.errors:
            raise ConfigError(
                "the config has errors; the run was not started:\n" + "\n".join(f"  {f}" for f in report.errors)
            )
    root = runs_dir(workspace)
    root.mkdir(parents=True, exist_ok=True)
    run = RunDir(root / new_dir_id(root, config.name))
    run.path.mkdir()
    atomic_write_text(run.config_path, dump_config(resolved_copy(config)))
    now = time.time()
    run.write_status(
        {
            **(meta or {}),
            "run_id": run.id,
            "name": config.name,
            "state": "starting",
            "created": now,
            "heartbeat": now,
            "step": 0,
            "world_size": config.distributed.world_size,
        }
    )
    run.stop_path.unlink(missing_ok=True)
    return run


def _record_pid(run: RunDir, pid: int) -> None:
    """Note the launcher-side pid unless the worker already wrote its own status."""
    raw = run.read_status_raw()
    if not raw.get("pid"):
        raw["pid"] = pid
        run.write_status(raw)


def find_run(workspace: str | Path, ref: str) -> RunDir:
    """A run by path, exact id, or unique id prefix (or 'last' for the newest)."""
    path = Path(ref)
    if (path / "status.json").is_file() or (path / "config.yaml").is_file():
        return RunDir(path)
    ws = Workspace(workspace)
    root = ws.runs_dir
    matches = match_ref(ws.runs(), ref, lambda p: RunDir(p).read_status_raw().get("created", 0))
    if len(matches) == 1:
        return RunDir(matches[0])
    if not matches:
        raise RunError(f"no run {ref!r} in {root} (see `workbench runs`)")
    raise RunError(f"{ref!r} matches several runs: {', '.join(p.name for p in matches[:5])}")


def stop(run: RunDir, *, timeout: float = 0.0, reason: str | None = None) -> str:
    """Ask the worker to stop gracefully (checkpoint + adapter); wait up to timeout seconds.

    ``reason`` lands in the run's status as its stop_reason (a sweep says it pruned the run).
    """
    state = run.status().state
    if state not in LIVE_STATES:
        raise RunError(f"run {run.id} is {state}, not running")
    return stop_worker(run, timeout=timeout, reason=reason)


def resume(run: RunDir) -> RunDir:
    """Continue a stopped, failed or lost run from its last checkpoint to the same end (and the same processes)."""
    reopen(run)
    _record_pid(run, _spawn(run, "--resume"))
    return run


def reopen(run: RunDir) -> RunDir:
    """Check that a run can resume and mark it ``starting`` again, without starting it (see :func:`prepare`)."""
    status = run.status()
    if run.locked() or status.state in ("starting", "running", "stopping"):
        raise RunError(f"run {run.id} is still {status.state}; stop it first")
    if status.state == "completed":
        raise RunError(f"run {run.id} already completed; launch a new run instead")
    if not run.checkpoints():
        raise RunError(f"run {run.id} has no checkpoint to resume from; launch it again instead")
    raw = run.read_status_raw()
    raw.update(state="starting", heartbeat=time.time(), error=None, pid=None)
    run.write_status(raw)
    run.stop_path.unlink(missing_ok=True)
    run.clear_rank_errors()
    return run


@dataclass
class RunSummary:
    """One row of the runs list."""

    id: str
    name: str
    state: str
    step: int
    total_steps: int | None
    best_eval_loss: float | None
    created: float
    path: str
    error: str | None = None
    verdict: dict[str, Any] | None = None  # the detector's last verdict (overfitting / diverged)
    world_size: int = 1  # training processes (torchrun's world size)
    stop_reason: str | None = None  # why a stopped run stopped (asked, overfitting, pruned by a sweep)
    sweep: dict[str, Any] | None = None  # {id, trial} of a sweep's trial

    @property
    def age_s(self) -> float:
        return time.time() - self.created

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "age_s": round(self.age_s, 1)}


def summarize(run: RunDir) -> RunSummary:
    status = run.status()
    raw = status.raw
    best = raw.get("best_eval_loss")
    if best is None:
        evals = [r["eval_loss"] for r in read_jsonl(run.metrics_path)[0] if isinstance(r.get("eval_loss"), int | float)]
        best = min(evals) if evals else None
    created = raw.get("created") or run.path.stat().st_mtime
    return RunSummary(
        id=run.id,
        name=raw.get("name", run.id),
        state=status.state,
        step=status.step,
        total_steps=status.total_steps,
        best_eval_loss=best,
        created=created,
        path=str(run.path),
        error=status.error,
        verdict=raw.get("verdict"),
        world_size=int(raw.get("world_size") or 1),
        stop_reason=raw.get("stop_reason") if status.state == "stopped" else None,
        sweep=raw.get("sweep"),
    )


def list_runs(workspace: str | Path) -> list[RunSummary]:
    """Every run in the workspace, newest first."""
    runs = [summarize(RunDir(p)) for p in Workspace(workspace).runs()]
    return sorted(runs, key=lambda r: r.created, reverse=True)


__all__ = [
    "FINAL_STATES",
    "LIVE_STATES",
    "RunSummary",
    "find_run",
    "launch",
    "list_runs",
    "prepare",
    "reopen",
    "resume",
    "stop",
    "summarize",
]
