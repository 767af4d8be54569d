"""The run directory: the contract between a training worker and its watchers.

The worker appends JSON lines and replaces ``status.json`` atomically; anyone
(the app, ``workbench logs -f``, ``tail -f``) reads files and never talks to
the worker. Readers here tolerate a half-written last line and corrupt lines:
they count them and read everything else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from workbench.errors import RunError
from workbench.fileio import atomic_write_text

LIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("stopped", "completed", "failed", "diverged")
HEARTBEAT_INTERVAL = 2.0  # seconds between heartbeats written by the worker
STALE_AFTER = 30.0  # a live run whose heartbeat is older than this reads as lost


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def dumps(record: dict[str, Any]) -> str:
    """One JSON line; NaN and inf become strings so every reader can parse them."""
    clean = {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    return json.dumps(clean, default=_json_default, separators=(",", ":"))


def as_float(value: Any) -> float | None:
    """A metric value as float, with 'nan'/'inf' strings turned back into floats."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _checkpoint_complete(path: Path) -> bool:
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(dumps(record) + "\n")


class LineTail:
    """The one incremental reader of a growing file (a run's metrics, system samples, log).

    Each :meth:`read_lines` reads only the bytes appended since the last one and returns the
    complete lines among them; a torn last line is kept and completed by a later read. A file
    that was replaced (another inode) or truncated (shorter than what was read, or no longer
    ending where the last read ended) is read again from its start, and :attr:`restarted`
    says so: the consumer drops what it built from the old contents (a chart would otherwise
    count them twice). A file that disappears reads as restarted and empty.
    """

    def __init__(self, path: Path, *, breaks: bytes = b"\n", window: int | None = None) -> None:
        self.path = Path(path)
        self.breaks = breaks  # the bytes that end a line (b"\n"; a log's progress bars end theirs with b"\r")
        self._seps = tuple(bytes([b]) for b in breaks)
        self.window = window  # with more new bytes than this, only the last `window` are read (restarted)
        self.offset = 0  # end of the last complete line returned
        self.pending = b""  # the torn line after it
        self.restarted = False  # whether the last read started over
        self._ident: tuple[int, int] | None = None  # (device, inode) of the file read
        self._last = b""  # the last byte read, checked on the next read

    def _reset(self) -> None:
        self.offset, self.pending, self._last = 0, b"", b""
        self.restarted = True

    def read_lines(self) -> list[bytes]:
        """The lines completed since the last call (line breaks stripped)."""
        self.restarted = False
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                chunk = self._read(fh, st)
        except FileNotFoundError:
            if self._ident is not None:
                self._ident = None
                self._reset()
            return []
        if not chunk:
            return []
        self._last = chunk[-1:]
        end = chunk.rfind(self._seps[0]) if len(self._seps) == 1 else max(chunk.rfind(b) for b in self._seps)
        if end < 0:
            self.pending += chunk
            return []
        data, self.pending = self.pending + chunk[: end + 1], chunk[end + 1 :]
        self.offset += len(data)
        return data.splitlines()

    def _read(self, fh: BinaryIO, st: os.stat_result) -> bytes:
        ident = (st.st_dev, st.st_ino)
        pos = self.offset + len(self.pending)
        if self._ident is not None and (ident != self._ident or st.st_size < pos):
            self._reset()  # replaced or truncated
            pos = 0
        first = self._ident is None
        self._ident = ident
        if st.st_size == pos:
            return b""
        if self.window is not None and st.st_size - pos > self.window:
            if not first:
                self._reset()
            start = st.st_size - self.window
            fh.seek(start - 1)
            chunk = fh.read()
            cut = 1  # past the byte before the window; a line the window's start cuts is left out
            if chunk[:1] not in self._seps:
                found = [i for b in self._seps if (i := chunk.find(b, 1)) >= 0]
                cut = min(found) + 1 if found else 1
            self.offset, self.pending, self._last = start - 1 + cut, b"", chunk[cut - 1 : cut]
            return chunk[cut:]
        if pos == 0:
            return fh.read()
        fh.seek(pos - 1)
        chunk = fh.read()
        if chunk[:1] == self._last:
            return chunk[1:]
        self._reset()  # rewritten in place: what was read is gone
        fh.seek(0)
        return fh.read()


class JsonlTail(LineTail):
    """A JSON-lines file read incrementally: new records, corrupt lines counted and skipped."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.bad_lines: list[int] = []  # 1-based numbers of corrupt lines
        self._line_no = 0

    def _reset(self) -> None:
        super()._reset()
        self.bad_lines, self._line_no = [], 0

    def read_new(self) -> list[dict[str, Any]]:
        """Records appended since the last call; a trailing partial line waits for its newline."""
        records = []
        for raw in self.read_lines():
            self._line_no += 1
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.bad_lines.append(self._line_no)
                continue
            if isinstance(obj, dict):
                records.append(obj)
            else:
                self.bad_lines.append(self._line_no)
        return records


class LogTail(LineTail):
    """A log read incrementally as text lines; ``\r`` ends a line too (progress bars redraw with it)."""

    def __init__(self, path: Path, *, window: int | None = None) -> None:
        super().__init__(path, breaks=b"\n\r", window=window)

    def read_new(self) -> list[str]:
        """The non-blank lines completed since the last call."""
        return [text for raw in self.read_lines() if (text := raw.decode("utf-8", "replace")).strip()]

    def partial(self) -> str:
        """The line being written (no line break yet), or ''."""
        return self.pending.decode("utf-8", "replace") if self.pending.strip() else ""


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Every complete record of a JSON-lines file, and the line numbers that were corrupt."""
    tail = JsonlTail(path)
    return tail.read_new(), tail.bad_lines


def rank_failure(record: dict[str, Any], world_size: Any) -> str:
    """A process's recorded error as the run's error: which rank of how many, then what it died of."""
    return f"rank {record.get('rank')} of {world_size}: {record.get('error')}"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class RunStatus:
    """status.json, plus the state a watcher should show (``lost`` when the worker is gone)."""

    state: str
    raw: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.raw.get("step") or 0)

    @property
    def total_steps(self) -> int | None:
        total = self.raw.get("total_steps")
        return int(total) if total else None

    @property
    def error(self) -> str | None:
        return self.raw.get("error")

    @property
    def pid(self) -> int | None:
        return self.raw.get("pid")


class RunDir:
    """Paths and safe reads and writes of one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    config_path = property(lambda self: self.path / "config.yaml")
    status_path = property(lambda self: self.path / "status.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    system_path = property(lambda self: self.path / "system.jsonl")
    log_path = property(lambda self: self.path / "train.log")
    adapter_path = property(lambda self: self.path / "adapter")
    lock_path = property(lambda self: self.path / ".lock")
    stop_path = property(lambda self: self.path / "STOP")
    errors_dir = property(lambda self: self.path / "errors")
    """``rank-N.json`` per process of a distributed run that died of an exception (see :meth:`record_rank_error`)."""

    def exists(self) -> bool:
        return self.status_path.is_file() or self.config_path.is_file()

    def read_status_raw(self) -> dict[str, Any]:
        for _ in range(3):  # a rename between stat and open is harmless; retry
            try:
                data = json.loads(self.status_path.read_text(encoding="utf-8"))
                return data if isinstance(data, dict) else {}
            except FileNotFoundError:
                return {}
            except (json.JSONDecodeError, UnicodeDecodeError):
                time.sleep(0.01)
        return {"state": "failed", "error": "status.json is corrupt"}

    def status(self, now: float | None = None) -> RunStatus:
        raw = self.read_status_raw()
        state = raw.get("state", "unknown")
        if state in LIVE_STATES and not self.locked():
            now = time.time() if now is None else now
            beat = raw.get("heartbeat") or raw.get("created") or 0
            same_host = raw.get("host", socket.gethostname()) == socket.gethostname()
            if now - beat > STALE_AFTER or (same_host and raw.get("pid") and not pid_alive(raw["pid"])):
                state = "lost"
        return RunStatus(state, raw)

    def write_status(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.status_path, json.dumps(data, default=_json_default, indent=1))

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path)[0]

    def record_rank_error(self, rank: int, exc: BaseException, tail: list[str]) -> None:
        """Note why process ``rank`` of a distributed run died, for the launcher to report (the only file other
        ranks write here)."""
        self.errors_dir.mkdir(exist_ok=True)
        record = {
            "rank": rank,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
            "error": f"{type(exc).__name__}: {exc}".strip()[:2000],
            "traceback": tail,
        }
        atomic_write_text(self.errors_dir / f"rank-{rank}.json", json.dumps(record, default=_json_default, indent=1))

    def rank_errors(self) -> list[dict[str, Any]]:
        """The errors processes of this run died of, earliest first: the first is the cause, later ones its echo."""
        found = []
        for path in self.errors_dir.glob("rank-*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict):
                found.append(record)
        return sorted(found, key=lambda r: (r.get("time") or 0, r.get("rank") or 0))

    def clear_rank_errors(self) -> None:
        """Forget the errors of an earlier attempt (a resumed run starts clean)."""
        for path in self.errors_dir.glob("rank-*.json"):
            path.unlink(missing_ok=True)

    def checkpoints(self, *, complete: bool = True) -> list[Path]:
        """checkpoint-N directories, by step; by default only complete ones.

        The Trainer writes trainer_state.json last: a worker killed while saving leaves a
        directory without it (or with half of it), which cannot be resumed from.
        """
        found = [p for p in self.path.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
        if complete:
            found = [p for p in found if _checkpoint_complete(p)]
        return sorted(found, key=lambda p: int(p.name.split("-")[-1]))

    def locked(self) -> bool:
        """Whether a worker holds this run's lock right now."""
        if not self.lock_path.exists():
            return False
        with open(self.lock_path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return True
                raise
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the run's writer lock; a second writer gets a RunError, never interleaving."""
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - the lock is held until the context exits, closed in finally
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            pid = self.read_status_raw().get("pid")
            raise RunError(f"run {self.id} is already being written by another worker (pid {pid})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


class StatusWriter:
    """The worker's view of status.json: merged updates, written atomically, thread-safe.

    ``write=False`` keeps the view in memory only: the processes of a distributed run other than
    rank 0 follow the run's status without writing it.
    """

    def __init__(self, run: RunDir, initial: dict[str, Any], *, write: bool = True) -> None:
        self.run = run
        self._data = dict(initial)
        self._lock = threading.Lock()
        self._write = write

    def update(self, **fields: Any) -> None:
        """Merge and write now (state changes)."""
        with self._lock:
            self._data.update(fields)
            self._data["heartbeat"] = time.time()
            if self._write:
                self.run.write_status(self._data)

    def set(self, **fields: Any) -> None:
        """Merge without writing (per-step fields); the next heartbeat writes them."""
        with self._lock:
            self._data.update(fields)

    def beat(self) -> None:
        self.update()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._data.get(key, default)
