"""The Train pane: the runs list, launch, and a live view of the selected run.

Files are read by thread workers (the runs list every 2 s; the selected
run's new lines 4 times a second); they post messages, and the pane redraws
only when something changed, so following a run never blocks the UI.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Log, Static
from textual.worker import get_current_worker

from screens.modals import ConfirmScreen, LaunchScreen
from screens.sweep import SweepView
from screens.widgets.charts import LossChart, SeriesChart
from screens.widgets.runs_table import RunsTable
from workbench.config.schema import RunConfig, load_config, summary
from workbench.errors import WorkbenchError
from workbench.fmt import duration
from workbench.train import runner
from workbench.train.rundir import LIVE_STATES, RunDir, RunStatus
from workbench.train.watch import ChartData, RunWatcher, SystemView, WatchUpdate, chart_data, system_view
from workbench.workspace import Workspace

POLL_LIVE = 1.0  # seconds between reads of a live run's files (key presses wake the reader at once)
CHART_EVERY = 2.0  # while only watching, charts redraw at most this often (a key press redraws at once)
POLL_IDLE = 1.0  # a finished run can still be resumed by someone else
RUNS_EVERY = 2.0  # seconds between refreshes of the runs list
KEEP_FOLLOWED = 32  # runs whose history stays in memory for a quick return


@dataclass
class _Followed:
    """A run the follower has read: its watcher and what was last computed from it."""

    watcher: RunWatcher
    config: list[tuple[str, str]] | str
    chart: ChartData | None = None
    system: SystemView | None = None

    @classmethod
    def open(cls, path: Path) -> _Followed:
        watcher = RunWatcher(RunDir(path))
        try:
            config: list[tuple[str, str]] | str = summary(load_config(watcher.run.config_path))
        except WorkbenchError as exc:
            config = str(exc)
        return cls(watcher, config)

    def poll(self) -> WatchUpdate:
        """Read what is new; the chart data and system view are rebuilt only when it changed them."""
        update = self.watcher.poll()
        if update.records or update.restarted or self.chart is None:
            self.chart = chart_data(self.watcher.records)
        if update.samples or update.samples_restarted or self.system is None:
            self.system = system_view(self.watcher.samples)
        return update


@dataclass
class RunsListed(Message):
    runs: list[runner.RunSummary]


@dataclass
class RunChanged(Message):
    """A snapshot of the followed run, computed off the UI thread."""

    run_id: str
    status: RunStatus
    chart: ChartData
    system: SystemView
    overlays: dict[str, ChartData] = field(default_factory=dict)
    log: list[str] | None = None
    bad_lines: int = 0
    config: list[tuple[str, str]] | str | None = None  # the config summary, or why it could not be read


class TrainPane(Vertical):
    """Launch runs and watch them; every action has a key."""

    BINDINGS = [
        Binding("n", "launch", "Launch", id="train.launch", tooltip="Pick a config and start a detached run"),
        Binding(
            "s", "stop", "Stop", id="train.stop", tooltip="Stop gracefully: a checkpoint and the adapter are saved"
        ),
        Binding("r", "resume", "Resume", id="train.resume", tooltip="Continue from the last checkpoint"),
        Binding(
            "k",
            "stop_keep_best",
            "Stop+keep best",
            id="train.keep_best",
            show=False,
            tooltip="Stop now and keep the best checkpoint (offered when overfitting is seen)",
        ),
        Binding(
            "w",
            "sweeps",
            "Sweeps",
            id="train.sweeps",
            tooltip="The sweeps: trials, best, objective by trial, importances",
        ),
        Binding("l", "toggle_log", "Log", id="train.log", tooltip="Show or hide the tail of train.log"),
        Binding("c", "compare", "Compare", id="train.compare", tooltip="Overlay this run's loss on the one you watch"),
        Binding("y", "copy_path", "Copy path", id="train.copy", tooltip="Copy the run directory's path"),
        Binding(
            "e",
            "evaluate",
            "Evaluate",
            id="train.evaluate",
            tooltip="Compare this run's final adapter and every checkpoint with the base on the test split",
        ),
    ]

    def __init__(self, workspace: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.run_id: str | None = None
        self.compare: frozenset[str] = frozenset()
        self.show_log = False
        self.last: RunChanged | None = None
        self.initial_run: str | None = None
        self._wake = threading.Event()  # wakes the follower early (log toggled, compare changed)
        self._drawn_at = 0.0
        self._undrawn: RunChanged | None = None  # a snapshot whose charts wait for the next redraw slot
        self._drawn: RunChanged | None = None  # the snapshot the charts show
        self._follower = None  # the reader thread's worker, started with the first run
        self._alert_shown = ("", "")

    def compose(self) -> ComposeResult:
        yield SweepView(self.workspace, id="sweep-view")
        with Horizontal(id="runs-view"):
            with Vertical(id="runs-col"):
                yield Static("[b]Runs[/b]", classes="section")
                yield RunsTable(id="runs")
                yield Static("", id="config-summary")
            with Vertical(id="run-col"):
                yield Static("No run selected. Press [b]n[/b] to launch one.", id="run-header")
                yield Static("", id="alert")
                yield LossChart(id="loss")
                with Horizontal(id="small-charts"):
                    yield SeriesChart(id="lr")
                    yield SeriesChart(id="tps")
                    yield SeriesChart(id="cpu")
                    yield SeriesChart(id="gpu")
                yield Static("", id="system-line")
                yield Log(id="log", max_lines=400)

    def on_mount(self) -> None:
        self.query_one(SweepView).display = False
        self.query_one("#log").display = False
        self.query_one("#gpu").display = False
        self.refresh_runs()
        self.set_interval(RUNS_EVERY, self.refresh_runs)
        self.set_interval(CHART_EVERY, self._draw_pending)

    # --- runs list ----------------------------------------------------------

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def refresh_runs(self) -> None:
        self.post_message(RunsListed(runner.list_runs(self.workspace)))

    def on_runs_listed(self, message: RunsListed) -> None:
        table = self.query_one(RunsTable)
        table.set_runs(message.runs, set(self.compare))
        if self.run_id is None and message.runs:
            wanted = self.initial_run if self.initial_run in {r.id for r in message.runs} else message.runs[0].id
            table.select_run(wanted)
            self.watch_run(wanted)

    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        run_id = str(event.row_key.value)
        if run_id != self.run_id:
            self.watch_run(run_id)

    # --- following ----------------------------------------------------------

    def watch_run(self, run_id: str) -> None:
        """Follow another run: its whole history first, then what is new."""
        self.run_id = run_id
        self.last = None
        self._drawn = None
        self._undrawn = None
        self.query_one("#run-header", Static).update(f"[b]{run_id}[/b]  loading…", layout=False)
        self._wake.set()
        if self._follower is None or self._follower.is_finished:
            self._follower = self.follow()
        self.app.remember(last_run=run_id)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self) -> None:
        """One long-lived reader: it switches runs when `run_id` changes, woken by `_wake`.

        Runs seen lately stay in memory (their history, chart data and config summary), so
        coming back to one reads only what is new: moving up and down the list stays quick.
        """
        worker = get_current_worker()
        followed: OrderedDict[str, _Followed] = OrderedDict()
        current: _Followed | None = None
        others: dict[str, RunWatcher] = {}
        while not worker.is_cancelled:
            self._wake.clear()  # cleared before reading: a wake during this pass is not lost
            run_id = self.run_id
            if run_id is None:
                self._wake.wait(POLL_IDLE)
                continue
            if current is None or current.watcher.run.id != run_id:
                current = followed.pop(run_id, None) or _Followed.open(Workspace(self.workspace).runs_dir / run_id)
                followed[run_id] = current
                while len(followed) > KEEP_FOLLOWED:
                    followed.popitem(last=False)
                others = {}
                seen_compare: frozenset[str] = frozenset()
                seen_log = None
                first = True
            update = current.poll()
            compare = self.compare - {run_id}
            fresh = False
            for other in compare - set(others):
                others[other] = RunWatcher(RunDir(Workspace(self.workspace).runs_dir / other))
            for other in set(others) - compare:
                del others[other]
            for w in others.values():
                polled = w.poll()
                fresh |= bool(polled.records or polled.restarted)
            log = current.watcher.log_tail() if self.show_log else None
            if first or update.changed or fresh or compare != seen_compare or log != seen_log:
                self.post_message(
                    RunChanged(
                        run_id,
                        update.status,
                        current.chart,
                        current.system,
                        {k: chart_data(w.records) for k, w in others.items()},
                        log,
                        update.bad_lines,
                        current.config,
                    )
                )
                seen_compare, seen_log, first = compare, log, False
            self._wake.wait(POLL_LIVE if update.status.state in LIVE_STATES else POLL_IDLE)

    def on_run_changed(self, message: RunChanged) -> None:
        if message.run_id != self.run_id:
            return  # a late message from the run we watched before
        previous = self.last
        self.last = message
        self._render_header(message)
        self._render_alert(message)
        urgent = (
            previous is None
            or previous.overlays.keys() != message.overlays.keys()
            or previous.status.state != message.status.state
        )
        if urgent or time.monotonic() - self._drawn_at >= CHART_EVERY:
            self._draw_charts(message, self._drawn)
        else:
            self._undrawn = message
        if message.log is not None and (previous is None or previous.log != message.log):
            log = self.query_one(Log)
            log.clear()
            log.write_lines(message.log)
        if previous is None:
            self._render_config(message.config)

    def _draw_charts(self, message: RunChanged, drawn: RunChanged | None) -> None:
        """Redraw what changed since the snapshot last drawn."""
        if drawn is None or drawn.chart != message.chart or drawn.overlays != message.overlays:
            self.query_one(LossChart).show(message.chart, message.overlays)
            small = lambda: self._draw_small(message, drawn)  # noqa: E731
            # On a switch the loss chart comes first; the small charts follow a frame later.
            self.call_after_refresh(small) if drawn is None else small()
        elif drawn.system != message.system:
            self._render_system(message.system)
        self._drawn_at = time.monotonic()
        self._drawn = message
        self._undrawn = None

    def _draw_small(self, message: RunChanged, drawn: RunChanged | None) -> None:
        if message.run_id != self.run_id:
            return
        self.query_one("#lr", SeriesChart).show("learning rate", message.chart.learning_rate)
        self.query_one("#tps", SeriesChart).show("tokens/s", message.chart.tokens_per_s, color="green")
        if drawn is None or drawn.system != message.system:
            self._render_system(message.system)

    def _draw_pending(self) -> None:
        if self._undrawn is not None and self._undrawn.run_id == self.run_id:
            self._draw_charts(self._undrawn, self._drawn)

    # --- rendering ----------------------------------------------------------

    def _render_header(self, m: RunChanged) -> None:
        s, latest = m.status, m.chart.latest
        total = s.total_steps
        pct = f" ({100 * s.step / total:.0f}%)" if total else ""
        first = [f"[b]{m.run_id}[/b] [b]{s.state}[/b] {s.step}/{total or '?'}{pct}"]
        world = int(s.raw.get("world_size") or 1)
        if world > 1:
            first.append(f"×{world} processes")
        if s.state == "running" and "eta_s" in latest:
            first.append(f"ETA {duration(latest['eta_s'])}")
        second = []
        loss = latest.get("loss")
        if isinstance(loss, float):
            second.append(f"train loss {loss:.4f}")
        if m.chart.best:
            second.append(f"best eval {m.chart.best[1]:.4f} at step {m.chart.best[0]}")
        if isinstance(latest.get("tokens_per_s"), float):
            second.append(f"{latest['tokens_per_s']:.0f} tok/s")
        if m.bad_lines:
            second.append(f"[yellow]{m.bad_lines} corrupt metrics line(s) skipped[/]")
        # Two lines in a fixed slot: a header that changes height would re-lay out every chart.
        self.query_one("#run-header", Static).update(" · ".join(first) + "\n" + " · ".join(second), layout=False)

    def _render_alert(self, m: RunChanged) -> None:
        """The health line: always three lines high, so an alert never re-lays out the charts."""
        alert = self.query_one("#alert", Static)
        verdict, s = m.chart.verdict, m.status
        best = m.chart.best
        if verdict.kind == "overfitting":
            rise = f"eval loss {best[1]:.4f} → {m.chart.eval_loss.values[-1]:.4f}" if best else "eval loss rising"
            action = (
                "[b]k[/b]: stop now, keep the best checkpoint."
                if s.state in LIVE_STATES
                else "Adapter = best checkpoint (load_best)."
            )
            text = f"⚠ OVERFITTING since step {verdict.since_step}: {rise} while train loss falls. {action}"
            cls = "-overfit"
        else:
            text, cls = self._health(m), "-ok"
        if s.state in ("failed", "diverged"):
            head = verdict.message if s.state == "diverged" and verdict.message else (s.error or "the worker failed")
            tail = [line for line in (s.raw.get("error_tail") or []) if line.strip() and line.strip() not in head]
            last = tail[-1].strip()[:300] if tail else ""
            # The key first: a long error wraps, and the slot is three lines.
            text = f"✖ {s.state.upper()} ([b]l[/b] shows train.log): {head}" + (f"\n{last}" if last else "")
            cls = "-failed"
        elif s.state == "stopped" and verdict.kind != "overfitting":
            why = s.raw.get("stop_reason") or "stop requested"
            sweep = s.raw.get("sweep") or {}
            trial = f" (trial {sweep.get('trial')} of sweep {sweep.get('id')})" if sweep else ""
            text = f"■ STOPPED at step {s.step}{trial}: {why}. [b]r[/b] resumes from the last checkpoint."
            cls = "-ok"
        elif s.state == "lost":
            text, cls = (
                (
                    "✖ LOST: the worker stopped sending heartbeats (killed, or the machine rebooted). "
                    "[b]r[/b] resumes from its last checkpoint."
                ),
                "-lost",
            )
        if (text, cls) == self._alert_shown:
            return  # unchanged: touching its classes would restyle it for nothing
        self._alert_shown = (text, cls)
        alert.update(text, layout=False)
        if not alert.has_class(cls):
            alert.set_class(False, "-ok", "-overfit", "-failed", "-lost")
            alert.add_class(cls)

    @staticmethod
    def _health(m: RunChanged) -> str:
        """What the detector sees when nothing is wrong, in words."""
        best, evals = m.chart.best, m.chart.eval_loss
        if not m.chart.train_loss:
            return "[dim]No metrics yet. The detector watches for overfitting and divergence once losses arrive.[/]"
        if not evals:
            return (
                "✓ No divergence seen. [dim]Overfitting is judged from eval loss, and this run has none "
                "(set data.val_ratio or data.val and eval.eval_steps).[/]"
            )
        if best and best[0] == evals.steps[-1]:
            return f"✓ Healthy: eval loss {best[1]:.4f} at step {best[0]} is the best so far."
        return (
            (
                f"✓ No overfitting: best eval loss {best[1]:.4f} at step {best[0]}, latest "
                f"{evals.values[-1]:.4f} (step {int(evals.steps[-1])}); not a rising trend."
            )
            if best
            else "✓ No alerts."
        )

    def _render_system(self, view: SystemView) -> None:
        latest = view.latest
        parts = []
        if "cpu_percent" in latest:
            parts.append(f"CPU {latest['cpu_percent']:.0f}%")
        if "ram_used_gb" in latest:
            parts.append(f"RAM {latest['ram_used_gb']:.1f}/{latest.get('ram_total_gb', 0):.1f} GB")
        self.query_one("#cpu", SeriesChart).show("CPU %", view.cpu, color="yellow")
        gpu_chart = self.query_one("#gpu", SeriesChart)
        if view.gpus:
            gpu_chart.display = True
            gpu_chart.show(
                "GPU util % / mem GB",
                [s for g in view.gpus for s in (g.util, g.mem_used)],
                [f"{label}{g.index}" for g in view.gpus for label in ("util", "mem")],
            )
            for g in view.gpus:
                figures = [
                    f"{g.util.values[-1]:.0f}% util" if g.util else None,
                    f"{g.mem_used.values[-1]:.1f}/{g.mem_total_gb:.0f} GB" if g.mem_used and g.mem_total_gb else None,
                    f"{g.temp_c:.0f}°C" if g.temp_c is not None else None,
                    f"{g.power_w:.0f} W" if g.power_w is not None else None,
                ]
                parts.append(f"GPU{g.index} {g.name}: " + " · ".join(f for f in figures if f))
        else:
            gpu_chart.display = False
            parts.append(
                "GPU: none seen (no NVIDIA GPU or driver on the training machine)"
                if latest
                else "no system samples yet"
            )
        self.query_one("#system-line", Static).update("   ".join(parts), layout=False)

    def _render_config(self, config: list[tuple[str, str]] | str | None) -> None:
        widget = self.query_one("#config-summary", Static)
        if isinstance(config, str):
            widget.update(f"[red]{config}[/]", layout=False)
        else:
            widget.update("\n".join(f"[dim]{k:<7}[/dim]{v}" for k, v in config or []), layout=False)

    # --- actions ------------------------------------------------------------

    def _run(self) -> RunDir | None:
        if self.run_id is None:
            self.notify("No run selected.", severity="warning")
            return None
        return RunDir(Workspace(self.workspace).runs_dir / self.run_id)

    def action_launch(self) -> None:
        from screens.config import ConfigPane

        held = None
        panes = self.app.query(ConfigPane)
        if panes and panes.first().config is None:
            panes.first().ensure_loaded()  # not visited yet: hold the config it would show
        if panes and panes.first().config is not None:
            pane = panes.first()
            where = pane.path.name if pane.path is not None else "new, not saved"
            label = f"{pane.config.name} ({where}{', with unsaved changes' if pane.dirty else ''})"
            held = (label, pane.config)
        self.app.push_screen(
            LaunchScreen(Workspace(self.workspace).configs(), self.workspace, held), self._launch_chosen
        )

    def _launch_chosen(self, chosen: Path | RunConfig | None) -> None:
        if chosen is not None:
            self.notify(f"Checking {chosen.name}…")
            self.launch_config(chosen)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False)
    def launch_config(self, config: Path | RunConfig) -> None:
        try:
            run = runner.launch(config, self.workspace)
        except WorkbenchError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="Not launched", severity="error", timeout=15)
            return
        self.app.call_from_thread(self._launched, run.id)

    def _launched(self, run_id: str) -> None:
        self.notify(f"Started {run_id}. It runs detached: quitting the app never stops it.")
        self.initial_run = run_id
        self.run_id = None  # the next runs list selects it
        self.refresh_runs()

    def action_stop(self) -> None:
        run = self._run()
        if run is None:
            return
        if run.status().state not in LIVE_STATES:
            self.notify(f"{run.id} is not running.", severity="warning")
            return
        self.app.push_screen(
            ConfirmScreen(f"Stop [b]{run.id}[/b]? It saves a checkpoint and the adapter, and can be resumed."),
            lambda yes: self._stop(run) if yes else None,
        )

    def action_stop_keep_best(self) -> None:
        run = self._run()
        if run is not None and run.status().state in LIVE_STATES:
            self._stop(run)

    def _stop(self, run: RunDir) -> None:
        try:
            runner.stop(run)
            self.notify(f"Stopping {run.id}: saving a checkpoint and the adapter…")
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error")

    def action_resume(self) -> None:
        run = self._run()
        if run is None:
            return
        try:
            runner.resume(run)
            self.notify(f"Resuming {run.id} from {run.checkpoints()[-1].name}.")
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error")
        self.refresh_runs()

    def action_toggle_log(self) -> None:
        self.show_log = not self.show_log
        self._wake.set()
        self.query_one(Log).display = self.show_log
        self.query_one("#small-charts").display = not self.show_log

    def action_compare(self) -> None:
        table = self.query_one(RunsTable)
        run_id = table.selected_id
        if run_id is None:
            return
        if run_id == self.run_id and not self.compare:
            self.notify("Mark other runs with c to overlay their loss on this one.")
        self.compare = self.compare ^ {run_id}
        self._wake.set()
        self.notify(f"Comparing {len(self.compare)} run(s)." if self.compare else "Compare cleared.")
        self.refresh_runs()

    def action_sweeps(self) -> None:
        """Show the sweep view in place of the runs (w again, or escape, comes back)."""
        view = self.query_one(SweepView)
        showing = not view.display
        view.display = showing
        self.query_one("#runs-view").display = not showing
        if showing:
            view.start()
        else:
            self.query_one(RunsTable).focus()

    def focus_selector(self) -> str:
        """The widget that takes the keys when the pane is shown: the trials in the sweep view, else the runs."""
        return "#trials" if self.query_one(SweepView).display else "#runs"

    def show_run(self, run_id: str) -> None:
        """Back to the runs, watching ``run_id`` (a sweep's trial, say)."""
        self.query_one(SweepView).display = False
        self.query_one("#runs-view").display = True
        table = self.query_one(RunsTable)
        table.focus()
        if run_id in {str(k.value) for k in table.rows}:
            table.select_run(run_id)
        self.watch_run(run_id)

    def action_evaluate(self) -> None:
        """Open the Eval pane's new-eval dialog with this run's adapter and checkpoints ticked."""
        if self.run_id is None:
            self.notify("Choose a run first (↑ ↓).", timeout=3)
            return
        from screens.eval import EvalPane

        self.app.action_pane("eval")
        self.app.call_after_refresh(self.app.query_one(EvalPane).new_eval, self.run_id)

    def action_copy_path(self) -> None:
        run = self._run()
        if run is not None:
            self.app.copy_to_clipboard(str(run.path))
            self.notify(f"Copied {run.path}")
