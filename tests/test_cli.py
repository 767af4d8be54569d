"""The headless CLI: inspect, check, runs, logs; errors print without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.cli import main
from workbench.train.rundir import RunDir, append_jsonl

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
CONFIGS = SUPPORT.parent / "configs"


def test_inspect_json_lists_bad_rows_with_lines(capsys):
    assert main(["data", "inspect", str(SUPPORT / "messy.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shape"] and report["row_count"] > 250
    assert len(report["bad_rows"]) >= 2 and all(b["line"] for b in report["bad_rows"])


def test_inspect_text(capsys):
    assert main(["data", "inspect", str(SUPPORT / "alpaca_sample.json")]) == 0
    out = capsys.readouterr().out
    assert "alpaca" in out and "example 1" in out


def test_check_sample_config_and_a_broken_one(capsys, tmp_path):
    assert main(["check", str(CONFIGS / "demo.yaml")]) == 0
    assert "0 errors" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: nope.jsonl\n  val_ration: 0.1\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:3" in err and "did you mean 'val_ratio'" in err and "Traceback" not in err


def test_runs_and_logs(capsys, tmp_path):
    run = RunDir(tmp_path / "runs" / "demo-1")
    run.path.mkdir(parents=True)
    run.write_status({"name": "demo", "state": "completed", "created": 1.0, "step": 4, "total_steps": 4})
    append_jsonl(run.metrics_path, {"type": "train", "step": 2, "loss": 1.25, "learning_rate": 1e-4})
    append_jsonl(run.metrics_path, {"type": "eval", "step": 4, "eval_loss": 0.5})
    assert main(["-w", str(tmp_path), "runs"]) == 0
    out = capsys.readouterr().out
    assert "demo-1" in out and "completed" in out and "0.5000" in out
    assert main(["-w", str(tmp_path), "runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["best_eval_loss"] == 0.5
    assert main(["-w", str(tmp_path), "logs", "demo"]) == 0
    out = capsys.readouterr().out
    assert "loss 1.2500" in out and "eval_loss 0.5000" in out
    assert main(["-w", str(tmp_path), "logs", "-f", "demo"]) == 0  # a finished run: prints history, returns
    assert "completed at step 4" in capsys.readouterr().out


def test_unknown_run_is_a_clear_error(capsys, tmp_path):
    assert main(["-w", str(tmp_path), "stop", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_split_is_reproducible_and_counts_bad_rows(capsys, tmp_path):
    args = ["data", "split", str(SUPPORT / "messy.jsonl"), "--skip-bad", "--seed", "7"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "2 bad rows were left out" in out and "messy.jsonl:6" in out
    for name in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_text() == (tmp_path / "b" / f"{name}.jsonl").read_text()
    sizes = [len((tmp_path / "a" / f"{n}.jsonl").read_text().splitlines()) for n in ("train", "val", "test")]
    assert sum(sizes) == 298 and sizes[0] > sizes[1] > 0


def test_inspect_renders_through_the_chat_template(capsys, tiny_model_dir):
    assert main(["data", "inspect", str(SUPPORT / "train.jsonl"), "-n", "1", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "[prompt]" in out and "<|im_start|>user" in out and "[completion]" in out
