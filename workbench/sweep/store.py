"""The sweep directory, ``sweeps/<id>/``, and the Optuna study behind it.

* ``spec.yaml``: the spec the sweep was started with (base_config made absolute)
* ``status.json``: the driver's state (starting, running, stopping, stopped, completed,
  failed; ``lost`` when the driver is gone), pid, heartbeat, the study's storage and name
* ``trials.json``: a snapshot of every trial of the study, written by the driver after each
  change, so that the app and the CLI never open the storage to draw a table
* ``driver.log``: what the driver did and why (each trial started, pruned, failed)
* ``study.db``: the Optuna study (SQLite) unless the spec names an RDB URL
* ``.lock`` and ``STOP``: as a run's (see :mod:`workbench.train.rundir`)

A trial is an ordinary run under ``runs/``: its status.json carries ``sweep`` (the sweep id
and the trial number), and the trial carries the run id in its user attributes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.fileio import atomic_write_text
from workbench.sweep.spec import SweepSpec, load_spec
from workbench.train.rundir import RunDir, RunStatus


class SweepError(WorkbenchError):
    """A sweep that cannot be found, started, stopped or resumed."""


class SweepDir:
    """Paths and safe reads and writes of one sweep directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # status.json, .lock and STOP work exactly as a run's: reuse the run directory's code.
        self._files = RunDir(self.path)

    def __repr__(self) -> str:
        return f"SweepDir({str(self.path)!r})"

    @property
    def id(self) -> str:
        return self.path.name

    spec_path = property(lambda self: self.path / "spec.yaml")
    status_path = property(lambda self: self.path / "status.json")
    trials_path = property(lambda self: self.path / "trials.json")
    log_path = property(lambda self: self.path / "driver.log")
    db_path = property(lambda self: self.path / "study.db")
    lock_path = property(lambda self: self.path / ".lock")
    stop_path = property(lambda self: self.path / "STOP")

    def exists(self) -> bool:
        return self.spec_path.is_file()

    def spec(self) -> SweepSpec:
        return load_spec(self.spec_path)

    def read_status_raw(self) -> dict[str, Any]:
        return self._files.read_status_raw()

    def status(self, now: float | None = None) -> RunStatus:
        return self._files.status(now)

    def write_status(self, data: dict[str, Any]) -> None:
        self._files.write_status(data)

    def locked(self) -> bool:
        return self._files.locked()

    def exclusive(self) -> Any:
        return self._files.exclusive()

    @property
    def storage_url(self) -> str:
        return self.read_status_raw().get("storage") or f"sqlite:///{self.db_path.resolve()}"

    @property
    def study_name(self) -> str:
        return self.read_status_raw().get("study_name") or self.id

    def trials(self) -> list[TrialView]:
        """The driver's last snapshot of the study's trials, by number."""
        try:
            data = json.loads(self.trials_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        rows = data.get("trials", []) if isinstance(data, dict) else []
        return [TrialView.from_dict(r) for r in rows if isinstance(r, dict)]

    def write_trials(self, trials: list[TrialView]) -> None:
        atomic_write_text(
            self.trials_path, json.dumps({"written": time.time(), "trials": [t.to_dict() for t in trials]}, indent=1)
        )


@dataclass
class TrialView:
    """One trial as the sweep view and ``sweep show`` draw it."""

    number: int
    state: str  # RUNNING, COMPLETE, PRUNED, FAIL, WAITING (Optuna's), or "pruning" while its run stops
    params: dict[str, Any]
    value: float | None = None
    run_id: str | None = None
    sweep_id: str | None = None  # the sweep (machine) that ran it; another machine's trials have theirs
    sweep_uid: str | None = None  # that sweep's unique mark (ids can repeat on two machines)
    pruned_at: int | None = None  # the step at which the pruner stopped it
    error: str | None = None
    last_step: int | None = None
    intermediate: dict[int, float] = field(default_factory=dict)  # step -> value reported to the pruner
    started: float | None = None
    ended: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["intermediate"] = {str(k): v for k, v in self.intermediate.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialView:
        known: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        known["intermediate"] = {int(k): float(v) for k, v in (data.get("intermediate") or {}).items()}
        known.setdefault("params", {})
        return cls(**known)

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started


def frozen_view(trial: Any) -> TrialView:
    """A TrialView of an Optuna FrozenTrial."""
    attrs = trial.user_attrs
    value = trial.value if trial.values else None
    return TrialView(
        number=trial.number,
        state="pruning" if attrs.get("pruning") and trial.state.name == "RUNNING" else trial.state.name,
        params=dict(trial.params),
        value=value if value is None or math.isfinite(value) else None,
        run_id=attrs.get("run_id"),
        sweep_id=attrs.get("sweep_id"),
        sweep_uid=attrs.get("sweep_uid"),
        pruned_at=attrs.get("pruned_at"),
        error=attrs.get("error"),
        last_step=max(trial.intermediate_values) if trial.intermediate_values else None,
        intermediate={int(k): float(v) for k, v in trial.intermediate_values.items()},
        started=trial.datetime_start.timestamp() if trial.datetime_start else None,
        ended=trial.datetime_complete.timestamp() if trial.datetime_complete else None,
    )


def best_trial(trials: list[TrialView], direction: str) -> TrialView | None:
    """The complete trial with the best objective."""
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
    if not done:
        return None
    pick = min if direction == "minimize" else max
    return pick(done, key=lambda t: t.value)  # type: ignore[arg-type, return-value]


def open_study(url: str, name: str, spec: SweepSpec | None = None, *, create: bool = False) -> Any:
    """The Optuna study; with ``create``, made (or joined) with the spec's sampler, pruner and direction."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = expand_url(url)
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=url)
        except KeyError:
            raise SweepError(f"no study {name!r} in {url}") from None
    assert spec is not None
    for attempt in range(6):
        try:
            return optuna.create_study(
                storage=url,
                study_name=name,
                sampler=make_sampler(spec),
                pruner=make_pruner(spec),
                direction=spec.objective.direction,
                load_if_exists=True,
            )
        except SQLAlchemyError:
            # Two machines creating the storage's tables at the same moment ("already exists", a UNIQUE
            # constraint on alembic's version, "database is locked"): one wins, the other opens what it made.
            if attempt == 5:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def expand_url(url: str) -> str:
    """A storage URL with ``${VAR}`` taken from the environment: a database password never lands on disk."""
    import os
    import re

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SweepError(f"storage URL: the environment variable {name} is not set")
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value, url)


def safe_url(url: str) -> str:
    """A storage URL without its password, for logs and tables."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def make_sampler(spec: SweepSpec, seed_offset: int = 0) -> Any:
    """The spec's sampler; ``seed_offset`` moves a seeded one on, so that a driver started again
    (or a second machine) does not replay the parameters its seed gave the first trials."""
    import optuna

    from workbench.sweep.spec import grid_points

    seed = None if spec.seed is None else (spec.seed + seed_offset) % 2**32
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        space = {name: grid_points(name, p) for name, p in spec.space.items()}
        return optuna.samplers.GridSampler(space, seed=seed)  # type: ignore[arg-type]
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: SweepSpec) -> Any:
    import optuna

    p = spec.pruner
    if p.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_steps)
    if p.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_steps, reduction_factor=p.reduction_factor)
    return optuna.pruners.NopPruner()


def grid_size(spec: SweepSpec) -> int | None:
    """How many points a grid sampler has (None for other samplers)."""
    from workbench.sweep.spec import grid_points

    if spec.sampler != "grid":
        return None
    n = 1
    for name, p in spec.space.items():
        n *= len(grid_points(name, p) or [])
    return n


def param_importances(sweep: SweepDir) -> dict[str, float]:
    """Optuna's own parameter importances over the study's complete trials (empty with fewer than two)."""
    import optuna

    study = open_study(sweep.storage_url, sweep.study_name)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2 or not any(t.params for t in complete):
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # every trial had the same parameters
        return {}


def run_of(trial: TrialView, runs_dir: Path) -> RunDir | None:
    """The run of a trial, when it ran in this workspace."""
    if not trial.run_id:
        return None
    run = RunDir(runs_dir / trial.run_id)
    return run if run.exists() else None
