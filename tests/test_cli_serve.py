"""``workbench serve start|list|stop|logs`` through workbench.cli.main, as a user types them."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from shipkit import fake_run

from workbench.cli import main
from workbench.serve.servedir import KEY_ENV, LIVE_STATES, ServeDir, ServeSpec, find_server
from workbench.train.rundir import pid_alive

RUN = "demo-20261203-114013"


@pytest.fixture
def serve_ws(workspace: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(KEY_ENV, raising=False)
    fake_run(workspace, tiny_model_dir)
    return workspace


def _run(capsys: pytest.CaptureFixture[str], ws: Path, *args: str) -> tuple[int, str, str]:
    code = main(["-w", str(ws), "serve", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_input_is_one_error_line_and_exit_2(serve_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, serve_ws, "start", "nope")
    assert code == 2 and err.startswith("error: no model 'nope'") and "Traceback" not in err
    code, _, err = _run(capsys, serve_ws, "start", "base", "--host", "0.0.0.0")
    assert code == 2 and err.startswith("error: serving on 0.0.0.0") and KEY_ENV in err
    code, _, err = _run(capsys, serve_ws, "stop", "nope")
    assert code == 2 and err.startswith("error: no server 'nope'")
    code, _, err = _run(capsys, serve_ws, "logs", "nope")
    assert code == 2 and err.startswith("error: no server 'nope'")
    assert not (serve_ws / "serves").exists()
    code, out, _ = _run(capsys, serve_ws, "list")
    assert code == 0 and out.startswith("no servers in")
    code, out, _ = _run(capsys, serve_ws, "stop", "all")
    assert code == 0 and out.strip() == "no server is running"


def test_list_shows_each_server_with_its_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    for name, status in (
        ("base-20261203-100000", {"state": "stopped", "created": now - 7200, "models": ["base"]}),
        ("demo-20261203-110000", {"state": "running", "pid": 2**22 + 7, "created": now - 60, "url": "http://x:1"}),
        ("demo-20261203-120000", {"state": "failed", "created": now - 5, "error": "ServeError: no base\nmore"}),
    ):
        sd = ServeDir(tmp_path / "serves" / name)
        sd.path.mkdir(parents=True)
        sd.write_spec(ServeSpec(models=["demo/adapter"], refs=[], workspace=str(tmp_path)))
        sd.write_status({"hostname": socket.gethostname(), "heartbeat": now, **status})
    code, out, _ = _run(capsys, tmp_path, "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["SERVER", "STATE", "URL"]
    rows = [line.split() for line in lines[1:]]
    assert [r[:2] for r in rows] == [
        ["demo-20261203-120000", "failed"],
        ["demo-20261203-110000", "lost"],  # its pid is gone
        ["base-20261203-100000", "stopped"],
    ]
    assert "(ServeError: no base)" in lines[1] and rows[2][-1] == "base" and rows[2][4] == "2h"
    code, out, _ = _run(capsys, tmp_path, "list", "--json")
    data = json.loads(out)
    assert [d["state"] for d in data] == ["failed", "lost", "stopped"]
    assert data[1]["url"] is None and data[2]["models"] == ["base"]
    code, _, err = _run(capsys, tmp_path, "stop", "demo-20261203-110000")
    assert code == 2 and "lost, not running" in err


@pytest.mark.slow
def test_start_call_list_logs_stop_all(serve_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, serve_ws, "start", "base", f"{RUN}/adapter")
    sd = find_server(serve_ws, "last")
    try:
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == sd.id
        url = sd.status().url
        assert f"url:    {url}/v1" in out and f"models: base, {RUN}" in out
        assert f"curl -s {url}/v1/chat/completions" in out and f'OpenAI(base_url="{url}/v1"' in out

        # the curl line as printed, sent with urllib
        body = json.loads(out.split(" -d '", 1)[1].split("'", 1)[0])
        assert body["model"] == "base"
        body["max_tokens"] = 4
        request = urllib.request.Request(
            f"{url}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            reply = json.loads(response.read())
        assert reply["model"] == "base" and reply["choices"][0]["message"]["role"] == "assistant"

        code, out, _ = _run(capsys, serve_ws, "list", "--json")
        (row,) = json.loads(out)
        assert row["id"] == sd.id and row["state"] == "running" and row["url"] == url and row["requests"] == 1
        code, out, _ = _run(capsys, serve_ws, "logs", sd.id[:8])
        assert code == 0 and "[workbench] serving base" in out

        code, out, _ = _run(capsys, serve_ws, "stop", "all", "--wait", "30")
        assert code == 0 and out.strip() == f"{sd.id}: stopped"
        code, out, _ = _run(capsys, serve_ws, "list")
        (line,) = [row for row in out.splitlines() if row.startswith(sd.id)]
        assert line.split()[:2] == [sd.id, "stopped"]
    finally:
        pid = sd.read_status_raw().get("pid")
        if sd.status().state in LIVE_STATES and pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
