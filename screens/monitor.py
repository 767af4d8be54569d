"""The monitor of one server (from the Models pane: highlight a server, press o).

What it serves, live, for a chosen window: traffic, the health of the answers, drift against the
release eval, alerts in a banner, charts over time, and the worst recent requests one key away, from
which failures go to a dataset as pending examples. Everything is read from the server's request log
in a worker thread (the log is SQLite in WAL mode: reading never blocks the server).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from screens.modals import ChoiceScreen
from workbench.errors import WorkbenchError, one_line
from workbench.monitor.samples import why

WINDOWS = {"h": ("last hour", 3600.0), "d": ("last day", 86400.0), "w": ("last week", 7 * 86400.0)}
REFRESH_EVERY = 10.0
READING_STYLE = {"stable": "green", "watch": "yellow", "shifted": "bold red", "too few": "dim"}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


class MonitorScreen(Screen[None]):
    """Traffic, answer health, drift and alerts of one server; the worst requests; failures back to the data."""

    CSS_PATH = "monitor.tcss"
    clock = staticmethod(time.time)
    """The time windows end at (a snapshot fixes it)."""
    BINDINGS = [
        Binding("escape", "close", "Back", id="monitor.close", tooltip="Back to the Models pane"),
        Binding("h", "window('h')", "Hour", id="monitor.hour", tooltip="The last hour"),
        Binding("d", "window('d')", "Day", id="monitor.day", tooltip="The last day"),
        Binding("w", "window('w')", "Week", id="monitor.week", tooltip="The last week"),
        Binding("e", "worst", "Worst", id="monitor.worst", tooltip="The worst recent requests (and back to charts)"),
        Binding(
            "space", "mark", "Mark", id="monitor.mark", tooltip="Mark the highlighted request to send (worst view)"
        ),
        Binding(
            "t",
            "to_dataset",
            "To dataset",
            id="monitor.to_dataset",
            tooltip="Send the marked requests (else the highlighted one, else every failed one) to a dataset",
        ),
        Binding("v", "revalidate", "Revalidate", id="monitor.revalidate", tooltip="Eval the endpoint against release"),
        Binding("r", "refresh", "Refresh", id="monitor.refresh", tooltip="Read the log again now"),
    ]

    def __init__(self, workspace: Path, server_id: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.workspace = Path(workspace)
        self.server_id = server_id
        self.window_key = "d"
        self.report: Any = None
        self.worst: list[Any] = []
        self.error: str | None = None
        self.loaded = False  # a report is shown (tests and snapshots wait for it)
        self.showing_worst = False
        self._reading = False
        self.marked: set[str] = set()  # request ids marked in the worst view, to send together
        self.schema: dict[str, Any] | None = None  # the task's, read once ({}: none), to say why an answer failed
        self.baselines: dict[str, Any] | None = None  # each served model's reference, read once

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="monitor-title")
        yield Static(Text("reading the request log…", style="dim"), id="monitor-banner")
        yield Static("", id="monitor-figures")
        yield DataTable(id="monitor-drift", cursor_type="row", zebra_stripes=False)
        with Horizontal(id="monitor-charts"):
            yield PlotextPlot(id="monitor-chart-traffic", classes="monitor-chart")
            yield PlotextPlot(id="monitor-chart-failures", classes="monitor-chart")
            yield PlotextPlot(id="monitor-chart-latency", classes="monitor-chart")
        with Vertical(id="monitor-worst-box"):
            yield DataTable(id="monitor-worst", cursor_type="row", zebra_stripes=False)
            with VerticalScroll(id="monitor-worst-detail-box"):
                yield Static("", id="monitor-worst-detail")
        yield Footer()

    def on_mount(self) -> None:
        drift = self.query_one("#monitor-drift", DataTable)
        for label, width in (
            ("model", 16),
            ("side", 6),
            ("figure", 15),
            ("PSI", 5),
            ("reading", 8),
            ("test p", 10),
            ("n base/now", 10),
            ("what moved", 30),
        ):
            drift.add_column(label, width=width)
        worst = self.query_one("#monitor-worst", DataTable)
        for label, width in (
            (" ", 1),
            ("UTC", 8),
            ("status", 6),
            ("why", 14),
            ("model", 14),
            ("prompt", 36),
            ("answer", 22),
        ):
            worst.add_column(label, width=width)
        self.query_one("#monitor-worst-box").display = False
        self.refresh_report()
        self.set_interval(REFRESH_EVERY, self.refresh_report)

    def _title(self) -> Text:
        label = WINDOWS[self.window_key][0]
        text = Text.assemble(("Monitor ", "bold"), (self.server_id, "bold cyan"), f"  ·  {label}")
        text.append("  (h hour, d day, w week)", style="dim")
        return text

    # --- reading ----------------------------------------------------------------------

    def refresh_report(self) -> None:
        if self._reading:
            return
        self._reading = True
        self._read(self.window_key)

    @work(thread=True, exclusive=True, group="monitor-read", exit_on_error=False)
    def _read(self, key: str) -> None:
        from workbench.monitor.figures import worst
        from workbench.monitor.report import monitor
        from workbench.serve.servedir import find_server

        try:
            if self.baselines is None:  # once (r reads them again): finding them reads every eval
                from workbench.monitor.report import baselines_of

                self.baselines = baselines_of(self.workspace, self.server_id)
            report = monitor(
                self.workspace, self.server_id, since_s=WINDOWS[key][1], now=self.clock(), baselines=self.baselines
            )
            sd = find_server(self.workspace, self.server_id)
            if self.schema is None:
                from workbench.monitor.release import served_task

                self.schema = served_task(self.workspace, sd.id).schema or {}
            bad = worst(sd.db_path, start=report.start, end=report.end, limit=50)
        except WorkbenchError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        except Exception as exc:  # an unreadable log: say so, keep the screen
            self.app.call_from_thread(self._failed, one_line(exc))
            return
        self.app.call_from_thread(self._show, report, bad)

    def _failed(self, message: str) -> None:
        self._reading = False
        self.error = message
        self.query_one("#monitor-banner", Static).update(Text(f"Cannot read the monitor: {message}", style="red"))
        self.loaded = True

    def _show(self, report: Any, bad: list[Any]) -> None:
        self._reading = False
        self.error = None
        self.report, self.worst = report, bad
        self._render_banner()
        self._render_figures()
        self._render_drift()
        self._render_charts()
        self._render_worst()
        self.query_one("#monitor-title", Static).update(
            self._title().append(f"  ·  read {time.strftime('%H:%M:%S UTC', time.gmtime(report.end))}", style="dim")
        )
        self.loaded = True

    # --- rendering --------------------------------------------------------------------

    def _render_banner(self) -> None:
        banner = self.query_one("#monitor-banner", Static)
        alerts = self.report.alerts
        if alerts:
            text = Text()
            for i, a in enumerate(alerts):
                text.append(("\n" if i else "") + "ALERT  ", style="bold white on red")
                text.append(" " + a.message, style="bold red")
            banner.update(text)
            banner.set_class(True, "alert")
        else:
            t = self.report.overall.traffic
            quiet = t.requests < self.report.settings.min_requests
            words = (
                f"No alert. (Only {t.requests} requests in the window: alerts need {self.report.settings.min_requests}.)"
                if quiet
                else "No alert: failure rates and drift are within the monitor's thresholds."
            )
            banner.update(Text(words, style="dim" if quiet else "green"))
            banner.set_class(False, "alert")

    def _render_figures(self) -> None:
        from workbench.monitor.render import traffic_lines

        r = self.report
        text = Text("\n".join(traffic_lines(r)))
        for mm in r.models:
            text.append(f"\n{mm.model}", style="bold")
            text.append(f"  against {mm.baseline.label if mm.baseline else 'no baseline'}", style="dim")
            parts = []
            for kind, e in mm.rates.items():
                part = f"{kind} {_pct(e.get('now'))} (release {_pct(e.get('base'))})"
                parts.append((part, "bold red" if e.get("alert") else ""))
            if parts:
                text.append("\n  ")
                for i, (part, style) in enumerate(parts):
                    text.append(("  ·  " if i else "") + part, style=style)
        for note in r.notes:
            text.append(f"\nnote: {note}", style="dim")
        self.query_one("#monitor-figures", Static).update(text)

    def _render_drift(self) -> None:
        from workbench.monitor.render import drift_cells

        table = self.query_one("#monitor-drift", DataTable)
        table.clear()
        for mm in self.report.models:
            for row in mm.drift:
                cells = drift_cells(row)
                cells[4] = Text(cells[4], style=READING_STYLE.get(row.reading, ""))  # type: ignore[call-overload]
                table.add_row(*cells)

    def _render_charts(self) -> None:
        from workbench.monitor.render import series

        r = self.report
        t0 = r.start
        for widget_id, name, title, color in (
            ("#monitor-chart-traffic", "requests", "requests per bucket", "cyan"),
            ("#monitor-chart-failures", "failure", "failed share", "red"),
            ("#monitor-chart-latency", "latency", "p95 latency (s)", "orange"),
        ):
            widget = self.query_one(widget_id, PlotextPlot)
            plt = widget.plt
            plt.clear_data()
            points = series(r, name)
            plt.title(title if points else f"{title}: no requests")
            plt.xlabel("hours ago")
            hours = (r.end - t0) / 3600
            plt.xlim(-hours, 0)  # the whole window, now at the right, whatever the points
            if points:
                xs = [(p[0] - r.end) / 3600 for p in points]
                ys = [p[1] for p in points]
                plt.ylim(0, 1.0 if name == "failure" else max(ys) * 1.15 or 1.0)  # a share tops at 100%
                plt.plot(xs, ys, marker="braille" if len(points) > 2 else "dot", color=color)
            widget.refresh()

    def _render_worst(self) -> None:
        table = self.query_one("#monitor-worst", DataTable)
        table.clear()
        for req in self.worst:
            prompt = next(
                (str(m.get("content")) for m in reversed(req.messages) if m.get("role") == "user"), ""
            ).replace("\n", " ")
            table.add_row(
                Text("●", style="bold yellow") if req.id in self.marked else "",
                time.strftime("%H:%M:%S", time.gmtime(req.time)),
                str(req.status),
                why(req),
                req.model or "",
                prompt[:36],
                (req.response or req.error or "").replace("\n", " ")[:22],
                key=req.id,
            )
        self._render_worst_detail()

    def _render_worst_detail(self) -> None:
        table = self.query_one("#monitor-worst", DataTable)
        detail = self.query_one("#monitor-worst-detail", Static)
        if not table.row_count:
            detail.update(Text("No failed request in this window.", style="dim"))
            return
        req = self.worst[min(table.cursor_row, len(self.worst) - 1)]
        text = Text.assemble((req.id, "bold"), f"  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(req.time))}")
        text.append(f"  {why(req, self.schema or None)}", style="red")
        for m in req.messages:
            text.append(f"\n{m.get('role')}: ", style="dim")
            text.append(str(m.get("content")))
        text.append("\nanswer: ", style="dim")
        text.append(req.response if req.response is not None else f"(none: {req.error})")
        detail.update(text)

    @on(DataTable.RowHighlighted, "#monitor-worst")
    def _worst_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._render_worst_detail()

    # --- actions ----------------------------------------------------------------------

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_window(self, key: str) -> None:
        self.window_key = key
        self.query_one("#monitor-title", Static).update(self._title())
        self._reading = False
        self.refresh_report()

    def action_refresh(self) -> None:
        self.baselines = None  # a new release eval may have been written since
        self.refresh_report()

    def action_worst(self) -> None:
        self.showing_worst = not self.showing_worst
        self.query_one("#monitor-worst-box").display = self.showing_worst
        self.query_one("#monitor-charts").display = not self.showing_worst
        if self.showing_worst:
            self.query_one("#monitor-worst", DataTable).focus()

    def _clear_marks(self) -> None:
        if self.marked:
            self.marked.clear()
            self._render_worst()

    def action_mark(self) -> None:
        table = self.query_one("#monitor-worst", DataTable)
        if not self.showing_worst or not table.row_count:
            self.notify("Marking is for the worst requests: press e to see them.", timeout=3)
            return
        row = min(table.cursor_row, len(self.worst) - 1)
        request_id = self.worst[row].id
        self.marked.symmetric_difference_update({request_id})
        cell = Text("●", style="bold yellow") if request_id in self.marked else ""
        table.update_cell_at((row, 0), cell)
        if row + 1 < table.row_count:
            table.move_cursor(row=row + 1)

    def action_to_dataset(self) -> None:
        from workbench.workspace import Workspace

        if not self.worst:
            self.notify("No failed request in this window to send.", severity="warning", timeout=3)
            return
        datasets = Workspace(self.workspace).datasets()
        if not datasets:
            self.notify("No dataset in the workspace to send them to.", severity="warning")
            return
        marked = [r for r in self.worst if r.id in self.marked]
        if marked:
            chosen, what = marked, f"the {len(marked)} marked request(s)"
        elif self.showing_worst and self.query_one("#monitor-worst", DataTable).row_count:
            chosen = [self.worst[self.query_one("#monitor-worst", DataTable).cursor_row]]
            what = f"request {chosen[0].id}"
        else:
            chosen, what = list(self.worst), f"the {len(self.worst)} failed requests of the window"
        options = [
            (str(p.relative_to(self.workspace)) if p.is_relative_to(self.workspace) else str(p), str(p))
            for p in datasets
        ]
        self.app.push_screen(
            ChoiceScreen(
                f"Send {what} to which dataset?",
                options,
                "They arrive pending, the model's answer as a draft to correct, source production.",
            ),
            lambda path: self._send(chosen, Path(path)) if path else None,
        )

    @work(thread=True, group="monitor-send", exit_on_error=False)
    def _send(self, chosen: list[Any], dataset: Path) -> None:
        from workbench.monitor.release import served_task
        from workbench.monitor.samples import to_dataset
        from workbench.serve.servedir import find_server

        try:
            sd = find_server(self.workspace, self.server_id)
            task = served_task(self.workspace, sd.id)
            result = to_dataset(
                sd.db_path, dataset, chosen, server_id=sd.id, system_prompt=task.system_prompt, schema=task.schema
            )
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"Not sent: {one_line(exc)}", severity="error")
            return
        self.app.call_from_thread(self._clear_marks)
        skipped = f" ({len(result.skipped)} skipped: already there or unusable)" if result.skipped else ""
        self.app.call_from_thread(
            self.notify,
            f"{len(result.added)} sent to {dataset.name}, pending{skipped}. Review them in the Data pane (1).",
            timeout=6,
        )

    def action_revalidate(self) -> None:
        self.notify("Revalidating: an eval of the endpoint against the release starts…", timeout=3)
        self._revalidate()

    @work(thread=True, group="monitor-revalidate", exit_on_error=False)
    def _revalidate(self) -> None:
        from workbench.monitor.revalidate import revalidate

        try:
            ev = revalidate(self.workspace, self.server_id)
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"Cannot revalidate: {one_line(exc)}", severity="error")
            return
        self.app.call_from_thread(
            self.notify, f"Eval {ev.id} is generating; its grid is in the Eval pane (4).", timeout=8
        )


__all__ = ["MonitorScreen"]
