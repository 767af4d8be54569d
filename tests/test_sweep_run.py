"""Real sweeps: Optuna's study driving detached runs of the tiny model through the real runner."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from test_train_integration import write_config

from workbench.sweep import control
from workbench.sweep.store import SweepDir, open_study
from workbench.train.rundir import LIVE_STATES, RunDir

pytestmark = pytest.mark.slow


def write_spec(workspace: Path, config: Path, **fields) -> Path:
    spec = {
        "name": "ts",
        "base_config": config.name,
        "space": {"train.learning_rate": {"choices": [9e-3, 8e-3, 5e-6]}},
        "sampler": "random",
        "seed": 0,
        "trials": 3,
        "parallel": 1,
        "pruner": {"kind": "median", "startup_trials": 2},
        # the third trial learns almost nothing: its eval loss trails the first two at each step
        "first_trials": [
            {"train.learning_rate": 9e-3},
            {"train.learning_rate": 8e-3},
            {"train.learning_rate": 5e-6},
        ],
    }
    spec.update(fields)
    path = workspace / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def wait_sweep(sweep: SweepDir, timeout: float = 400, until=None) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if until is not None and until():
            return sweep.status().state
        if sweep.status().state not in LIVE_STATES + ("lost",) or (until is None and sweep.status().state == "lost"):
            return sweep.status().state
        time.sleep(0.3)
    log = sweep.log_path.read_text() if sweep.log_path.exists() else ""
    raise AssertionError(f"timed out in state {sweep.status().state}; driver.log:\n{log[-3000:]}")


def test_three_trials_one_pruned(workspace, tiny_model_dir):
    config = write_config(workspace, tiny_model_dir, name="base", train={"max_steps": 30})
    sweep = control.start(write_spec(workspace, config), workspace)
    assert wait_sweep(sweep) == "completed", sweep.log_path.read_text()
    trials = sweep.trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.state for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"], sweep.log_path.read_text()
    pruned = trials[2]
    assert pruned.pruned_at is not None and pruned.pruned_at < 30
    # every trial is an ordinary run, linked both ways
    for trial in trials:
        run = RunDir(workspace / "runs" / str(trial.run_id))
        assert run.read_status_raw()["sweep"] == {"id": sweep.id, "trial": trial.number}
        lr = yaml.safe_load(run.config_path.read_text())["train"]["learning_rate"]
        assert lr == pytest.approx(trial.params["train.learning_rate"])
    run = RunDir(workspace / "runs" / str(pruned.run_id))
    status = run.status()
    assert status.state == "stopped" and "pruned by sweep" in status.raw["stop_reason"]
    assert pruned.pruned_at <= status.step < 30  # stopped gracefully a little after the pruner spoke
    # the objective is each run's best eval loss, as Optuna's study holds it
    study = open_study(sweep.storage_url, sweep.study_name)
    for trial in trials[:2]:
        best = RunDir(workspace / "runs" / str(trial.run_id)).read_status_raw()["best_eval_loss"]
        assert trial.value == pytest.approx(best)
        assert study.trials[trial.number].value == pytest.approx(best)
    summary = control.summarize(sweep)
    assert (summary.done, summary.pruned, summary.failed) == (3, 1, 0)
    assert summary.best_trial == min(trials[:2], key=lambda t: t.value).number
    text, path = control.best_config_text(sweep)
    assert path.parent.name == summary.best_run and "learning_rate" in text


def test_a_crashed_trial_fails_and_the_sweep_goes_on(workspace, tiny_model_dir):
    config = write_config(workspace, tiny_model_dir, name="base", train={"max_steps": 2})
    spec = write_spec(
        workspace,
        config,
        trials=2,
        # no rule knows optimizer names: the first trial's worker dies in transformers
        space={"train.optimizer": {"choices": ["no_such_optimizer", "adamw_torch"]}},
        first_trials=[{"train.optimizer": "no_such_optimizer"}, {"train.optimizer": "adamw_torch"}],
        pruner={"kind": "none"},
    )
    sweep = control.start(spec, workspace)
    assert wait_sweep(sweep) == "completed", sweep.log_path.read_text()
    first, second = sweep.trials()
    assert first.state == "FAIL" and "no_such_optimizer" in (first.error or ""), first
    assert RunDir(workspace / "runs" / str(first.run_id)).status().state == "failed"
    assert second.state == "COMPLETE" and second.value is not None


def test_driver_killed_then_resumed_takes_its_trial_up(workspace, tiny_model_dir):
    config = write_config(workspace, tiny_model_dir, name="base", train={"max_steps": 30})
    spec = write_spec(workspace, config, trials=2, first_trials=[], pruner={"kind": "none"})
    sweep = control.start(spec, workspace)
    wait_sweep(sweep, until=lambda: bool(sweep.trials()) and sweep.trials()[0].run_id)
    run = RunDir(workspace / "runs" / str(sweep.trials()[0].run_id))
    os.kill(sweep.read_status_raw()["pid"], signal.SIGKILL)
    wait_sweep(sweep, until=lambda: sweep.status().state == "lost", timeout=30)
    assert run.status().state in LIVE_STATES + ("completed",)  # the trial's run never noticed
    control.resume(sweep)
    assert wait_sweep(sweep) == "completed", sweep.log_path.read_text()
    trials = sweep.trials()
    assert [t.state for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[0].run_id == run.id  # taken up, not started again
    assert len(list((workspace / "runs").iterdir())) == 2
    assert "taking up run" in sweep.log_path.read_text()


def test_stop_then_resume_continues_the_stopped_trial(workspace, tiny_model_dir):
    config = write_config(workspace, tiny_model_dir, name="base", train={"max_steps": 40})
    spec = write_spec(workspace, config, trials=1, first_trials=[], pruner={"kind": "none"})
    sweep = control.start(spec, workspace)
    wait_sweep(sweep, until=lambda: bool(sweep.trials()) and (sweep.trials()[0].run_id or "") != "")
    run = RunDir(workspace / "runs" / str(sweep.trials()[0].run_id))
    deadline = time.time() + 120
    while time.time() < deadline and not run.checkpoints():
        time.sleep(0.2)
    assert control.stop(sweep, timeout=120) == "stopped", sweep.log_path.read_text()
    status = run.status()
    assert status.state == "stopped" and "sweep stopped" in status.raw["stop_reason"]
    assert sweep.trials()[0].state == "RUNNING"  # still the study's: the sweep goes on with it
    control.resume(sweep)
    assert wait_sweep(sweep) == "completed", sweep.log_path.read_text()
    assert run.status().state == "completed" and run.status().step == 40
    assert sweep.trials()[0].state == "COMPLETE"


def test_a_task_metric_objective_is_measured_by_the_eval_core(workspace, tiny_model_dir):
    from workbench.eval.results import Results
    from workbench.eval.store import EvalDir

    config = write_config(workspace, tiny_model_dir, name="base", train={"max_steps": 2})
    spec = write_spec(
        workspace,
        config,
        trials=1,
        first_trials=[],
        pruner={"kind": "none"},
        objective={"metric": "token_f1", "limit": 4},
    )
    sweep = control.start(spec, workspace)
    assert wait_sweep(sweep) == "completed", sweep.log_path.read_text()
    [trial] = sweep.trials()
    assert trial.state == "COMPLETE", trial
    study = open_study(sweep.storage_url, sweep.study_name)
    eval_id = study.trials[0].user_attrs["eval_id"]
    ev = EvalDir(workspace / "evals" / eval_id)
    assert len(ev.examples()) == 4 and ev.spec().models[0].run_id == trial.run_id
    f1 = Results(ev).summaries(["token_f1"])[0].metrics["token_f1"].mean
    assert trial.value == pytest.approx(f1)
    assert control.summarize(sweep).direction == "maximize"


def test_two_machines_pull_trials_from_one_study(workspace, tiny_model_dir, tmp_path_factory):
    """Two workspaces (two machines) start the same spec on one RDB storage: the study runs its trials once."""
    import shutil

    other = tmp_path_factory.mktemp("machine-b")
    shutil.copytree(workspace / "support", other / "support")
    db = tmp_path_factory.mktemp("db") / "shared.db"
    sweeps = []
    for ws in (workspace, other):
        config = write_config(ws, tiny_model_dir, name="base", train={"max_steps": 4})
        spec = write_spec(ws, config, trials=4, first_trials=[], pruner={"kind": "none"}, storage=f"sqlite:///{db}")
        sweeps.append(control.start(spec, ws))
    for sweep in sweeps:
        assert wait_sweep(sweep) == "completed", sweep.log_path.read_text()
    study = open_study(f"sqlite:///{db}", "ts")
    assert [t.state.name for t in study.trials[:4]] == ["COMPLETE"] * 4
    # both asking for the last trial at once: the one numbered beyond the budget stands down
    assert all("beyond the study's 4 trials" in t.user_attrs["error"] for t in study.trials[4:])
    mine = [{t.run_id for t in s.trials() if t.sweep_uid == s.read_status_raw()["uid"]} for s in sweeps]
    assert all(mine) and len(mine[0] | mine[1]) == 4  # both machines ran trials, none twice
    for ws, runs in zip((workspace, other), mine):
        assert {p.name for p in (ws / "runs").iterdir()} == runs
