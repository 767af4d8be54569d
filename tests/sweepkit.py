"""A finished sweep as its driver leaves it: spec, status, a real Optuna study and the trials snapshot."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from workbench.sweep.store import SweepDir, frozen_view

#: (learning rate, r, state, objective, intermediate eval losses by step, pruned at)
TRIALS = [
    (3.0e-4, 8, "COMPLETE", 1.412, {10: 1.62, 20: 1.48, 30: 1.412}, None),
    (1.2e-3, 16, "COMPLETE", 1.236, {10: 1.51, 20: 1.30, 30: 1.236}, None),
    (1.0e-4, 4, "PRUNED", None, {10: 1.81}, 10),
    (8.0e-4, 8, "COMPLETE", 1.301, {10: 1.55, 20: 1.36, 30: 1.301}, None),
    (2.0e-3, 4, "FAIL", None, {}, None),
    (1.5e-3, 16, "COMPLETE", 1.198, {10: 1.49, 20: 1.27, 30: 1.198}, None),
]


def finished_sweep(
    workspace: Path, sweep_id: str = "lr-sweep-20261201-093000", *, age_s: float = 3 * 86400
) -> SweepDir:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    sweep = SweepDir(workspace / "sweeps" / sweep_id)
    sweep.path.mkdir(parents=True)
    spec = {
        "name": "lr-sweep",
        "base_config": str(workspace / "configs" / "demo.yaml"),
        "space": {"train.learning_rate": {"low": 1e-4, "high": 2e-3, "log": True}, "lora.r": {"choices": [4, 8, 16]}},
        "trials": len(TRIALS),
        "pruner": {"kind": "median"},
    }
    sweep.spec_path.write_text(yaml.safe_dump(spec))
    created = time.time() - age_s
    sweep.write_status(
        {
            "sweep_id": sweep_id,
            "name": "lr-sweep",
            "state": "completed",
            "created": created,
            "heartbeat": created + 600,
            "workspace": str(workspace),
            "storage": f"sqlite:///{sweep.db_path}",
            "study_name": sweep_id,
            "trials": len(TRIALS),
        }
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=sweep.storage_url, study_name=sweep_id, direction="minimize")
    dists = {
        "train.learning_rate": FloatDistribution(1e-4, 2e-3, log=True),
        "lora.r": CategoricalDistribution([4, 8, 16]),
    }
    for i, (lr, r, state, value, inter, pruned_at) in enumerate(TRIALS):
        attrs = {"sweep_id": sweep_id, "run_id": f"lr-sweep-t{i}-20261201-0930{i:02d}"}
        if pruned_at is not None:
            attrs.update(pruning=True, pruned_at=pruned_at)
        if state == "FAIL":
            attrs["error"] = "run failed: RuntimeError: CUDA error: out of memory"
        study.add_trial(
            create_trial(
                params={"train.learning_rate": lr, "lora.r": r},
                distributions=dists,
                value=value,
                state=TrialState[state],
                intermediate_values=inter,
                user_attrs=attrs,
            )
        )
    views = [frozen_view(t) for t in study.get_trials()]
    for i, view in enumerate(views):  # fixed durations, whatever the clock says
        view.started = created + 300 * i
        view.ended = view.started + (95 if view.state == "PRUNED" else 12 if view.state == "FAIL" else 287)
    sweep.write_trials(views)
    return sweep
