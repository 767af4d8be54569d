"""Modal screens: help, pick a config to launch, confirm. Each returns its answer via dismiss()."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option


class HelpScreen(ModalScreen[None]):
    """Every key of the app and of the current pane."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        lines = []
        for title, keys in self.sections:
            lines.append(f"[b]{title}[/b]")
            lines += [f"  [b]{key:<8}[/b] {what}" for key, what in keys]
            lines.append("")
        lines.append("Esc closes this help. Ctrl+P opens the command palette with every action.")
        with Vertical(id="dialog"):
            yield Static("\n".join(lines))


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question answered with y or n (Esc is no)."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question)
            yield Label("[b]y[/b] yes    [b]n[/b] no")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class LaunchScreen(ModalScreen[Any]):
    """Pick a run config: the Config pane's (when given) or a file of the workspace; Enter launches."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, configs: list[Path], workspace: Path, held: tuple[str, Any] | None = None) -> None:
        super().__init__()
        self.configs = configs
        self.workspace = workspace
        self.held = held  # (label, config) of the config the Config pane holds

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("[b]Launch a run[/b]: pick a config (Enter), Esc cancels")
            if not self.configs and self.held is None:
                yield Static(
                    f"No run configs (*.yaml, *.yml) in {self.workspace}. Save one from the Config pane or write one "
                    "(see sample_data/configs/)."
                )
            options = []
            if self.held is not None:
                options.append(Option(f"the Config pane's config: {self.held[0]}", id="held"))
            options += [
                Option(str(p.relative_to(self.workspace)) if p.is_relative_to(self.workspace) else str(p), id=str(i))
                for i, p in enumerate(self.configs)
            ]
            yield OptionList(*options, id="configs")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == "held" and self.held is not None:
            self.dismiss(self.held[1])
        else:
            self.dismiss(self.configs[int(event.option.id or 0)])


class PromptScreen(ModalScreen[str | None]):
    """One line of input (a path, a regex, a note); Enter answers, Esc cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "", help_text: str = "") -> None:
        super().__init__()
        self.title_text, self.value, self.placeholder, self.help_text = title, value, placeholder, help_text

    def compose(self) -> ComposeResult:
        from textual.widgets import Input

        with Vertical(id="dialog"):
            yield Label(self.title_text)
            if self.help_text:
                yield Static(self.help_text, classes="dialog-help")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Label("[b]Enter[/b] ok    [b]Esc[/b] cancel", classes="dialog-keys")

    def on_input_submitted(self, event) -> None:
        self.dismiss(event.value)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of several options (Enter), Esc cancels; returns the option's id."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, options: list[tuple[str, str]], help_text: str = "") -> None:
        super().__init__()
        self.title_text, self.options, self.help_text = title, options, help_text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text)
            if self.help_text:
                yield Static(self.help_text, classes="dialog-help")
            yield OptionList(*[Option(label, id=value) for label, value in self.options], id="choices")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
