"""The Eval pane's dialogs: a new eval, one answer in full, the judge's rubric, checkpoint curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, SelectionList, Static, TextArea
from textual_plotext import PlotextPlot

from screens.eval_endpoint import EndpointScreen
from screens.widgets.eval_cells import diff_text, metric_label, value_text
from workbench.errors import WorkbenchError
from workbench.eval import runner
from workbench.eval.candidates import default_dataset, default_models, list_candidates
from workbench.eval.curves import Curve
from workbench.eval.judge import Rubric
from workbench.eval.metrics import METRICS
from workbench.eval.plan import create_from_plan, parse_selection, plan_eval
from workbench.eval.ratings import blind_label
from workbench.eval.results import Results, Row
from workbench.eval.store import GenerationSettings, ModelRef
from workbench.eval.worddiff import similarity, word_diff
from workbench.workspace import Workspace

DIFF_MIN_SIMILARITY = 0.3
"""Below this share of words in common a word diff is mostly red and green noise: the answer is shown plain."""


def _short(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


class NewEvalScreen(ModalScreen[Any]):
    """Choose models, examples and generation settings; Enter (or Start) creates the eval and starts generating."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "start", "Start"),
        Binding("ctrl+a", "tick_run", "Whole run", tooltip="Tick the highlighted run's adapter and every checkpoint"),
        Binding(
            "ctrl+e",
            "add_endpoint",
            "Add endpoint",
            tooltip="An OpenAI-compatible server (ours, vLLM) or a litellm provider as a candidate",
        ),
    ]

    def __init__(self, workspace: Path, run_id: str | None = None) -> None:
        super().__init__()
        self.workspace = workspace.resolve()
        self.run_id = run_id  # tick this run's adapter and checkpoints

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="eval-new"):
            yield Label("[b]New eval[/b]: each chosen model answers each example, in the background")
            yield Static("Looking for models and datasets…", id="new-note", classes="dialog-help")
            yield Label("Models (Space toggles)")
            yield SelectionList[str](id="new-models")
            yield Label("Examples")
            yield Select[str]([], id="new-data", allow_blank=True, prompt="no dataset (suites only)")
            yield SelectionList[str](id="new-suites")
            with Horizontal(classes="new-row"):
                yield Label("only rows")
                yield Input("", placeholder="all, or 3,5,10-12", id="new-rows", classes="wide")
                yield Label("· when sampling: top p")
                yield Input("1.0", id="new-top-p", type="number")
                yield Label("· seed")
                yield Input("0", id="new-seed", type="integer")
            with Horizontal(classes="new-row"):
                yield Label("at most")
                yield Input("", placeholder="all", id="new-limit", type="integer")
                yield Label("examples · new tokens")
                yield Input("256", id="new-tokens", type="integer")
                yield Label("· batch")
                yield Input("16", id="new-batch", type="integer")
                yield Label("· temperature")
                yield Input("0", id="new-temp", type="number")
            yield Static("", id="new-error")
            with Horizontal(classes="new-row"):
                yield Button("Start (ctrl+s)", id="new-start", variant="primary")
                yield Button("Add endpoint… (ctrl+e)", id="new-endpoint")
                yield Button("Cancel (Esc)", id="new-cancel")

    def on_mount(self) -> None:
        self._discover()

    @work(thread=True, exit_on_error=False)
    def _discover(self) -> None:
        candidates = list_candidates(self.workspace)
        test = default_dataset(self.workspace)
        workspace = Workspace(self.workspace)
        suites = workspace.suites()
        datasets = workspace.datasets()
        self.app.call_from_thread(self._fill, candidates, test, datasets, suites)

    def _fill(self, candidates: list[Any], test: Path | None, datasets: list[Path], suites: list[Path]) -> None:
        self.candidates = {c.key: c for c in candidates}
        chosen = {c.key for c in default_models(candidates)}
        if self.run_id is not None:
            base = next((c.key for c in candidates if c.kind == "base"), None)
            chosen = {c.key for c in candidates if c.run_id == self.run_id} | ({base} if base else set())
        models = self.query_one("#new-models", SelectionList)
        for c in candidates:
            models.add_option((f"{c.label}  [dim]{c.key}[/dim]", c.key, c.key in chosen))
        options = [
            (
                f"{_short(p, self.workspace)}" + ("  (the test split)" if test and p.resolve() == test else ""),
                str(p.resolve()),
            )
            for p in datasets
        ]
        if test is not None and all(v != str(test) for _l, v in options):
            options.insert(0, (f"{_short(test, self.workspace)}  (the test split)", str(test)))
        select = self.query_one("#new-data", Select)
        select.set_options(options)
        if test is not None:
            select.value = str(test)
        elif options:
            select.value = options[0][1]
        suite_list = self.query_one("#new-suites", SelectionList)
        for p in suites:
            suite_list.add_option((f"suite: {_short(p, self.workspace)}", str(p), False))
        suite_list.display = bool(suites)
        runs = sum(1 for c in candidates if c.kind in ("adapter", "checkpoint"))
        served = sum(1 for c in candidates if c.is_endpoint)
        ticked = (
            f"The base model and every checkpoint of {self.run_id} are ticked. "
            if self.run_id
            else "The base model and the newest run's final adapter are ticked. "
        )
        self.query_one("#new-note", Static).update(
            ticked
            + "ctrl+a ticks a whole run. "
            + (
                f"{runs} adapter(s) and checkpoint(s) found in runs/."
                if runs
                else "No trained adapters yet: train one in the Train pane, or evaluate the base alone."
            )
            + " A schema.json beside the dataset is checked on every answer."
            + (f" {served} model(s) of running servers are listed." if served else "")
            + " ctrl+e adds any OpenAI-compatible endpoint."
        )
        models.focus()

    def action_tick_run(self) -> None:
        """Tick the highlighted model's run: its final adapter and every checkpoint."""
        models = self.query_one("#new-models", SelectionList)
        index = models.highlighted
        if index is None:
            return
        run_id = self.candidates[models.get_option_at_index(index).value].run_id
        if run_id is None:
            return
        for key, ref in self.candidates.items():
            if ref.run_id == run_id:
                models.select(key)

    @on(Button.Pressed, "#new-endpoint")
    def action_add_endpoint(self) -> None:
        """Ask for an endpoint (checked by the dialog); it joins the list, ticked."""

        def added(ref: ModelRef | None) -> None:
            if ref is None:
                return
            models = self.query_one("#new-models", SelectionList)
            if ref.key not in self.candidates:
                self.candidates[ref.key] = ref
                models.add_option((f"{ref.label}  [dim]{ref.key}[/dim]", ref.key, True))
            else:
                self.candidates[ref.key] = ref  # the key variable given this time wins
                models.select(ref.key)
            models.focus()

        self.app.push_screen(EndpointScreen(), added)

    @on(Button.Pressed, "#new-start")
    def action_start(self) -> None:
        error = self.query_one("#new-error", Static)
        try:
            models = [self.candidates[k] for k in self.query_one("#new-models", SelectionList).selected]
            data = self.query_one("#new-data", Select).value
            data_path = None if data in (Select.BLANK, None) else Path(str(data))
            suites = [Path(p) for p in self.query_one("#new-suites", SelectionList).selected]
            limit_text = self.query_one("#new-limit", Input).value.strip()
            settings = GenerationSettings(
                max_new_tokens=int(self.query_one("#new-tokens", Input).value or 256),
                batch_size=int(self.query_one("#new-batch", Input).value or 16),
                temperature=float(self.query_one("#new-temp", Input).value or 0),
                top_p=float(self.query_one("#new-top-p", Input).value or 1.0),
                seed=int(self.query_one("#new-seed", Input).value or 0),
            )
            plan = plan_eval(
                models,
                data=data_path,
                suites=suites,
                limit=int(limit_text) if limit_text else None,
                selection=parse_selection(self.query_one("#new-rows", Input).value),
                settings=settings,
            )
            ev = create_from_plan(self.workspace, plan)
            runner.launch(ev)
        except (WorkbenchError, ValueError, OSError, AttributeError) as exc:
            error.update(Text(f"✖ {exc}", style="bold red"))
            return
        if plan.problems:
            self.notify(
                "\n".join(plan.problems[:5]), title="Some suite lines were skipped", severity="warning", timeout=12
            )
        self.dismiss(ev)

    @on(Button.Pressed, "#new-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class CellScreen(ModalScreen[None]):
    """One answer in full beside the reference, with a word diff, its scores and the judge's reasons; rate here too."""

    BINDINGS = [
        Binding("escape,q", "dismiss", "Close"),
        Binding("left", "move(0, -1)", "Prev model"),
        Binding("right", "move(0, 1)", "Next model"),
        Binding("up", "move(-1, 0)", "Prev example"),
        Binding("down", "move(1, 0)", "Next example"),
        *(
            Binding(str(n), f"rate({n})", f"Rate {n}", show=n == 1, key_display="1-5" if n == 1 else None)
            for n in range(1, 6)
        ),
        Binding("0", "rate(None)", "Clear", show=False),
        Binding(
            "i", "next_item", "Rubric item", tooltip="Rate the overall answer or one rubric item (judge trust per item)"
        ),
    ]

    def __init__(
        self, results: Results, rows: list[Row], index: int, orders: list[list[str]], model: str, blind: bool
    ) -> None:
        super().__init__()
        self.results, self.rows, self.index, self.orders, self.blind = results, rows, index, orders, blind
        self.column = orders[index].index(model)
        self.items = ["overall", *results.rubric.items]
        self.item = 0  # what the digits rate: the overall answer, or one rubric item

    def compose(self) -> ComposeResult:
        with Vertical(id="cell-dialog"):
            yield Static("", id="cell-title")
            with Horizontal(id="cell-columns"):
                with VerticalScroll(id="cell-reference"):
                    yield Static("", id="cell-ref")
                with VerticalScroll(id="cell-answer"):
                    yield Static("", id="cell-out")
            yield Static("", id="cell-facts")

    def on_mount(self) -> None:
        self.render_cell()

    def render_cell(self) -> None:
        row = self.rows[self.index]
        model = self.orders[self.index][self.column]
        cell = row.cells[model]
        name = blind_label(self.column) if self.blind else next(m.label for m in self.results.models if m.key == model)
        title = Text.assemble(
            ("example " + row.id, "bold"),
            f"  ({self.index + 1}/{len(self.rows)})  ·  ",
            (name, "bold cyan"),
            "  ·  ← → models  ↑ ↓ examples  1-5 rate  Esc closes",
        )
        self.query_one("#cell-title", Static).update(
            title + "\n" + Text("prompt: ", style="bold") + Text(row.prompt.strip()[:600])
        )
        reference = row.reference
        self.query_one("#cell-ref", Static).update(
            Text("reference\n", style="bold green") + Text(reference if reference is not None else "(no reference)")
        )
        output = cell.output
        legend = Text("\n")
        if output is None:
            body = Text("(not generated yet)", style="dim")
        elif reference is not None and similarity(reference, output) >= DIFF_MIN_SIMILARITY:
            body = diff_text(word_diff(reference, output))
            legend = Text("(green: not in the reference; red struck: missing)\n", style="dim")
        else:
            body = Text(output)
            legend = Text(
                "(too unlike the reference for a word diff)\n" if reference is not None else "\n", style="dim"
            )
        legend = Text("answer ", style="bold") + legend
        self.query_one("#cell-out", Static).update(legend + body)
        facts = Text()
        if not self.blind and output is not None:
            for key in ("exact_match", "token_f1", "rouge_l", "json_valid", "schema_valid", "similarity", "refusal"):
                value = cell.value(key)
                if value is None or key not in METRICS:
                    continue
                if key == "refusal":
                    shown = Text("yes", style="magenta") if value else Text("no")
                elif key in ("token_f1", "rouge_l", "similarity"):
                    shown = Text(f"{value:.2f}")
                else:
                    shown = value_text(key, value)
                facts += Text(f"{metric_label(key)} ") + shown + Text("   ")
            record = cell.record
            if record.get("output_tokens") is not None:
                facts += Text(
                    f"{record.get('output_tokens')} tokens"
                    + (" (cut at max_new_tokens)" if record.get("finish") == "length" else ""),
                    style="dim",
                )
            if cell.case is not None:
                facts += Text(
                    "\n" + ("✔ case passes" if cell.case.passed else "✖ " + "; ".join(cell.case.failures)),
                    style="green" if cell.case.passed else "red",
                )
            if cell.verdict is not None:
                v = cell.verdict
                facts += Text(
                    f"\njudge: {v.score if v.score is not None else 'unparsed'} "
                    + " ".join(f"{k}={s}" for k, s in v.item_scores.items())
                    + f" — {v.reasons}",
                    style="dim",
                )
        facts += Text("\nyour rating: ", style="bold")
        for i, item in enumerate(self.items):
            value = cell.human if item == "overall" else self.results.ratings.item_of(row.id, model, item)
            shown = f"{item} {value if value is not None else '–'}"
            facts += Text(
                f"[{shown}]" if i == self.item else f" {shown} ", style="bold reverse" if i == self.item else ""
            )
            facts += " "
        if len(self.items) > 1:
            facts += Text(" (i: next item)", style="dim")
        if row.note:
            facts += Text(f"\nnote: {row.note}", style="italic cyan")
        self.query_one("#cell-facts", Static).update(facts)

    def action_move(self, rows: int, columns: int) -> None:
        self.index = max(0, min(len(self.rows) - 1, self.index + rows))
        self.column = max(0, min(len(self.orders[self.index]) - 1, self.column + columns))
        self.render_cell()

    def action_rate(self, score: int | None) -> None:
        row = self.rows[self.index]
        model, item = self.orders[self.index][self.column], self.items[self.item]
        if item == "overall":
            self.results.ratings.score(row.id, model, score)
            row.cells[model].human = score
        else:
            self.results.ratings.score_item(row.id, model, item, score)
        self.render_cell()

    def action_next_item(self) -> None:
        self.item = (self.item + 1) % len(self.items)
        self.render_cell()


class RubricScreen(ModalScreen[Any]):
    """Edit the judge's rubric: items as '- name: what it means' lines; ctrl+s saves, Esc cancels."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+t", "scale", "1-5 / pass-fail"),
    ]

    def __init__(self, rubric: Rubric) -> None:
        super().__init__()
        self.rubric = rubric
        self.scale = rubric.scale

    def compose(self) -> ComposeResult:
        with Vertical(id="editor-dialog"):
            yield Label("", id="rubric-title")
            yield Static(
                "Each '- name: description' line is an item the judge scores (and agreement is computed per "
                "item). ctrl+s saves · ctrl+t switches 1-5 / pass-fail · Esc cancels",
                classes="dialog-help",
            )
            yield TextArea(self.rubric.text, id="rubric-text")

    def on_mount(self) -> None:
        self._title()
        self.query_one(TextArea).focus()

    def _title(self) -> None:
        self.query_one("#rubric-title", Label).update(f"[b]Judge rubric[/b] · scale {self.scale}")

    def action_scale(self) -> None:
        self.scale = "pass/fail" if self.scale == "1-5" else "1-5"
        self._title()

    def action_save(self) -> None:
        try:
            self.dismiss(Rubric.parse(self.query_one(TextArea).text, self.scale))
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error")


class CurveScreen(ModalScreen[None]):
    """Each run's checkpoints: the task metric by step above the loss, and which checkpoint each would pick."""

    BINDINGS = [Binding("escape,q,c", "dismiss", "Close")]

    def __init__(self, curves: list[Curve]) -> None:
        super().__init__()
        self.curves = curves

    def compose(self) -> ComposeResult:
        with Vertical(id="curve-dialog"):
            for i, curve in enumerate(self.curves):
                yield Static(Text.assemble((f"{curve.run_id}", "bold"), " · ", curve.verdict()), classes="curve-title")
                yield PlotextPlot(id=f"metric-{i}", classes="curve-plot")
                yield PlotextPlot(id=f"loss-{i}", classes="curve-plot")
            yield Label("Esc closes", classes="dialog-keys")

    def on_mount(self) -> None:
        for i, curve in enumerate(self.curves):
            plt = self.query_one(f"#metric-{i}", PlotextPlot).plt
            plt.title(f"{metric_label(curve.metric)} by checkpoint (mean, 95% interval)")
            steps = [p[0] for p in curve.points if p[2].mean is not None]
            means = [p[2].mean for p in curve.points if p[2].mean is not None]
            if steps:
                plt.plot(steps, means, marker="braille", color="green", label=metric_label(curve.metric))
                lows = [p[2].lo for p in curve.points if p[2].mean is not None]
                highs = [p[2].hi for p in curve.points if p[2].mean is not None]
                plt.plot(steps, lows, marker="·", color="gray")
                plt.plot(steps, highs, marker="·", color="gray")
                if curve.best_by_metric is not None:
                    plt.vertical_line(curve.best_by_metric, color="green")
            loss = self.query_one(f"#loss-{i}", PlotextPlot).plt
            loss.title("loss")
            if curve.train_loss:
                loss.plot(
                    [s for s, _ in curve.train_loss],
                    [v for _, v in curve.train_loss],
                    marker="braille",
                    color="blue",
                    label="train",
                )
            if curve.eval_loss:
                loss.plot(
                    [s for s, _ in curve.eval_loss],
                    [v for _, v in curve.eval_loss],
                    marker="braille",
                    color="orange",
                    label="eval",
                )
            if curve.best_by_loss is not None:
                loss.vertical_line(curve.best_by_loss, color="orange")
            for plot in (plt, loss):
                plot.xlabel("step")
