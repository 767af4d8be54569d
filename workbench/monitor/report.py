"""One server's monitor: a window's figures, the drift table against each model's baseline, and the alerts.

The app's monitor view and ``workbench monitor SERVER`` both show :func:`monitor`'s result. It reads the
server's request log (never writes it), so it may run while the server answers, from any process.

Alerts, like the overfitting alert, name what crossed which threshold and since when:
- a failure rate (schema-invalid, refusals, empty, cut at max tokens) above the release eval's by
  ``failure_margin`` and significantly so (one-sided, ``alpha``); "since" is the start of the trailing
  run of time buckets whose own rate is above the baseline by the margin;
- HTTP errors above ``error_rate`` of the requests;
- a drift figure's PSI above ``psi_alert`` (answer lengths, each categorical field of the schema, the
  answers' language; prompt lengths and language on the input side, the usual cause);
- p95 latency above ``latency_p95_s`` when that is set.
No alert and no drift reading is given on fewer than ``min_requests`` requests: a handful of requests
is noise, and an alert that cries wolf is switched off.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.monitor import drift
from workbench.monitor.baseline import Baseline, baseline_for
from workbench.monitor.figures import Bucket, Window, models_in, window
from workbench.monitor.settings import MonitorSettings, load_settings

FAILURES = {
    "invalid": "schema-invalid answers",
    "refusal": "refusals",
    "empty": "empty answers",
    "truncated": "answers cut at max tokens",
}
"""The failure kinds with a release figure, and how a banner names them."""

_HEALTH_COUNT = {"invalid": "invalid", "refusal": "refusals", "empty": "empty", "truncated": "truncated"}
_HEALTH_DENOMINATOR = {"invalid": "judged", "refusal": "answered", "empty": "answered", "truncated": "answered"}


@dataclass
class DriftRow:
    """One figure's drift: this window against the baseline."""

    model: str
    side: str
    """``output`` (the answers) or ``input`` (the prompts)."""
    figure: str
    """``answer length``, ``field urgency``, ``answer language``, ``prompt length``, ``prompt language``."""
    psi: float | None
    reading: str
    """``stable``, ``watch``, ``shifted``, or ``too few`` (under min_requests on either side)."""
    n_baseline: int
    n_window: int
    test: str | None = None
    """The two-sample test a ``shifted`` reading must also pass: ``KS`` (lengths) or ``chi2`` (categories)."""
    statistic: float | None = None
    pvalue: float | None = None
    detail: str = ""
    """The largest moves, in words: ``high 20% -> 55%``, ``median 112 -> 64 chars``."""


@dataclass
class Alert:
    kind: str
    """``failure``, ``errors``, ``drift`` or ``latency``."""
    figure: str
    model: str | None
    value: float
    threshold: float
    since: float | None
    message: str


@dataclass
class ModelMonitor:
    """One served model over the window: its figures, baseline and drift."""

    model: str
    window: Window
    baseline: Baseline | None
    drift: list[DriftRow] = field(default_factory=list)
    rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per failure kind: baseline share, window share, p-value, alert (see drift.proportion_rise)."""


@dataclass
class MonitorReport:
    server_id: str
    start: float
    end: float
    settings: MonitorSettings
    overall: Window
    models: list[ModelMonitor]
    alerts: list[Alert]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def window_dict(w: Window) -> dict[str, Any]:
            out = asdict(w)
            out.pop("buckets", None)
            out["buckets"] = [asdict(b) for b in w.buckets]
            return out

        return {
            "server": self.server_id,
            "start": self.start,
            "end": self.end,
            "settings": self.settings.model_dump(),
            "overall": window_dict(self.overall),
            "models": [
                {
                    "model": m.model,
                    "baseline": None
                    if m.baseline is None
                    else {"source": m.baseline.source, "label": m.baseline.label, "n": m.baseline.n},
                    "rates": m.rates,
                    "drift": [asdict(d) for d in m.drift],
                    "traffic": asdict(m.window.traffic),
                    "health": asdict(m.window.health),
                }
                for m in self.models
            ],
            "alerts": [asdict(a) for a in self.alerts],
            "notes": self.notes,
        }


def parse_since(text: str) -> float:
    """``24h``, ``30m``, ``7d``, ``1w`` or seconds -> a duration in seconds."""
    from workbench.errors import WorkbenchError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    value = text.strip().lower()
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError:
        raise WorkbenchError(f"--since {text!r}: expected a duration such as 30m, 24h, 7d or 1w") from None
    if seconds <= 0:
        raise WorkbenchError(f"--since {text!r}: expected a positive duration")
    return seconds


def monitor(
    workspace: str | Path,
    server: str,
    *,
    since_s: float = 86400.0,
    now: float | None = None,
    settings: MonitorSettings | None = None,
    baselines: Mapping[str, Baseline | None] | None = None,
) -> MonitorReport:
    """The monitor of one server (id, unique prefix or ``last``) over the last ``since_s`` seconds."""
    from workbench.monitor.release import served_model_refs
    from workbench.serve.servedir import find_server

    sd = find_server(workspace, server)
    settings = settings or load_settings(workspace)
    end = time.time() if now is None else now
    start = end - since_s
    notes: list[str] = []
    if not sd.db_path.is_file():
        raise_missing(sd)
    overall = window(sd.db_path, start=start, end=end)
    created = float(sd.read_status_raw().get("created") or start)
    if start < created < end:  # a server younger than the window: its rate over its own life
        overall.traffic.per_minute = overall.traffic.requests / ((end - created) / 60)
    if not overall.health_known:
        notes.append("this log was written by an older server: no answer health (schema, refusals) is known")
    refs = served_model_refs(workspace, sd.id)
    names = list(refs) + [m for m in models_in(sd.db_path, start, end) if m and m not in refs]
    models: list[ModelMonitor] = []
    for name in names:
        w = window(sd.db_path, start=start, end=end, model=name)
        if name not in refs and w.traffic.requests == 0:
            continue
        if baselines is not None and name in baselines:
            base = baselines[name]
        else:
            base = baseline_for(workspace, refs[name]) if name in refs else None
        mm = ModelMonitor(model=name, window=w, baseline=base)
        if base is None:
            notes.append(f"{name}: no release eval and no test split known: no drift reference")
        else:
            mm.drift = drift_table(name, base, w, settings)
            mm.rates = failure_rates(base, w, settings)
        models.append(mm)
    alerts = alerts_of(overall, models, settings)
    return MonitorReport(sd.id, start, end, settings, overall, models, alerts, notes)


def baselines_of(workspace: str | Path, server: str) -> dict[str, Baseline | None]:
    """Each served model's baseline, by the name clients send. Finding the release eval reads every eval of the
    workspace, so a caller that refreshes (the app, every 10 s) computes this once and passes it to monitor()."""
    from workbench.monitor.release import served_model_refs

    return {name: baseline_for(workspace, ref) for name, ref in served_model_refs(workspace, server).items()}


def raise_missing(sd: Any) -> None:
    from workbench.errors import WorkbenchError

    raise WorkbenchError(f"{sd.db_path}: no request log (server {sd.id} has not answered a request yet)")


# --- drift ------------------------------------------------------------------------------


def drift_table(model: str, base: Baseline, w: Window, settings: MonitorSettings) -> list[DriftRow]:
    rows = [
        _numeric_row(model, "output", "answer length", base.answer_lengths, w.answer_lengths, settings, "chars"),
    ]
    for name in sorted(set(base.fields) | set(w.fields)):
        rows.append(
            _categorical_row(
                model, "output", f"field {name}", base.fields.get(name, Counter()), w.fields.get(name, {}), settings
            )
        )
    rows.append(_categorical_row(model, "output", "answer language", base.languages, w.health.languages, settings))
    rows.append(_numeric_row(model, "input", "prompt length", base.prompt_lengths, w.prompt_lengths, settings, "chars"))
    rows.append(
        _categorical_row(model, "input", "prompt language", base.prompt_languages, w.health.prompt_languages, settings)
    )
    return rows


def _numeric_row(
    model: str,
    side: str,
    figure: str,
    baseline: Sequence[int],
    now: Mapping[int, int],
    settings: MonitorSettings,
    unit: str,
) -> DriftRow:
    n_now = sum(now.values())
    row = DriftRow(model, side, figure, None, "too few", len(baseline), n_now)
    if len(baseline) < 2 or n_now < settings.min_requests:
        return row
    edges = drift.quantile_edges(baseline, bins=drift.bins_for(len(baseline)))
    expected = drift.histogram(baseline, edges)
    actual = drift.histogram(list(now.items()), edges)
    row.psi = drift.psi(expected, actual)
    ks = drift.weighted_ks(Counter(baseline), now)
    row.test, row.statistic, row.pvalue = "KS", ks.statistic, ks.pvalue
    row.detail = f"median {_median(Counter(baseline)):g} -> {_median(now):g} {unit}"
    _read_row(row, settings)
    return row


def _categorical_row(
    model: str, side: str, figure: str, baseline: Mapping[str, int], now: Mapping[str, int], settings: MonitorSettings
) -> DriftRow:
    n_base, n_now = sum(baseline.values()), sum(now.values())
    row = DriftRow(model, side, figure, None, "too few", n_base, n_now)
    if n_base == 0 or n_now < settings.min_requests:
        return row
    row.psi = drift.categorical_psi(baseline, now)
    chi = drift.chi_square(baseline, now)
    row.test, row.statistic, row.pvalue = "chi2", chi.statistic, chi.pvalue
    moves = []
    for value in set(baseline) | set(now):
        b, a = baseline.get(value, 0) / n_base, now.get(value, 0) / n_now
        moves.append((abs(a - b), value, b, a))
    moves.sort(reverse=True)
    row.detail = ", ".join(f"{v} {b:.0%} -> {a:.0%}" for _, v, b, a in moves[:2] if _ > 0.005)
    _read_row(row, settings)
    return row


def _read_row(row: DriftRow, settings: MonitorSettings) -> None:
    """The PSI's usual reading, except that ``shifted`` also needs the two-sample test at ``alpha``.

    On the few dozen answers of a release eval, PSI has a large floor of its own: with B bins and n, m
    values it averages about (B - 1)(1/n + 1/m) when nothing moved (0.14 for 4 bins, 40 and 50
    answers). A PSI above the threshold that the test cannot tell from chance reads ``watch``, with why.
    """
    assert row.psi is not None
    row.reading = drift.reading(row.psi, settings.psi_watch, settings.psi_alert)
    if row.reading == "shifted" and row.pvalue is not None and row.pvalue >= settings.alpha:
        row.reading = "watch"
        note = f"not significant ({row.test} p={row.pvalue:.2g})"
        row.detail = f"{row.detail}; {note}" if row.detail else note


def _median(counts: Mapping[int, int]) -> float:
    total = sum(counts.values())
    if not total:
        return 0.0
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen * 2 >= total:
            return float(value)
    return 0.0


# --- failure rates and alerts -------------------------------------------------------------


def failure_rates(base: Baseline, w: Window, settings: MonitorSettings) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind in FAILURES:
        rate = base.rates.get(kind)
        k = int(getattr(w.health, _HEALTH_COUNT[kind]) or 0)
        n = int(getattr(w.health, _HEALTH_DENOMINATOR[kind]) or 0)
        entry: dict[str, Any] = {"now_k": k, "now_n": n, "now": k / n if n else None}
        if rate is not None and rate.n:
            entry.update(base_k=rate.k, base_n=rate.n, base=rate.share)
            if n >= settings.min_requests:
                rise = drift.proportion_rise(rate.k, rate.n, k, n, margin=settings.failure_margin, alpha=settings.alpha)
                entry.update(pvalue=rise.pvalue, alert=bool(rise.alert))
        out[kind] = entry
    return out


def alerts_of(overall: Window, models: Sequence[ModelMonitor], settings: MonitorSettings) -> list[Alert]:
    alerts: list[Alert] = []
    t = overall.traffic
    if t.requests >= settings.min_requests and t.error_rate is not None and t.error_rate > settings.error_rate:
        since = _since(overall.buckets, lambda b: b.errors / b.requests > settings.error_rate if b.requests else None)
        alerts.append(
            Alert(
                "errors",
                "HTTP errors",
                None,
                t.error_rate,
                settings.error_rate,
                since,
                f"HTTP errors {t.error_rate:.0%} of {t.requests} requests, above {settings.error_rate:.0%}"
                + _since_text(since),
            )
        )
    if (
        settings.latency_p95_s is not None
        and t.requests >= settings.min_requests
        and t.latency_p95 is not None
        and t.latency_p95 > settings.latency_p95_s
    ):
        since = _since(
            overall.buckets,
            lambda b: (b.latency_p95 or 0) > settings.latency_p95_s if b.requests else None,
        )
        alerts.append(
            Alert(
                "latency",
                "p95 latency",
                None,
                t.latency_p95,
                settings.latency_p95_s,
                since,
                f"p95 latency {t.latency_p95:.2f} s, above {settings.latency_p95_s:g} s" + _since_text(since),
            )
        )
    for mm in models:
        for kind, entry in mm.rates.items():
            if not entry.get("alert"):
                continue
            base_share = float(entry["base"])
            limit = base_share + settings.failure_margin
            count, denominator = _HEALTH_COUNT[kind], _HEALTH_DENOMINATOR[kind]

            def over(
                b: Bucket, count: str = count, denominator: str = denominator, limit: float = limit
            ) -> bool | None:
                n = getattr(b, denominator) or 0
                return (getattr(b, count) or 0) / n > limit if n else None

            since = _since(mm.window.buckets, over)
            alerts.append(
                Alert(
                    "failure",
                    FAILURES[kind],
                    mm.model,
                    float(entry["now"]),
                    limit,
                    since,
                    f"{mm.model}: {FAILURES[kind]} {entry['now']:.0%} ({entry['now_k']}/{entry['now_n']}) against "
                    f"{base_share:.0%} at release, above the {settings.failure_margin:.0%} margin "
                    f"(p={entry['pvalue']:.1g})" + _since_text(since),
                )
            )
        for row in mm.drift:
            if row.reading == "shifted" and row.psi is not None:
                alerts.append(
                    Alert(
                        "drift",
                        row.figure,
                        mm.model,
                        row.psi,
                        settings.psi_alert,
                        None,
                        f"{mm.model}: {row.figure} shifted ({'input' if row.side == 'input' else 'answers'}): "
                        f"PSI {_psi_text(row.psi)} > {settings.psi_alert:g} ({row.test} p={row.pvalue:.1g})"
                        + (f"; {row.detail}" if row.detail else ""),
                    )
                )
    return alerts


def _psi_text(psi: float) -> str:
    """Enough digits that a figure just over its threshold does not read as equal to it."""
    return f"{psi:.3f}" if psi < 1 else f"{psi:.2f}"


def _since(buckets: Sequence[Bucket], over: Any) -> float | None:
    """The start of the trailing run of buckets over the threshold (empty buckets neither break nor start it)."""
    since = None
    for b in reversed(buckets):
        state = over(b)
        if state is None:
            continue
        if not state:
            break
        since = b.start
    return since


def _since_text(since: float | None) -> str:
    if since is None:
        return ""
    return " since " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(since))


__all__ = ["Alert", "DriftRow", "ModelMonitor", "MonitorReport", "drift_table", "monitor", "parse_since"]
