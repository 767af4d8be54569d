"""The Eval pane: base vs adapters and checkpoints, side by side, scored, judged and rated by keyboard.

Generation runs in a detached process (workbench.eval.runner), like a
training run: the pane starts it and follows its files. Reading and scoring
an eval, the judge and MiniLM run in workers; the UI thread only renders.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from screens.eval_jobs import EvalJobs
from screens.eval_screens import CellScreen, NewEvalScreen
from screens.modals import ChoiceScreen, PromptScreen
from screens.widgets.eval_cells import (
    cell_text,
    header_text,
    metric_label,
    one_line,
    pair_line,
    short_labels,
    summary_parts,
)
from screens.widgets.lazy import LoadsWhenShown
from workbench.errors import WorkbenchError
from workbench.eval import runner
from workbench.eval.metrics import METRICS
from workbench.eval.ratings import blind_label, blind_order
from workbench.eval.results import FILTERS, SORTS, Results, Row
from workbench.eval.store import EvalDir, list_evals

LIVE = ("created", "starting", "running", "stopping")
PROMPT_W = 26
SUMMARY_METRICS = (
    "schema_valid",
    "exact_match",
    "token_f1",
    "rouge_l",
    "similarity",
    "refusal",
    "judge",
    "human",
    "case",
)


class Loaded(Message):
    def __init__(self, results: Results | None, error: str = "") -> None:
        super().__init__()
        self.results, self.error = results, error


class Refreshed(Message):
    """The eval's files changed and the results were re-read."""


class EvalPane(EvalJobs, LoadsWhenShown, Vertical):
    """An eval's examples x models grid, its summary, and the keys to judge, rate and report."""

    BINDINGS = [
        Binding("n", "new", "New eval", id="eval.new", tooltip="Compare models on the test split or a suite"),
        Binding("o", "open", "Open", id="eval.open", tooltip="Open another eval of the workspace"),
        Binding(
            "enter",
            "open_cell",
            "Answer",
            id="eval.cell",
            tooltip="The full answer beside the reference, with a word diff",
        ),
        Binding(
            "r",
            "rating_mode",
            "Rate",
            id="eval.rating",
            tooltip="Rating mode: 1-5 rate the highlighted answer, 0 clears, a/b/t pick A/B; Esc leaves it",
        ),
        Binding(
            "1",
            "rate(1)",
            "Rate",
            key_display="1-5",
            id="eval.rate1",
            tooltip="Rate the highlighted answer 1 (bad) to 5 (good) (in rating mode, r)",
        ),
        *(
            Binding(
                str(n),
                f"rate({n})",
                f"Rate {n}",
                id=f"eval.rate{n}",
                show=False,
                tooltip=f"Rate the highlighted answer {n}",
            )
            for n in range(2, 6)
        ),
        Binding(
            "0", "rate_clear", "Clear rating", id="eval.clear", show=False, tooltip="Remove your rating of this answer"
        ),
        Binding("a", "choose('a')", "A better", id="eval.a", show=False, tooltip="The first answer column is better"),
        Binding("b", "choose('b')", "B better", id="eval.b", show=False, tooltip="The second answer column is better"),
        Binding("t", "choose('tie')", "Tie", id="eval.tie", show=False, tooltip="The first two answers are as good"),
        Binding(
            "B",
            "blind",
            "Blind",
            id="eval.blind",
            tooltip="Hide which model wrote what; shuffle the columns per example",
        ),
        Binding(
            "f",
            "filter",
            "Filter",
            id="eval.filter",
            tooltip="Regressions, judge/human disagreements, failures, unrated",
        ),
        Binding(
            "s",
            "sort",
            "Sort",
            id="eval.sort",
            show=False,
            tooltip="Example order, worst score first, worst change against the base",
        ),
        Binding(
            "slash",
            "search",
            "Search",
            id="eval.search",
            show=False,
            tooltip="Find text in prompts, references, answers and notes",
        ),
        Binding(
            "M",
            "main_metric",
            "Main metric",
            id="eval.metric",
            show=False,
            tooltip="Which metric the badges, filters and sorting use",
        ),
        Binding("N", "note", "Note", id="eval.note", show=False, tooltip="A note on this example, kept with the eval"),
        Binding(
            "j", "judge", "Judge", id="eval.judge", tooltip="LLM judge grades every answer against the rubric (litellm)"
        ),
        Binding(
            "J",
            "judge_pairs",
            "A/B judge",
            id="eval.pairs",
            show=False,
            tooltip="LLM judge compares the first two models, both orders",
        ),
        Binding("e", "rubric", "Rubric", id="eval.rubric", show=False, tooltip="Edit the judge's rubric and scale"),
        Binding(
            "m",
            "similarity",
            "MiniLM",
            id="eval.sim",
            show=False,
            tooltip="Semantic similarity to the reference (MiniLM)",
        ),
        Binding(
            "c",
            "curve",
            "Checkpoints",
            id="eval.curve",
            tooltip="A run's checkpoints scored on the task, beside its loss",
        ),
        Binding("R", "report", "Report", id="eval.report", tooltip="Write report.md, report.json and report.html"),
        Binding(
            "escape",
            "leave_grid",
            "Leave",
            id="eval.leave",
            show=False,
            tooltip="Leave rating mode; pressed again, leave the grid (F1-F5 always switch panes)",
        ),
        Binding("x", "stop", "Stop", id="eval.stop", show=False, tooltip="Stop generating after the batch in hand"),
        Binding("g", "resume", "Go on", id="eval.resume", show=False, tooltip="Resume a stopped or lost generation"),
    ]

    def __init__(self, workspace: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.ev: EvalDir | None = None
        self.results: Results | None = None
        self.initial_eval: str | None = None
        self.filter = "all"
        self.sort = "order"
        self.search = ""
        self.blind = False
        # Digits rate only in rating mode, entered with r and left with Esc: a digit pressed to
        # switch panes never becomes a rating. Never remembered across sessions.
        self.rating = False
        self.rows: list[Row] = []
        self.orders: list[list[str]] = []  # per shown row: the model keys in column order
        self._busy = ""  # what a worker is doing, for the header
        self._cancel: threading.Event | None = None
        self._refreshing = False
        self.summary_metrics: list[str] = []  # the summary table's metric columns
        self.summarized = False  # the summary on screen matches the results (tests and snapshots wait for it)

    def compose(self) -> ComposeResult:
        yield Static("Looking for evals…", id="eval-header")
        yield Static("", id="eval-summary")
        yield DataTable(id="eval-grid", cursor_type="cell", zebra_stripes=True)
        with VerticalScroll(id="eval-detail-box"):
            yield Static("", id="eval-detail")

    # --- opening ---------------------------------------------------------------

    def first_shown(self) -> None:
        self.set_interval(1.0, self._poll)
        self._find_first()

    @work(thread=True, exclusive=True, group="eval-load", exit_on_error=False)
    def _find_first(self) -> None:
        evals = list_evals(self.workspace)
        wanted = next((e for e in evals if e.id == self.initial_eval), evals[0] if evals else None)
        if wanted is None:
            self.app.call_from_thread(self._show_empty)
            return
        self._load_in_thread(EvalDir(wanted.path))

    def _show_empty(self) -> None:
        self.query_one("#eval-header", Static).update(
            Text.from_markup(
                "[b]No evals yet.[/b] Press [b]n[/b] to compare the base model with your runs' adapters and checkpoints "
                "on the test split (or a regression / red-team suite)."
            )
        )
        self.query_one("#eval-detail", Static).update(
            Text(
                "An eval generates each model's answer to each example in the background (it survives closing the app), "
                "scores them (exact match, F1, ROUGE-L, JSON/schema validity, refusals) with confidence intervals, "
                "and lets you rate answers blind by keyboard and ask an LLM judge.",
                style="dim",
            )
        )

    def open_eval(self, ev: EvalDir) -> None:
        self._busy = "reading the eval…"
        self._render_header()
        self._load(ev)

    @work(thread=True, exclusive=True, group="eval-load", exit_on_error=False)
    def _load(self, ev: EvalDir) -> None:
        self._load_in_thread(ev)

    def _load_in_thread(self, ev: EvalDir) -> None:
        try:
            self.post_message(Loaded(Results(ev)))
        except (WorkbenchError, OSError, ValueError) as exc:
            self.post_message(Loaded(None, f"{ev.path}: {exc}"))

    def on_loaded(self, message: Loaded) -> None:
        self._busy = ""
        if message.results is None:
            self.notify(message.error, title="Cannot open the eval", severity="error", timeout=12)
            self._render_header()
            return
        self.results, self.ev = message.results, message.results.ev
        self.app.remember(last_eval=self.ev.id) if hasattr(self.app, "remember") else None
        self.rebuild(keep=False)

    # --- following a running generation ------------------------------------------

    def _poll(self) -> None:
        if self.results is None or self._refreshing or not self.display:
            return
        self._refreshing = True
        self._refresh_results(self.results)

    @work(thread=True, exclusive=True, group="eval-refresh", exit_on_error=False)
    def _refresh_results(self, results: Results, force: bool = False) -> None:
        try:
            changed = results.refresh(force=force)
        finally:
            self._refreshing = False
        if changed:
            self.post_message(Refreshed())
        else:
            self.app.call_from_thread(self._render_header)

    def on_refreshed(self, _message: Refreshed) -> None:
        """New answers (a generation running): redraw their rows only, unless the view itself changed."""
        res = self.results
        if res is None:
            return
        view = res.view(self.filter, self.search, self.sort, self._sort_model())
        if [r.id for r in view] != [r.id for r in self.rows] or res.changed_ids is None:
            self.rebuild()
            return
        self.rows = view
        for row in view:
            if row.id in res.changed_ids:
                self._redraw_row(row)
        self._render_summary()

    # --- drawing -----------------------------------------------------------------

    def rebuild(self, keep: bool = True) -> None:
        """Re-draw the summary and the grid, keeping the cursor on the same example and column."""
        res = self.results
        if res is None:
            return
        table = self.query_one("#eval-grid", DataTable)
        current = self._current_row()
        column = table.cursor_column if keep else 2
        self.rows = res.view(self.filter, self.search, self.sort, self._sort_model())
        keys = res.keys
        self.orders = [blind_order(keys, r.id, res.ev.id) if self.blind else list(keys) for r in self.rows]
        width = max(60, self._width())
        self._built_width = width
        prompt_w = PROMPT_W if width >= 110 else 16
        # Each column has one cell of padding each side; two more for the vertical scrollbar.
        id_w = min(16, max([4, *(len(r.id) for r in self.rows)]))  # suite cases have names for ids
        answer_w = max(16, (width - id_w - prompt_w - 2 * (len(keys) + 2) - 2) // max(1, len(keys)))
        table.clear(columns=True)
        table.add_column("#", width=id_w, key="n")
        table.add_column("prompt", width=prompt_w, key="prompt")
        labels = short_labels(res.models)
        for i, key in enumerate(keys):
            label = blind_label(i) if self.blind else labels[key]
            table.add_column(one_line(label, answer_w), width=answer_w, key=f"m{i}")
        for row, order in zip(self.rows, self.orders):
            prompt = (
                Text(one_line(row.prompt, prompt_w)) + "\n" + Text(one_line(row.note, prompt_w), style="italic cyan")
            )
            table.add_row(
                Text(one_line(row.id, id_w), style="dim"),
                prompt,
                *(cell_text(res, row, row.cells[k], answer_w, blind=self.blind) for k in order),
                height=2,
                key=row.id,
            )
        if self.rows:
            index = next((i for i, r in enumerate(self.rows) if current and r.id == current.id), 0)
            table.move_cursor(row=index, column=max(2, min(column, 1 + len(keys))), animate=False)
        self._render_header()
        self._render_summary()
        self._render_detail()
        self.refresh_bindings()  # the rating keys come alive once answers are on screen

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self) -> None:
        if self.rating and not self.query_one("#eval-grid").has_focus:
            self._set_rating(False)  # rating mode belongs to the grid: leaving it ends the mode
        self.refresh_bindings()

    def _width(self) -> int:
        """The pane's width, or the app's before the first layout (the pane fills the width)."""
        return self.size.width or self.app.size.width

    def on_resize(self) -> None:
        if self.results is not None and abs(self.size.width - getattr(self, "_built_width", 0)) > 4:
            self.rebuild()

    def _sort_model(self) -> str | None:
        res = self.results
        if res is None or not res.keys:
            return None
        model = self._current_model()
        return model if model and model != res.base else next((k for k in res.keys if k != res.base), res.keys[0])

    def _render_header(self) -> None:
        header = self.query_one("#eval-header", Static)
        res, ev = self.results, self.ev
        if res is None or ev is None:
            if self._busy:
                header.update(self._busy)
            return
        line = header_text(
            res,
            ev.status(),
            len(self.rows),
            self.filter,
            self.sort,
            self.search,
            self.blind,
            self._busy,
            rating=self.rating,
        )
        header.update(line, layout=False)  # a fixed two lines: no need to lay out the whole pane again

    def _render_summary(self) -> None:
        """Show the summary: at once in blind mode; otherwise computed in a worker (bootstrap takes a while)."""
        res = self.results
        box = self.query_one("#eval-summary", Static)
        if res is None:
            box.update("")
            return
        if self.blind:
            self.summarized = True
            box.update(
                Text(
                    "Blind mode: the summary is hidden so it cannot tell you which column is which. "
                    "Rate with 1-5 (and a/b/t between the first two columns); B shows everything again.",
                    style="magenta",
                )
            )
            return
        self.summarized = False
        self._summarize(res, [m for m in SUMMARY_METRICS if res.has_metric(m)])

    @work(thread=True, exclusive=True, group="eval-summary", exit_on_error=False)
    def _summarize(self, res: Results, metrics: list[str]) -> None:
        summaries = res.summaries([m for m in metrics if m in METRICS])
        agreements = res.agreement() if res.verdicts.single else {}
        self.app.call_from_thread(self._show_summary, res, metrics, summaries, agreements)

    def _show_summary(self, res: Results, metrics: list[str], summaries: list[Any], agreements: dict[str, Any]) -> None:
        if res is not self.results or self.blind:
            return
        box = self.query_one("#eval-summary", Static)
        self.summary_metrics = metrics
        self.summarized = True
        parts = summary_parts(res, metrics, summaries, agreements, self._width())
        box.update(Group(*parts))

    def _current_row(self) -> Row | None:
        table = self.query_one("#eval-grid", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _current_model(self) -> str | None:
        table = self.query_one("#eval-grid", DataTable)
        row = table.cursor_row
        if not self.rows or not (0 <= row < len(self.orders)):
            return None
        column = table.cursor_column - 2
        order = self.orders[row]
        return order[column] if 0 <= column < len(order) else None

    def _render_detail(self) -> None:
        box = self.query_one("#eval-detail", Static)
        res, row, model = self.results, self._current_row(), self._current_model()
        if res is None or row is None:
            box.update(Text("No example matches the filter." if res else "", style="dim"))
            return
        text = Text.assemble(("prompt ", "bold"), one_line(row.prompt, 400), "\n")
        if row.reference is not None:
            text += Text.assemble(("reference ", "bold"), (one_line(row.reference, 400), "green"), "\n")
        if model is None:
            text += Text("← → move to an answer; Enter opens it.", style="dim")
        else:
            cell = row.cells[model]
            name = (
                blind_label(self.orders[self._row_index()].index(model))
                if self.blind
                else next(m.label for m in res.models if m.key == model)
            )
            text += Text.assemble((f"{name} ", "bold"), one_line(cell.output or "(not generated yet)", 400))
            if not self.blind:
                if cell.case is not None and not cell.case.passed:
                    text += Text("\n✖ " + "; ".join(cell.case.failures), style="red")
                if cell.verdict is not None:
                    text += Text(
                        f"\njudge {cell.verdict.score if cell.verdict.score is not None else '?'}: "
                        f"{one_line(cell.verdict.reasons, 300)}",
                        style="dim",
                    )
        if self.rows:
            text += pair_line(res, row, self.orders[self._row_index()], self.blind)
        if row.note:
            text += Text(f"\nnote: {row.note}", style="italic cyan")
        box.update(text)

    def _row_index(self) -> int:
        return self.query_one("#eval-grid", DataTable).cursor_row

    @on(DataTable.CellHighlighted)
    def _highlighted(self, _event: DataTable.CellHighlighted) -> None:
        self._render_detail()

    @on(DataTable.CellSelected)
    def _selected(self, _event: DataTable.CellSelected) -> None:
        self.action_open_cell()

    # --- rating ----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Digits rate only in rating mode, on the grid of an eval with answers; otherwise they switch panes."""
        on_grid = self.results is not None and bool(self.rows) and self.query_one("#eval-grid").has_focus
        if action in ("rate", "rate_clear", "choose"):
            return self.rating and on_grid
        if action == "rating_mode":
            return on_grid and not self.rating
        return True

    def action_rating_mode(self) -> None:
        self._set_rating(True)
        self.notify("Rating mode: 1-5 rate, 0 clears, a/b/t pick A/B. Esc leaves it.", timeout=3)

    def _set_rating(self, on: bool) -> None:
        if self.rating == on:
            return
        self.rating = on
        self.set_class(on, "-rating")
        self._render_header()
        self.refresh_bindings()

    def action_leave_grid(self) -> None:
        if self.rating:
            self._set_rating(False)
            self.notify("Rating mode off: 1-4 switch panes again.", timeout=3)
            return
        self.screen.set_focus(None)
        self.notify("1-4 switch panes now; Tab goes back to the grid.", timeout=3)

    def _answer(self) -> tuple[Row, str] | None:
        row, model = self._current_row(), self._current_model()
        if row is None or self.results is None:
            return None
        if model is None:
            self.notify("Move to an answer column first (→).", timeout=3)
            return None
        return row, model

    def action_rate(self, score: int | None) -> None:
        found = self._answer()
        if found is None or self.results is None:
            return
        row, model = found
        self.results.ratings.score(row.id, model, score)
        row.cells[model].human = score  # the grid's rows are the results' own: no need to reload every rating
        self._redraw_row(row)

    def action_rate_clear(self) -> None:
        self.action_rate(None)

    def action_choose(self, choice: str) -> None:
        row = self._current_row()
        res = self.results
        if row is None or res is None:
            return
        if len(res.keys) < 2:
            self.notify("A/B needs two models in the eval.", timeout=3)
            return
        order = self.orders[self._row_index()]
        res.ratings.choose(row.id, order[0], order[1], choice)
        self._redraw_row(row)
        shown = {"a": "the first answer", "b": "the second answer", "tie": "a tie"}[choice]
        self.notify(f"Example {row.id}: {shown}", timeout=2)

    def _redraw_row(self, row: Row) -> None:
        res = self.results
        assert res is not None
        table = self.query_one("#eval-grid", DataTable)
        index = self.rows.index(row)
        width = table.columns[table.coordinate_to_cell_key((0, 2)).column_key].width if len(table.columns) > 2 else 20
        for i, key in enumerate(self.orders[index]):
            table.update_cell(row.id, f"m{i}", cell_text(res, row, row.cells[key], width, blind=self.blind))
        prompt_w = table.columns[table.coordinate_to_cell_key((0, 1)).column_key].width
        prompt = Text(one_line(row.prompt, prompt_w)) + "\n" + Text(one_line(row.note, prompt_w), style="italic cyan")
        table.update_cell(row.id, "prompt", prompt)
        self._render_header()
        self._render_detail()

    def action_note(self) -> None:
        row = self._current_row()
        if row is None or self.results is None:
            return
        res = self.results

        def done(value: str | None) -> None:
            if value is not None:
                res.ratings.note(row.id, value)
                res.reload_ratings()
                self._redraw_row(row)

        self.app.push_screen(PromptScreen(f"Note on example {row.id}", row.note, "what you noticed"), done)

    # --- viewing -----------------------------------------------------------------

    def action_blind(self) -> None:
        self.blind = not self.blind
        self.notify(
            "Blind: model names and scores hidden, columns shuffled per example" if self.blind else "Blind mode off",
            timeout=3,
        )
        self.rebuild()

    def action_filter(self) -> None:
        names = list(FILTERS)
        self.filter = names[(names.index(self.filter) + 1) % len(names)]
        self.notify(f"{self.filter}: {FILTERS[self.filter]}", timeout=3)
        self.rebuild()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        if self.results is not None and self.sort != "order":
            self.notify(
                f"sorted by {metric_label(self.results.primary)} of {self._sort_model()}, worst first", timeout=3
            )
        self.rebuild()

    def action_search(self) -> None:
        def done(value: str | None) -> None:
            if value is not None:
                self.search = value.strip()
                self.rebuild()

        self.app.push_screen(
            PromptScreen(
                "Search prompts, references, answers and notes",
                self.search,
                help_text="Empty shows every example again.",
            ),
            done,
        )

    def action_main_metric(self) -> None:
        res = self.results
        if res is None:
            return
        options = [
            m
            for m in (
                "case",
                "schema_valid",
                "json_valid",
                "exact_match",
                "token_f1",
                "rouge_l",
                "similarity",
                "judge",
                "human",
            )
            if m in ("judge", "human") or self.results.has_metric(m) or m == "json_valid"
        ]
        res.primary = options[(options.index(res.primary) + 1) % len(options)] if res.primary in options else options[0]
        self.notify(f"main metric: {metric_label(res.primary)}", timeout=2)
        self.rebuild()

    def action_open_cell(self) -> None:
        found = self._answer()
        if found is None or self.results is None:
            return
        _row, model = found
        index = self._row_index()
        self.app.push_screen(
            CellScreen(self.results, self.rows, index, self.orders, model, self.blind), lambda _=None: self.rebuild()
        )

    # --- generation --------------------------------------------------------------

    def action_new(self) -> None:
        self.new_eval()

    def new_eval(self, run_id: str | None = None) -> None:
        """The new-eval dialog; with run_id, that run's adapter and checkpoints come ticked beside the base."""

        def done(ev: EvalDir | None) -> None:
            if ev is not None:
                self.notify(f"Generating in the background: {ev.id}. It goes on if you close the app.", timeout=6)
                self.open_eval(ev)

        self.app.push_screen(NewEvalScreen(self.workspace, run_id), done)

    def action_open(self) -> None:
        evals = list_evals(self.workspace)
        options = [(f"{e.id}  {e.state} {e.done}/{e.total}  " + ", ".join(e.labels), e.path) for e in evals]

        def done(value: str | None) -> None:
            if value:
                self.open_eval(EvalDir(value))

        self.app.push_screen(
            ChoiceScreen("Open an eval", options, help_text="" if options else "No evals yet: n makes one."), done
        )

    def action_stop(self) -> None:
        if self.ev is None:
            return
        try:
            said = runner.stop(self.ev)
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.notify(f"{self.ev.id}: {said}", timeout=4)

    def action_resume(self) -> None:
        if self.ev is None:
            return
        try:
            runner.resume(self.ev)
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.notify(f"{self.ev.id}: going on where it stopped", timeout=4)
