"""The run-directory callback, driven with synthetic trainer events."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from transformers import TrainerControl

from workbench.train.callbacks import RunDirCallback
from workbench.train.rundir import RunDir, StatusWriter


def make(tmp_path, **kwargs):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    status = StatusWriter(run, {"state": "running"})
    stop = threading.Event()
    cb = RunDirCallback(run, status, stop, **kwargs)
    state = SimpleNamespace(global_step=0, max_steps=100, epoch=0.0, num_input_tokens_seen=0)
    cb.on_train_begin(None, state, TrainerControl())
    return run, cb, state, stop


def feed(cb, state, step, logs):
    state.global_step = step
    state.num_input_tokens_seen = step * 1000
    control = TrainerControl()
    cb.on_log(None, state, control, logs=logs)
    return control


def overfit(cb, state):
    control = None
    for i, ev in enumerate([1.0, 0.8, 0.7, 0.75, 0.8, 0.9], start=1):
        feed(cb, state, i * 10 - 1, {"loss": 1.0 - i * 0.1, "learning_rate": 1e-4, "grad_norm": 1.0})
        control = feed(cb, state, i * 10, {"eval_loss": ev})
    return control


def test_overfitting_is_recorded_and_stops_when_asked(tmp_path):
    run, cb, state, _ = make(tmp_path, stop_on_overfit=True)
    control = overfit(cb, state)
    verdicts = [r for r in run.metrics() if r["type"] == "verdict"]
    assert len(verdicts) == 1 and verdicts[0]["kind"] == "overfitting" and verdicts[0]["since_step"] == 30
    assert control.should_training_stop and control.should_save
    assert run.read_status_raw()["verdict"]["kind"] == "overfitting"


def test_overfitting_is_only_recorded_by_default(tmp_path):
    run, cb, state, _ = make(tmp_path)
    control = overfit(cb, state)
    assert not control.should_training_stop
    assert any(r["type"] == "verdict" for r in run.metrics())


def test_nan_loss_stops_without_saving(tmp_path):
    run, cb, state, _ = make(tmp_path)
    feed(cb, state, 1, {"loss": 2.0})
    control = feed(cb, state, 2, {"loss": float("nan")})
    assert control.should_training_stop and not control.should_save
    assert cb.verdict.kind == "diverged"
    assert [r for r in run.metrics() if r["type"] == "train"][-1]["loss"] == "nan"


def test_stop_request_by_signal_or_file(tmp_path):
    run, cb, state, _stop = make(tmp_path)
    control = TrainerControl()
    cb.on_step_end(None, state, control)
    assert not control.should_training_stop
    run.stop_path.write_text("now")
    cb.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_save
    assert run.read_status_raw()["state"] == "stopping"


def test_throughput_and_eta(tmp_path):
    run, cb, state, _ = make(tmp_path)
    feed(cb, state, 10, {"loss": 1.0})
    record = run.metrics()[-1]
    assert record["tokens_per_s"] > 0 and record["eta_s"] >= 0 and record["tokens_seen"] == 10000
