"""The server worker: ``python -m workbench.serve.worker SERVE_DIR``.

Started detached by :func:`workbench.serve.servedir.start_server`, it holds the directory's lock for
its whole life and reports only through files: status.json (loading, then running with the real port
and url once uvicorn listens; a heartbeat every few seconds), serve.log (its output) and requests.db
(every request, written by the app). SIGTERM, SIGINT or a STOP file shut it down gracefully: uvicorn
stops taking connections and finishes the answers in flight, the log is closed, the state is
``stopped``. With ``engine: vllm`` it runs ``vllm serve`` as its child and watches it the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from workbench.detach import worker_main
from workbench.serve.servedir import KEY_ENV, ServeDir, ServerBusy, ServeSpec, url_for
from workbench.train.rundir import HEARTBEAT_INTERVAL, StatusWriter

GRACEFUL_S = 10  # seconds uvicorn waits for answers in flight before closing them


class _Beat:
    """The heartbeat thread: keeps status.json fresh, turns a STOP file into a stop, flips to running once ready."""

    def __init__(self, sd: ServeDir, status: StatusWriter, stop: threading.Event) -> None:
        self.sd, self.status, self.stop = sd, status, stop
        self.ready: Callable[[], bool] = lambda: False  # set once there is something to wait for
        self.running: dict[str, Any] = {}  # the status fields written when ready() first holds
        self.on_stop: Callable[[], None] = lambda: None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="serve-heartbeat", daemon=True)

    def _loop(self) -> None:
        last = 0.0
        while not self.done.wait(0.1 if self.status.get("state") == "loading" else 0.5):
            if self.sd.stop_path.exists():
                self.stop.set()
            if self.stop.is_set():
                self.on_stop()
                if self.status.get("state") in ("loading", "running"):
                    self.status.update(state="stopping")
            elif self.status.get("state") == "loading" and self.ready():
                self.status.update(state="running", **self.running)
                print(f"[workbench] serving {', '.join(self.running.get('models', []))} at {self.running.get('url')}")
            if time.time() - last >= HEARTBEAT_INTERVAL:
                self.status.beat()
                last = time.time()


def _bind(host: str, port: int) -> socket.socket:
    """A bound socket (port 0: the OS picks a free port), handed to uvicorn, so the real port is known first."""
    family, _, _, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def _system_prompts(spec: ServeSpec, engine: Any) -> dict[str, str]:
    """Each served model's training system prompt (see build_app), by the name clients use."""
    from workbench.serve.engine import default_name
    from workbench.ship.provenance import system_prompt_of_ref

    found = {}
    for ref in spec.refs:
        prompt = system_prompt_of_ref(spec.workspace, ref)
        if prompt and default_name(ref) in engine.names:
            found[default_name(ref)] = prompt
    return found


def _schemas(spec: ServeSpec, engine: Any) -> dict[str, dict[str, Any]]:
    """Each served model's task schema (the schema.json beside its training data), by the name clients use.

    A schema that cannot be read is reported in serve.log and left out: the server still serves, and the
    monitor says the answers' validity is unknown.
    """
    from workbench.errors import WorkbenchError
    from workbench.monitor.health import load_schema
    from workbench.serve.engine import default_name
    from workbench.ship.provenance import schema_of_ref

    found: dict[str, dict[str, Any]] = {}
    for ref in spec.refs:
        name = default_name(ref)
        if name not in engine.names:
            continue
        path = schema_of_ref(spec.workspace, ref)
        if path is None:
            continue
        try:
            schema = load_schema(path)
        except WorkbenchError as exc:
            print(f"[workbench] {name}: answers are not checked against a schema: {exc}", flush=True)
            continue
        if schema is not None:
            found[name] = schema
            print(f"[workbench] {name}: answers checked against {path}", flush=True)
    return found


def _serve_workbench(sd: ServeDir, spec: ServeSpec, status: StatusWriter, beat: _Beat, stop: threading.Event) -> str:
    import uvicorn

    from workbench.serve.app import build_app
    from workbench.serve.engine import Engine
    from workbench.serve.log import RequestLog

    print(f"[workbench] loading {', '.join(spec.models)}", flush=True)
    engine = Engine(spec.refs)
    try:
        if stop.is_set():
            return "stopped"
        log = RequestLog(sd.db_path)
        try:
            app = build_app(
                engine,
                log,
                api_key=os.environ.get(KEY_ENV) or None,
                server_id=sd.id,
                system_prompts=_system_prompts(spec, engine),
                schemas=_schemas(spec, engine),
            )
            sock = _bind(spec.host, spec.port)
            port = sock.getsockname()[1]
            config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=GRACEFUL_S)
            server = uvicorn.Server(config)
            beat.on_stop = lambda: setattr(server, "should_exit", True)
            beat.ready = lambda: bool(server.started)
            beat.running = {
                "url": url_for(spec.host, port),
                "port": port,
                "models": list(engine.names),
                "context_length": engine.context_length,
            }
            if stop.is_set():
                return "stopped"
            server.run(sockets=[sock])  # returns after a graceful shutdown
            sock.close()
            if not server.started:
                raise RuntimeError("uvicorn did not start (see serve.log)")
            return "stopped"
        finally:
            status.set(requests=_count(log))
            log.close()
    finally:
        engine.close()


def _count(log: Any) -> int | None:
    try:
        return int(log.count())
    except Exception:
        return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The vLLM child gets SIGTERM if its worker dies (even of kill -9), so no orphan holds the GPU."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _free_port(host: str) -> int:
    with _bind(host, 0) as sock:
        return int(sock.getsockname()[1])


def _serve_vllm(sd: ServeDir, spec: ServeSpec, status: StatusWriter, beat: _Beat, stop: threading.Event) -> str:
    from workbench.serve.vllm import vllm_command, vllm_plan

    plan = vllm_plan(spec.refs)
    port = spec.port or _free_port(spec.host)
    url = url_for(spec.host, port)
    cmd = vllm_command(plan, host=spec.host, port=port)
    env = dict(os.environ)
    key = env.pop(KEY_ENV, None)
    if key:
        env["VLLM_API_KEY"] = key  # in its environment: a command line is visible to every user (ps)
    print(f"[workbench] starting: {' '.join(cmd)}", flush=True)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
    )
    status.update(vllm_pid=proc.pid)
    beat.running = {"url": url, "port": port, "models": plan.names}
    beat.ready = lambda: _healthy(url)
    try:
        while not stop.wait(0.5):
            code = proc.poll()
            if code is not None:
                raise RuntimeError(f"vllm serve exited with code {code} (its output is in serve.log)")
        return "stopped"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_server(sd: ServeDir) -> str:
    """Serve until stopped, in this process; returns the final state (``stopped`` or ``failed``)."""
    spec = sd.spec()
    stop = threading.Event()
    with sd.exclusive():
        status = StatusWriter(
            sd.writer,
            {
                **sd.read_status_raw(),
                "serve_id": sd.id,
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "host": spec.host,
                "engine": spec.engine,
                "error": None,
                "finished": None,
            },
        )
        beat = _Beat(sd, status, stop)

        def on_signal(_signum: int, _frame: object) -> None:
            stop.set()
            beat.on_stop()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal never stops a server
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, on_signal)  # uvicorn takes these over while it serves, then gives them back
        status.update(state="loading", started=time.time())
        if sd.stop_path.exists():
            stop.set()
        beat.thread.start()
        try:
            serve = _serve_vllm if spec.engine == "vllm" else _serve_workbench
            final = serve(sd, spec, status, beat, stop)
        except BaseException as exc:
            traceback.print_exc()
            sys.stdout.flush()
            beat.done.set()
            beat.thread.join(timeout=5)
            status.update(state="failed", error=f"{type(exc).__name__}: {exc}".strip()[:2000], finished=time.time())
            return "failed"
        finally:
            beat.done.set()
            beat.thread.join(timeout=5)
            sd.stop_path.unlink(missing_ok=True)
        status.update(state=final, finished=time.time())
        print(f"[workbench] server {final}", flush=True)
        return final


def main(argv: list[str] | None = None) -> int:
    return worker_main(
        sys.argv[1:] if argv is None else argv,
        "python -m workbench.serve.worker SERVE_DIR",
        lambda path, _extra: run_server(ServeDir(path)),
        ServeDir,
        ServerBusy,
    )


if __name__ == "__main__":
    sys.exit(main())
