"""Real detached training runs through the runner: tiny model for plumbing, bundled model for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from workbench.train import runner
from workbench.train.rundir import LIVE_STATES, RunDir, read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def write_config(workspace: Path, model: Path | str, name: str = "t", **sections) -> Path:
    config = {
        "name": name,
        "model": str(model),
        "data": {"train": "support/train.jsonl", "val": "support/val.jsonl", "max_train_examples": 32},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        # fp32: plumbing tests; bf16 autocast costs more than it saves on a model this small
        "train": {"learning_rate": 1e-3, "batch_size": 4, "max_steps": 6, "max_length": 384, "precision": "fp32"},
        "eval": {"logging_steps": 1, "eval_steps": 2},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    path = workspace / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for(run: RunDir, states=None, timeout: float = 240, step: int | None = None) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run.status()
        if step is not None and status.step >= step:
            return status.state
        if step is None and status.state not in LIVE_STATES:
            return status.state
        time.sleep(0.2)
    log = run.log_path.read_text() if run.log_path.exists() else ""
    raise AssertionError(f"timed out in state {run.status().state}; train.log:\n{log[-3000:]}")


def test_tiny_run_writes_the_whole_run_directory(workspace, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = runner.launch(write_config(workspace, tiny_model_dir), workspace)
    assert run.path.parent == workspace / "runs"
    assert wait_for(run) == "completed", run.log_path.read_text()[-3000:]
    status = run.status()
    assert status.step == 6 and status.total_steps == 6
    assert status.raw["best_eval_loss"] is not None
    records, bad = read_jsonl(run.metrics_path)
    assert bad == []
    train = [r for r in records if r["type"] == "train"]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "learning_rate", "grad_norm", "epoch", "elapsed_s", "tokens_per_s", "eta_s"):
        assert key in train[-1], key
    assert [r["step"] for r in evals] == [2, 4, 6]
    system, _ = read_jsonl(run.system_path)
    assert system and "cpu_percent" in system[0] and "ram_used_gb" in system[0]
    saved = yaml.safe_load(run.config_path.read_text())
    assert Path(saved["data"]["train"]).is_absolute()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, run.adapter_path)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert runner.list_runs(workspace)[0].state == "completed"


def test_launcher_killed_run_goes_on(workspace, tiny_model_dir):
    config = write_config(workspace, tiny_model_dir, train={"max_steps": 30}, eval={"eval_steps": 15})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "workbench", "-w", str(workspace), "train", str(config), "--attach"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
        text=True,
    )
    run_id = launcher.stdout.readline().strip()
    run = RunDir(workspace / "runs" / run_id)
    wait_for(run, step=1)
    os.killpg(launcher.pid, signal.SIGHUP)
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait(10)
    assert wait_for(run) == "completed"
    assert run.status().step == 30


def test_stop_then_resume_reaches_the_same_end(workspace, tiny_model_dir):
    # Long enough that the stop lands mid-run even now that fp32 CPU steps skip bf16 autocast.
    config = write_config(
        workspace, tiny_model_dir, train={"max_steps": 400}, eval={"eval_steps": 200, "logging_steps": 5}
    )
    run = runner.launch(config, workspace)
    wait_for(run, step=3)
    assert runner.stop(run, timeout=120) == "stopped"
    stopped_at = run.status().step
    assert stopped_at < 400 and run.checkpoints() and run.adapter_path.is_dir()
    assert run.checkpoints()[-1].name == f"checkpoint-{stopped_at}"
    runner.resume(run)
    assert wait_for(run) == "completed", run.log_path.read_text()[-3000:]
    assert run.status().step == 400
    steps = [r["step"] for r in run.metrics() if r["type"] == "train"]
    assert steps == sorted(steps) and steps[-1] == 400


def test_dpo_run(workspace, tiny_model_dir):
    config = write_config(
        workspace,
        tiny_model_dir,
        name="dpo",
        method="dpo",
        data={"train": "support/preferences.jsonl", "val": None, "val_ratio": 0.1, "max_train_examples": 16},
        train={"learning_rate": 5e-6, "max_steps": 4},
    )
    run = runner.launch(config, workspace)
    assert wait_for(run) == "completed", run.log_path.read_text()[-3000:]
    evals = [r for r in run.metrics() if r["type"] == "eval"]
    assert evals and "eval_loss" in evals[-1]
    assert (run.adapter_path / "adapter_config.json").is_file()


def test_a_failing_worker_leaves_failed_status_with_the_error(workspace, tiny_model_dir):
    (workspace / "support" / "broken.jsonl").write_text('{"messages": [}\n')
    config = write_config(workspace, tiny_model_dir, data={"train": "support/broken.jsonl", "val": None})
    run = runner.launch(config, workspace, check=False)
    assert wait_for(run) == "failed"
    assert "broken.jsonl" in run.status().error
    assert "Traceback" in run.log_path.read_text()


def test_launch_refuses_a_config_with_errors(workspace, tiny_model_dir):
    from workbench.errors import ConfigError

    config = write_config(workspace, tiny_model_dir, train={"precision": "fp16"})
    with pytest.raises(ConfigError, match="precision"):
        runner.launch(config, workspace)
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


@pytest.mark.slow
def test_bundled_model_trains_for_real(workspace):
    config = write_config(
        workspace,
        "bundled",
        name="real",
        data={"max_train_examples": 8},
        train={"max_steps": 3, "batch_size": 2, "max_length": 160},
        eval={"eval_steps": 3},
    )
    run = runner.launch(config, workspace)
    assert wait_for(run, timeout=400) == "completed", run.log_path.read_text()[-3000:]
    losses = [r["loss"] for r in run.metrics() if r["type"] == "train"]
    assert len(losses) == 3 and all(0 < x < 20 for x in losses)


def test_a_killed_worker_reads_as_lost_and_can_resume(workspace, tiny_model_dir):
    config = write_config(
        workspace, tiny_model_dir, train={"max_steps": 200}, eval={"eval_steps": 5, "logging_steps": 5}
    )
    run = runner.launch(config, workspace)
    wait_for(run, step=6)
    while not run.checkpoints():
        time.sleep(0.1)
    os.kill(run.status().pid, signal.SIGKILL)
    deadline = time.time() + 10
    while run.locked() and time.time() < deadline:
        time.sleep(0.1)
    assert run.status().state == "lost"  # the pid is gone: no need to wait for the heartbeat to go stale
    runner.resume(run)
    assert runner.stop(run, timeout=120) == "stopped"  # even while it is still starting up
    assert "resuming from" in run.log_path.read_text()


def test_fp32_runs_turn_trls_bf16_default_off():
    from workbench.config.trl_args import precision_arguments, resolve_precision
    from workbench.config.validate import Hardware

    for precision in ("fp32", "auto"):  # auto is fp32 on a CPU-only machine
        _, flags = precision_arguments(resolve_precision(precision, Hardware()))
        assert flags == {"bf16": False, "fp16": False}  # SFTConfig would otherwise default bf16=True
