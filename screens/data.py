"""The Data pane: triage, edit, critique and deduplicate a dataset by keyboard, losing nothing.

The pane renders what the core returns: a :class:`~workbench.data.store.DatasetSession`
(every change journaled before the screen shows it) and the findings of
:mod:`workbench.data.analyze`. Opening, analysis, LLM calls and saving run in
thread workers; the UI thread only draws.
"""

from __future__ import annotations

import gc
import json
import os
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from screens.data_jobs import DataJobs
from screens.edit_example import EditScreen, parse_row
from screens.modals import ChoiceScreen, PromptScreen
from screens.widgets.example_detail import render_example, render_tokens
from screens.widgets.example_list import ExampleList
from screens.widgets.lazy import LoadsWhenShown
from workbench.data import analyze
from workbench.data.findings import DataFinding
from workbench.data.store import STATUSES, DatasetSession, Example, open_dataset
from workbench.errors import WorkbenchError
from workbench.workspace import Workspace

SORTS = [
    (None, "file order"),
    ("findings", "worst findings first"),
    ("-length", "longest first"),
    ("length", "shortest first"),
    ("score", "lowest score first"),
]
STATUS_FILTERS = [None, "pending", "flagged", "accepted", "rejected"]
SOURCE_ORDER = ["production", "chat", "synthetic", "added", "duplicate", "file"]
"""The source filter's cycle (only the sources present in the dataset): production first, the reason to look."""


@dataclass
class DatasetOpened(Message):
    session: DatasetSession | None
    error: str = ""


class DataPane(DataJobs, LoadsWhenShown, Vertical):
    """Browse, triage, edit, critique, deduplicate, split and export one dataset."""

    BINDINGS = [
        Binding("a", "status('accepted')", "Accept", id="data.accept", tooltip="Accept this example"),
        Binding("r", "status('rejected')", "Reject", id="data.reject", tooltip="Reject this example"),
        Binding("f", "flag", "Flag", id="data.flag", tooltip="Flag this example with a note"),
        Binding("p", "status('pending')", "Pending", id="data.pending", show=False, tooltip="Back to pending"),
        Binding("u", "undo", "Undo", id="data.undo", tooltip="Undo the last change"),
        Binding("U,ctrl+y", "redo", "Redo", id="data.redo", show=False, tooltip="Redo"),
        Binding(
            "n",
            "next('pending')",
            "Next unreviewed",
            id="data.next",
            show=False,
            tooltip="Jump to the next pending example",
        ),
        Binding(
            "N",
            "next('flagged')",
            "Next flagged",
            id="data.next_flagged",
            show=False,
            tooltip="Jump to the next flagged example",
        ),
        Binding(
            "right_square_bracket",
            "next('finding')",
            "Next finding",
            id="data.next_finding",
            show=False,
            tooltip="Jump to the next example with a finding",
        ),
        Binding("slash", "search", "Filter", id="data.search", tooltip="Filter by text (a regular expression)"),
        Binding(
            "s",
            "cycle_status",
            "Status filter",
            id="data.status_filter",
            show=False,
            tooltip="Show all, pending, flagged, accepted or rejected examples",
        ),
        Binding(
            "w",
            "cycle_source",
            "Source filter",
            id="data.source_filter",
            show=False,
            tooltip="Where examples came from: all, production, chat, synthetic, added, file (those present)",
        ),
        Binding(
            "c",
            "check_filter",
            "By finding",
            id="data.check_filter",
            show=False,
            tooltip="Show only examples with a given finding",
        ),
        Binding(
            "o",
            "cycle_sort",
            "Sort",
            id="data.sort",
            show=False,
            tooltip="File order, worst findings, longest, shortest, lowest score",
        ),
        Binding(
            "escape", "clear_filters", "Clear filters", id="data.clear", show=False, tooltip="Show every example again"
        ),
        Binding("e", "edit", "Edit", id="data.edit", tooltip="Edit this example as JSON"),
        Binding(
            "E",
            "edit_external",
            "Edit in $EDITOR",
            id="data.editor",
            show=False,
            tooltip="Edit this example in $EDITOR",
        ),
        Binding("plus", "add", "Add", id="data.add", show=False, tooltip="Add a new example (pending)"),
        Binding(
            "d",
            "duplicate",
            "Duplicate",
            id="data.duplicate",
            show=False,
            tooltip="Duplicate this example (the copy is pending)",
        ),
        Binding("delete,x", "delete", "Delete", id="data.delete", show=False, tooltip="Delete this example (u undoes)"),
        Binding(
            "b",
            "bulk",
            "Bulk",
            id="data.bulk",
            show=False,
            tooltip="Accept, reject or flag every example shown, or a duplicate cluster",
        ),
        Binding(
            "C",
            "critique",
            "Critique",
            id="data.critique",
            tooltip="Run every check: format, consistency, PII, duplicates, leakage (again: cancel)",
        ),
        Binding(
            "D",
            "semantic",
            "Similar",
            id="data.semantic",
            show=False,
            tooltip="Paraphrase-level duplicates by MiniLM sentence embeddings (slower; again: cancel)",
        ),
        Binding(
            "L",
            "llm_critic",
            "LLM critic",
            id="data.llm",
            show=False,
            tooltip="Score the examples shown (or a sample) with an LLM through litellm",
        ),
        Binding(
            "g",
            "generate",
            "Generate",
            id="data.generate",
            show=False,
            tooltip="Generate variations of this example with a teacher model (they arrive pending)",
        ),
        Binding("v", "toggle_summary", "Summary", id="data.summary", tooltip="Dataset summary and coverage"),
        Binding(
            "m",
            "toggle_mask",
            "Mask",
            id="data.mask",
            tooltip="This example token by token as the trainer sees it: the tokens that carry loss, the cut",
        ),
        Binding("ctrl+s", "save", "Save", id="data.save", tooltip="Save in the file's own format (original kept)"),
        Binding(
            "X",
            "export",
            "Export accepted",
            id="data.export",
            show=False,
            tooltip="Write the accepted examples to a new file",
        ),
        Binding(
            "S",
            "split",
            "Split",
            id="data.split",
            show=False,
            tooltip="Split into train/val/test, near-duplicate clusters kept whole",
        ),
        Binding("O", "open", "Open", id="data.open", tooltip="Open another dataset of the workspace"),
    ]

    def __init__(self, workspace: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.session: DatasetSession | None = None
        self.initial_dataset: str | None = None
        self.findings: dict[int, list[DataFinding]] = {}
        self.analysis: analyze.Analysis | None = None
        self.pattern: str | None = None
        self.status_filter: str | None = None
        self.source_filter: str | None = None
        self.check: str | None = None
        self.sort_index = 0
        self.show_summary = False
        self.show_mask = False
        self._mask_tokenizer: tuple[str, Any] | None = None  # (model, tokenizer) for the mask view
        self._cancel: threading.Event | None = None
        self._progress = ""

    def compose(self) -> ComposeResult:
        yield Static("Opening a dataset…", id="data-header")
        with Horizontal():
            with Vertical(id="examples-col"):
                yield ExampleList(id="examples")
                yield Static("", id="data-filter")
            with VerticalScroll(id="detail-col"):
                yield Static("", id="detail")

    def first_shown(self) -> None:
        """Open the dataset the first time the pane is shown (not at start: the other panes stay quick)."""
        datasets = Workspace(self.workspace).datasets()
        wanted = self.initial_dataset
        if wanted and Path(wanted).exists():
            self.open_path(Path(wanted))
        elif datasets:
            self.open_path(datasets[0])
        else:
            self.query_one("#data-header", Static).update(
                f"No dataset in {self.workspace}. Put a .jsonl, .json, .csv or .parquet file here, or press O."
            )

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        if self.session is not None:
            self.session.close()

    # --- opening ------------------------------------------------------------

    def open_path(self, path: Path) -> None:
        self.query_one("#data-header", Static).update(f"Opening {path}…", layout=False)
        self._open(path)

    @work(thread=True, exclusive=True, group="data-open", exit_on_error=False)
    def _open(self, path: Path) -> None:
        try:
            self.post_message(DatasetOpened(open_dataset(path)))
        except WorkbenchError as exc:
            self.post_message(DatasetOpened(None, str(exc)))

    def on_dataset_opened(self, message: DatasetOpened) -> None:
        if message.session is None:
            self.query_one("#data-header", Static).update(f"[red]{_escape(message.error)}[/]")
            self.notify(message.error, title="Cannot open", severity="error", timeout=15)
            return
        if self.session is not None:
            self.session.close()
        self.session = message.session
        # A big dataset is millions of objects that live as long as it is open: keep the garbage
        # collector from walking them on every full pass (300+ ms pauses at 100k examples).
        gc.freeze()
        self.findings, self.analysis = {}, None
        self.pattern = self.status_filter = self.source_filter = self.check = None
        self.sort_index = 0
        self.app.remember(last_dataset=str(self.session.path))
        for note in self.session.notes:
            self.notify(
                note,
                title=self.session.path.name,
                timeout=12,
                severity="warning" if "read-only" in note or "changed outside" in note else "information",
            )
        if self.session.readonly:
            self.notify(self.session.readonly_reason, title="Read-only", severity="warning", timeout=20)
        self.reload()

    # --- showing ------------------------------------------------------------

    def reload(self, keep_id: int | None = None) -> None:
        """Re-run the filter and redraw the list, the header and the detail."""
        session = self.session
        if session is None:
            return
        lst = self.query_one(ExampleList)
        if keep_id is None and lst.current is not None:
            keep_id = lst.current.id
        try:
            items = session.query(
                status=self.status_filter,
                pattern=self.pattern,
                findings=self.findings,
                check=self.check,
                sort=SORTS[self.sort_index][0],
                source=self.source_filter,
            )
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error")
            self.pattern = None
            items = session.query(
                status=self.status_filter,
                findings=self.findings,
                check=self.check,
                sort=SORTS[self.sort_index][0],
                source=self.source_filter,
            )
        lst.set_items(items, self.findings, session.shape, keep_id)
        self._render_header()
        self._render_filter(len(items))
        self._render_detail()

    def _render_header(self) -> None:
        s = self.session
        if s is None:
            return
        counts = s.counts()
        first = f"[b]{_escape(s.path.name)}[/b] · " + " · ".join(f"{k} {counts[k]}" for k in STATUSES)
        first += f" · total {counts['total']}"
        unsaved = s.unsaved()
        second = [f"{s.shape.label}{' (chat)' if s.conversational else ''}"]
        if s.readonly:
            second.append(f"[yellow]{_escape(s.readonly_reason)}[/]")
        elif unsaved:
            second.append(f"[b]{unsaved} unsaved[/b] (journaled, safe from crashes; ctrl+s writes the file)")
        else:
            second.append("saved")
        if self.source_filter:
            n = s.sources()[self.source_filter]
            second.append(f"[b]source: {_escape(self.source_filter)}[/b] ({n}; w cycles)")
        if s.kept:
            second.append(f"{len(s.kept)} unreadable line(s) kept: {', '.join(str(k.line) for k in s.kept[:6])}")
        if self.analysis is not None:
            total = sum(len(v) for v in self.findings.values())
            second.append(f"{total} finding(s) on {len(self.findings)} example(s)")
        if self._progress:
            second.append(f"[b]{_escape(self._progress)}[/b]")
        self.query_one("#data-header", Static).update(first + "\n" + " · ".join(second), layout=False)

    def _render_filter(self, shown: int) -> None:
        s = self.session
        bits = []
        if self.status_filter:
            bits.append(f"status={self.status_filter}")
        if self.source_filter:
            bits.append(f"source={self.source_filter}")
        if self.check:
            bits.append(f"finding={self.check}")
        if self.pattern:
            bits.append(f"/{_escape(self.pattern)}/")
        if self.sort_index:
            bits.append(f"sorted: {SORTS[self.sort_index][1]}")
        total = len(s) if s else 0
        text = f"{shown} of {total} shown" + (f" · {' · '.join(bits)} · [b]Esc[/b] clears" if bits else "")
        self.query_one("#data-filter", Static).update(text, layout=False)

    def _render_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        if self.show_summary:
            detail.update(
                Text(self.analysis.summary_text())
                if self.analysis
                else "No summary yet: press [b]C[/b] to critique the dataset (checks, lengths, formats, "
                "duplicates, leakage, coverage)."
            )
            return
        lst = self.query_one(ExampleList)
        ex = lst.current
        if ex is None or self.session is None:
            detail.update("No example matches. [b]Esc[/b] clears the filters." if self.session else "")
            return
        if self.show_mask:
            detail.update(self._mask_detail(ex, lst.cursor, len(lst.items)))
            return
        shown = render_example(
            ex, self.session.shape, self.findings.get(ex.id, []), total=len(lst.items), position=lst.cursor
        )
        origin = _source_line(ex)
        detail.update(Group(origin, shown) if origin is not None else shown)
        self.query_one("#detail-col").scroll_home(animate=False)

    # --- the mask view -------------------------------------------------------

    def _mask_settings(self) -> tuple[str, int]:
        """The model and max_length of the Config pane's config (the run this data is for), else the bundled model."""
        from screens.config import ConfigPane

        config = self.app.query_one(ConfigPane).config
        return (config.resolved_model(), config.train.max_length) if config is not None else ("bundled", 512)

    def action_toggle_mask(self) -> None:
        self.show_mask = not self.show_mask
        if self.show_mask and self.show_summary:
            self.action_toggle_summary()
        model, _ = self._mask_settings()
        if self.show_mask and (self._mask_tokenizer is None or self._mask_tokenizer[0] != model):
            self._load_tokenizer(model)
        self._render_detail()

    @work(thread=True, exclusive=True, group="mask-tokenizer", exit_on_error=False)
    def _load_tokenizer(self, model: str) -> None:
        from transformers import AutoTokenizer

        from workbench.models import resolve_model

        try:
            tokenizer = AutoTokenizer.from_pretrained(resolve_model(model).path)
        except Exception as exc:  # a model that cannot be found or read: said in the view, the pane goes on
            self.app.call_from_thread(
                self.notify, f"mask view: {exc}", title="Cannot load the tokenizer", severity="error"
            )
            return
        self._mask_tokenizer = (model, tokenizer)
        self.app.call_from_thread(self._render_detail)

    def _mask_detail(self, ex: Example, position: int, total: int) -> Any:
        from workbench.data.normalize import normalize
        from workbench.data.tokens import token_view

        model, max_length = self._mask_settings()
        if self._mask_tokenizer is None or self._mask_tokenizer[0] != model:
            return Text(f"Loading the tokenizer of {model}…", style="dim")
        assert self.session is not None
        try:
            [row] = normalize([ex.row], self.session.shape, "sft") or [None]
        except (WorkbenchError, KeyError, TypeError, ValueError) as exc:
            return Text(f"This example cannot be rendered for SFT: {exc}", style="red")
        if row is None:
            return Text("This example is not trained on by SFT (an unpaired row labelled false).", style="dim")
        try:
            view = token_view(row, self._mask_tokenizer[1], max_length)
        except (WorkbenchError, ValueError, TypeError) as exc:
            return Text(f"The chat template cannot render this example: {exc}", style="red")
        return render_tokens(view, model=model, position=position, total=total)

    @on(ExampleList.Highlighted)
    def _highlighted(self, _: ExampleList.Highlighted) -> None:
        if not self.show_summary:
            self._render_detail()

    # --- triage -------------------------------------------------------------

    def _writable(self) -> DatasetSession | None:
        s = self.session
        if s is None:
            self.notify("No dataset open.", severity="warning")
            return None
        if s.readonly:
            self.notify(s.readonly_reason, title="Read-only", severity="warning")
            return None
        return s

    def _current_id(self) -> int | None:
        ex = self.query_one(ExampleList).current
        return ex.id if ex else None

    def _changed(self, change: Any, advance: bool = False) -> None:
        """Show a change without re-running the filter over the whole dataset (fast at 100k examples).

        Examples that the filter no longer lets through (another status, deleted) leave the list;
        the cursor then sits on the next one. ``advance`` moves on after a triage key.
        """
        s = self.session
        lst = self.query_one(ExampleList)
        if s is None:
            return
        ids = {atom[0] for atom in getattr(change, "atoms", [])}
        gone = {i for i in ids if s.get(i).deleted or (self.status_filter and s.get(i).status != self.status_filter)}
        current = lst.current
        if gone:
            lst.drop(gone)
        elif advance and current is not None and (current.id in ids or not ids) and lst.cursor < len(lst.items) - 1:
            lst.cursor += 1
        lst.refresh_rows()
        self._render_header()
        self._render_filter(len(lst.items))
        self._render_detail()

    def _do(self, fn: Callable[[], Any], advance: bool = False, full: bool = False) -> Any:
        """Run a change on the session; errors become a notification, never a crash."""
        try:
            result = fn()
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return None
        if full:
            self.reload()
        else:
            self._changed(result, advance)
        return result

    def action_status(self, status: str) -> None:
        s, ex_id = self._writable(), self._current_id()
        if s is not None and ex_id is not None:
            self._do(lambda: s.set_status([ex_id], status), advance=True)

    def action_flag(self) -> None:
        s, ex_id = self._writable(), self._current_id()
        if s is None or ex_id is None:
            return
        current = s.get(ex_id).note

        def done(note: str | None) -> None:
            if note is not None:
                self._do(lambda: s.flag(ex_id, note.strip()), advance=True)

        self.app.push_screen(
            PromptScreen(
                f"Flag example {ex_id}: a note for later (Enter flags)", current, "e.g. date format inconsistent"
            ),
            done,
        )

    def action_undo(self) -> None:
        s = self._writable()
        if s is not None:
            change = self._do(s.undo, full=True)
            self.notify(f"Undid: {change.label}" if change else "Nothing to undo.", timeout=3)

    def action_redo(self) -> None:
        s = self._writable()
        if s is not None:
            change = self._do(s.redo, full=True)
            self.notify(f"Redid: {change.label}" if change else "Nothing to redo.", timeout=3)

    def action_next(self, what: str) -> None:
        lst = self.query_one(ExampleList)
        n = len(lst.items)
        for step in range(1, n + 1):
            ex = lst.items[(lst.cursor + step) % n]
            if (what == "finding" and self.findings.get(ex.id)) or ex.status == what:
                lst.cursor = (lst.cursor + step) % n
                return
        label = {"finding": "with a finding", "pending": "unreviewed"}.get(what, what)
        self.notify(f"No {label} example among those shown.", timeout=4)

    # --- filters ------------------------------------------------------------

    def action_search(self) -> None:
        def done(value: str | None) -> None:
            if value is not None:
                self.pattern = value or None
                self.reload()

        self.app.push_screen(
            PromptScreen(
                "Filter by text: a regular expression over every turn (empty: no filter)",
                self.pattern or "",
                r"e.g. \d{2}/\d{2}/\d{4}",
            ),
            done,
        )

    def action_cycle_status(self) -> None:
        self.status_filter = STATUS_FILTERS[(STATUS_FILTERS.index(self.status_filter) + 1) % len(STATUS_FILTERS)]
        self.reload()

    def action_cycle_source(self) -> None:
        s = self.session
        if s is None:
            return
        present = s.sources()
        cycle: list[str | None] = [
            None,
            *(x for x in SOURCE_ORDER if present[x]),
            *sorted(set(present) - set(SOURCE_ORDER)),
        ]
        if len(cycle) <= 2 and self.source_filter is None:
            only = next(iter(present), "the file")
            self.notify(f"Every example comes from one source ({only}): nothing to filter by.", timeout=4)
            return
        at = cycle.index(self.source_filter) if self.source_filter in cycle else 0
        self.source_filter = cycle[(at + 1) % len(cycle)]
        self.reload()

    def action_check_filter(self) -> None:
        if not self.findings:
            self.notify("No findings yet: press C to critique the dataset first.", timeout=5)
            return
        counts: dict[str, int] = {}
        for items in self.findings.values():
            for check in {f.check for f in items}:
                counts[check] = counts.get(check, 0) + 1
        options = [(f"any finding ({len(self.findings)})", "any")]
        options += [(f"{check} ({n})", check) for check, n in sorted(counts.items(), key=lambda kv: -kv[1])]

        def done(value: str | None) -> None:
            if value is not None:
                self.check = value
                self.reload()

        self.app.push_screen(ChoiceScreen("Show the examples with this finding", options), done)

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.notify(f"Sorted: {SORTS[self.sort_index][1]}", timeout=2)
        lst = self.query_one(ExampleList)
        lst.cursor = 0
        self.reload(keep_id=-1)  # a new order starts at its top

    def action_clear_filters(self) -> None:
        if self.pattern or self.status_filter or self.source_filter or self.check or self.sort_index:
            self.pattern = self.status_filter = self.source_filter = self.check = None
            self.sort_index = 0
            self.reload()

    # --- editing ------------------------------------------------------------

    def action_edit(self) -> None:
        s, ex_id = self._writable(), self._current_id()
        if s is None or ex_id is None:
            return

        def done(row: dict[str, Any] | None) -> None:
            if row is not None:
                self._do(lambda: s.set_row(ex_id, row))

        self.app.push_screen(EditScreen(f"Example {ex_id} ({s.shape.label})", s.get(ex_id).row, s.row_problems), done)

    def action_edit_external(self) -> None:
        s, ex_id = self._writable(), self._current_id()
        if s is None or ex_id is None:
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(s.get(ex_id).row, fh, ensure_ascii=False, indent=2)
            tmp = Path(fh.name)
        try:
            with self.app.suspend():
                subprocess.run([*shlex.split(editor), str(tmp)], check=False)
            row, error = parse_row(tmp.read_text(), s.row_problems)
        except (SuspendNotSupported, OSError) as exc:
            self.notify(f"Cannot run {editor} here ({exc}); e edits in the app.", severity="error", timeout=10)
            return
        finally:
            tmp.unlink(missing_ok=True)
        if row is None:
            self.notify(f"Not applied. {error}", severity="error", timeout=12)
            return
        self._do(lambda: s.set_row(ex_id, row))

    def action_add(self) -> None:
        s = self._writable()
        if s is None:
            return
        ex_id = self._current_id()
        template = _blank_like(s.get(ex_id).row) if ex_id is not None else {}

        def done(row: dict[str, Any] | None) -> None:
            if row is not None:
                ids = self._do(lambda: s.add([row]), full=True)
                if ids:
                    self.reload(keep_id=ids[0])

        self.app.push_screen(
            EditScreen(f"New example ({s.shape.label}); it starts pending", template, s.row_problems), done
        )

    def action_duplicate(self) -> None:
        s, ex_id = self._writable(), self._current_id()
        if s is not None and ex_id is not None:
            new = self._do(lambda: s.duplicate(ex_id), full=True)
            if new is not None:
                self.reload(keep_id=new)
                self.notify(f"Example {new} is a copy of {ex_id} (pending).", timeout=3)

    def action_delete(self) -> None:
        s, ex_id = self._writable(), self._current_id()
        if s is not None and ex_id is not None:
            self._do(lambda: s.delete([ex_id]), advance=True)
            self.notify(f"Deleted example {ex_id}. u undoes.", timeout=3)

    def action_bulk(self) -> None:
        s = self._writable()
        if s is None:
            return
        shown = [e.id for e in self.query_one(ExampleList).items]
        options = [
            (f"Accept all {len(shown)} shown", "accepted"),
            (f"Reject all {len(shown)} shown", "rejected"),
            (f"Flag all {len(shown)} shown", "flagged"),
            (f"Back to pending: all {len(shown)} shown", "pending"),
        ]
        cluster = self._cluster_of(self._current_id())
        if cluster is not None:
            options.append(
                (
                    f"Reject the {len(cluster.members) - 1} duplicate(s) in this cluster, keep example {cluster.keep}",
                    "dedup-cluster",
                )
            )
        if self.analysis is not None and self.analysis.duplicate_ids():
            options.append(
                (f"Reject every duplicate ({len(self.analysis.duplicate_ids())}), keep one per cluster", "dedup-all")
            )

        def done(choice: str | None) -> None:
            if choice is None:
                return
            if choice == "dedup-cluster" and cluster is not None:
                ids, label = [m for m in cluster.members if m != cluster.keep], "reject duplicates"
                status = "rejected"
            elif choice == "dedup-all" and self.analysis is not None:
                ids, label, status = self.analysis.duplicate_ids(), "reject all duplicates", "rejected"
            else:
                ids, label, status = shown, f"{choice} {len(shown)} shown", choice
            change = self._do(lambda: s.set_status(ids, status, label=label))
            if change is not None:
                self.notify(f"{label}: {len(change.atoms)} changed. u undoes it in one step.", timeout=5)

        self.app.push_screen(ChoiceScreen("Bulk action", options), done)

    def _cluster_of(self, ex_id: int | None) -> analyze.ClusterView | None:
        if ex_id is None or self.analysis is None:
            return None
        return self.analysis.cluster_of(ex_id)

    # --- saving -------------------------------------------------------------

    def action_save(self) -> None:
        s = self._writable()
        if s is not None:
            self._save(s)

    @work(thread=True, exclusive=True, group="data-save", exit_on_error=False)
    def _save(self, s: DatasetSession) -> None:
        try:
            path = s.save()
        except (WorkbenchError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"Not saved: {exc}", severity="error", timeout=15)
            return
        note = f"Saved {path.name} (original kept as {s.original_path.name}; review state in {s.review_path.name})"
        self.app.call_from_thread(self.notify, note, timeout=6)
        self.app.call_from_thread(self._render_header)

    def action_export(self) -> None:
        s = self.session
        if s is None:
            return
        default = s.path.with_name(f"{s.path.stem}.accepted{s.path.suffix if s.file_type != 'datasets' else '.jsonl'}")

        def done(value: str | None) -> None:
            if not value:
                return
            target = Path(value)
            target = target if target.is_absolute() else self.workspace / target
            try:
                n = s.export(target)
            except (WorkbenchError, OSError) as exc:
                self.notify(f"Not exported: {exc}", severity="error", timeout=12)
                return
            self.notify(f"Wrote {n} accepted example(s) to {target}", timeout=6)

        shown = str(default.relative_to(self.workspace)) if default.is_relative_to(self.workspace) else str(default)
        self.app.push_screen(
            PromptScreen(
                f"Export the {s.counts()['accepted']} accepted example(s) to",
                shown,
                help_text="The type follows the extension: .jsonl .json .csv .parquet",
            ),
            done,
        )

    def action_open(self) -> None:
        paths = Workspace(self.workspace).datasets()
        options = [(str(p.relative_to(self.workspace)), str(p)) for p in paths]

        def done(value: str | None) -> None:
            if value:
                self.open_path(Path(value))

        self.app.push_screen(
            ChoiceScreen(
                "Open a dataset", options, help_text="" if options else f"No dataset files in {self.workspace}."
            ),
            done,
        )


def _source_line(ex: Example) -> Text | None:
    """Where a production example came from (request id, time, server, model, why it was picked), for the detail."""
    info = ex.source_info
    if ex.source != "production" or not info:
        return None
    bits = [f"request {info.get('request_id', '?')}", str(info.get("time", ""))]
    bits += [f"{label} {info[k]}" for k, label in (("server_id", "server"), ("model", "model")) if info.get(k)]
    line = Text.assemble(("from production: ", "bold cyan"), " · ".join(b for b in bits if b))
    if info.get("why"):
        line.append(f" · picked: {info['why']}", style="yellow")
    return line


def _blank_like(row: dict[str, Any]) -> dict[str, Any]:
    """A template with the same fields as ``row`` and empty texts (roles kept)."""

    def blank(value: Any) -> Any:
        if isinstance(value, str):
            return ""
        if isinstance(value, list):
            return [blank(v) for v in value]
        if isinstance(value, dict):
            return {k: (v if k in ("role", "from") else blank(v)) for k, v in value.items()}
        return value

    return blank(row)


def _escape(text: str) -> str:
    from textual.markup import escape

    return escape(text)
