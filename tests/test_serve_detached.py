"""Detached servers (serves/<id>/): start, answer, list, stop, keys, kill -9, and the vLLM command line.

The servers here serve the tiny random model and a random LoRA adapter of a fake run on loopback;
every server started is stopped in the fixture's teardown (SIGKILL if it does not stop).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from shipkit import fake_run

from workbench.errors import ServeError
from workbench.serve import servedir
from workbench.serve.servedir import (
    KEY_ENV,
    ServeDir,
    find_server,
    is_loopback,
    list_servers,
    start_server,
    stop_server,
    url_for,
)
from workbench.serve.vllm import VllmPlan, served_name, vllm_available, vllm_command, vllm_plan
from workbench.train.rundir import pid_alive

RUN = "demo-20261203-114013"


@pytest.fixture
def serve_ws(workspace: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace with one fake run (adapter + checkpoints 4 and 8) on the tiny model; no key in the env."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    fake_run(workspace, tiny_model_dir)
    return workspace


@pytest.fixture
def started():
    """Collects the servers a test starts and stops every one of them afterwards, whatever happened."""
    servers: list[ServeDir] = []
    yield servers
    for sd in servers:
        pid = sd.read_status_raw().get("pid")
        if sd.status().state in servedir.LIVE_STATES:
            with contextlib.suppress(ServeError):
                stop_server(sd, timeout=20)
        if pid and pid_alive(pid) and sd.status().state in servedir.LIVE_STATES:
            os.kill(pid, signal.SIGKILL)


def _start(started: list[ServeDir], ws: Path, names: list[str], **kw) -> ServeDir:
    kw.setdefault("wait", 120)
    sd = start_server(ws, names, **kw)
    started.append(sd)
    assert sd.status().state == "running", sd.log_tail()
    return sd


def _client(sd: ServeDir, key: str = "none"):
    from openai import OpenAI

    return OpenAI(base_url=sd.status().url + "/v1", api_key=key, max_retries=0, timeout=60)


def _ask(sd: ServeDir, model: str, text: str = "My order has not arrived.", key: str = "none") -> str:
    reply = _client(sd, key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=8
    )
    return reply.choices[0].message.content or ""


def _wait_dead(pid: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def _logged(sd: ServeDir) -> list:
    from workbench.serve.log import RequestLog

    log = RequestLog(sd.db_path, readonly=True)
    try:
        return log.recent(limit=1000)
    finally:
        log.close()


# --- the whole life of a server -------------------------------------------------------------------


@pytest.mark.slow
def test_start_answer_list_stop_and_a_second_server_side_by_side(serve_ws: Path, started: list[ServeDir]) -> None:
    sd = _start(started, serve_ws, ["base", f"{RUN}/adapter"])
    status = sd.status()
    assert status.url is not None and status.url.startswith("http://127.0.0.1:")
    port = status.raw["port"]
    assert port > 0 and status.url.endswith(f":{port}")  # port 0 became a real one
    assert status.raw["models"] == ["base", RUN]
    spec = sd.spec()
    assert spec.models == ["base", f"{RUN}/adapter"] and spec.key_required is False
    assert sd.path.parent == serve_ws / "serves" and sd.id.startswith("base-")

    answer = _ask(sd, RUN)
    assert answer  # the random adapter says something
    other = _start(started, serve_ws, [f"{RUN}/ckpt-4"])  # a second server beside the first
    assert other.id != sd.id and other.status().raw["port"] != port
    assert _ask(other, f"{RUN}/ckpt-4")
    assert _ask(sd, "base")  # the first still answers

    rows = {s.id: s for s in list_servers(serve_ws)}
    assert set(rows) == {sd.id, other.id}
    assert rows[sd.id].state == "running" and rows[sd.id].url == status.url
    assert rows[sd.id].models == ["base", RUN] and rows[sd.id].requests == 2
    assert list_servers(serve_ws)[0].id == other.id  # newest first
    assert find_server(serve_ws, "last").id == other.id

    assert stop_server(sd, timeout=30) == "stopped"
    assert stop_server(other, timeout=30) == "stopped"
    logged = _logged(sd)
    assert [r.model for r in sorted(logged, key=lambda r: r.time)] == [RUN, "base"]
    assert logged[-1].status == 200 or logged[0].status == 200
    assert answer in [r.response for r in logged]
    by_model = {r.model: r for r in logged}
    assert by_model[RUN].params.get("default_system") is True  # the run's training system prompt went first
    assert "default_system" not in by_model["base"].params  # the base was not trained with one
    assert not sd.stop_path.exists()
    assert {s.state for s in list_servers(serve_ws)} == {"stopped"}
    assert list_servers(serve_ws)[0].url is None  # a stopped server has no url to call
    with pytest.raises(ServeError, match="stopped, not running"):
        stop_server(sd)


@pytest.mark.slow
def test_key_required_then_killed_with_9_reads_lost_and_its_log_stays_readable(
    serve_ws: Path, started: list[ServeDir], monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    key = "sk-test-" + os.urandom(12).hex()
    monkeypatch.setenv(KEY_ENV, key)
    sd = _start(started, serve_ws, [f"{RUN}/adapter"])
    assert sd.spec().key_required is True
    with pytest.raises(openai.AuthenticationError):
        _ask(sd, RUN)  # no key
    with pytest.raises(openai.AuthenticationError):
        _ask(sd, RUN, key="sk-wrong")
    answers = [_ask(sd, RUN, key=key), _ask(sd, RUN, "Where is my refund?", key=key)]

    pid = sd.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)
    # The leader thread is a zombie before the last of its threads lets go of the lock: wait for that.
    deadline = time.time() + 30
    while sd.status().state != "lost" and time.time() < deadline:
        time.sleep(0.05)
    assert sd.status().state == "lost"
    assert next(s for s in list_servers(serve_ws) if s.id == sd.id).state == "lost"
    good = [r for r in _logged(sd) if r.status == 200]
    assert sorted(r.response for r in good) == sorted(answers)

    for path in sd.path.rglob("*"):  # the key is in no file of the server's directory
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    with pytest.raises(ServeError, match="lost, not running"):
        stop_server(sd)


# --- refused before any process starts ---------------------------------------------------------------


def test_an_address_beyond_loopback_needs_a_key_and_nothing_starts(serve_ws: Path) -> None:
    with pytest.raises(ServeError, match=KEY_ENV) as err:
        start_server(serve_ws, ["base"], host="0.0.0.0", wait=0)
    assert "export" in str(err.value) and "127.0.0.1" in str(err.value)
    assert not (serve_ws / "serves").exists()


def test_a_bad_model_name_is_refused_before_anything_starts(serve_ws: Path) -> None:
    with pytest.raises(ServeError, match="no model 'nope'"):
        start_server(serve_ws, ["base", "nope"], wait=0)
    with pytest.raises(ServeError, match="at least one model"):
        start_server(serve_ws, [" "], wait=0)
    with pytest.raises(ServeError, match="engine 'tgi'"):
        start_server(serve_ws, ["base"], engine="tgi", wait=0)
    assert not (serve_ws / "serves").exists()


def test_a_port_in_use_is_refused_with_the_reason(serve_ws: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=f"127.0.0.1:{port}: port in use"):
            start_server(serve_ws, ["base"], port=port, wait=0)
    with pytest.raises(ServeError, match="expected 0"):
        start_server(serve_ws, ["base"], port=70000, wait=0)
    assert not (serve_ws / "serves").exists()


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")
def test_vllm_engine_without_vllm_says_how_to_install_it(serve_ws: Path) -> None:
    with pytest.raises(ServeError, match="pip install vllm") as err:
        start_server(serve_ws, ["base"], engine="vllm", wait=0)
    assert "built-in engine" in str(err.value)
    assert not (serve_ws / "serves").exists()


# --- addresses, states, references (no process) ------------------------------------------------------


def test_loopback_addresses_and_urls() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", ""):
        assert not is_loopback(host), host
    assert url_for("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert url_for("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert url_for("::1", 9) == "http://[::1]:9"
    assert url_for("::", 9) == "http://[::1]:9"


def _fabricate(ws: Path, name: str, status: dict) -> ServeDir:
    sd = ServeDir(ws / "serves" / name)
    sd.path.mkdir(parents=True)
    sd.write_spec(servedir.ServeSpec(models=["base"], refs=[], workspace=str(ws)))
    sd.write_status({"state": "running", "hostname": socket.gethostname(), **status})
    return sd


def test_a_live_state_whose_worker_is_gone_reads_lost(tmp_path: Path) -> None:
    now = time.time()
    dead = _fabricate(tmp_path, "a-20261203-100000", {"pid": 2**22 + 12345, "heartbeat": now, "created": 0.5})
    stale = _fabricate(tmp_path, "b-20261203-100000", {"pid": os.getpid(), "heartbeat": now - 3600, "created": 1})
    fresh = _fabricate(tmp_path, "b-20261203-110000", {"pid": os.getpid(), "heartbeat": now, "created": 2})
    done = _fabricate(tmp_path, "c-20261203-100000", {"state": "stopped", "pid": 2**22 + 1, "created": 3})
    assert dead.status().state == "lost"
    assert stale.status().state == "lost"
    assert fresh.status().state == "running"  # our own pid: alive, beating
    assert done.status().state == "stopped"
    with fresh.exclusive():  # a worker holding the lock is never lost, however late its heartbeat
        assert stale.status().state == "lost"
        assert fresh.status(now=now + 3600).state == "running"
        with pytest.raises(servedir.ServerBusy, match="already run by another process"), fresh.exclusive():
            pass
    assert find_server(tmp_path, "a").id == dead.id
    assert find_server(tmp_path, "last").id == done.id  # the newest by its created time
    assert find_server(tmp_path, str(stale.path)).id == stale.id
    with pytest.raises(ServeError, match="matches several servers"):
        find_server(tmp_path, "b-")
    with pytest.raises(ServeError, match="no server 'zzz'"):
        find_server(tmp_path, "zzz")
    with pytest.raises(ServeError, match="stopped, not running"):
        stop_server(done)


def test_the_worker_records_a_broken_spec_as_failed(tmp_path: Path) -> None:
    from workbench.serve.worker import main

    sd = ServeDir(tmp_path / "serves" / "x-20261203-100000")
    sd.path.mkdir(parents=True)
    sd.spec_path.write_text("models: [base]\nport: -4\n")
    assert main([str(sd.path)]) == 1
    assert sd.status().state == "failed"
    assert "not a valid serve.yaml" in (sd.status().error or "")


# --- vLLM: the command line it would run --------------------------------------------------------------


def test_vllm_command_line() -> None:
    plan = VllmPlan(base="/models/base", base_name="base", loras={"demo": "/runs/demo/adapter"}, max_rank=32)
    cmd = vllm_command(plan, host="127.0.0.1", port=8123, executable=["vllm"])
    assert cmd == [
        "vllm",
        "serve",
        "/models/base",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--served-model-name",
        "base",
        "--enable-lora",
        "--max-loras",
        "1",
        "--max-lora-rank",
        "32",
        "--lora-modules",
        "demo=/runs/demo/adapter",
    ]
    bare = vllm_command(VllmPlan(base="/m", base_name="m"), host="::1", port=1, executable=["vllm"])
    assert "--enable-lora" not in bare and "--api-key" not in bare


def test_vllm_plan_of_a_run_one_base_its_adapters_and_their_rank(serve_ws: Path, tiny_model_dir: Path) -> None:
    from workbench.eval.candidates import resolve_models

    refs = resolve_models(serve_ws, ["base", f"{RUN}/adapter", f"{RUN}/ckpt-8"])
    plan = vllm_plan(refs)
    assert Path(plan.base) == tiny_model_dir.resolve()
    assert plan.names == ["base", RUN, f"{RUN}/ckpt-8"]
    assert plan.loras[RUN] == str(serve_ws / "runs" / RUN / "adapter")
    assert plan.max_rank == 16  # r 8 adapters; vLLM's smallest default
    assert [served_name(r) for r in refs] == plan.names

    config_path = serve_ws / "runs" / RUN / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["r"] = 40
    config_path.write_text(json.dumps(config))
    assert vllm_plan(refs).max_rank == 64  # rounded up to a rank vLLM accepts


def test_vllm_plan_refuses_two_bases(serve_ws: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from workbench.eval.candidates import resolve_models

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    refs = resolve_models(serve_ws, [str(other), f"{RUN}/adapter"])
    with pytest.raises(ServeError, match="different bases"):
        vllm_plan(refs)


@pytest.mark.skipif(not vllm_available(), reason="vLLM is not installed (a Linux GPU server with CUDA)")
@pytest.mark.slow
def test_a_vllm_server_starts_answers_and_stops(serve_ws: Path, started: list[ServeDir]) -> None:
    sd = _start(started, serve_ws, ["base", f"{RUN}/adapter"], engine="vllm", wait=600)
    assert sd.status().raw["models"] == ["base", RUN]
    assert _ask(sd, RUN)
    assert stop_server(sd, timeout=60) == "stopped"
