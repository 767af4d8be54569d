"""The monitor's figures by SQL: every figure against counts done by hand on a log of chosen rows."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from typing import Any

import pytest

from workbench.monitor.figures import models_in, window, worst
from workbench.serve.log import LoggedRequest, RequestLog

T0 = 1_000_000.0


def _req(i: int, t: float, **kw: Any) -> LoggedRequest:
    values: dict[str, Any] = dict(
        id=f"r{i}",
        time=t,
        model="a",
        endpoint="/v1/chat/completions",
        stream=False,
        status=200,
        response='{"issue": "billing"}',
        completion_tokens=10,
        latency_s=1.0,
        prompt_chars=50,
        answer_chars=20,
        valid=True,
        refusal=False,
        empty=False,
        truncated=False,
        fields={"issue": "billing", "urgency": "low"},
        lang="en",
        prompt_lang="en",
    )
    values.update(kw)
    return LoggedRequest(**values)


NO_ANSWER: dict[str, Any] = dict(
    response=None,
    completion_tokens=None,
    answer_chars=None,
    valid=None,
    refusal=None,
    empty=None,
    truncated=None,
    fields=None,
    lang=None,
)

ROWS = [
    # 0..9 minutes: model a, 10 requests
    _req(0, T0 + 0, latency_s=0.100, completion_tokens=5, first_token_s=0.010, stream=True),
    _req(1, T0 + 60, latency_s=0.200, completion_tokens=10, first_token_s=0.020, stream=True),
    _req(2, T0 + 120, latency_s=0.300, completion_tokens=15, first_token_s=0.030, stream=True),
    _req(3, T0 + 180, latency_s=0.400, valid=False, fields=None, answer_chars=7),
    _req(4, T0 + 240, latency_s=0.500, refusal=True, valid=False, fields=None, lang="fr", answer_chars=30),
    _req(5, T0 + 300, latency_s=0.600, empty=True, valid=False, fields=None, lang=None, answer_chars=0),
    _req(6, T0 + 360, latency_s=0.700, truncated=True, fields={"issue": "refund", "urgency": "high"}),
    _req(7, T0 + 420, status=500, latency_s=0.050, error="boom", **NO_ANSWER),
    _req(8, T0 + 480, status=499, latency_s=2.0, **NO_ANSWER),
    _req(9, T0 + 540, latency_s=0.800, valid=None, fields=None, prompt_lang="de", prompt_chars=80),
    # model b, inside the window
    _req(10, T0 + 30, model="b", latency_s=3.0, completion_tokens=30, status=200),
    _req(11, T0 + 90, model="b", status=400, latency_s=0.001, **NO_ANSWER),
    # outside [T0, T0 + 600): one just before, one exactly at the end
    _req(12, T0 - 0.001, latency_s=9.0),
    _req(13, T0 + 600, latency_s=9.0, status=500, **NO_ANSWER),
]


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "requests.db"
    with RequestLog(path) as log:
        for r in ROWS:
            log.record(r)
    return path


def test_traffic_figures_are_the_hand_counts(log_path):
    w = window(log_path, start=T0, end=T0 + 600)
    t = w.traffic
    assert t.requests == 12
    assert t.per_minute == pytest.approx(12 / 10)
    assert t.by_status == {200: 9, 400: 1, 499: 1, 500: 1}
    assert t.errors == 3
    assert t.error_rate == pytest.approx(3 / 12)
    # status-200 latencies in ms: 100..800 (8 of model a) and 3000 (model b): 9 values
    # nearest rank: p50 is the 5th (500 ms), p95 the 9th (3000 ms)
    assert t.latency_p50 == pytest.approx(0.5)
    assert t.latency_p95 == pytest.approx(3.0)
    tokens = 5 + 10 + 15 + 10 * 5 + 30
    seconds = 0.1 + 0.2 + 0.3 + 0.4 + 0.5 + 0.6 + 0.7 + 0.8 + 3.0
    assert t.tokens_per_s == pytest.approx(tokens / seconds)
    assert t.first_token_p50 == pytest.approx(0.020)


def test_health_figures_are_the_hand_counts(log_path):
    w = window(log_path, start=T0, end=T0 + 600)
    h = w.health
    assert w.health_known
    assert h.answered == 9  # the 200s
    assert h.judged == 8  # request 9 has no verdict
    assert h.invalid == 3
    assert h.refusals == 1 and h.empty == 1 and h.truncated == 1
    assert h.invalid_share == pytest.approx(3 / 8)
    assert h.refusal_share == pytest.approx(1 / 9)
    assert h.languages == {"en": 7, "fr": 1}
    assert h.prompt_languages == {"en": 11, "de": 1}
    assert w.prompt_lengths == {50: 11, 80: 1}


def test_fields_count_only_valid_answers_with_fields(log_path):
    w = window(log_path, start=T0, end=T0 + 600)
    # fields set on: 0, 1, 2 (billing/low), 6 (refund/high), 10 (model b, billing/low)
    assert w.fields == {"issue": {"billing": 4, "refund": 1}, "urgency": {"low": 4, "high": 1}}
    assert w.answer_lengths == {20: 6, 7: 1, 30: 1, 0: 1}


def test_the_model_filter(log_path):
    b = window(log_path, start=T0, end=T0 + 600, model="b")
    assert b.model == "b"
    assert b.traffic.requests == 2
    assert b.traffic.by_status == {200: 1, 400: 1}
    assert b.traffic.latency_p50 == pytest.approx(3.0)
    assert b.traffic.tokens_per_s == pytest.approx(30 / 3.0)
    assert b.health.answered == 1
    a = window(log_path, start=T0, end=T0 + 600, model="a")
    assert a.traffic.requests == 10
    assert a.traffic.latency_p95 == pytest.approx(0.8)
    assert models_in(log_path, T0, T0 + 600) == {"a": 10, "b": 2}
    assert window(log_path, start=T0, end=T0 + 600, model="nobody").traffic.requests == 0


def test_window_boundaries_are_start_inclusive_end_exclusive(log_path):
    w = window(log_path, start=T0 - 0.001, end=T0 + 600.0001)
    assert w.traffic.requests == 14
    w = window(log_path, start=T0 + 540, end=T0 + 600)
    assert w.traffic.requests == 1  # request 9; 13 sits at the end, outside
    assert models_in(log_path, T0 + 600, T0 + 601) == {"a": 1}


def test_buckets_sum_to_the_totals(log_path):
    w = window(log_path, start=T0, end=T0 + 600, bucket_s=120)
    assert [b.start for b in w.buckets] == [T0 + 120 * i for i in range(5)]
    assert [b.requests for b in w.buckets] == [4, 2, 2, 2, 2]
    for name, total in [
        ("requests", w.traffic.requests),
        ("errors", w.traffic.errors),
        ("answered", w.health.answered),
        ("judged", w.health.judged),
        ("invalid", w.health.invalid),
        ("refusals", w.health.refusals),
        ("empty", w.health.empty),
        ("truncated", w.health.truncated),
    ]:
        assert sum(getattr(b, name) for b in w.buckets) == total, name
    first = w.buckets[0]  # requests 0, 1, 10 (200s) and 11 (400)
    assert first.errors == 1
    assert first.latency_p95 == pytest.approx(3.0)
    assert first.mean_answer_chars == pytest.approx(20)
    third = w.buckets[2]  # requests 4 (30 chars, 0.5 s) and 5 (0 chars, 0.6 s)
    assert third.mean_answer_chars == pytest.approx(15)
    assert third.latency_p95 == pytest.approx(0.6)
    assert len(window(log_path, start=T0, end=T0 + 600).buckets) == 60


def test_an_empty_window(log_path):
    w = window(log_path, start=T0 + 10_000, end=T0 + 20_000)
    assert w.traffic.requests == 0 and w.traffic.error_rate is None
    assert w.traffic.latency_p50 is None and w.traffic.tokens_per_s is None
    assert w.health.invalid_share is None
    assert all(b.requests == 0 and b.latency_p95 is None for b in w.buckets)
    asdict(w)  # the report serializes it


def test_worst_lists_only_failures_worst_kind_first_newest_first(log_path):
    ids = [r.id for r in worst(log_path, start=T0, end=T0 + 600)]
    # errors (newest first) 8, 7, 11; invalid 5, 4, 3; truncated 6 (refusal/empty rows are invalid too)
    assert ids == ["r8", "r7", "r11", "r5", "r4", "r3", "r6"]
    assert [r.id for r in worst(log_path, start=T0, end=T0 + 600, model="b")] == ["r11"]
    assert len(worst(log_path, start=T0, end=T0 + 600, limit=2)) == 2


def test_latency_resolution_is_one_millisecond(tmp_path):
    path = tmp_path / "requests.db"
    with RequestLog(path) as log:
        for i, lat in enumerate([0.0014, 0.0016, 1.1, 4.35]):
            log.record(_req(i, T0 + i, latency_s=lat))
    t = window(path, start=T0, end=T0 + 10).traffic
    assert t.latency_p50 == pytest.approx(0.002)  # 2nd of [1, 2, 1100, 4350] ms
    assert t.latency_p95 == pytest.approx(4.35)


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
CREATE INDEX requests_time ON requests (time);
INSERT INTO requests (id, time, model, endpoint, status, response, completion_tokens, latency_s)
VALUES ('old1', 1000000.0, 'm', '/v1/chat/completions', 200, 'hi', 4, 0.5),
       ('old2', 1000001.0, 'm', '/v1/chat/completions', 500, NULL, NULL, 0.1),
       ('old3', 1000002.0, 'm', '/v1/chat/completions', 200, 'ok', 6, 1.5);
"""


def test_a_version_1_log_gives_traffic_but_no_health(tmp_path):
    path = tmp_path / "requests.db"
    db = sqlite3.connect(path)
    db.executescript(V1)
    db.close()
    w = window(path, start=T0, end=T0 + 60)
    assert not w.health_known
    assert w.traffic.requests == 3 and w.traffic.errors == 1
    assert w.traffic.latency_p50 == pytest.approx(0.5) and w.traffic.latency_p95 == pytest.approx(1.5)
    assert w.traffic.tokens_per_s == pytest.approx(10 / 2.0)
    assert w.health.answered == 0 and w.health.invalid_share is None
    assert w.answer_lengths == {} and w.fields == {} and w.health.languages == {}
    assert sum(b.requests for b in w.buckets) == 3
    assert [r.id for r in worst(path, start=T0, end=T0 + 60)] == ["old2"]


def test_window_queries_use_the_time_and_model_indexes(log_path, monkeypatch):
    seen: list[tuple[str, list[Any]]] = []
    query = RequestLog.query

    def spy(self, sql, args=()):
        if sql.startswith("SELECT"):  # not the BEGIN/COMMIT of the window's read transaction
            seen.append((sql, list(args)))
        return query(self, sql, args)

    monkeypatch.setattr(RequestLog, "query", spy)
    window(log_path, start=T0, end=T0 + 600)
    window(log_path, start=T0, end=T0 + 600, model="a")
    monkeypatch.undo()
    assert len(seen) == 12  # 6 queries per window
    with RequestLog(log_path, readonly=True) as log:
        for sql, args in seen:
            plan = " ".join(str(row[-1]) for row in log.query("EXPLAIN QUERY PLAN " + sql, args))
            # a search on an index that bounds time (requests_time, requests_model_time or requests_status_time)
            assert "SEARCH requests USING INDEX requests_" in plan and "time>?" in plan, (sql, plan)
            assert "SCAN requests" not in plan, (sql, plan)


def test_a_bad_window_is_refused(log_path):
    with pytest.raises(ValueError, match="not after start"):
        window(log_path, start=T0, end=T0)
