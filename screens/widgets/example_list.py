"""The examples grid: a virtual list that draws only the rows on screen (fast at 100k examples)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from workbench.data.findings import DataFinding, severity_rank
from workbench.data.formats import Shape
from workbench.data.store import Example

STATUS_MARK = {"pending": ("·", ""), "accepted": ("✓", "green"), "rejected": ("✗", "red"), "flagged": ("⚑", "yellow")}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def preview(text: str, width: int) -> str:
    """One line of text: newlines and runs of spaces folded, cut with an ellipsis.

    A JSON object shows its values (``Mateo Aziz · Drift robot vacuum · refund``): in a
    narrow column the keys, repeated on every row, would hide what differs.
    """
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict):
            text = " · ".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in value.values())
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


SHORT = {
    "empty_output": "empty",
    "placeholder_output": "placeholder",
    "invisible_input": "invisible",
    "merged_instructions": "merged",
    "consistency": "inconsistent",
    "length_outlier": "length",
    "too_long": "too long",
    "role_order": "roles",
    "chat_template": "template",
    "pii": "PII/secret",
    "language_mismatch": "language",
    "exact_duplicate": "duplicate",
    "near_duplicate": "near dup",
    "semantic_duplicate": "similar",
    "leakage": "LEAKAGE",
    "coverage": "coverage",
}


def from_difference(a: str, b: str) -> tuple[str, str]:
    """Both texts from their first differing word (with an ellipsis when cut)."""
    wa, wb = [w for w in a.split() if w != "·"], [w for w in b.split() if w != "·"]
    i = 0
    while i < min(len(wa), len(wb)) and wa[i] == wb[i]:
        i += 1
    if i == 0:
        return a, b
    return "…" + " ".join(wa[i:]), "…" + " ".join(wb[i:])


def badges(findings: list[DataFinding] | tuple[DataFinding, ...]) -> tuple[str, str]:
    """A compact badge: the worst finding's check (short name) and how many more; and its style."""
    if not findings:
        return "", ""
    worst = min(findings, key=lambda f: severity_rank(f.severity))
    more = f" +{len(findings) - 1}" if len(findings) > 1 else ""
    if worst.check == "llm_critic" and worst.score is not None:
        name = f"LLM {worst.score:.0f}/5"
    else:
        name = SHORT.get(worst.check, worst.check.replace("_", " "))
    return f"{name[: 13 - len(more)]}{more}", SEVERITY_STYLE.get(worst.severity, "")


class ExampleList(ScrollView, can_focus=True):
    """Rows of examples: id, status, findings badge, prompt and response previews."""

    DEFAULT_CSS = """
    ExampleList { height: 1fr; overflow-x: hidden; }
    ExampleList > .example-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    ExampleList:blur > .example-list--cursor { background: $block-cursor-blurred-background; }
    ExampleList > .example-list--header { text-style: bold; background: $boost; }
    """
    COMPONENT_CLASSES = {"example-list--cursor", "example-list--header"}
    BINDINGS = [
        Binding("up,k", "move(-1)", "Previous", show=False),
        Binding("down,j", "move(1)", "Next", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home,g", "jump(0)", show=False),
        Binding("end,G", "jump(-1)", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    @dataclass
    class Highlighted(Message):
        example_id: int | None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.items: list[Example] = []
        self.findings: dict[int, list[DataFinding]] = {}
        self.shape = Shape.LANGUAGE_MODELING
        self._strip_cache: dict[tuple[int, int, bool], Strip] = {}

    # --- content ------------------------------------------------------------

    def set_items(
        self, items: list[Example], findings: dict[int, list[DataFinding]], shape: Shape, keep_id: int | None = None
    ) -> None:
        """Show these examples; the cursor stays on ``keep_id`` when it is still listed."""
        self.items, self.findings, self.shape = items, findings, shape
        self._strip_cache.clear()
        self.virtual_size = Size(self.size.width, len(items) + 1)
        index = 0
        if keep_id is not None:
            index = next((i for i, e in enumerate(items) if e.id == keep_id), min(self.cursor, max(0, len(items) - 1)))
        self.cursor = max(0, min(index, len(items) - 1))
        self.refresh()
        self.call_after_refresh(self._scroll_to_cursor)  # once the new virtual size is in place

    def drop(self, ids: set[int]) -> None:
        """Take examples out of the list (deleted, or no longer matching the filter); the cursor stays put."""
        if not ids:
            return
        before = self.cursor
        removed_above = sum(1 for e in self.items[:before] if e.id in ids)
        self.items = [e for e in self.items if e.id not in ids]
        self.virtual_size = Size(self.size.width, len(self.items) + 1)
        self._strip_cache.clear()
        self.cursor = max(0, min(before - removed_above, len(self.items) - 1))

    def refresh_rows(self) -> None:
        """Redraw after examples changed in place (status, edits)."""
        self._strip_cache.clear()
        self.refresh()

    @property
    def current(self) -> Example | None:
        return self.items[self.cursor] if self.items and 0 <= self.cursor < len(self.items) else None

    def select_id(self, example_id: int) -> bool:
        for i, e in enumerate(self.items):
            if e.id == example_id:
                self.cursor = i
                return True
        return False

    # --- moving -------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self._strip_cache = {k: v for k, v in self._strip_cache.items() if k[0] not in (old, new)}
        self.refresh()
        self._scroll_to_cursor()
        current = self.current
        self.post_message(self.Highlighted(current.id if current else None))

    def _scroll_to_cursor(self) -> None:
        height = max(1, self.size.height - 1)  # the header row stays on top
        top = self.scroll_offset.y
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)

    def action_move(self, delta: int) -> None:
        if self.items:
            self.cursor = max(0, min(len(self.items) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.size.height - 2))

    def action_jump(self, index: int) -> None:
        if self.items:
            self.cursor = index % len(self.items)

    # --- drawing ------------------------------------------------------------

    def _columns(self, width: int) -> tuple[int, int, int]:
        """Widths of the status, prompt and response columns (a narrow list shows only the status mark)."""
        status = 10 if width >= 70 else 2
        fixed = 7 + status + 14  # id, status, badge
        rest = max(10, width - fixed - 3)
        prompt = rest // 2
        return status, prompt, rest - prompt

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            status_w, prompt_w, _ = self._columns(width)
            status = "status" if status_w > 2 else ""
            header = f"{'#':>6} {status:<{status_w}}{'findings':<14}{'prompt':<{prompt_w}} │ response"
            return Strip([Segment(header.ljust(width)[:width], self.get_component_rich_style("example-list--header"))])
        index = self.scroll_offset.y + y - 1
        if index >= len(self.items):
            return Strip.blank(width, self.rich_style)
        selected = index == self.cursor
        key = (index, width, selected and self.has_focus)
        cached = self._strip_cache.get(key)
        if cached is not None:
            return cached
        strip = self._row(self.items[index], width, selected)
        self._strip_cache[key] = strip
        return strip

    def _row(self, ex: Example, width: int, selected: bool) -> Strip:
        status_w, prompt_w, response_w = self._columns(width)
        v = ex.view(self.shape)
        mark, mark_style = STATUS_MARK.get(ex.status, ("?", ""))
        badge, badge_style = badges(self.findings.get(ex.id, ()))
        if ex.problems and not badge:
            badge, badge_style = "bad shape", "bold red"
        if v.is_preference:  # chosen and rejected side by side, from where they differ: that is the point
            half = max(1, (response_w - 3) // 2)
            chosen, rejected = from_difference(preview(v.response_text, 10_000), preview(v.rejected_text, 10_000))
            response = preview(chosen, half).ljust(half) + " ⟂ " + preview(rejected, half)
        else:
            response = preview(v.response_text, response_w)
        base = self.get_component_rich_style("example-list--cursor") if selected else self.rich_style
        note = "✎" if ex.note else " "
        status = f"{mark} {ex.status}" if status_w > 2 else mark
        segments = [
            Segment(f"{ex.id:>6} ", base),
            Segment(status[:status_w].ljust(status_w), base + Style.parse(mark_style or "none")),
            Segment(badge[:13].ljust(13) + note, base + Style.parse(badge_style or "none")),
            Segment(preview(v.prompt_text or v.system, prompt_w).ljust(prompt_w) + " │ ", base),
            Segment(response[:response_w].ljust(response_w), base + Style(dim=not selected)),
        ]
        return Strip(segments).crop(0, width).extend_cell_length(width, base)

    def on_resize(self) -> None:
        self._strip_cache.clear()
        self.virtual_size = Size(self.size.width, len(self.items) + 1)

    def on_focus(self) -> None:
        self.refresh_rows()

    def on_blur(self) -> None:
        self.refresh_rows()
