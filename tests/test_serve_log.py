"""The request log's layout: version 2's health columns, and logs written by a version 1 server."""

from __future__ import annotations

import sqlite3

from workbench.serve.log import HEALTH_COLUMNS, SCHEMA_VERSION, LoggedRequest, RequestLog

V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, time REAL NOT NULL, model TEXT,
    endpoint TEXT NOT NULL, stream INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL, error TEXT,
    messages TEXT NOT NULL DEFAULT '[]', response TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
    latency_s REAL, first_token_s REAL, finish_reason TEXT, params TEXT NOT NULL DEFAULT '{}', client TEXT,
    server_id TEXT
);
INSERT INTO requests (id, time, model, endpoint, status, response) VALUES ('old', 1.0, 'm', '/v1/chat/completions', 200, 'hi');
"""


def test_health_round_trips(tmp_path):
    entry = LoggedRequest(
        id="a", time=5.0, model="m", endpoint="/v1/chat/completions", stream=False, status=200, response='{"x": 1}',
        prompt_chars=12, answer_chars=8, valid=True, refusal=False, empty=False, truncated=True,
        fields={"urgency": "high"}, lang="en", prompt_lang="de",
    )  # fmt: skip
    with RequestLog(tmp_path / "requests.db") as log:
        log.record(entry)
    with RequestLog(tmp_path / "requests.db", readonly=True) as log:
        (back,) = log.recent()
    assert back == entry


def test_a_version_1_log_is_read_with_null_health_and_migrated_by_a_writer(tmp_path):
    path = tmp_path / "requests.db"
    db = sqlite3.connect(path)
    db.executescript(V1)
    db.close()
    with RequestLog(path, readonly=True) as log:
        assert not log.has_health
        (old,) = log.recent()
    assert old.response == "hi" and old.valid is None and old.fields is None
    with RequestLog(path) as log:  # the writer adds the columns; the old row keeps NULL
        assert log.has_health and HEALTH_COLUMNS.keys() <= log.columns()
        log.record(LoggedRequest(id="new", time=2.0, model="m", endpoint="/v1/chat/completions", stream=False,
                                 status=200, response="ok", valid=False))  # fmt: skip
        new, old = log.recent()
    assert (new.id, new.valid, old.id, old.valid) == ("new", False, "old", None)
    assert sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
