"""A monitor report in words: the terminal's lines, the Markdown report with text charts, and its HTML.

``workbench monitor`` prints :func:`lines`; ``workbench monitor report`` writes :func:`markdown` and
:func:`html_page` (the same tables, SVG charts instead of the text ones) beside the server's log.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path

from workbench.monitor.report import DriftRow, MonitorReport

SERIES = (
    ("requests", "requests per bucket"),
    ("failure", "failed answers (share of answered)"),
    ("latency", "p95 latency (s)"),
    ("length", "mean answer length (chars)"),
)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def span(report: MonitorReport) -> str:
    hours = (report.end - report.start) / 3600
    length = f"{hours:g} h" if hours < 48 else f"{hours / 24:g} d"
    return f"{_when(report.start)} to {_when(report.end)} ({length})"


def series(report: MonitorReport, name: str) -> list[tuple[float, float]]:
    """(bucket start, value) of one figure over time, buckets without requests left out."""
    out = []
    for b in report.overall.buckets:
        if not b.requests:
            continue
        if name == "requests":
            value: float | None = float(b.requests)
        elif name == "failure":
            failed = (b.invalid or 0) + (b.refusals or 0) + (b.empty or 0) + (b.errors or 0)
            value = failed / b.requests
        elif name == "latency":
            value = b.latency_p95
        else:
            value = b.mean_answer_chars
        if value is not None:
            out.append((b.start, float(value)))
    return out


def traffic_lines(report: MonitorReport) -> list[str]:
    t, h = report.overall.traffic, report.overall.health
    out = [
        f"traffic   {t.requests} requests, {t.per_minute:.2f}/min, errors {t.errors} ({_pct(t.error_rate)}), "
        f"latency p50 {_num(t.latency_p50)} s p95 {_num(t.latency_p95)} s, {_num(t.tokens_per_s, '{:.1f}')} tokens/s",
    ]
    if report.overall.health_known:
        out.append(
            f"answers   {h.answered} answered: invalid {h.invalid}/{h.judged} ({_pct(h.invalid / h.judged if h.judged else None)}), "
            f"refusals {h.refusals}, empty {h.empty}, cut at max tokens {h.truncated}"
        )
    return out


def drift_cells(row: DriftRow) -> list[str]:
    return [
        row.model,
        row.side,
        row.figure,
        _num(row.psi),
        row.reading,
        f"{row.test} {row.pvalue:.2g}" if row.pvalue is not None else "–",
        f"{row.n_baseline}/{row.n_window}",
        row.detail,
    ]


DRIFT_HEAD = ["model", "side", "figure", "PSI", "reading", "test p", "n base/now", "what moved"]


def lines(report: MonitorReport) -> list[str]:
    """The plain-terminal monitor: alerts first, then traffic, answers, failure rates and drift."""
    out = [f"server {report.server_id}: {span(report)}"]
    if report.alerts:
        out += [f"ALERT  {a.message}" for a in report.alerts]
    else:
        out.append("no alert")
    out += traffic_lines(report)
    for mm in report.models:
        out.append("")
        base = mm.baseline.label if mm.baseline else "no baseline"
        out.append(f"{mm.model}: {mm.window.traffic.requests} requests; against {base}")
        for kind, e in mm.rates.items():
            out.append(
                f"  {kind:<10} now {_pct(e.get('now'))} ({e['now_k']}/{e['now_n']})  release {_pct(e.get('base'))}"
                + ("  ALERT" if e.get("alert") else "")
            )
        if mm.drift:
            table = [DRIFT_HEAD, *(drift_cells(r) for r in mm.drift)]
            widths = [max(len(r[i]) for r in table) for i in range(len(DRIFT_HEAD) - 1)]
            for r in table:
                out.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    out += [f"note: {n}" for n in report.notes]
    return out


def _text_chart(points: Sequence[tuple[float, float]], title: str) -> str:
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(70, 12)
    plt.theme("clear")
    plt.title(title)
    t0 = points[0][0]
    plt.plot([(t - t0) / 3600 for t, _ in points], [v for _, v in points], marker="*")
    plt.xlabel("hours since the window's first request")
    text = plt.build()
    plt.clear_figure()
    return str(text)


def markdown(report: MonitorReport) -> str:
    out = [f"# Monitor of {report.server_id}", "", span(report), ""]
    out += ["## Alerts", ""]
    out += [f"- **{a.message}**" for a in report.alerts] or ["No alert."]
    out += ["", "## Traffic and answers", ""]
    out += [f"- {line}" for line in traffic_lines(report)]
    for mm in report.models:
        out += ["", f"## {mm.model}", "", f"Against {mm.baseline.label if mm.baseline else 'no baseline'}.", ""]
        if mm.rates:
            out += ["| failure | now | release | alert |", "|---|---|---|---|"]
            for kind, e in mm.rates.items():
                out.append(
                    f"| {kind} | {_pct(e.get('now'))} ({e['now_k']}/{e['now_n']}) | {_pct(e.get('base'))} | "
                    f"{'yes' if e.get('alert') else ''} |"
                )
            out.append("")
        if mm.drift:
            out += ["| " + " | ".join(DRIFT_HEAD) + " |", "|" + "---|" * len(DRIFT_HEAD)]
            out += ["| " + " | ".join(c.replace("|", "/") for c in drift_cells(r)) + " |" for r in mm.drift]
    for name, title in SERIES:
        points = series(report, name)
        if len(points) >= 2:
            out += ["", f"## {title[0].upper() + title[1:]}", "", "```", _text_chart(points, title), "```"]
    if report.notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(out) + "\n"


def _svg(points: Sequence[tuple[float, float]], title: str, width: int = 560, height: int = 170) -> str:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(0.0, min(ys)), max(ys)

    def sx(x: float) -> float:
        return 40 + (x - x0) / ((x1 - x0) or 1) * (width - 50)

    def sy(y: float) -> float:
        return height - 20 - (y - y0) / ((y1 - y0) or 1) * (height - 40)

    pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'style="background:#fafafa;border:1px solid #ddd">'
        f'<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="{pts}"/>'
        f'<text x="40" y="14" font-size="12">{html.escape(title)} (max {y1:.3g})</text></svg>'
    )


def html_page(report: MonitorReport) -> str:
    from workbench.eval.report import _markdown_html

    charts = {
        title[0].upper() + title[1:]: _svg(points, title)
        for name, title in SERIES
        if len(points := series(report, name)) >= 2
    }
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ddd;padding:4px 8px}"
        "th{background:#f4f4f4}pre{background:#f6f6f6;padding:.6em;font-size:13px}"
    )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Monitor {html.escape(report.server_id)}</title>"
        f"<style>{style}</style></head><body>\n" + _markdown_html(markdown(report), charts) + "\n</body></html>\n"
    )


def write(report: MonitorReport, directory: Path) -> list[Path]:
    """monitor-<time>.md and .html in ``directory``; returns the paths."""
    from workbench.fileio import atomic_write_text

    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(report.end))
    md, page = directory / f"monitor-{stamp}.md", directory / f"monitor-{stamp}.html"
    atomic_write_text(md, markdown(report))
    atomic_write_text(page, html_page(report))
    return [md, page]


__all__ = ["html_page", "lines", "markdown", "series", "write"]
