"""Detached servers: ``serves/<id>/`` and the functions that start, list, find and stop them.

A server is a long job like a training run (see :mod:`workbench.detach`): a worker in a session of
its own (``python -m workbench.serve.worker DIR``), an exclusive ``.lock``, ``status.json`` replaced
atomically with a heartbeat, ``serve.log`` for its output, ``requests.db`` (SQLite, WAL) for every
request it answered, ``STOP`` to ask it to shut down. ``serve.yaml`` records what was asked: the models
as typed and as resolved, host, port, engine, and whether a key is required. The key itself
(``WORKBENCH_SERVE_KEY``) travels only in the worker's environment: it is never written to disk.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench.detach import match_ref, new_dir_id, spawn_detached, stop_worker
from workbench.errors import RunError, ServeError, WorkbenchError
from workbench.eval.store import ModelRef
from workbench.fileio import atomic_write_text
from workbench.train.rundir import STALE_AFTER, RunDir, pid_alive
from workbench.workspace import Workspace

KEY_ENV = "WORKBENCH_SERVE_KEY"
ENGINES = ("workbench", "vllm")
LIVE_STATES = ("starting", "loading", "running", "stopping")
FINAL_STATES = ("stopped", "failed")
WORKER = "workbench.serve.worker"


class ServerBusy(ServeError):
    """Another worker already holds the server directory's lock."""


class ServeSpec(BaseModel):
    """serve.yaml: what the server was asked to serve, and where."""

    model_config = ConfigDict(extra="allow")

    models: list[str] = Field(description="the model names as the user typed them")
    refs: list[ModelRef] = Field(description="the same, resolved (resolve_models) in the caller's process")
    workspace: str = Field(description="the workspace the names were resolved in (absolute)")
    host: str = Field("127.0.0.1", description="the address to bind")
    port: int = Field(0, ge=0, le=65535, description="the port to bind; 0: a free one the OS picks")
    engine: Literal["workbench", "vllm"] = Field("workbench", description="workbench: ours (CPU, small GPUs); vllm")
    key_required: bool = Field(False, description=f"whether clients must send the key ({KEY_ENV}, never stored)")
    created: float = Field(default_factory=time.time)


@dataclass
class ServeStatus:
    """status.json, plus the state a watcher should show (``lost`` when the worker is gone)."""

    state: str
    raw: dict[str, Any]

    @property
    def pid(self) -> int | None:
        return self.raw.get("pid")

    @property
    def url(self) -> str | None:
        return self.raw.get("url")

    @property
    def error(self) -> str | None:
        return self.raw.get("error")


class ServeDir:
    """Paths and safe reads and writes of one server directory (status, lock and STOP work as a run's)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._files = RunDir(self.path)

    def __repr__(self) -> str:
        return f"ServeDir({str(self.path)!r})"

    @property
    def id(self) -> str:
        return self.path.name

    spec_path = property(lambda self: self.path / "serve.yaml")
    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "serve.log")
    db_path = property(lambda self: self.path / "requests.db")
    lock_path = property(lambda self: self.path / ".lock")
    stop_path = property(lambda self: self.path / "STOP")

    def exists(self) -> bool:
        return self.spec_path.is_file()

    def spec(self) -> ServeSpec:
        try:
            data = yaml.safe_load(self.spec_path.read_text(encoding="utf-8")) or {}
            return ServeSpec.model_validate(data)
        except FileNotFoundError:
            raise ServeError(f"{self.path} is not a server directory (no serve.yaml)") from None
        except (yaml.YAMLError, ValidationError) as exc:
            raise ServeError(f"{self.spec_path}: not a valid serve.yaml: {exc}") from None

    def write_spec(self, spec: ServeSpec) -> None:
        text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        atomic_write_text(self.spec_path, text)

    def read_status_raw(self) -> dict[str, Any]:
        return self._files.read_status_raw()

    def write_status(self, data: dict[str, Any]) -> None:
        self._files.write_status(data)

    def status(self, now: float | None = None) -> ServeStatus:
        """The state, ``lost`` for a live one whose worker is gone (stale heartbeat or dead pid, lock free)."""
        raw = self.read_status_raw()
        state = raw.get("state", "unknown")
        if state in LIVE_STATES and not self.locked():
            now = time.time() if now is None else now
            beat = raw.get("heartbeat") or raw.get("created") or 0
            same_host = raw.get("hostname", socket.gethostname()) == socket.gethostname()
            if now - beat > STALE_AFTER or (same_host and raw.get("pid") and not pid_alive(raw["pid"])):
                state = "lost"
        return ServeStatus(state, raw)

    def locked(self) -> bool:
        return self._files.locked()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writer lock; a second worker on the same directory gets a ServeError."""
        lock = self._files.exclusive()
        try:
            lock.__enter__()
        except RunError:
            pid = self.read_status_raw().get("pid")
            raise ServerBusy(f"server {self.id} is already run by another process (pid {pid})") from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    @property
    def writer(self) -> RunDir:
        """The run-directory view of status.json, for :class:`workbench.train.rundir.StatusWriter`."""
        return self._files

    def log_tail(self, n: int = 15) -> list[str]:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines if line.strip()][-n:]


# --- checks made in the caller's process, before anything starts -----------------------------------


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: the addresses only this machine reaches."""
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_for(host: str, port: int) -> str:
    """The URL a client on this machine uses; a wildcard bind (0.0.0.0, ::) is reached on loopback here."""
    shown = host.strip("[]")
    if shown in ("0.0.0.0", ""):
        shown = "127.0.0.1"
    elif shown == "::":
        shown = "::1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def check_bind(host: str, port: int) -> None:
    """Refuse an address this machine cannot bind, or a port already in use, with the reason."""
    if not 0 <= port <= 65535:
        raise ServeError(f"port {port}: expected 0 (any free port) to 65535")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"host {host!r}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            taken = "port in use" if exc.errno == 98 else exc.strerror
            raise ServeError(f"cannot bind {host}:{port}: {taken}; pick another --port (0: any free one)") from None


def check_key(host: str) -> str | None:
    """The key from the environment; required for any address beyond loopback."""
    key = os.environ.get(KEY_ENV) or None
    if key is None and not is_loopback(host):
        raise ServeError(
            f"serving on {host} reaches beyond this machine and needs an API key: set it in the environment, "
            f'e.g. export {KEY_ENV}="$(python -c "import secrets; print(secrets.token_urlsafe(24))")"; '
            "clients send it as 'Authorization: Bearer KEY'. It is never written to disk. "
            "Without a key, serve on 127.0.0.1 (the default)."
        )
    return key


def _slug(ref: ModelRef) -> str:
    if ref.run_id:
        return re.sub(r"-\d{8}-\d{6}(-\d+)?$", "", ref.run_id)
    from workbench.serve.vllm import served_name

    # a merged model's name carries its run's stamp: 'demo-20261203-173040-merged' serves as 'demo-merged-<now>'
    return re.sub(r"-\d{8}-\d{6}(-\d+)?", "", served_name(ref) or "") or "serve"


# --- start, find, list, stop ------------------------------------------------------------------------


def start_server(
    workspace: str | Path,
    names: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    engine: str = "workbench",
    wait: float = 60.0,
) -> ServeDir:
    """Validate, create ``serves/<name>-<stamp>/``, start its worker detached; wait up to ``wait`` s for running.

    Everything that can be checked here is checked before any process starts: the engine, the model
    names, the key for an address beyond loopback, the address and port. A worker that fails while
    loading raises a ServeError with its error and the last lines of serve.log; one still loading when
    ``wait`` runs out is returned as it is (it goes on; ``workbench serve list`` shows when it runs).
    """
    from workbench.eval.candidates import resolve_models

    if engine not in ENGINES:
        raise ServeError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "vllm":
        from workbench.serve.vllm import require_vllm

        require_vllm()
    if not [n for n in names if n.strip()]:
        raise ServeError("serve what? name at least one model: base, RUN/adapter, RUN/ckpt-N or a model directory")
    try:
        refs = resolve_models(workspace, list(names))
    except WorkbenchError as exc:
        raise ServeError(str(exc)) from None
    remote = [r.key for r in refs if r.kind not in ("base", "adapter", "checkpoint")]
    if remote:
        raise ServeError(
            f"{', '.join(remote)}: an endpoint is served already; serve a local model, adapter or checkpoint"
        )
    key = check_key(host)
    check_bind(host, port)
    if engine == "vllm":
        from workbench.serve.vllm import vllm_plan

        vllm_plan(refs)  # refuses adapters on different bases, before anything starts

    root = Workspace(workspace).serves_dir
    root.mkdir(parents=True, exist_ok=True)
    sd = ServeDir(root / new_dir_id(root, _slug(refs[0])))
    sd.path.mkdir()
    spec = ServeSpec(
        models=[n.strip() for n in names if n.strip()],
        refs=refs,
        workspace=str(Path(workspace).resolve()),
        host=host,
        port=port,
        engine=engine,  # checked against ENGINES above
        key_required=key is not None,
    )
    sd.write_spec(spec)
    sd.write_status(
        {
            "serve_id": sd.id,
            "state": "starting",
            "created": spec.created,
            "heartbeat": spec.created,
            "host": host,
            "hostname": socket.gethostname(),
            "port": port or None,
            "engine": engine,
            "models": spec.models,
        }
    )
    pid = spawn_detached(WORKER, sd.path, sd.log_path)  # the key, if any, is in the inherited environment
    raw = sd.read_status_raw()
    if not raw.get("pid"):  # the worker writes its own once it holds the lock
        raw["pid"] = pid
        sd.write_status(raw)
    return wait_running(sd, wait) if wait > 0 else sd


def wait_running(sd: ServeDir, wait: float) -> ServeDir:
    """Wait up to ``wait`` seconds for the server to run; a failed (or lost) one raises with its log."""
    deadline = time.time() + wait
    while True:
        status = sd.status()
        if status.state == "running":
            return sd
        if status.state in ("failed", "lost", "stopped"):
            tail = "\n".join(f"  {line}" for line in sd.log_tail())
            why = status.error or f"the worker is {status.state}"
            raise ServeError(f"server {sd.id} did not start: {why}\nlast lines of {sd.log_path}:\n{tail}")
        if time.time() >= deadline:
            return sd
        time.sleep(0.1)


def find_server(workspace: str | Path, ref: str) -> ServeDir:
    """A server by path, exact id, unique id prefix, or 'last' for the newest."""
    path = Path(ref)
    if (path / "serve.yaml").is_file():
        return ServeDir(path)
    ws = Workspace(workspace)
    matches = match_ref(ws.servers(), ref, lambda p: ServeDir(p).read_status_raw().get("created") or 0)
    if len(matches) == 1:
        return ServeDir(matches[0])
    if not matches:
        raise ServeError(f"no server {ref!r} in {ws.serves_dir} (see `workbench serve list`)")
    raise ServeError(f"{ref!r} matches several servers: {', '.join(p.name for p in matches[:5])}")


def stop_server(sd: ServeDir, *, timeout: float = 10.0) -> str:
    """STOP file and SIGTERM; the worker shuts down gracefully (answers in flight finish, the log is flushed).

    Returns the state after waiting up to ``timeout`` seconds (``stopping`` while it still finishes).
    """
    state = sd.status().state
    if state not in LIVE_STATES:
        raise ServeError(f"server {sd.id} is {state}, not running")
    stop_worker(sd, timeout=0)
    deadline = time.time() + timeout
    while True:
        state = sd.status().state
        if state not in LIVE_STATES or time.time() >= deadline:
            return state
        time.sleep(0.1)


@dataclass
class ServerSummary:
    """One row of the servers list."""

    id: str
    path: str
    state: str
    url: str | None
    host: str
    port: int | None
    models: list[str]
    engine: str
    pid: int | None
    started: float
    requests: int | None  # None when unknown (no log yet, or vLLM, which keeps its own)
    error: str | None = None

    @property
    def age_s(self) -> float:
        return time.time() - self.started

    @property
    def base_url(self) -> str | None:
        """What an OpenAI client takes as ``base_url`` (the server's root is ``url``)."""
        return f"{self.url}/v1" if self.url else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "base_url": self.base_url, "age_s": round(self.age_s, 1)}


def request_count(sd: ServeDir) -> int | None:
    """How many requests the server's log holds (read-only; None when there is no readable log)."""
    if not sd.db_path.is_file():
        return None
    from workbench.serve.log import RequestLog

    try:
        log = RequestLog(sd.db_path, readonly=True)
    except Exception:
        return None
    try:
        return log.count()
    except Exception:
        return None
    finally:
        log.close()


def summarize(sd: ServeDir) -> ServerSummary:
    status = sd.status()
    raw = status.raw
    try:
        spec: ServeSpec | None = sd.spec()
    except ServeError:
        spec = None
    return ServerSummary(
        id=sd.id,
        path=str(sd.path),
        state=status.state,
        url=status.url if status.state in LIVE_STATES else None,
        host=raw.get("host") or (spec.host if spec else "?"),
        port=raw.get("port") or (spec.port if spec and spec.port else None),
        models=list(raw.get("models") or (spec.models if spec else [])),
        engine=raw.get("engine") or (spec.engine if spec else "workbench"),
        pid=status.pid,
        started=raw.get("created") or (spec.created if spec else sd.path.stat().st_mtime),
        requests=request_count(sd),
        error=status.error,
    )


def list_servers(workspace: str | Path) -> list[ServerSummary]:
    """Every server of the workspace, newest first."""
    found = [summarize(ServeDir(p)) for p in Workspace(workspace).servers()]
    return sorted(found, key=lambda s: s.started, reverse=True)


__all__ = [
    "ENGINES",
    "FINAL_STATES",
    "KEY_ENV",
    "LIVE_STATES",
    "ServeDir",
    "ServeSpec",
    "ServeStatus",
    "ServerBusy",
    "ServerSummary",
    "find_server",
    "is_loopback",
    "list_servers",
    "start_server",
    "stop_server",
    "summarize",
    "url_for",
]
