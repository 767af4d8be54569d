"""The advisor (what to fine-tune, if anything) and the diagnosis of a failed or odd run, as dialogs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from workbench.errors import WorkbenchError


class AdvisorScreen(ModalScreen[str | None]):
    """A short questionnaire, one question at a time; then the advice and a starter config.

    Returns the starter config's YAML when the user takes it (Enter), else None.
    """

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("backspace", "back", "Previous question", show=False),
        Binding("l", "llm", "Ask an LLM", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        from workbench.advise.questions import QUESTIONS

        self.questions = QUESTIONS
        self.answers: dict[str, str] = {}
        self.step = 0
        self.advice: Any = None

    def compose(self) -> ComposeResult:
        with Vertical(id="advisor-dialog"):
            yield Label("", id="advisor-title")
            yield Static("", id="advisor-help", classes="dialog-help")
            yield OptionList(id="advisor-options")
            with VerticalScroll(id="advisor-result"):
                yield Static("", id="advisor-text")
            yield Label("", id="advisor-keys")

    def on_mount(self) -> None:
        self.query_one("#advisor-result").display = False
        self._ask()

    def _ask(self) -> None:
        q = self.questions[self.step]
        self.query_one("#advisor-title", Label).update(
            f"[b]Advisor[/b] · question {self.step + 1} of {len(self.questions)}: {q.text}"
        )
        self.query_one("#advisor-help", Static).update(q.help)
        options = self.query_one("#advisor-options", OptionList)
        options.set_options([Option(label, id=oid) for oid, label in q.options])
        chosen = self.answers.get(q.id)
        ids = [oid for oid, _ in q.options]
        options.highlighted = ids.index(chosen) if chosen in ids else 0
        options.focus()
        self.query_one("#advisor-keys", Label).update("[b]Enter[/b] answer   [b]Backspace[/b] back   [b]Esc[/b] close")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if self.advice is not None:
            return
        self.answers[self.questions[self.step].id] = str(event.option.id)
        if self.step + 1 < len(self.questions):
            self.step += 1
            self._ask()
        else:
            self._show_advice()

    def action_back(self) -> None:
        if self.advice is not None:
            self.advice = None
            self.query_one("#advisor-result").display = False
            self.query_one("#advisor-options").display = True
            self._ask()
        elif self.step > 0:
            self.step -= 1
            self._ask()

    def _show_advice(self) -> None:
        from workbench.advise.advisor import advise

        self.advice = advise(self.answers)
        self.query_one("#advisor-options").display = False
        self.query_one("#advisor-result").display = True
        self.query_one("#advisor-title", Label).update(f"[b]Advisor[/b] · {self.advice.title}")
        self.query_one("#advisor-help", Static).update("")
        self.query_one("#advisor-text", Static).update(Text(self.advice.text()))
        starter = "[b]Enter[/b] load the starter config   " if self.advice.starter_config else ""
        self.query_one("#advisor-keys", Label).update(
            f"{starter}[b]l[/b] ask an LLM for a second opinion   [b]Backspace[/b] back   [b]Esc[/b] close"
        )
        self.query_one("#advisor-result").focus()

    def key_enter(self) -> None:
        if self.advice is not None and self.advice.starter_config:
            self.dismiss(self.advice.starter_config)

    def action_llm(self) -> None:
        if self.advice is None:
            return
        from screens.modals import PromptScreen

        self.app.push_screen(
            PromptScreen(
                "Which model? (litellm name; the key comes from the environment)",
                os.environ.get("WORKBENCH_LLM_MODEL", ""),
                "e.g. openai/gpt-4o-mini",
            ),
            lambda model: self._ask_llm(model.strip()) if model else None,
        )

    @work(thread=True, exclusive=True, group="advisor-llm", exit_on_error=False)
    def _ask_llm(self, model: str) -> None:
        from workbench.advise.advisor import deeper_advice
        from workbench.data.analyze import LLM_FACTORY, llm_cache_dir

        try:
            text = deeper_advice(self.answers, self.advice, LLM_FACTORY(model, llm_cache_dir(Path.cwd())))
        except WorkbenchError as exc:
            text = f"(no second opinion: {exc})"

        def show() -> None:
            body = self.advice.text() + f"\n\nSecond opinion from {model}:\n{text}"
            self.query_one("#advisor-text", Static).update(Text(body))

        self.app.call_from_thread(show)


class DiagnoseScreen(ModalScreen[None]):
    """Paste an error message (Ctrl+S diagnoses it) or pick a run (r): the likely cause and the fix."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("ctrl+s", "diagnose_text", "Diagnose the text", priority=True),
        Binding("ctrl+r", "pick_run", "Pick a run", priority=True),
    ]

    def __init__(self, workspace: Path) -> None:
        super().__init__()
        self.workspace = workspace

    def compose(self) -> ComposeResult:
        with Vertical(id="advisor-dialog"):
            yield Label(
                "[b]Diagnose[/b]: paste an error message or a log tail below, then [b]Ctrl+S[/b]. "
                "[b]Ctrl+R[/b] picks a run instead. [b]Esc[/b] closes."
            )
            yield TextArea(id="diagnose-input")
            with VerticalScroll(id="advisor-result"):
                yield Static("", id="advisor-text")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def _show(self, diagnoses: list[Any], source: str) -> None:
        out = Text(f"{source}\n\n", style="bold")
        for d in diagnoses:
            out.append(f"● {d.cause}", style="bold")
            out.append(f"  ({d.confidence} confidence)\n", style="dim")
            for step in d.fix:
                out.append(f"  - {step}\n")
            if d.evidence:
                out.append(f"  seen: {d.evidence}\n", style="dim")
            out.append("\n")
        self.query_one("#advisor-text", Static).update(out)

    def action_diagnose_text(self) -> None:
        from workbench.advise.diagnose import diagnose_text

        text = self.query_one(TextArea).text
        if text.strip():
            held = self.app.query("#config-pane")
            config = held.first().config if held else None
            self._show(diagnose_text(text, config=config), "From the pasted text")

    def action_pick_run(self) -> None:
        from screens.modals import ChoiceScreen
        from workbench.train import runner

        runs = runner.list_runs(self.workspace)
        options = [(f"{r.id}  {r.state}  {r.step}/{r.total_steps or '?'}", r.id) for r in runs]

        def done(run_id: str | None) -> None:
            if run_id:
                from workbench.advise.diagnose import diagnose_run

                run_dir = runner.runs_dir(self.workspace) / run_id
                self._show(diagnose_run(run_dir), f"Run {run_id}")

        self.app.push_screen(
            ChoiceScreen("Diagnose which run?", options, help_text="" if options else "No runs in this workspace yet."),
            done,
        )
