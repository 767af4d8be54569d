"""The Train pane's sweep view: the workspace's sweeps, the trials of the one selected, the best
so far, the objective against trial number and Optuna's parameter importances.

A thread worker reads the sweeps' files (the driver's ``trials.json`` snapshot, never the
study itself) every second and posts a snapshot only when it changed; importances, which
open the study, are computed in the same worker once per change of the completed trials.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from screens.widgets.charts import ObjectiveChart
from screens.widgets.runs_table import STATE_STYLE
from workbench.errors import WorkbenchError
from workbench.fmt import age, duration
from workbench.sweep import control
from workbench.sweep.control import SweepSnapshot, SweepSummary
from workbench.sweep.store import SweepDir, run_of
from workbench.workspace import Workspace

POLL = 1.0  # seconds between reads of the sweeps' files

TRIAL_STYLE = {
    "COMPLETE": "cyan",
    "RUNNING": "bold green",
    "pruning": "yellow",
    "PRUNED": "yellow",
    "FAIL": "bold red",
    "WAITING": "dim",
}


@dataclass
class SweepsRead(Message):
    sweeps: list[SweepSummary]
    snapshot: SweepSnapshot | None


def _param(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class SweepView(Vertical):
    """Sweeps and their trials; ``o`` opens the best trial's config in the Config pane."""

    BINDINGS = [
        Binding(
            "o",
            "open_best",
            "Best config",
            id="sweep.open_best",
            tooltip="Open the best trial's config in the Config pane (unsaved)",
        ),
        Binding("s", "stop", "Stop sweep", id="sweep.stop", tooltip="Stop the driver and its trials gracefully"),
        Binding("r", "resume", "Resume sweep", id="sweep.resume", tooltip="Start the driver again; trials go on"),
        Binding("tab", "switch_table", "Sweeps ↔ trials", id="sweep.tab", show=False),
    ]

    def __init__(self, workspace: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.sweep_id: str | None = None
        self.last: SweepSnapshot | None = None
        self._wake = threading.Event()
        self._reader = None

    def compose(self) -> ComposeResult:
        yield Static("No sweeps yet: `workbench sweep start SPEC` starts one.", id="sweep-header")
        with Horizontal(id="sweep-tables"):
            with Vertical(id="sweeps-col"):
                yield Static("[b]Sweeps[/b]", classes="section")
                yield DataTable(id="sweeps", cursor_type="row")
            with Vertical(id="trials-col"):
                yield Static("[b]Trials[/b]", classes="section", id="trials-title")
                yield DataTable(id="trials", cursor_type="row")
        with Horizontal(id="sweep-bottom"):
            yield ObjectiveChart(id="objective")
            yield Static("", id="importances")

    def on_mount(self) -> None:
        table = self.query_one("#sweeps", DataTable)
        for name in ("sweep", "state", "trials", "best"):
            table.add_column(name, key=name)

    def start(self) -> None:
        """Begin reading (the view was shown); idempotent."""
        self._wake.set()
        if self._reader is None or self._reader.is_finished:
            self._reader = self.read_sweeps()
        self.query_one("#trials", DataTable).focus()

    @work(thread=True, exclusive=True, group="sweeps", exit_on_error=False)
    def read_sweeps(self) -> None:
        worker = get_current_worker()
        seen: tuple | None = None
        weights_for: tuple | None = None
        weights: dict[str, float] | None = None
        while not worker.is_cancelled:
            self._wake.clear()
            if not self.display:
                self._wake.wait(POLL)
                continue
            sweeps = control.list_sweeps(self.workspace)
            wanted = self.sweep_id if self.sweep_id in {s.id for s in sweeps} else (sweeps[0].id if sweeps else None)
            snap = None
            if wanted is not None:
                sweep = SweepDir(Workspace(self.workspace).sweeps_dir / wanted)
                snap = control.snapshot(sweep)
                complete = (wanted, tuple(t.number for t in snap.trials if t.state == "COMPLETE"))
                if complete != weights_for:
                    weights_for = complete
                    weights = control.snapshot(sweep, importances=True).importances if len(complete[1]) >= 2 else None
                snap.importances = weights
            key = (
                [(s.id, s.state, s.done, s.best_value) for s in sweeps],
                None if snap is None else [t.to_dict() for t in snap.trials],
                None if snap is None else (snap.summary.state, snap.importances),
                # while a trial runs, its time column moves: a redraw every 2 s
                int(time.time() // 2) if snap is not None and snap.summary.running else None,
            )
            if key != seen:
                seen = key
                self.post_message(SweepsRead(sweeps, snap))
            self._wake.wait(POLL)

    def on_sweeps_read(self, message: SweepsRead) -> None:
        self._render_sweeps(message.sweeps)
        snap = message.snapshot
        if snap is not None and self.sweep_id is None:
            self.sweep_id = snap.summary.id
        if snap is not None and snap.summary.id != self.sweep_id:
            return  # the cursor moved on meanwhile
        self.last = snap
        self._render_header(snap)
        self._render_trials(snap)
        self.query_one(ObjectiveChart).show(snap)
        self._render_importances(snap)

    # --- rendering ----------------------------------------------------------

    def _render_sweeps(self, sweeps: list[SweepSummary]) -> None:
        table = self.query_one("#sweeps", DataTable)
        rows = {
            s.id: (
                s.name if len(s.name) <= 18 else s.name[:17] + "…",
                Text(s.state, style=STATE_STYLE.get(s.state, "")),
                f"{s.done}/{s.trials}",
                _value(s.best_value),
            )
            for s in sweeps
        }
        if [str(k.value) for k in table.rows] == list(rows):
            for sid, cells in rows.items():
                for col, cell in zip(("sweep", "state", "trials", "best"), cells):
                    table.update_cell(sid, col, cell, update_width=True)
        else:
            table.clear()
            for sid, cells in rows.items():
                table.add_row(*cells, key=sid)
            if self.sweep_id in rows:
                table.move_cursor(row=list(rows).index(self.sweep_id))

    def _render_header(self, snap: SweepSnapshot | None) -> None:
        header = self.query_one("#sweep-header", Static)
        if snap is None:
            header.update("No sweeps yet: `workbench sweep start SPEC` starts one (see sample_data/sweeps/).")
            return
        s = snap.summary
        first = (
            f"[b]{s.id}[/b] [b]{s.state}[/b] · {s.done}/{s.trials} trials done, {s.running} running"
            f"{f', {s.paused} paused (r resumes)' if s.paused else ''}"
            f" · {s.pruned} pruned · {s.failed} failed · {s.direction} {s.metric} · {age(time.time() - s.created)} old"
        )
        if s.best_trial is not None:
            second = (
                f"[green]best: trial {s.best_trial} · {s.metric} {_value(s.best_value)} · run {s.best_run}[/]"
                "  ([b]o[/b] opens its config)"
            )
        elif s.error:
            second = f"[red]{s.error}[/]"
        else:
            second = "no trial has completed yet"
        header.update(first + "\n" + second, layout=False)

    def _render_trials(self, snap: SweepSnapshot | None) -> None:
        table = self.query_one("#trials", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        if snap is None:
            return
        heads = [p.split(".")[-1] for p in snap.params]
        for name, key in [("#", "n"), ("state", "state"), *zip(heads, snap.params)]:
            table.add_column(name, key=key)
        for name, key in (("objective", "value"), ("pruned@", "pruned"), ("time", "time"), ("run / why", "run")):
            table.add_column(name, key=key)
        best = snap.summary.best_trial
        for t in snap.trials:
            note = t.error or t.run_id or ""
            table.add_row(
                Text(f"{'★' if t.number == best else ' '}{t.number}", style="bold green" if t.number == best else ""),
                Text(control.trial_state(t, snap.summary).lower(), style=TRIAL_STYLE.get(t.state, "")),
                *(_param(t.params.get(p, "-")) for p in snap.params),
                _value(t.value),
                "-" if t.pruned_at is None else str(t.pruned_at),
                duration(t.duration_s) if not snap.summary.paused or t.ended else "-",
                note if len(note) <= 60 else note[:59] + "…",
                key=str(t.number),
            )
        if snap.trials:
            table.move_cursor(row=min(cursor, len(snap.trials) - 1))
        self.query_one("#trials-title", Static).update(
            f"[b]Trials[/b] of {snap.summary.name}: ★ best · [b]enter[/b] watch its run"
        )

    def _render_importances(self, snap: SweepSnapshot | None) -> None:
        box = self.query_one("#importances", Static)
        if snap is None or not snap.importances:
            done = 0 if snap is None else sum(t.state == "COMPLETE" for t in snap.trials)
            box.update(f"[b]Parameter importances[/b]\n\n[dim]after two complete trials ({done} so far)[/]")
            return
        lines = ["[b]Parameter importances[/b] (optuna)", ""]
        for name, share in sorted(snap.importances.items(), key=lambda kv: -kv[1]):
            lines.append(f"{name.split('.')[-1][:14]:<14} {share:4.2f} [cyan]{'█' * max(1, round(share * 12))}[/]")
        box.update("\n".join(lines))

    # --- actions ------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#sweeps")
    def _sweep_highlighted(self, event: DataTable.RowHighlighted) -> None:
        sweep_id = str(event.row_key.value)
        if sweep_id != self.sweep_id:
            self.sweep_id = sweep_id
            self._wake.set()

    def _sweep(self) -> SweepDir | None:
        if self.sweep_id is None:
            self.notify("No sweep selected.", timeout=3)
            return None
        return SweepDir(Workspace(self.workspace).sweeps_dir / self.sweep_id)

    def action_switch_table(self) -> None:
        sweeps, trials = self.query_one("#sweeps", DataTable), self.query_one("#trials", DataTable)
        (trials if sweeps.has_focus else sweeps).focus()

    def action_open_best(self) -> None:
        sweep = self._sweep()
        if sweep is None:
            return
        found = control.best_config_text(sweep)
        if found is None:
            self.notify("No trial has completed yet: there is no best config.", timeout=4)
            return
        from screens.config import ConfigPane
        from workbench.config.schema import parse_config

        text, path = found
        try:
            config = parse_config(text, source=str(path), base_dir=path.parent)
        except WorkbenchError as exc:
            self.notify(str(exc), title="Cannot open", severity="error", timeout=10)
            return
        pane = self.app.query_one(ConfigPane)
        pane.ensure_loaded()  # its first showing would load the workspace's config over this one

        def show(yes: bool | None = True) -> None:
            if not yes:
                return
            self.app.action_pane("config")
            # a new, unsaved config: saving never overwrites the run's own record
            pane.set_config(config, path=None, saved="")
            self.notify(f"The best trial's config (run {path.parent.name}), unsaved: ctrl+s saves it.", timeout=6)

        if pane.dirty:
            from screens.modals import ConfirmScreen

            self.app.push_screen(ConfirmScreen("The Config pane has unsaved changes. Replace them?"), show)
        else:
            show()

    @on(DataTable.RowSelected, "#sweeps")
    def _sweep_selected(self, _: DataTable.RowSelected) -> None:
        self.query_one("#trials", DataTable).focus()

    @on(DataTable.RowSelected, "#trials")
    def _trial_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a trial: watch its run in the runs view."""
        if self.last is None:
            return
        trial = next((t for t in self.last.trials if str(t.number) == str(event.row_key.value)), None)
        if trial is None:
            return
        run = run_of(trial, Workspace(self.workspace).runs_dir)
        if run is None:
            where = f"sweep {trial.sweep_id} on another machine ran it" if trial.run_id else trial.error or "no run"
            self.notify(f"Trial {trial.number} has no run in this workspace ({where}).", timeout=5)
            return
        from screens.train import TrainPane

        self.app.query_one(TrainPane).show_run(run.id)

    def action_stop(self) -> None:
        sweep = self._sweep()
        if sweep is None:
            return
        from screens.modals import ConfirmScreen

        def done(yes: bool | None) -> None:
            if yes:
                try:
                    control.stop(sweep)
                    self.notify(f"Stopping {sweep.id}: its trials save a checkpoint; r resumes.")
                except WorkbenchError as exc:
                    self.notify(str(exc), severity="warning")
                self._wake.set()

        self.app.push_screen(
            ConfirmScreen(f"Stop sweep {sweep.id}? Running trials stop gracefully and resume with it."), done
        )

    def action_resume(self) -> None:
        sweep = self._sweep()
        if sweep is None:
            return
        try:
            control.resume(sweep)
        except WorkbenchError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.notify(f"Resumed {sweep.id}.")
        self._wake.set()
