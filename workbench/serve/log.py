"""The request log: every request a server answered (or refused), in SQLite, for the monitor to read.

One table, ``requests``, one row per HTTP request to a model route, written by the server as soon as
the request is done (answered, refused, failed or abandoned by its client). The database is in WAL
mode, so readers (the Models pane, ``workbench serve list``, the monitor) read while the server
writes, and a server killed with -9 leaves every committed row readable.

Columns are chosen for monitoring (issue 13): ``time`` (Unix seconds when the request arrived) and
``model`` are indexed for windows by time and per model; ``status`` and ``error`` give failure rates;
``messages`` / ``response`` / ``params`` (JSON) feed drift checks and sending production samples
back to a dataset; tokens and latencies give throughput. ``schema_version`` says which layout a file
has, so a later workbench can migrate it.

Version 2 adds the health of each answer, judged by the server when it records the request
(:func:`workbench.monitor.health.annotate`), so that the monitor's figures over a million requests are
SQL aggregates, not a million JSON parses: ``prompt_chars``, ``answer_chars``, ``valid`` (against the
task's schema; NULL without one), ``refusal``, ``empty``, ``truncated`` (cut at max tokens), ``fields``
(the schema's categorical fields of the answer, JSON) and ``lang`` / ``prompt_lang``. A writer opening a
version 1 log adds the columns (old rows keep NULL there); a reader of one sees NULL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.parse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench.errors import ServeError

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    time REAL NOT NULL,
    model TEXT,
    endpoint TEXT NOT NULL,
    stream INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL,
    error TEXT,
    messages TEXT NOT NULL DEFAULT '[]',
    response TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL,
    first_token_s REAL,
    finish_reason TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    client TEXT,
    server_id TEXT,
    prompt_chars INTEGER,
    answer_chars INTEGER,
    valid INTEGER,
    refusal INTEGER,
    empty INTEGER,
    truncated INTEGER,
    fields TEXT,
    lang TEXT,
    prompt_lang TEXT
);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time);
CREATE INDEX IF NOT EXISTS requests_model_time ON requests (model, time);
CREATE INDEX IF NOT EXISTS requests_status_time ON requests (status, time);
"""

_V1_COLUMNS = (
    "id, time, model, endpoint, stream, status, error, messages, response, prompt_tokens, completion_tokens, "
    "latency_s, first_token_s, finish_reason, params, client, server_id"
)
HEALTH_COLUMNS = {
    "prompt_chars": "INTEGER",
    "answer_chars": "INTEGER",
    "valid": "INTEGER",
    "refusal": "INTEGER",
    "empty": "INTEGER",
    "truncated": "INTEGER",
    "fields": "TEXT",
    "lang": "TEXT",
    "prompt_lang": "TEXT",
}
"""Version 2's columns: the health of each answer (see the module's docstring)."""
_COLUMNS = _V1_COLUMNS + ", " + ", ".join(HEALTH_COLUMNS)
_N_COLUMNS = _COLUMNS.count(",") + 1


@dataclass
class LoggedRequest:
    """One request as the log keeps it."""

    id: str
    """The response id (``chatcmpl-...``), also sent to the client as ``x-request-id``."""
    time: float
    """When the request arrived (Unix seconds)."""
    model: str | None
    endpoint: str
    """The route: ``/v1/chat/completions``."""
    stream: bool
    status: int
    """The HTTP status (499: the client went away before the answer was complete)."""
    error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    response: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    """From arrival to the last byte of the answer."""
    first_token_s: float | None = None
    finish_reason: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    """The sampling parameters asked for (temperature, top_p, max_tokens, stop, seed...)."""
    client: str | None = None
    """The client's address, ``host:port``."""
    server_id: str | None = None
    # --- version 2: the answer's health, set by workbench.monitor.health.annotate -------------------
    prompt_chars: int | None = None
    """Characters of the request's user turns."""
    answer_chars: int | None = None
    """Characters of the answer; None when there is none (an error)."""
    valid: bool | None = None
    """The answer fits the task's JSON Schema; None without a schema or an answer."""
    refusal: bool | None = None
    empty: bool | None = None
    truncated: bool | None = None
    """Cut at max_tokens (finish_reason ``length``)."""
    fields: dict[str, str] | None = None
    """The schema's categorical fields in a valid answer (``{"urgency": "high"}``)."""
    lang: str | None = None
    """The answer's language (ISO 639-1), None when too short to tell."""
    prompt_lang: str | None = None


class RequestLog:
    """The SQLite request log of one server: written by the server, read by everyone else (``readonly=True``)."""

    def __init__(self, db_path: Path, *, readonly: bool = False) -> None:
        self.path = Path(db_path)
        self.readonly = readonly
        self._lock = threading.Lock()
        try:
            if readonly:
                if not self.path.is_file():
                    raise ServeError(f"{self.path}: no request log here (the server has not started yet?)")
                uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._create()
            self._db.execute("PRAGMA busy_timeout=5000")
            self._check_version()
            self._select = self._select_list()
        except sqlite3.Error as exc:
            raise ServeError(f"{self.path}: cannot open the request log: {exc}") from None

    def _create(self) -> None:
        with self._lock:
            self._db.executescript(_SCHEMA)
            if self._db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0:
                self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            have = self.columns()
            missing = [name for name in HEALTH_COLUMNS if name not in have]
            if missing:  # a version 1 log, written by an older server: old rows keep NULL health
                self._db.execute("BEGIN IMMEDIATE")
                for name in missing:
                    self._db.execute(f"ALTER TABLE requests ADD COLUMN {name} {HEALTH_COLUMNS[name]}")
                self._db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
                self._db.execute("COMMIT")

    def columns(self) -> set[str]:
        """The requests table's columns as the file has them (a version 1 log lacks the health ones)."""
        return {str(row[1]) for row in self._db.execute("PRAGMA table_info(requests)")}

    def _select_list(self) -> str:
        have = self.columns()
        return ", ".join(name if name in have else f"NULL AS {name}" for name in _COLUMNS.split(", "))

    @property
    def has_health(self) -> bool:
        """Whether this log's rows can carry health columns (version 2 or later)."""
        return all(name in self.columns() for name in HEALTH_COLUMNS)

    def _check_version(self) -> None:
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        if row is None or row[0] is None:
            raise ServeError(f"{self.path}: not a request log (no schema version)")
        if int(row[0]) > SCHEMA_VERSION:
            raise ServeError(
                f"{self.path}: request log schema {row[0]} is newer than this workbench's ({SCHEMA_VERSION}); "
                "upgrade the workbench to read it"
            )

    def record(self, entry: LoggedRequest) -> None:
        """Append one request; committed when this returns."""
        if self.readonly:
            raise ServeError(f"{self.path}: the request log was opened read-only")
        values = (
            entry.id,
            entry.time,
            entry.model,
            entry.endpoint,
            int(entry.stream),
            entry.status,
            entry.error,
            json.dumps(entry.messages, ensure_ascii=False),
            entry.response,
            entry.prompt_tokens,
            entry.completion_tokens,
            entry.latency_s,
            entry.first_token_s,
            entry.finish_reason,
            json.dumps(entry.params, ensure_ascii=False, default=str),
            entry.client,
            entry.server_id,
            entry.prompt_chars,
            entry.answer_chars,
            _flag(entry.valid),
            _flag(entry.refusal),
            _flag(entry.empty),
            _flag(entry.truncated),
            None if entry.fields is None else json.dumps(entry.fields, ensure_ascii=False, sort_keys=True),
            entry.lang,
            entry.prompt_lang,
        )
        with self._lock:
            self._db.execute(f"INSERT INTO requests ({_COLUMNS}) VALUES ({', '.join('?' * _N_COLUMNS)})", values)

    def recent(self, limit: int = 100, since: float | None = None) -> list[LoggedRequest]:
        """The newest requests first: at most ``limit``, only those that arrived at ``since`` or later."""
        sql = f"SELECT {self._select} FROM requests"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE time >= ?"
            args.append(since)
        sql += " ORDER BY time DESC, seq DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_entry(row) for row in rows]

    def query(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SQL statement over the log (the monitor's aggregates); read it, do not write with it."""
        with self._lock:
            return self._db.execute(sql, list(args)).fetchall()

    def matching(self, where: str, args: tuple[Any, ...] | list[Any], *, order: str, limit: int) -> list[LoggedRequest]:
        """The requests ``WHERE where`` (SQL over the columns), ``ORDER BY order``, at most ``limit``."""
        sql = f"SELECT {self._select} FROM requests WHERE {where} ORDER BY {order} LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [_entry(row) for row in rows]

    def count(self, since: float | None = None) -> int:
        """How many requests are logged (since a time, when given)."""
        with self._lock:
            if since is None:
                return int(self._db.execute("SELECT count(*) FROM requests").fetchone()[0])
            return int(self._db.execute("SELECT count(*) FROM requests WHERE time >= ?", (since,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(bool(value))


def _entry(row: tuple[Any, ...]) -> LoggedRequest:
    values = dict(zip([f.name for f in fields(LoggedRequest)], row))
    values["stream"] = bool(values["stream"])
    values["messages"] = json.loads(values["messages"] or "[]")
    values["params"] = json.loads(values["params"] or "{}")
    for name in ("valid", "refusal", "empty", "truncated"):
        if values[name] is not None:
            values[name] = bool(values[name])
    values["fields"] = None if values["fields"] is None else json.loads(values["fields"])
    return LoggedRequest(**values)


__all__ = ["HEALTH_COLUMNS", "SCHEMA_VERSION", "LoggedRequest", "RequestLog"]
