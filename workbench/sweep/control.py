"""Start, stop, resume, find and list sweeps. Every function returns at once.

The driver runs detached like a training worker (:func:`workbench.detach.spawn_detached`):
closing the app, the terminal or the SSH connection never reaches it or its trials.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from workbench.detach import match_ref, new_dir_id, spawn_detached, stop_worker
from workbench.errors import ConfigError
from workbench.fileio import atomic_write_text
from workbench.sweep.spec import SpecCheck, SweepSpec, check_spec, load_spec
from workbench.sweep.store import SweepDir, SweepError, TrialView, best_trial, grid_size, safe_url
from workbench.train.rundir import LIVE_STATES
from workbench.workspace import Workspace

DRIVER = "workbench.sweep.driver"


def start(spec: SweepSpec | str | Path, workspace: str | Path) -> SweepDir:
    """Check the spec, create sweeps/<id>/ and start its driver; refuses a spec with errors."""
    source = str(spec) if not isinstance(spec, SweepSpec) else "sweep spec"
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    report = check_spec(spec, source=source)
    if report.errors:
        raise ConfigError(
            "the sweep spec has errors; nothing was started:\n" + "\n".join(f"  {e}" for e in report.errors)
        )
    ws = Workspace(workspace)
    ws.sweeps_dir.mkdir(parents=True, exist_ok=True)
    sweep = SweepDir(ws.sweeps_dir / new_dir_id(ws.sweeps_dir, spec.name))
    sweep.path.mkdir()
    saved = spec.model_dump(mode="json")
    saved["base_config"] = str(spec.base_path.resolve())
    atomic_write_text(sweep.spec_path, yaml.safe_dump(saved, sort_keys=False, allow_unicode=True))
    now = time.time()
    sweep.write_status(
        {
            "sweep_id": sweep.id,
            "uid": uuid.uuid4().hex,  # the sweep's mark on its trials: ids repeat across machines, this does not
            "name": spec.name,
            "state": "starting",
            "created": now,
            "heartbeat": now,
            "workspace": str(ws.path),
            # the URL as written (a ${VAR} password stays a reference); SQLite in the sweep by default
            "storage": spec.storage or f"sqlite:///{sweep.db_path.resolve()}",
            "study_name": spec.study_name or (spec.name if spec.storage else sweep.id),
            "trials": min(spec.trials, grid_size(spec) or spec.trials),
            "warnings": report.warnings,
        }
    )
    _spawn(sweep)
    return sweep


def preview(spec_path: str | Path) -> SpecCheck:
    """The spec's errors and warnings, without starting anything (``sweep start --check``)."""
    spec = load_spec(spec_path)
    return check_spec(spec, source=str(spec_path))


def _spawn(sweep: SweepDir) -> None:
    pid = spawn_detached(DRIVER, sweep.path, sweep.log_path)
    raw = sweep.read_status_raw()
    if not raw.get("pid"):  # the driver writes its own once it holds the lock
        raw["pid"] = pid
        sweep.write_status(raw)


def stop(sweep: SweepDir, *, timeout: float = 0.0) -> str:
    """Ask the driver to stop: it stops its live trials gracefully (each saves a checkpoint) and ends."""
    state = sweep.status().state
    if state not in LIVE_STATES:
        raise SweepError(f"sweep {sweep.id} is {state}, not running")
    return stop_worker(sweep, timeout=timeout, reason="sweep stop requested")


def resume(sweep: SweepDir) -> SweepDir:
    """Start the driver again: it takes up its trials' runs (resuming the stopped ones) and goes on."""
    status = sweep.status()
    if sweep.locked() or status.state in ("starting", "running", "stopping"):
        raise SweepError(f"sweep {sweep.id} is still {status.state}; stop it first")
    if status.state == "completed":
        raise SweepError(f"sweep {sweep.id} already completed its trials; start a new sweep (or raise trials)")
    raw = sweep.read_status_raw()
    raw.update(state="starting", heartbeat=time.time(), error=None, pid=None)
    sweep.write_status(raw)
    sweep.stop_path.unlink(missing_ok=True)
    _spawn(sweep)
    return sweep


def find_sweep(workspace: str | Path, ref: str) -> SweepDir:
    """A sweep by path, exact id, unique id prefix, or 'last'."""
    path = Path(ref)
    if (path / "spec.yaml").is_file():
        return SweepDir(path)
    ws = Workspace(workspace)
    matches = match_ref(ws.sweeps(), ref, lambda p: SweepDir(p).read_status_raw().get("created", 0))
    if len(matches) == 1:
        return SweepDir(matches[0])
    if not matches:
        raise SweepError(f"no sweep {ref!r} in {ws.sweeps_dir} (see `workbench sweep list`)")
    raise SweepError(f"{ref!r} matches several sweeps: {', '.join(p.name for p in matches[:5])}")


@dataclass
class SweepSummary:
    """One row of the sweeps list, and the head of ``sweep show``."""

    id: str
    name: str
    state: str
    trials: int
    done: int
    running: int
    paused: int  # trials of a stopped (or lost) sweep that go on when it is resumed
    pruned: int
    failed: int
    metric: str
    direction: str
    best_value: float | None
    best_trial: int | None
    best_run: str | None
    created: float
    path: str
    storage: str
    study_name: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(sweep: SweepDir, trials: list[TrialView] | None = None) -> SweepSummary:
    status = sweep.status()
    raw = status.raw
    try:
        spec = sweep.spec()
        metric, direction = spec.objective.metric, spec.direction
    except ConfigError:
        metric, direction = "?", "minimize"
    trials = sweep.trials() if trials is None else trials
    best = best_trial(trials, direction)
    states = [t.state for t in trials]
    live = status.state in LIVE_STATES
    return SweepSummary(
        id=sweep.id,
        name=raw.get("name", sweep.id),
        state=status.state,
        trials=int(raw.get("trials") or 0),
        done=sum(s in ("COMPLETE", "PRUNED", "FAIL") for s in states),
        running=sum(s in ("RUNNING", "pruning") for s in states) if live else 0,
        paused=0 if live else sum(s in ("RUNNING", "pruning") for s in states),
        pruned=states.count("PRUNED"),
        failed=states.count("FAIL"),
        metric=metric,
        direction=direction,
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        best_run=best.run_id if best else None,
        created=raw.get("created") or sweep.path.stat().st_mtime,
        path=str(sweep.path),
        storage=safe_url(raw.get("storage", "")),
        study_name=raw.get("study_name") or sweep.id,
        error=status.error,
    )


def list_sweeps(workspace: str | Path) -> list[SweepSummary]:
    """Every sweep of the workspace, newest first."""
    rows = [summarize(SweepDir(p)) for p in Workspace(workspace).sweeps()]
    return sorted(rows, key=lambda r: r.created, reverse=True)


def trial_state(trial: TrialView, summary: SweepSummary) -> str:
    """A trial's state as shown: ``paused`` for one still running in the study of a sweep that is not."""
    if trial.state in ("RUNNING", "pruning") and summary.paused:
        return "paused"
    return trial.state


@dataclass
class SweepSnapshot:
    """What the sweep view draws: the summary, the trials, the best objective after each trial."""

    summary: SweepSummary
    trials: list[TrialView]
    params: list[str]  # the searched fields, in the spec's order
    best_so_far: list[tuple[int, float]]  # (trial number, best objective of the trials up to it)
    importances: dict[str, float] | None = None  # Optuna's, when asked for and two trials completed


def snapshot(sweep: SweepDir, *, importances: bool = False) -> SweepSnapshot:
    """The sweep as of its driver's last snapshot; with ``importances``, Optuna's parameter importances too."""
    from workbench.sweep.store import param_importances

    trials = sweep.trials()
    summary = summarize(sweep, trials)
    try:
        params = list(sweep.spec().space)
    except ConfigError:
        params = sorted({k for t in trials for k in t.params})
    best: list[tuple[int, float]] = []
    current: float | None = None
    better = min if summary.direction == "minimize" else max
    for t in trials:
        if t.state == "COMPLETE" and t.value is not None:
            current = t.value if current is None else better(current, t.value)
        if current is not None:
            best.append((t.number, current))
    weights = None
    if importances and sum(t.state == "COMPLETE" for t in trials) >= 2:
        try:
            weights = param_importances(sweep)
        except SweepError:
            weights = None
    return SweepSnapshot(summary, trials, params, best, weights)


def best_config_text(sweep: SweepDir) -> tuple[str, Path] | None:
    """The best trial's config, as its run recorded it, and where it lies; None before a trial completes."""
    summary = summarize(sweep)
    if summary.best_run is None:
        return None
    ws = Workspace(sweep.read_status_raw().get("workspace") or sweep.path.parents[1])
    path = ws.runs_dir / summary.best_run / "config.yaml"
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8"), path


__all__ = [
    "SweepSnapshot",
    "SweepSummary",
    "best_config_text",
    "find_sweep",
    "list_sweeps",
    "preview",
    "resume",
    "snapshot",
    "start",
    "stop",
    "summarize",
    "trial_state",
]
