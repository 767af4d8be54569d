"""What runs and evals share: matching a reference to a directory, a worker's entry point."""

from __future__ import annotations

import os

from workbench.detach import match_ref, worker_main
from workbench.errors import RunError
from workbench.train.rundir import RunDir


def test_match_ref_last_exact_and_prefix(tmp_path):
    dirs = [tmp_path / name for name in ("demo-1", "demo-10", "tiny-1")]
    created = {"demo-1": 3.0, "demo-10": 1.0, "tiny-1": 2.0}
    when = lambda p: created[p.name]  # noqa: E731
    assert match_ref(dirs, "last", when) == [tmp_path / "demo-1"]
    assert match_ref(dirs, "demo-1", when) == [tmp_path / "demo-1"]  # exact beats the prefix of demo-10
    assert match_ref(dirs, "demo", when) == [tmp_path / "demo-1", tmp_path / "demo-10"]
    assert match_ref([], "last", when) == [] and match_ref(dirs, "nope", when) == []


def test_worker_main_records_an_early_failure_and_leaves_a_busy_directory_alone(tmp_path, capsys):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.write_status({"state": "starting"})

    def boom(path, extra):
        raise ValueError("no such model")

    assert worker_main([str(run.path)], "usage", boom, RunDir, RunError, end_key="ended") == 1
    raw = run.read_status_raw()
    assert raw["state"] == "failed" and raw["error"] == "ValueError: no such model" and raw["ended"]

    run.write_status({"state": "running", "pid": os.getpid()})

    def busy(path, extra):
        raise RunError("another worker holds it")

    assert worker_main([str(run.path)], "usage", busy, RunDir, RunError) == 3
    assert run.read_status_raw()["state"] == "running"
    assert worker_main([], "python -m x DIR", busy, RunDir, RunError) == 2
    assert "usage: python -m x DIR" in capsys.readouterr().err
    assert (
        worker_main([str(run.path), "--resume"], "u", lambda p, extra: "stopped" if extra else "x", RunDir, RunError)
        == 0
    )
