"""The monitor over a million logged requests: figures by SQL aggregates against the naive reader.

Writes N synthetic requests (default 1,000,000) spread over 7 days into a temp request log (the schema
made by RequestLog, rows by one executemany in one transaction): status mostly 200, some 400/500/499;
latency and answer length lognormal; the sample task's enum fields (issue, urgency) in valid answers;
valid 95% of the judged; a few refusals, empty and truncated answers; languages mostly English. Then
times :func:`workbench.monitor.figures.window` for the last day (about N/7 rows) and for all 7 days:
cold (the database file dropped from the OS page cache by posix_fadvise before the call; every call
opens a new connection, so SQLite's own cache is always cold) and warm (the file cached), median of
``--repeats``. The baseline, in the same process on the same file: the naive reader,
``RequestLog.recent(limit=10**7, since=start)`` then the same figures in Python, for the last day.
Printed: both sides' times, their ratio, the figures of the day (both sides must agree), and the
target (<= 1 s for a day over 1M logged, warm).

    python bench/monitor_scale.py [--rows 1000000] [--repeats 3] [--week-baseline] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.monitor.figures import window  # noqa: E402
from workbench.serve.log import RequestLog  # noqa: E402

TARGET_S = 1.0
DAY = 86400.0
DAYS = 7
ISSUES = ["billing", "shipping", "defect", "account", "refund", "other"]
URGENCIES = ["low", "medium", "high"]
LANGS = ["en"] * 90 + ["fr"] * 4 + ["de"] * 3 + ["es"] * 3
PROMPT = "Extract the ticket as JSON. Ticket: " + "My order #{n} arrived damaged and I want a refund please. " * 2


def fill(path: Path, rows: int, end: float, seed: int = 0) -> None:
    """``rows`` synthetic requests over the 7 days before ``end``, in time order, one transaction."""
    RequestLog(path).close()  # the schema, indexes and version, as a server makes them
    rng = random.Random(seed)
    times = sorted(end - DAYS * DAY * rng.random() for _ in range(rows))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    sql = (
        "INSERT INTO requests (id, time, model, endpoint, stream, status, error, messages, response, prompt_tokens, "
        "completion_tokens, latency_s, first_token_s, finish_reason, params, prompt_chars, answer_chars, valid, "
        "refusal, empty, truncated, fields, lang, prompt_lang) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )

    def row(i: int, t: float) -> tuple[Any, ...]:
        model = "support-v2" if rng.random() < 0.8 else "support-v1"
        prompt = PROMPT.format(n=i)
        messages = json.dumps([{"role": "user", "content": prompt}])
        stream = rng.random() < 0.3
        u = rng.random()
        status = 200 if u < 0.97 else 400 if u < 0.98 else 500 if u < 0.99 else 499
        prompt_lang = rng.choice(LANGS)
        if status != 200:
            latency = rng.lognormvariate(-3, 1) if status != 499 else rng.lognormvariate(0, 0.5)
            return (f"chatcmpl-{i}", t, model, "/v1/chat/completions", int(stream), status, f"error {status}",
                    messages, None, 40, None, latency, None, None, '{"max_tokens": 96}', len(prompt), None, None,
                    None, None, None, None, None, prompt_lang)  # fmt: skip
        chars = max(0, int(rng.lognormvariate(4.8, 0.35)))
        empty = rng.random() < 0.005
        refusal = not empty and rng.random() < 0.01
        truncated = rng.random() < 0.02
        valid = not (empty or refusal or truncated) and rng.random() < 0.95
        fields = json.dumps({"issue": rng.choice(ISSUES), "urgency": rng.choice(URGENCIES)}, sort_keys=True)
        response = "" if empty else ('{"issue": "billing", "summary": "' + "x" * chars + '"}')[:chars]
        tokens = max(1, chars // 4)
        latency = 0.05 + tokens * rng.uniform(0.01, 0.03)
        return (f"chatcmpl-{i}", t, model, "/v1/chat/completions", int(stream), 200, None, messages, response, 40,
                tokens, latency, rng.uniform(0.02, 0.2) if stream else None, "length" if truncated else "stop",
                '{"max_tokens": 96}', len(prompt), 0 if empty else chars, int(valid), int(refusal), int(empty),
                int(truncated), fields if valid else None, None if empty else rng.choice(LANGS), prompt_lang)  # fmt: skip

    db.execute("BEGIN")
    db.executemany(sql, (row(i, t) for i, t in enumerate(times)))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def drop_cache(path: Path) -> None:
    """Drop the log's files from the OS page cache (no root needed: posix_fadvise DONTNEED on clean pages)."""
    for p in (path, Path(str(path) + "-wal")):
        if p.exists():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def naive(path: Path, start: float, end: float) -> dict[str, Any]:
    """The same figures the plain way: every row as a LoggedRequest, counted in Python."""
    with RequestLog(path, readonly=True) as log:
        rows = [r for r in log.recent(limit=10**7, since=start) if r.time < end]
    by_status = Counter(r.status for r in rows)
    ok = [r for r in rows if r.status == 200]
    lat = sorted(round(r.latency_s * 1000) for r in ok if r.latency_s is not None)

    def pct(q: float) -> float | None:
        return lat[max(1, math.ceil(q * len(lat))) - 1] / 1000 if lat else None

    answered = [r for r in ok if r.answer_chars is not None]
    fields: dict[str, Counter[str]] = {}
    for r in rows:
        for k, v in (r.fields or {}).items():
            fields.setdefault(k, Counter())[v] += 1
    buckets: Counter[int] = Counter(int((r.time - start) / ((end - start) / 60)) for r in rows)
    return {
        "requests": len(rows),
        "errors": len(rows) - by_status.get(200, 0),
        "latency_p50": pct(0.5),
        "latency_p95": pct(0.95),
        "answered": len(answered),
        "invalid": sum(1 for r in rows if r.valid is False),
        "refusals": sum(1 for r in rows if r.refusal),
        "languages": dict(Counter(r.lang for r in rows if r.lang)),
        "answer_lengths": len(Counter(r.answer_chars for r in answered)),
        "fields": {k: dict(v) for k, v in fields.items()},
        "buckets": len(buckets),
    }


def figures_of(path: Path, start: float, end: float) -> dict[str, Any]:
    w = window(path, start=start, end=end)
    return {
        "requests": w.traffic.requests,
        "errors": w.traffic.errors,
        "latency_p50": w.traffic.latency_p50,
        "latency_p95": w.traffic.latency_p95,
        "answered": w.health.answered,
        "invalid": w.health.invalid,
        "refusals": w.health.refusals,
        "languages": w.health.languages,
        "answer_lengths": len(w.answer_lengths),
        "fields": w.fields,
        "buckets": sum(1 for b in w.buckets if b.requests),
    }


def timed(fn: Any, repeats: int, before: Any = None) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic requests over 7 days (default 1M)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing, the median is kept (default 3)")
    parser.add_argument("--week-baseline", action="store_true", help="also time the naive reader over 7 days")
    parser.add_argument("--keep", help="write the log into this folder and keep it (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "requests.db"
        if path.exists():
            for p in folder.glob("requests.db*"):
                p.unlink()
        end = 1_800_000_000.0
        t0 = time.perf_counter()
        fill(path, args.rows, end)
        fill_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {args.rows} requests over 7 days in {fill_s:.1f} s ({size_mb:.0f} MB)", file=sys.stderr)

        day, week = (end - DAY, end), (end - DAYS * DAY, end)
        result: dict[str, Any] = {"rows": args.rows, "fill_s": round(fill_s, 2), "db_mb": round(size_mb, 1)}
        for name, (start, stop) in (("day", day), ("week", week)):
            cold, _ = timed(
                lambda s=start, e=stop: window(path, start=s, end=e), args.repeats, lambda: drop_cache(path)
            )
            warm, _ = timed(lambda s=start, e=stop: window(path, start=s, end=e), args.repeats)
            result[f"sql_{name}_cold_s"] = round(cold, 4)
            result[f"sql_{name}_warm_s"] = round(warm, 4)
            print(f"  window {name}: cold {cold:.3f} s, warm {warm:.3f} s", file=sys.stderr)
        naive_day, naive_figures = timed(lambda: naive(path, *day), args.repeats)
        result["naive_day_s"] = round(naive_day, 3)
        if args.week_baseline:
            result["naive_week_s"] = round(timed(lambda: naive(path, *week), 1)[0], 3)
        sql_figures = figures_of(path, *day)
        result["figures_day"] = sql_figures
        result["figures_agree"] = sql_figures == naive_figures
        if not result["figures_agree"]:
            result["naive_figures_day"] = naive_figures
        result["ratio_day_warm"] = round(naive_day / result["sql_day_warm_s"], 1)
        result["target_s"] = TARGET_S
        result["target_met"] = result["sql_day_warm_s"] <= TARGET_S and result["figures_agree"]

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    f = result["figures_day"]
    print(f"monitor scale: {args.rows} requests over 7 days ({result['db_mb']} MB), last day {f['requests']} requests")
    for name in ("day", "week"):
        print(
            f"  window() {name:<4}: cold {result[f'sql_{name}_cold_s']:.3f} s, warm {result[f'sql_{name}_warm_s']:.3f} s"
        )
    print(f"  naive reader, day: {result['naive_day_s']:.2f} s" + (
        f"; week: {result['naive_week_s']:.2f} s" if "naive_week_s" in result else ""))  # fmt: skip
    print(
        f"  day: errors {f['errors']}, p50 {f['latency_p50']} s, p95 {f['latency_p95']} s, answered {f['answered']}, "
        f"invalid {f['invalid']}, refusals {f['refusals']}, languages {f['languages']}"
    )
    print(f"  fields: {f['fields']}")
    print(f"  figures agree with the naive reader: {result['figures_agree']}")
    print(f"  ratio {result['ratio_day_warm']}x; target <= {TARGET_S:g} s for a day: "
          f"{'met' if result['target_met'] else 'NOT met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
