"""``workbench advise`` and ``workbench diagnose``: flags, questions on a terminal, runs and error text."""

from __future__ import annotations

import io
import json
import time

import pytest
from configkit import make_config

from workbench.advise.advisor import advise
from workbench.advise.questions import QUESTIONS
from workbench.cli import main
from workbench.config import dump_config
from workbench.train.rundir import RunDir, append_jsonl

FLAGS = [
    "--task",
    "format",
    "--change",
    "behaviour",
    "--data",
    "1k_10k",
    "--preferences",
    "no",
    "--prompting",
    "not_enough",
    "--deployment",
    "local",
    "--hardware",
    "gpu-small",  # hyphens are fine
]
OOM = "Traceback (most recent call last):\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


class Terminal(io.StringIO):
    """Typed answers on a stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_advise_by_flags_prints_the_advisors_text(capsys):
    assert main(["advise", *FLAGS]) == 0
    out = capsys.readouterr().out
    expected = advise(
        {
            "task": "format",
            "change": "behaviour",
            "data": "1k_10k",
            "preferences": "no",
            "prompting": "not_enough",
            "deployment": "local",
            "hardware": "gpu_small",
        }
    )
    assert out == expected.text()
    assert "Recommendation: SFT with QLoRA" in out and "Evidence:" in out and "finetune: qlora" in out


def test_advise_json_has_answers_reasons_evidence_and_a_starter_config(capsys):
    assert main(["advise", *FLAGS, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"] == "sft_qlora" and data["unanswered"] == []
    assert data["answers"]["hardware"] == "gpu_small"
    assert {r["question"] for r in data["reasons"]} >= {"hardware"}
    assert any("QLoRA" in c["source"] for c in data["data_needed"]["evidence"])
    assert "finetune: qlora" in data["starter_config"]


def test_advise_without_a_terminal_names_the_missing_flags(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["advise", "--task", "format", "--hardware", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--change, --data, --preferences, --prompting, --deployment" in err
    assert "--task" not in err.split("(")[0] and "Traceback" not in err


def test_advise_defaults_assumes_what_is_not_given(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["advise", "--task", "knowledge", "--change", "knowledge", "--defaults", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"] == "rag" and len(data["unanswered"]) == len(QUESTIONS) - 2


def test_advise_asks_the_missing_questions_on_a_terminal(capsys, monkeypatch):
    # --data and --preferences are missing: "4" picks the 4th option, an unknown answer is asked again,
    # and Enter leaves a question unanswered (its default assumed)
    monkeypatch.setattr("sys.stdin", Terminal("4\nmaybe\n\n"))
    given = [a for a in FLAGS]
    for flag in ("--data", "--preferences"):
        i = given.index(flag)
        del given[i : i + 2]
    assert main(["advise", *given, "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["answers"]["data"] == "1k_10k" and data["answers"]["preferences"] == "no"
    assert data["unanswered"] == ["preferences"]
    assert "How many labelled examples" in captured.err and "not an option: 'maybe'" in captured.err


def test_advise_refuses_an_unknown_option(capsys):
    with pytest.raises(SystemExit):
        main(["advise", "--hardware", "tpu"])
    assert "invalid choice" in capsys.readouterr().err


def test_diagnose_error_text_and_stdin(capsys, monkeypatch):
    assert main(["diagnose", "--error", OOM]) == 0
    out = capsys.readouterr().out
    assert "out of memory" in out and "train.batch_size" in out
    monkeypatch.setattr("sys.stdin", io.StringIO(OOM))
    assert main(["diagnose", "--error", "-", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "text" and data["diagnoses"][0]["key"] == "oom"


def test_diagnose_error_with_a_config_names_its_values(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(make_config(train={"batch_size": 8, "grad_accum": 2})), encoding="utf-8")
    assert main(["diagnose", "--error", OOM, "--config", str(config), "--json"]) == 0
    fixes = json.loads(capsys.readouterr().out)["diagnoses"][0]["fix"]
    assert any("train.batch_size: 8 -> 4" in f and "train.grad_accum: 2 -> 4" in f for f in fixes)


def make_run(tmp_path, name, state, records=(), log="", **status) -> RunDir:
    run = RunDir(tmp_path / "runs" / name)
    run.path.mkdir(parents=True)
    run.write_status({"state": state, "heartbeat": time.time(), "created": time.time(), **status})
    for record in records:
        append_jsonl(run.metrics_path, record)
    if log:
        run.log_path.write_text(log, encoding="utf-8")
    return run


def test_diagnose_a_run_by_prefix(capsys, tmp_path):
    make_run(tmp_path, "demo-20260101-120000", "failed", log=OOM, error="OutOfMemoryError", step=3, total_steps=40)
    assert main(["-w", str(tmp_path), "diagnose", "demo-2026", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"] == "demo-20260101-120000" and data["state"] == "failed"
    assert data["diagnoses"][0]["key"] == "oom"
    assert main(["diagnose", "last", "-w", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Run demo-20260101-120000 (failed at step 3/40): 1 likely cause") and "evidence:" in out


def test_diagnose_a_healthy_run_says_so(capsys, tmp_path):
    records = [{"type": "train", "step": s, "loss": 2.0 - 0.05 * s, "learning_rate": 2e-4} for s in range(1, 11)]
    make_run(tmp_path, "ok-1", "completed", records)
    assert main(["-w", str(tmp_path), "diagnose", "ok-1"]) == 0
    assert "nothing known to be wrong" in capsys.readouterr().out


def test_diagnose_needs_a_run_or_error_text(capsys, tmp_path):
    assert main(["diagnose"]) == 2
    assert "RUN" in capsys.readouterr().err
    assert main(["diagnose", "x", "--error", OOM]) == 2
    capsys.readouterr()
    assert main(["-w", str(tmp_path), "diagnose", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "Traceback" not in err
