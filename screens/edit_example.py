"""Edit one example as JSON, checked against the dataset's shape before it is applied."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TextArea


def parse_row(text: str, check: Callable[[Any], list[str]]) -> tuple[dict[str, Any] | None, str]:
    """The edited row, or why it cannot be applied (JSON error with line and column, or shape problems)."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"Not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
    if not isinstance(row, dict):
        return None, "Expected a JSON object ({...}) for one example"
    problems = check(row)
    if problems:
        return None, "Does not fit the dataset's shape: " + "; ".join(problems)
    return row, ""


class EditScreen(ModalScreen[dict[str, Any] | None]):
    """A JSON editor for one example; Ctrl+S applies (if valid), Esc cancels."""

    BINDINGS = [
        Binding("ctrl+s", "apply", "Apply", priority=True),
        Binding("escape", "dismiss(None)", "Cancel"),
    ]

    def __init__(self, title: str, row: dict[str, Any], check: Callable[[Any], list[str]]) -> None:
        super().__init__()
        self.title_text, self.row, self.check = title, row, check

    def compose(self) -> ComposeResult:
        with Vertical(id="editor-dialog"):
            yield Label(f"{self.title_text}   [b]Ctrl+S[/b] apply   [b]Esc[/b] cancel")
            yield TextArea.code_editor(
                json.dumps(self.row, ensure_ascii=False, indent=2), language="json", soft_wrap=True, id="editor"
            )
            yield Static("", id="editor-error")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        _, error = parse_row(event.text_area.text, self.check)
        self.query_one("#editor-error", Static).update(error)

    def action_apply(self) -> None:
        row, error = parse_row(self.query_one(TextArea).text, self.check)
        if row is None:
            self.query_one("#editor-error", Static).update(error)
            self.app.bell()
            return
        self.dismiss(row)
