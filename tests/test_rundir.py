"""Reading and writing a run directory safely while a writer is busy."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from workbench.errors import RunError
from workbench.train.rundir import JsonlTail, RunDir, StatusWriter, append_jsonl, dumps, read_jsonl
from workbench.train.runner import find_run, list_runs, summarize


def test_tail_waits_for_partial_line_and_skips_corrupt(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == []
    path.write_text('{"step": 1, "loss": 2.0}\nnot json\n{"step": 2, "lo')
    assert [r["step"] for r in tail.read_new()] == [1]
    assert tail.bad_lines == [2]
    with open(path, "a") as fh:
        fh.write('ss": 1.5}\n[1, 2]\n{"step": 3}\n')
    assert [r["step"] for r in tail.read_new()] == [2, 3]
    assert tail.bad_lines == [2, 4]
    assert tail.read_new() == []


def test_nan_round_trips_as_readable_json(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1, "loss": float("nan"), "grad_norm": float("inf")})
    records, bad = read_jsonl(path)
    assert bad == [] and records[0]["loss"] == "nan" and records[0]["grad_norm"] == "inf"
    json.loads(dumps({"x": float("-inf")}))


def test_status_states_and_lost(tmp_path):
    run = RunDir(tmp_path / "r1")
    run.path.mkdir()
    writer = StatusWriter(run, {"run_id": "r1", "state": "starting", "created": time.time()})
    writer.update(state="running", step=3, total_steps=10)
    status = run.status()
    assert status.state == "running" and status.step == 3 and status.total_steps == 10
    # A live state whose heartbeat is old and whose lock nobody holds reads as lost.
    assert run.status(now=time.time() + 3600).state == "lost"
    writer.update(state="completed")
    assert run.status(now=time.time() + 3600).state == "completed"


def test_corrupt_status_reads_as_failed(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.status_path.write_text("{truncated")
    assert run.status().state == "failed"


def _hold_lock(path, ready, release):
    with RunDir(path).exclusive():
        ready.set()
        release.wait(10)


def test_two_writers_never_share_a_run(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(run.path, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        assert run.locked()
        with pytest.raises(RunError, match="already being written"), run.exclusive():
            pass
        # A stale heartbeat does not read as lost while the lock is held.
        run.write_status({"state": "running", "heartbeat": 0})
        assert run.status().state == "running"
    finally:
        release.set()
        proc.join(10)
    assert not run.locked()
    assert run.status().state == "lost"


def test_list_find_and_summarize(tmp_path):
    for name, created, state in [("a-1", 100.0, "completed"), ("b-2", 200.0, "failed")]:
        run = RunDir(tmp_path / "runs" / name)
        run.path.mkdir(parents=True)
        run.write_status(
            {"run_id": name, "name": name[0], "state": state, "created": created, "step": 5, "total_steps": 10}
        )
    append_jsonl(RunDir(tmp_path / "runs" / "a-1").metrics_path, {"type": "eval", "step": 5, "eval_loss": 0.7})
    append_jsonl(RunDir(tmp_path / "runs" / "a-1").metrics_path, {"type": "eval", "step": 10, "eval_loss": 0.9})
    runs = list_runs(tmp_path)
    assert [r.id for r in runs] == ["b-2", "a-1"]
    assert runs[1].best_eval_loss == 0.7
    assert find_run(tmp_path, "a").id == "a-1"
    assert find_run(tmp_path, "last").id == "b-2"
    assert summarize(find_run(tmp_path, str(tmp_path / "runs" / "b-2"))).state == "failed"
    with pytest.raises(RunError, match="no run"):
        find_run(tmp_path, "zzz")


def test_a_checkpoint_cut_by_a_kill_is_not_resumed_from(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    for step, state in ((5, '{"global_step": 5}'), (10, '{"global_st'), (15, None)):
        ckpt = run.path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "adapter_model.safetensors").write_bytes(b"x")
        if state is not None:
            (ckpt / "trainer_state.json").write_text(state)
    assert [p.name for p in run.checkpoints()] == ["checkpoint-5"]
    assert len(run.checkpoints(complete=False)) == 3
