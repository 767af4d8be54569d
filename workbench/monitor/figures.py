"""A window's figures over a server's request log, all by SQL aggregates: fast over a million requests.

Every figure is a ``GROUP BY`` or ``SUM(CASE ...)`` in SQLite; Python only adds up the few groups that
come back (statuses, distinct milliseconds, distinct lengths, the distinct ``fields`` JSON texts), never
walks the rows. The log is opened read-only (``RequestLog(path, readonly=True)``); in WAL mode a reader
neither blocks the server nor is blocked by it.

A window is ``[start, end)`` in Unix seconds of arrival (``time``), for every model or one
(``model``). Each query filters on ``time`` (and ``model``), so SQLite uses the ``(time)`` or
``(model, time)`` index and reads only the window's rows (checked with ``EXPLAIN QUERY PLAN`` in the
tests). The window's six queries run in one read transaction, so they agree with each other while
the server writes. Measured (bench/monitor_scale.py, 1M requests over 7 days, 2 cores): the last day
(143k rows) in about 0.9 s, all 7 days in about 7 s: the cost is per row in the window (about 6 us),
mostly SQLite's GROUP BY sorts. Definitions, since each has more than one reasonable reading:

- an *error* is a status other than 200 (4xx, 5xx and 499, a client that went away);
- *answered* requests have status 200 and an answer (``answer_chars`` not NULL); *judged* ones have a
  schema verdict (``valid`` not NULL); the invalid share is over judged, the others over answered;
- latency percentiles are over status-200 requests, nearest rank, on latencies rounded to the nearest
  millisecond (so they are exact to 1 ms); the buckets' p95 is the same on 10 ms steps (approximate:
  off by at most 5 ms), from a GROUP BY on (bucket, latency in 10 ms);
- ``tokens_per_s`` is sum(completion tokens) / sum(latency) of the status-200 requests having both: the
  decoding speed one request sees, not the server's throughput (which would need the busy time).

A version 1 log (no health columns) still gives every traffic figure; its health figures are 0 and
empty with ``Window.health_known`` False.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.serve.log import LoggedRequest, RequestLog

DEFAULT_BUCKETS = 60
"""Buckets over a window when ``bucket_s`` is not given."""


@dataclass
class Traffic:
    requests: int
    per_minute: float
    """Requests over the window's length in minutes (the monitor uses the server's life when shorter)."""
    errors: int
    """Status other than 200."""
    error_rate: float | None
    by_status: dict[int, int]
    latency_p50: float | None
    """Seconds, status-200 requests, to the millisecond."""
    latency_p95: float | None
    tokens_per_s: float | None
    """sum(completion_tokens) / sum(latency_s) of status-200 requests having both (see the module)."""
    first_token_p50: float | None
    """Seconds to the first token (streamed requests), to the millisecond."""


@dataclass
class Health:
    answered: int
    judged: int
    """Answers with a schema verdict (``valid`` not NULL)."""
    invalid: int
    refusals: int
    empty: int
    truncated: int
    languages: dict[str, int] = field(default_factory=dict)
    """The answers' languages (answers too short to tell left out)."""
    prompt_languages: dict[str, int] = field(default_factory=dict)

    @property
    def invalid_share(self) -> float | None:
        return self.invalid / self.judged if self.judged else None

    @property
    def refusal_share(self) -> float | None:
        return self.refusals / self.answered if self.answered else None

    @property
    def empty_share(self) -> float | None:
        return self.empty / self.answered if self.answered else None

    @property
    def truncated_share(self) -> float | None:
        return self.truncated / self.answered if self.answered else None


@dataclass
class Bucket:
    """One step of the window's time series: ``[start, start + bucket_s)``."""

    start: float
    requests: int = 0
    errors: int = 0
    invalid: int = 0
    refusals: int = 0
    empty: int = 0
    truncated: int = 0
    judged: int = 0
    answered: int = 0
    latency_p95: float | None = None
    """Nearest rank over status-200 latencies rounded to 10 ms."""
    mean_answer_chars: float | None = None


@dataclass
class Window:
    start: float
    end: float
    model: str | None
    traffic: Traffic
    health: Health
    answer_lengths: dict[int, int]
    """answer_chars -> how many answers."""
    prompt_lengths: dict[int, int]
    fields: dict[str, dict[str, int]]
    """Schema field -> value -> how many valid answers gave it."""
    buckets: list[Bucket]
    health_known: bool = True
    """False for a version 1 log: no health columns, the health figures are 0."""


@contextmanager
def _snapshot(log: RequestLog) -> Iterator[None]:
    """One read transaction around a window's queries: all of them see the same committed rows.

    Without it each SELECT sees the log as of its own start, and a server committing between two of
    them makes the buckets disagree with the totals (found by tests/test_monitor_reliability.py).
    In WAL mode a read transaction neither blocks the writer nor is blocked by it.
    """
    log.query("BEGIN")
    try:
        yield
    finally:
        log.query("COMMIT")


def _where(start: float, end: float, model: str | None) -> tuple[str, list[Any]]:
    if model is None:
        return "time >= ? AND time < ?", [start, end]
    return "model = ? AND time >= ? AND time < ?", [model, start, end]


def _percentile(histogram: Iterable[tuple[Any, Any]], q: float) -> int | None:
    """Nearest-rank q-quantile of a (value, count) histogram: the smallest value with cumulative count >= q*n."""
    pairs = sorted((int(v), int(c)) for v, c in histogram if v is not None and c)
    total = sum(c for _, c in pairs)
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for value, count in pairs:
        seen += count
        if seen >= rank:
            return value
    return pairs[-1][0]  # pragma: no cover - the loop always reaches the rank


def _counts(rows: Iterable[tuple[Any, Any]]) -> dict[Any, int]:
    return {key: int(n) for key, n in rows if key is not None}


def _summed(rows: Iterable[tuple[Any, Any]]) -> dict[Any, int]:
    """Counts of (key, n) pairs added up per key, NULL keys left out, most frequent first."""
    out: dict[Any, int] = {}
    for key, n in rows:
        if key is not None:
            out[key] = out.get(key, 0) + int(n)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def window(
    log_path: Path,
    *,
    start: float,
    end: float | None = None,
    model: str | None = None,
    bucket_s: float | None = None,
) -> Window:
    """The figures of ``[start, end)`` (end: now) for one model or all, with ~60 buckets unless ``bucket_s``."""
    end = time.time() if end is None else end
    if end <= start:
        raise ValueError(f"window: end {end} is not after start {start}")
    if bucket_s is None:
        bucket_s = (end - start) / DEFAULT_BUCKETS
    if bucket_s <= 0:
        raise ValueError(f"window: bucket_s {bucket_s} is not positive")
    with RequestLog(Path(log_path), readonly=True) as log, _snapshot(log):
        known = log.has_health
        where, args = _where(start, end, model)
        traffic, health = _totals(log, where, args, start, end, known)
        answer_lengths: dict[int, int] = {}
        prompt_lengths: dict[int, int] = {}
        fields_: dict[str, dict[str, int]] = {}
        if known:
            # the three small categorical figures in one scan: their product has few distinct values
            categories = log.query(
                f"SELECT lang, prompt_lang, fields, count(*) FROM requests WHERE {where} "
                "GROUP BY lang, prompt_lang, fields",
                args,
            )
            health.languages = _summed((lang, n) for lang, _, _, n in categories)
            health.prompt_languages = _summed((lang, n) for _, lang, _, n in categories)
            fields_ = _fields(list(_summed((text, n) for _, _, text, n in categories).items()))
            answer_lengths = _counts(
                log.query(
                    f"SELECT answer_chars, count(*) FROM requests WHERE {where} AND answer_chars IS NOT NULL "
                    "GROUP BY answer_chars",
                    args,
                )
            )
            prompt_lengths = _counts(
                log.query(
                    f"SELECT prompt_chars, count(*) FROM requests WHERE {where} AND prompt_chars IS NOT NULL "
                    "GROUP BY prompt_chars",
                    args,
                )
            )
        buckets = _buckets(log, where, args, start, end, bucket_s, known)
    return Window(
        start=start,
        end=end,
        model=model,
        traffic=traffic,
        health=health,
        answer_lengths=answer_lengths,
        prompt_lengths=prompt_lengths,
        fields=fields_,
        buckets=buckets,
        health_known=known,
    )


def _health_sums(known: bool) -> str:
    if not known:
        return "0, 0, 0, 0, 0, 0"
    return (
        "SUM(status = 200 AND answer_chars IS NOT NULL), SUM(valid IS NOT NULL), SUM(valid = 0), "
        "SUM(refusal = 1), SUM(empty = 1), SUM(truncated = 1)"
    )


def _totals(
    log: RequestLog, where: str, args: list[Any], start: float, end: float, known: bool
) -> tuple[Traffic, Health]:
    """Traffic and health counts in one scan: grouped by status and (for 200s) latency in whole ms."""
    rows = log.query(
        "SELECT status, CASE WHEN status = 200 THEN CAST(latency_s * 1000 + 0.5 AS INTEGER) END AS ms, count(*), "
        "SUM(CASE WHEN status = 200 AND latency_s IS NOT NULL THEN completion_tokens END), "
        "SUM(CASE WHEN status = 200 AND completion_tokens IS NOT NULL THEN latency_s END), "
        f"{_health_sums(known)} FROM requests WHERE {where} GROUP BY status, ms",
        args,
    )
    by_status: dict[int, int] = {}
    latency: dict[int, int] = {}
    tokens = seconds = 0.0
    sums = [0] * 6
    for status, ms, n, tok, lat, *health in rows:
        by_status[int(status)] = by_status.get(int(status), 0) + int(n)
        if ms is not None:
            latency[int(ms)] = latency.get(int(ms), 0) + int(n)
        tokens += tok or 0
        seconds += lat or 0.0
        sums = [s + int(h or 0) for s, h in zip(sums, health)]
    first = log.query(
        f"SELECT CAST(first_token_s * 1000 + 0.5 AS INTEGER) AS ms, count(*) FROM requests WHERE {where} "
        "AND status = 200 AND first_token_s IS NOT NULL GROUP BY ms",
        args,
    )
    requests = sum(by_status.values())
    errors = requests - by_status.get(200, 0)
    p50, p95, f50 = _percentile(latency.items(), 0.5), _percentile(latency.items(), 0.95), _percentile(first, 0.5)
    traffic = Traffic(
        requests=requests,
        per_minute=requests / ((end - start) / 60),
        errors=errors,
        error_rate=errors / requests if requests else None,
        by_status=dict(sorted(by_status.items())),
        latency_p50=None if p50 is None else p50 / 1000,
        latency_p95=None if p95 is None else p95 / 1000,
        tokens_per_s=tokens / seconds if seconds > 0 else None,
        first_token_p50=None if f50 is None else f50 / 1000,
    )
    answered, judged, invalid, refusals, empty, truncated = sums
    return traffic, Health(answered, judged, invalid, refusals, empty, truncated)


def _fields(rows: list[tuple[Any, Any]]) -> dict[str, dict[str, int]]:
    """Field -> value -> count from the distinct ``fields`` JSON texts and their counts."""
    out: dict[str, dict[str, int]] = {}
    for text, n in rows:
        try:
            parsed = json.loads(text)
        except (TypeError, ValueError):
            continue  # a row the server did not write as JSON: no field to count, and no reason to fail a view
        if not isinstance(parsed, dict):
            continue
        for name, value in parsed.items():
            counts = out.setdefault(str(name), {})
            counts[str(value)] = counts.get(str(value), 0) + int(n)
    return {name: dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) for name, counts in sorted(out.items())}


def _buckets(
    log: RequestLog, where: str, args: list[Any], start: float, end: float, bucket_s: float, known: bool
) -> list[Bucket]:
    """The time series in one scan: grouped by bucket and (for 200s) latency in 10 ms steps."""
    n_buckets = max(1, math.ceil((end - start) / bucket_s - 1e-9))
    health = _health_sums(known) + ", SUM(answer_chars), COUNT(answer_chars)" if known else "0, 0, 0, 0, 0, 0, 0, 0"
    rows = log.query(
        "SELECT CAST((time - ?) / ? AS INTEGER) AS b, "
        "CASE WHEN status = 200 THEN CAST(latency_s * 100 + 0.5 AS INTEGER) END AS cs, "
        f"count(*), SUM(status != 200), {health} FROM requests WHERE {where} GROUP BY b, cs",
        [start, bucket_s, *args],
    )
    buckets = [Bucket(start=start + i * bucket_s) for i in range(n_buckets)]
    latency: list[dict[int, int]] = [{} for _ in range(n_buckets)]
    chars = [[0, 0] for _ in range(n_buckets)]
    for b, cs, n, errors, answered, judged, invalid, refusals, empty, truncated, total_chars, n_chars in rows:
        i = min(max(int(b), 0), n_buckets - 1)
        bucket = buckets[i]
        bucket.requests += int(n)
        bucket.errors += int(errors or 0)
        bucket.answered += int(answered or 0)
        bucket.judged += int(judged or 0)
        bucket.invalid += int(invalid or 0)
        bucket.refusals += int(refusals or 0)
        bucket.empty += int(empty or 0)
        bucket.truncated += int(truncated or 0)
        if cs is not None:
            latency[i][int(cs)] = latency[i].get(int(cs), 0) + int(n)
        chars[i][0] += int(total_chars or 0)
        chars[i][1] += int(n_chars or 0)
    for bucket, hist, (total, count) in zip(buckets, latency, chars):
        p95 = _percentile(hist.items(), 0.95)
        bucket.latency_p95 = None if p95 is None else p95 / 100
        bucket.mean_answer_chars = total / count if count else None
    return buckets


def models_in(log_path: Path, start: float, end: float | None = None) -> dict[str, int]:
    """The models asked for in ``[start, end)`` and how many requests each (requests without one left out)."""
    end = time.time() if end is None else end
    with RequestLog(Path(log_path), readonly=True) as log:
        rows = log.query(
            "SELECT model, count(*) FROM requests WHERE time >= ? AND time < ? GROUP BY model", [start, end]
        )
    return {str(m): int(n) for m, n in sorted(rows, key=lambda r: (-r[1], str(r[0]))) if m is not None}


def worst(
    log_path: Path, *, start: float, end: float | None = None, model: str | None = None, limit: int = 20
) -> list[LoggedRequest]:
    """The failed requests of the window, worst first: HTTP errors, then schema-invalid, refusals, empty,
    cut at max tokens; newest first within each kind. Requests that went well are never listed."""
    end = time.time() if end is None else end
    with RequestLog(Path(log_path), readonly=True) as log:
        where, args = _where(start, end, model)
        if log.has_health:
            failed = "(status != 200 OR valid = 0 OR refusal = 1 OR empty = 1 OR truncated = 1)"
            rank = (
                "CASE WHEN status != 200 THEN 0 WHEN valid = 0 THEN 1 WHEN refusal = 1 THEN 2 "
                "WHEN empty = 1 THEN 3 ELSE 4 END, "
            )
        else:  # only HTTP errors are known failures
            failed, rank = "status != 200", ""
        return log.matching(f"{where} AND {failed}", args, order=f"{rank}time DESC, seq DESC", limit=limit)


__all__ = ["Bucket", "Health", "Traffic", "Window", "models_in", "window", "worst"]
