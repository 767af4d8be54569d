"""A pane that is not built yet says what it will hold, not an error."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

COMING = {
    "eval": ("Eval", [
        "Predictions of the base model against adapters and checkpoints, metrics with confidence",
        "intervals, an LLM judge, and blind human rating in a review grid.",
    ]),
}


class PlaceholderPane(VerticalScroll):
    """Tells the user what this pane will do and what to use meanwhile."""

    def __init__(self, pane: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pane = pane

    def compose(self) -> ComposeResult:
        title, lines = COMING[self.pane]
        yield Static(f"[b]{title}[/b] — coming soon\n\n" + "\n".join(lines), classes="placeholder")
