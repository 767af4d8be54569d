"""Start, stop, resume and list runs. Every function returns at once.

A run's worker is started in a session of its own with no terminal: closing
the terminal, losing SSH or quitting the app never reaches it. Watchers learn
everything from the run directory (see :mod:`workbench.train.rundir`).
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
    return config.model_copy(update={"data": data, "model": config.resolved_model(), "base_dir": None})


def _spawn(run: RunDir, *extra: str) -> int:
    """Start the worker detached: own session, no stdin, output to train.log."""
    return spawn_detached("workbench.train.worker", run.path, run.log_path, *extra)


def launch(
    config: RunConfig | str | Path, workspace: str | Path, *, check: bool = True, meta: dict[str, Any] | None = None
) -> RunDir:
    """Validate the config, create runs/<id>/ and start its worker; returns the run.

    ``meta`` goes into the run's status.json as it is (a sweep's trial names its sweep there).
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
        }
    )
    run.stop_path.unlink(missing_ok=True)
    pid = _spawn(run)
    _record_pid(run, pid)
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
    """Continue a stopped, failed or lost run from its last checkpoint to the same end."""
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
    _record_pid(run, _spawn(run, "--resume"))
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
    "resume",
    "stop",
    "summarize",
]
