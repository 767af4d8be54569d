"""Runs of two processes for real: torchrun, gloo on the CPU, the tiny model, through the real runner.

Rank 0 alone writes the run directory; stop reaches both processes at the same step; resume starts
two again; a rank that dies fails the run with its own error (the WORKBENCH_TEST_FAIL_RANK hook of
workbench.train.worker makes rank 1 raise mid-run). The Slurm script runs too, with stand-ins for
scontrol and srun on one node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_train_integration import wait_for, write_config

from workbench.train import runner
from workbench.train.launch import finish, free_port
from workbench.train.rundir import RunDir, StatusWriter, pid_alive, read_jsonl

TWO = {"nproc_per_node": 2}


def _lines(run: RunDir, label: str) -> list[str]:
    return [line for line in run.log_path.read_text(errors="replace").splitlines() if line.startswith(label)]


@pytest.mark.slow
def test_two_processes_train_one_run_directory(workspace, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = runner.launch(write_config(workspace, tiny_model_dir, distributed=TWO), workspace)
    assert wait_for(run) == "completed", run.log_path.read_text()[-3000:]
    status = run.status()
    assert status.raw["world_size"] == 2 and status.step == 6
    records, bad = read_jsonl(run.metrics_path)
    assert bad == []
    train = [r["step"] for r in records if r["type"] == "train"]
    assert train == [1, 2, 3, 4, 5, 6]  # each step once: only rank 0 writes
    assert [r["step"] for r in records if r["type"] == "eval"] == [2, 4, 6]
    assert records[-1]["epoch"] == 1.5  # 6 steps × 4 rows × 2 processes of 32 examples
    assert _lines(run, "[rank0]:") and _lines(run, "[rank1]:")  # every process's output, labelled
    assert not run.errors_dir.exists()
    system, _ = read_jsonl(run.system_path)
    assert system and all("process_rss_gb" in s for s in system)
    summary = runner.list_runs(workspace)[0]
    assert (summary.state, summary.world_size) == ("completed", 2)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run.adapter_path)
    assert any("lora_A" in name for name, _ in model.named_parameters())


@pytest.mark.slow
def test_stop_reaches_both_processes_and_resume_reaches_the_same_end(workspace, tiny_model_dir):
    config = write_config(
        workspace,
        tiny_model_dir,
        train={"max_steps": 150},
        eval={"eval_steps": 75, "logging_steps": 1},
        distributed=TWO,
    )
    run = runner.launch(config, workspace)
    wait_for(run, step=3)
    assert runner.stop(run, timeout=120) == "stopped"
    stopped_at = run.status().step
    assert 3 <= stopped_at < 150 and run.status().raw["stop_reason"] == "stop requested"
    assert [p.name for p in run.checkpoints()] == [f"checkpoint-{stopped_at}"]  # saved once, at the agreed step
    assert run.adapter_path.is_dir()
    runner.resume(run)
    assert wait_for(run) == "completed", run.log_path.read_text()[-3000:]
    assert run.status().step == 150 and run.status().raw["world_size"] == 2
    steps = [r["step"] for r in run.metrics() if r["type"] == "train"]
    assert steps == list(range(1, 151))  # every step once, across the stop
    assert "resuming from" in run.log_path.read_text()
    assert runner.list_runs(workspace)[0].world_size == 2


@pytest.mark.slow
def test_a_rank_that_dies_fails_the_run_with_its_error(workspace, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_TEST_FAIL_RANK", "1@2")
    run = runner.launch(write_config(workspace, tiny_model_dir, distributed=TWO), workspace)
    assert wait_for(run) == "failed"  # rank 0 says so, naming rank 1's error
    cause = "rank 1 of 2: RuntimeError: WORKBENCH_TEST_FAIL_RANK: rank 1 fails at step 2"
    assert run.status().error.startswith(cause), run.status().error
    while pid_alive(run.status().pid):  # then the launcher settles the status with the rank it saw die first
        time.sleep(0.2)
    raw = run.read_status_raw()
    assert raw["state"] == "failed" and raw["error"].startswith(cause) and raw["failed_rank"] == 1
    assert [r["step"] for r in run.metrics() if r["type"] == "train"][-1] <= 2


@pytest.mark.slow
def test_an_accelerate_config_launches_through_accelerate(workspace, tiny_model_dir):
    """accelerate launch in the launcher's process; a multi-GPU config on this CPU trains as DDP over gloo."""
    (workspace / "accelerate.yaml").write_text("distributed_type: MULTI_GPU\nnum_processes: 8\nmixed_precision: 'no'\n")
    config = write_config(workspace, tiny_model_dir, distributed={**TWO, "accelerate_config": "accelerate.yaml"})
    run = runner.launch(config, workspace)
    assert wait_for(run) == "completed", run.log_path.read_text()[-3000:]
    assert run.status().raw["world_size"] == 2  # the config's processes, not the file's num_processes
    assert run.log_path.read_text().startswith(f"[workbench] accelerate --config_file {workspace / 'accelerate.yaml'}")
    assert [r["step"] for r in run.metrics() if r["type"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert _lines(run, "[rank1]:")


@pytest.mark.slow
def test_the_slurm_script_runs_with_stand_ins_for_slurm(workspace, tiny_model_dir, tmp_path):
    """The exported script on one 'node': scontrol names localhost, srun runs its command once."""
    from workbench.config.schema import load_config
    from workbench.config.slurm import to_slurm

    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "scontrol").write_text('#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && echo localhost\n')
    (shims / "srun").write_text('#!/bin/bash\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    config = write_config(
        workspace, tiny_model_dir, name="slurmy", distributed={"rdzv_endpoint": f"localhost:{free_port()}"}
    )
    job = tmp_path / "job.sh"
    job.write_text(to_slurm(load_config(config), workspace=workspace, gpus_per_node=2))
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "n"}
    done = subprocess.run(["bash", str(job)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = RunDir(done.stdout.split("run directory: ")[1].strip())
    status = run.status()
    assert (status.state, status.step, status.raw["world_size"]) == ("completed", 6, 2)
    assert load_config(run.config_path).distributed.rdzv_id == "4242"
    assert [r["step"] for r in run.metrics() if r["type"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert _lines(run, "[rank1]:")


# --- without processes: the parts each process plays --------------------------------------------------------


def test_other_ranks_write_nothing(tmp_path):
    from types import SimpleNamespace

    from transformers import TrainerControl

    from workbench.train.callbacks import RunDirCallback

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    stop = threading.Event()
    callback = RunDirCallback(run, None, stop)
    state = SimpleNamespace(global_step=1, max_steps=10, epoch=0.1, num_input_tokens_seen=100)
    control = TrainerControl()
    callback.on_train_begin(None, state, control)
    callback.on_log(None, state, control, logs={"loss": 1.0})
    run.stop_path.write_text("{}")  # rank 0 reads the STOP file; the others learn of it from rank 0
    callback.on_step_end(None, state, control)
    assert not control.should_training_stop
    stop.set()  # a signal reaches every process
    callback.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_save
    assert sorted(p.name for p in run.path.iterdir()) == ["STOP"]


def _failed_run(tmp_path, state: str, pid: int = 7) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True)
    StatusWriter(run, {"state": state, "pid": pid, "world_size": 2}).beat()
    return run


def test_finish_names_the_first_rank_to_die(tmp_path):
    run = _failed_run(tmp_path, "failed")
    for rank, error in ((1, ValueError("bad row 7")), (0, RuntimeError("Connection closed by peer"))):
        run.record_rank_error(rank, error, ["a traceback"])
    assert finish(run) == 1
    raw = run.read_status_raw()
    assert raw["error"] == "rank 1 of 2: ValueError: bad row 7" and raw["failed_rank"] == 1
    assert finish(run, "ended with exit code 1", rank=0) == 1  # the launcher blames rank 0: its own error
    assert run.read_status_raw()["error"] == "rank 0 of 2: RuntimeError: Connection closed by peer"


def test_finish_names_a_rank_killed_without_a_word(tmp_path):
    run = _failed_run(tmp_path, "running")
    assert finish(run, "ended with signal SIGKILL", rank=1) == 1
    assert run.read_status_raw()["error"] == "rank 1 of 2 ended with signal SIGKILL"
    live = _failed_run(tmp_path / "b", "running")
    assert finish(live) == 1 and "without a final status" in live.read_status_raw()["error"]


def test_finish_on_a_machine_without_rank_0(tmp_path):
    elsewhere = _failed_run(tmp_path, "starting")  # its processes ran, rank 0's record is on another machine
    assert finish(elsewhere, clean=True) == 0
    assert elsewhere.read_status_raw()["state"] == "completed" and "rank 0" in elsewhere.read_status_raw()["note"]


def test_finish_leaves_a_finished_or_newer_run_alone(tmp_path):
    done = _failed_run(tmp_path, "stopped")
    done.record_rank_error(1, RuntimeError("echo"), [])
    assert finish(done) == 0 and done.read_status_raw()["state"] == "stopped"
    newer = _failed_run(tmp_path / "b", "starting", pid=123)  # resumed: another launcher's now
    assert finish(newer, "ended with exit code 1", rank=1, owner=456) == 1
    assert newer.read_status_raw()["state"] == "starting"


def test_the_launcher_settles_from_the_command_line(tmp_path):
    run = _failed_run(tmp_path, "running")
    done = subprocess.run(
        [sys.executable, "-m", "workbench.train.launch", "--finish", str(run.path), "1"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 1
    assert run.read_status_raw()["error"] == "torchrun exited with 1"
