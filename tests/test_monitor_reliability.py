"""The request log under load: concurrent clients, a server killed with -9 mid-load, readers beside a writer.

The monitor trusts the log to hold every request a client was answered, and reads it while the
server writes. The real-server tests serve the tiny random model on loopback (``max_tokens`` 2, so a
request is mostly the server's own overhead) and stop or kill every server they start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from shipkit import fake_run

from workbench.errors import ServeError
from workbench.monitor.figures import window
from workbench.serve import servedir
from workbench.serve.log import LoggedRequest, RequestLog
from workbench.serve.servedir import KEY_ENV, ServeDir, start_server, stop_server
from workbench.train.rundir import pid_alive

PROMPTS = ["My order has not arrived.", "Where is my refund?", "The app crashes at login.", "Bill me once, please."]


@pytest.fixture
def serve_ws(workspace: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(KEY_ENV, raising=False)
    fake_run(workspace, tiny_model_dir)
    return workspace


@pytest.fixture
def started():
    """The servers a test starts; each is stopped afterwards (SIGKILL if it does not stop)."""
    servers: list[ServeDir] = []
    yield servers
    for sd in servers:
        pid = sd.read_status_raw().get("pid")
        if sd.status().state in servedir.LIVE_STATES:
            with contextlib.suppress(ServeError):
                stop_server(sd, timeout=20)
        if pid and pid_alive(pid) and sd.status().state in servedir.LIVE_STATES:
            os.kill(pid, signal.SIGKILL)


def _serve(started: list[ServeDir], ws: Path) -> ServeDir:
    sd = start_server(ws, ["base"], wait=120)
    started.append(sd)
    assert sd.status().state == "running", sd.log_tail()
    return sd


def _clients(
    url: str, n_threads: int, total: int | None, stop: threading.Event
) -> tuple[list[threading.Thread], list[str], list[BaseException]]:
    """Threads sending chat requests (non-streamed: the server logs before it answers) until ``total`` or ``stop``.

    Returns the threads (started), the response ids received (appended as they come) and the errors.
    """
    import httpx

    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    sent = [0]

    def take() -> int | None:
        with lock:
            if stop.is_set() or (total is not None and sent[0] >= total):
                return None
            sent[0] += 1
            return sent[0]

    def run() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while (i := take()) is not None:
                body = {
                    "model": "base",
                    "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "max_tokens": 2,
                }
                try:
                    reply = client.post("/v1/chat/completions", json=body)
                    reply.raise_for_status()
                    with lock:
                        ids.append(reply.json()["id"])
                except Exception as exc:  # after a kill: connection refused/reset, the expected end
                    with lock:
                        errors.append(exc)
                    if stop.is_set():
                        return

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n_threads)]
    for t in threads:
        t.start()
    return threads, ids, errors


def _logged_ids(path: Path) -> dict[str, int]:
    with RequestLog(path, readonly=True) as log:
        return {str(i): int(s) for i, s in log.query("SELECT id, status FROM requests")}


@pytest.mark.slow
def test_16_clients_1000_requests_every_answer_is_logged(serve_ws: Path, started: list[ServeDir]) -> None:
    sd = _serve(started, serve_ws)
    url = sd.status().url
    assert url is not None
    t0 = time.perf_counter()
    threads, ids, errors = _clients(url, 16, 1000, threading.Event())
    for t in threads:
        t.join(timeout=600)
    took = time.perf_counter() - t0
    assert not errors, errors[:3]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    logged = _logged_ids(sd.db_path)  # read while the server still runs: committed before each answer
    assert set(ids) <= set(logged)
    assert len(logged) == 1000 and set(logged.values()) == {200}
    w = window(sd.db_path, start=0, end=time.time() + 1)
    assert w.traffic.requests == 1000 and w.traffic.errors == 0
    assert stop_server(sd, timeout=30) == "stopped"
    print(f"1000 requests from 16 clients in {took:.1f} s")


@pytest.mark.slow
def test_a_server_killed_with_9_mid_load_keeps_every_answered_request(serve_ws: Path, started: list[ServeDir]) -> None:
    sd = _serve(started, serve_ws)
    url, pid = sd.status().url, sd.status().pid
    assert url is not None and pid is not None
    stop = threading.Event()
    threads, ids, errors = _clients(url, 8, None, stop)
    deadline = time.time() + 300
    while len(ids) < 100 and time.time() < deadline and not errors:
        time.sleep(0.01)
    assert len(ids) >= 100, errors[:3]
    os.kill(pid, signal.SIGKILL)  # while the clients are still sending
    stop.set()
    for t in threads:
        t.join(timeout=120)
    deadline = time.time() + 30
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)

    received = list(ids)
    logged = _logged_ids(sd.db_path)  # a fresh reader opens the killed server's log
    missing = [i for i in received if i not in logged]
    assert not missing, f"{len(missing)} answered requests not in the log, e.g. {missing[:3]}"
    assert all(logged[i] == 200 for i in received)
    with RequestLog(sd.db_path) as writer:  # and a writer (the next server) opens it and appends
        before = writer.count()
        assert before >= len(received)
        writer.record(LoggedRequest(id="after-kill", time=time.time(), model="base", endpoint="/v1/chat/completions",
                                    stream=False, status=200))  # fmt: skip
        assert writer.count() == before + 1
    assert window(sd.db_path, start=0, end=time.time() + 1).traffic.requests == before + 1


def test_readers_compute_windows_while_a_writer_inserts_as_fast_as_it_can(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    RequestLog(path).close()
    n = 20_000
    done = threading.Event()
    writer_errors: list[BaseException] = []
    written = [0]

    def write() -> None:
        try:
            with RequestLog(path) as log:
                for i in range(n):
                    log.record(
                        LoggedRequest(
                            id=f"w{i}", time=1000.0 + i, model="m", endpoint="/v1/chat/completions", stream=False,
                            status=200 if i % 10 else 500, latency_s=0.1 + (i % 7) / 10, completion_tokens=3,
                            answer_chars=i % 50, prompt_chars=20, valid=i % 3 != 0, refusal=False, empty=False,
                            truncated=False, fields={"urgency": "high"}, lang="en", prompt_lang="en",
                        )
                    )  # fmt: skip
                    written[0] += 1
        except BaseException as exc:  # a writer blocked past the busy timeout raises here
            writer_errors.append(exc)
        finally:
            done.set()

    reads: list[list[int]] = [[], []]
    reader_errors: list[BaseException] = []

    def read(mine: list[int]) -> None:
        while not done.is_set():
            try:
                w = window(path, start=0.0, end=100_000.0)
                mine.append(w.traffic.requests)
                assert sum(b.requests for b in w.buckets) == w.traffic.requests
            except BaseException as exc:
                reader_errors.append(exc)
                return

    writer = threading.Thread(target=write)
    readers = [threading.Thread(target=read, args=(mine,)) for mine in reads]
    writer.start()
    for r in readers:
        r.start()
    writer.join(timeout=300)
    for r in readers:
        r.join(timeout=60)
    assert not writer_errors, writer_errors[:1]
    assert not reader_errors, reader_errors[:1]
    assert written[0] == n
    for mine in reads:
        assert mine, "a reader completed no read while the writer wrote"
        assert mine == sorted(mine) and all(0 <= r <= n for r in mine)  # each read saw a committed prefix
    print(f"{sum(map(len, reads))} windows read while {n} rows were written")
    final = window(path, start=0.0, end=100_000.0)
    assert final.traffic.requests == n and final.traffic.errors == n // 10
