"""The runs list: one row per run, updated in place so the cursor stays put."""

from __future__ import annotations

import time

from textual.widgets import DataTable

from workbench.fmt import age
from workbench.train.runner import RunSummary

STATE_STYLE = {
    "running": "bold green",
    "starting": "green",
    "stopping": "yellow",
    "completed": "cyan",
    "stopped": "yellow",
    "failed": "bold red",
    "diverged": "bold red",
    "lost": "bold magenta",
}


NAME_WIDTH = 16


def _labels(runs: list[RunSummary]) -> dict[str, str]:
    """Short names for the list: the run's name, with its start time when several runs share it.

    The full id (name-date-time) is in the pane's header; here it would push step, best
    and age out of a narrow column.
    """
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    out = {}
    for r in runs:
        label = r.name or r.id
        if counts.get(r.name, 0) > 1:
            label = label[: NAME_WIDTH - 6] + time.strftime(" %H:%M", time.localtime(r.created))
        out[r.id] = label if len(label) <= NAME_WIDTH else label[: NAME_WIDTH - 1] + "…"
    return out


class RunsTable(DataTable):
    """Runs with state, step/total, best eval loss and age; keys are run ids."""

    DEFAULT_CSS = """
    RunsTable { height: 1fr; overflow-x: auto; scrollbar-size-horizontal: 1; }
    """

    def on_mount(self) -> None:
        self._shown: dict[str, tuple] = {}  # the cells last written, per run id
        self.cursor_type = "row"
        self.zebra_stripes = False
        self.add_column("run", key="run")
        self.add_column("state", key="state")
        self.add_column("step", key="step")
        self.add_column("best", key="best")
        self.add_column("age", key="age")

    def set_runs(self, runs: list[RunSummary], compare: set[str]) -> None:
        """Show runs; rows are updated in place when the set of runs is unchanged."""
        from rich.text import Text

        now = time.time()
        wanted = [r.id for r in runs]
        current = [str(k.value) for k in self.rows]
        rows = {}
        labels = _labels(runs)
        for r in runs:
            mark = "+" if r.id in compare else " "
            verdict = "!" if r.verdict and r.verdict.get("kind") not in (None, "ok") else " "
            rows[r.id] = (
                f"{mark}{labels[r.id]}",
                Text(f"{r.state}{verdict}", style=STATE_STYLE.get(r.state, "")),
                f"{r.step}/{r.total_steps or '?'}",
                f"{r.best_eval_loss:.3f}" if r.best_eval_loss is not None else "-",
                age(now - r.created),
            )
        if wanted == current:
            for run_id, cells in rows.items():
                old = self._shown.get(run_id, ())
                for i, (column, value) in enumerate(zip(("run", "state", "step", "best", "age"), cells)):
                    if i >= len(old) or old[i] != value:  # only what changed: each update costs a repaint
                        self.update_cell(run_id, column, value)
            self._shown = rows
            return
        self._shown = rows
        selected = current[self.cursor_row] if current and 0 <= self.cursor_row < len(current) else None
        self.clear()
        for run_id in wanted:
            self.add_row(*rows[run_id], key=run_id)
        if selected in wanted:
            self.move_cursor(row=wanted.index(selected))

    def select_run(self, run_id: str) -> bool:
        ids = [str(k.value) for k in self.rows]
        if run_id in ids:
            self.move_cursor(row=ids.index(run_id))
            return True
        return False

    @property
    def selected_id(self) -> str | None:
        ids = [str(k.value) for k in self.rows]
        return ids[self.cursor_row] if ids and 0 <= self.cursor_row < len(ids) else None
