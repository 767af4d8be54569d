"""``workbench sweep start|list|show|stop|resume`` through workbench.cli.main, as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweepkit import finished_sweep

from workbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_(capsys, ws: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--workspace", str(ws), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("data:\n  train: x.jsonl\n")
    finished_sweep(tmp_path)
    return tmp_path


def test_list_and_show(capsys, ws):
    code, out, _ = run_(capsys, ws, "sweep", "list")
    assert code == 0
    assert "lr-sweep-20261201-093000 completed       6/6      1      1 eval_loss 1.1980    3d" in out
    code, out, _ = run_(capsys, ws, "sweep", "list", "--json")
    [row] = json.loads(out)
    assert (row["state"], row["done"], row["pruned"], row["failed"], row["best_trial"]) == ("completed", 6, 1, 1, 5)
    code, out, _ = run_(capsys, ws, "sweep", "show")
    assert code == 0
    assert "best: trial 5  eval_loss 1.1980  run lr-sweep-t5-20261201-093005" in out
    assert "  2 PRUNED" in out and "out of memory" in out
    assert "parameter importances (optuna):" in out and "train.learning_rate" in out
    code, out, _ = run_(capsys, ws, "sweep", "show", "lr", "--json")
    data = json.loads(out)
    assert [t["state"] for t in data["trials"]] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "FAIL", "COMPLETE"]
    assert data["trials"][2]["pruned_at"] == 10
    assert max(data["importances"], key=data["importances"].get) == "train.learning_rate"


def test_stop_and_resume_of_a_finished_sweep_are_refused(capsys, ws):
    code, _, err = run_(capsys, ws, "sweep", "stop", "last")
    assert code == 2 and "is completed, not running" in err
    code, _, err = run_(capsys, ws, "sweep", "resume", "last")
    assert code == 2 and "already completed its trials" in err
    code, _, err = run_(capsys, ws, "sweep", "show", "nosuch")
    assert code == 2 and "no sweep 'nosuch'" in err


def test_an_empty_workspace(capsys, tmp_path):
    code, out, _ = run_(capsys, tmp_path, "sweep", "list")
    assert code == 0 and "no sweeps in" in out and "workbench sweep start SPEC" in out


@pytest.mark.slow  # the rules read the data and the bundled tokenizer
def test_start_check_and_a_spec_with_errors(capsys, tmp_path):
    code, out, _ = run_(capsys, tmp_path, "sweep", "start", str(ROOT / "sample_data/sweeps/tiny.yaml"), "--check")
    assert code == 0 and "ok: the spec can start" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"base_config: {ROOT / 'sample_data/configs/tiny.yaml'}\nspace:\n  lora.rank: {{choices: [4, 8]}}\n")
    code, out, _ = run_(capsys, tmp_path, "sweep", "start", str(bad), "--check", "--json")
    assert code == 1 and json.loads(out)["errors"] == [
        f"{bad}: space.lora.rank: not a field of the run config; did you mean 'lora.r'?"
    ]
    code, _, err = run_(capsys, tmp_path, "sweep", "start", str(bad))
    assert code == 2 and "nothing was started" in err and "lora.rank" in err
    assert not (tmp_path / "sweeps").exists()


def test_runs_lists_a_pruned_trial_with_its_reason(capsys, tmp_path):
    from appkit import fake_run

    run = fake_run(tmp_path, "lr-sweep-t2-20261201-093002", state="stopped", overfit=False, steps=10)
    raw = run.read_status_raw()
    raw.update(stop_reason="pruned by sweep lr-sweep: eval loss 1.81 at step 10", sweep={"id": "lr-sweep", "trial": 2})
    run.write_status(raw)
    code, out, _ = run_cli = run_(capsys, tmp_path, "runs")
    assert code == 0 and "sweep trial 2; pruned by sweep lr-sweep: eval loss 1.81 at step 10" in out, run_cli
    code, out, _ = run_(capsys, tmp_path, "runs", "--json")
    [row] = json.loads(out)
    assert row["sweep"] == {"id": "lr-sweep", "trial": 2} and row["stop_reason"].startswith("pruned by sweep")
