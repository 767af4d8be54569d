"""The Models pane: every model of the workspace, and the keys to merge, export, chat with, serve and stop them.

The listing (workbench.ship.inventory.list_models) runs in a worker every few seconds; merges, GGUF
exports, server starts and stops run in workers too and post their progress, so the UI thread only
renders. The ship, serve and chat modules are imported inside the actions, so the pane lists models
even where one of them is missing.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from screens.modals import ChoiceScreen
from screens.widgets.lazy import LoadsWhenShown
from workbench.errors import WorkbenchError, one_line
from workbench.ship.inventory import ModelEntry, list_models

REFRESH_EVERY = 3.0  # seconds between listings (sizes and eval figures are cached: a listing is cheap)
GGUF_TYPES = (
    ("q8_0", "q8_0: 8-bit, about half of f16, nearly lossless (the usual choice)"),
    ("q4_0", "q4_0: 4-bit, about a quarter of f16, some loss"),
    ("f16", "f16: 16-bit floats, lossless for most models"),
    ("bf16", "bf16: bfloat16, the training precision of most recent models"),
)
KIND_STYLE = {
    "base": "bold",
    "adapter": "cyan",
    "checkpoint": "cyan",
    "merged": "green",
    "gguf": "magenta",
    "server": "yellow",
}
STATE_STYLE = {
    "running": "bold green",
    "starting": "green",
    "stopping": "yellow",
    "stopped": "dim",
    "failed": "bold red",
    "lost": "bold magenta",
}
NAME_W = 34
FROM_W = 26
# Fixed widths (label, key, width): measured widths are applied only when the table is next idle, and rows
# drawn before that kept the header's widths on screen (seen once by hand, and in a snapshot under load).
COLUMNS = (
    ("kind", "kind", 10),
    ("name", "name", NAME_W + 1),  # + the mark
    ("from", "from", FROM_W),
    ("size", "size", 8),
    ("eval", "eval", 17),  # "100% [100%, 100%]", "0.62 [0.55, 0.69]"
    ("gate/state", "gate", 10),
)


def human_size(n: int | None) -> str:
    """1.2 MB, 270 MB, 4.1 GB; '?' when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _stamp(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) if t else "?"


@dataclass
class ModelsListed(Message):
    entries: list[ModelEntry]
    error: str = ""


class ModelsPane(LoadsWhenShown, Vertical):
    """Bases, adapters, checkpoints, merged models, GGUF files and servers; every action has a key."""

    BINDINGS = [
        Binding("m", "merge", "Merge", id="models.merge", tooltip="Merge the adapter or checkpoint into its base"),
        Binding(
            "g", "gguf", "GGUF", id="models.gguf", tooltip="Export the merged model as GGUF (f16, bf16, q8_0, q4_0)"
        ),
        Binding("c", "chat", "Chat", id="models.chat", tooltip="Chat with the highlighted model, or the two marked"),
        Binding(
            "s",
            "serve",
            "Serve",
            id="models.serve",
            tooltip="Start an OpenAI-compatible server (marked or highlighted)",
        ),
        Binding("x", "stop", "Stop server", id="models.stop", tooltip="Stop the highlighted server"),
        Binding(
            "o", "monitor", "Monitor", id="models.monitor", tooltip="The highlighted server's traffic, drift and alerts"
        ),
        Binding(
            "space", "mark", "Mark", id="models.mark", tooltip="Mark models to chat with side by side or serve together"
        ),
        Binding("r", "refresh", "Refresh", id="models.refresh", tooltip="List the models again now"),
        Binding("y", "copy_path", "Copy path", id="models.copy", show=False, tooltip="Copy the model's path"),
    ]

    def __init__(self, workspace: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.entries: list[ModelEntry] = []
        self.marked: list[str] = []  # keys, in the order they were marked
        self.listed = False  # the table shows a listing (tests and snapshots wait for it)
        self.jobs: dict[str, str] = {}  # running job kind -> what it is doing, for the header
        self._listing = False
        self._again = False
        self._select: str | None = None  # a key to highlight once the next listing has it
        self._shown_rows: dict[str, tuple[Any, ...]] = {}
        self._error = ""
        self.failures: dict[str, str] = {}  # model key -> why its last job failed, shown in its detail

    def compose(self) -> ComposeResult:
        yield Static("Listing models…", id="models-header")
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=False)
        with VerticalScroll(id="models-detail-box"):
            yield Static("", id="models-detail")
        yield Static("", id="models-actions")

    def on_mount(self) -> None:
        table = self.query_one("#models-table", DataTable)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)

    def first_shown(self) -> None:
        self.refresh_list()
        self.set_interval(REFRESH_EVERY, self.refresh_list)

    # --- listing -------------------------------------------------------------------------

    def refresh_list(self) -> None:
        if self._listing:  # never two at once; one more after it, which sees what changed meanwhile
            self._again = True
            return
        self._listing, self._again = True, False
        self._list()

    @work(thread=True, group="models-list", exit_on_error=False)
    def _list(self) -> None:
        try:
            self.post_message(ModelsListed(list_models(self.workspace)))
        except Exception as exc:  # an unreadable workspace: say so, keep what is shown
            self.post_message(ModelsListed([], error=str(exc) if isinstance(exc, WorkbenchError) else one_line(exc)))

    def on_models_listed(self, message: ModelsListed) -> None:
        self._listing = False
        if self._again:
            self.refresh_list()
        self._error = message.error
        if not message.error:
            self.entries = message.entries
            keys = {e.key for e in self.entries}
            self.marked = [k for k in self.marked if k in keys]
            self._fill_table()
        self.listed = True
        self._render_header()
        self._render_detail()

    def _row(self, e: ModelEntry) -> tuple[Any, ...]:
        mark = "+" if e.key in self.marked else " "
        if e.kind == "server":
            from_text = ", ".join(e.models)
        elif e.kind in ("adapter", "checkpoint"):
            from_text = f"{e.config or 'run'} {e.run_id or ''}".strip()
        elif e.kind == "base":
            from_text = "" if e.path == e.label else e.source
        else:
            from_text = e.source
        figure = e.figure.describe() if e.figure else ""
        if e.kind == "server":
            gate_or_state: Text = Text(e.state or "?", style=STATE_STYLE.get(e.state or "", ""))
        elif e.gate is not None:
            gate_or_state = (
                Text("pass", style="green") if e.gate.ok else Text(f"fail {e.gate.passed}/{e.gate.total}", style="red")
            )
        else:
            gate_or_state = Text("")
        return (
            Text(e.kind, style=KIND_STYLE.get(e.kind, "")),
            f"{mark}{_clip(e.label, NAME_W)}",
            _clip(from_text, FROM_W),
            human_size(e.size_bytes) if e.kind != "server" else (f"{e.requests} req" if e.requests is not None else ""),
            figure,
            gate_or_state,
        )

    def _fill_table(self) -> None:
        """Rows updated in place when the same models are listed, so the cursor stays put."""
        table = self.query_one("#models-table", DataTable)
        rows = {e.key: self._row(e) for e in self.entries}
        current = [str(k.value) for k in table.rows]
        highlighted = self.highlighted_key()
        if current == list(rows):
            for key, cells in rows.items():
                if self._shown_rows.get(key) != cells:
                    for (_, column, _), value in zip(COLUMNS, cells):
                        table.update_cell(key, column, value)
        else:
            table.clear()
            for key, cells in rows.items():
                table.add_row(*cells, key=key)
            wanted = self._select if self._select in rows else highlighted
            if wanted in rows:
                table.move_cursor(row=list(rows).index(wanted), animate=False)
        if self._select in rows and self._select != self.highlighted_key():
            table.move_cursor(row=list(rows).index(self._select), animate=False)
        if self._select in rows:
            self._select = None
        self._shown_rows = rows

    # --- rendering -----------------------------------------------------------------------

    def highlighted_key(self) -> str | None:
        table = self.query_one("#models-table", DataTable)
        if not table.row_count:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def highlighted(self) -> ModelEntry | None:
        key = self.highlighted_key()
        return next((e for e in self.entries if e.key == key), None)

    def _render_header(self) -> None:
        counts: dict[str, int] = {}
        for e in self.entries:
            counts[e.kind] = counts.get(e.kind, 0) + 1
        plural = {"base": "bases", "adapter": "adapters", "checkpoint": "checkpoints", "merged": "merged"}
        parts = [
            f"{n} {plural.get(kind, kind + 's') if n > 1 or kind == 'merged' else kind}" for kind, n in counts.items()
        ]
        first = "[b]Models[/b]  " + " · ".join(parts)
        if self.marked:
            first += f"  ·  [b]{len(self.marked)} marked[/b] (space)"
        if self._error:
            second = f"[red]Could not list the models: {self._error}[/]"
        elif self.jobs:
            second = "[yellow]" + " · ".join(self.jobs.values()) + "[/]"
        elif not any(e.kind in ("adapter", "checkpoint", "merged") for e in self.entries):
            second = (
                "[dim]No trained models yet: launch a run in the Train pane (3); its adapter and checkpoints "
                "appear here, ready to merge, export, chat with and serve.[/]"
            )
        else:
            second = "[dim]space marks models for chat (two, side by side) or serve (any number).[/]"
        self.query_one("#models-header", Static).update(Text.from_markup(first + "\n" + second))

    def _render_detail(self) -> None:
        e = self.highlighted()
        detail = self.query_one("#models-detail", Static)
        bar = self.query_one("#models-actions", Static)
        if e is None:
            detail.update("")
            bar.update("")
            return
        text = detail_text(e, Path(self.workspace))
        if e.key in self.failures:
            text = Text(self.failures[e.key] + "\n", style="red") + text
        detail.update(text)
        keys = {
            "merge": "m merge",
            "gguf": "g GGUF",
            "chat": "c chat",
            "serve": "s serve",
            "stop": "x stop",
            "monitor": "o monitor",
        }
        offered = [keys[a] for a in e.actions if a in keys]
        bar.update(
            Text.from_markup(
                "  ".join(f"[b]{k.split()[0]}[/b] {k.split()[1]}" for k in offered)
                if offered
                else "[dim]nothing to do with this one from here (its commands are above)[/]"
            )
        )

    @on(DataTable.RowHighlighted, "#models-table")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._render_detail()

    # --- actions -------------------------------------------------------------------------

    def _entry_for(self, action: str, what: str) -> ModelEntry | None:
        e = self.highlighted()
        if e is None:
            self.notify("No model highlighted.", severity="warning", timeout=3)
            return None
        if action not in e.actions:
            self.notify(f"{e.label}: {what}", severity="warning", timeout=5)
            return None
        return e

    def _busy(self, job: str) -> bool:
        if job in self.jobs:
            self.notify(f"Wait for the {job} in hand: {self.jobs[job]}", severity="warning", timeout=4)
            return True
        return False

    def _progress(self, job: str, text: str) -> None:
        self.jobs[job] = text
        self._render_header()

    def _done(self, job: str, key: str, message: str, *, select: str | None = None, error: bool = False) -> None:
        """A job ended: say how; a failure stays in the model's detail until its next job."""
        self.jobs.pop(job, None)
        if select:
            self._select = select
        if error:
            self.failures[key] = f"{job} failed: {message}"
            self.notify(message, title=f"{job.capitalize()} failed", severity="error", timeout=15)
        else:
            self.failures.pop(key, None)
            self.notify(message, timeout=8)
        self._render_header()
        self._render_detail()
        self.refresh_list()

    def action_merge(self) -> None:
        e = self._entry_for("merge", "only an adapter or a checkpoint merges into its base")
        if e is not None and not self._busy("merge"):
            self._progress("merge", f"merging {e.key}…")
            self._merge(e.key)

    @work(thread=True, group="models-merge", exit_on_error=False)
    def _merge(self, key: str) -> None:
        def progress(text: str) -> None:
            self.app.call_from_thread(self._progress, "merge", f"merge {key}: {text}")

        try:
            from workbench.ship.merge import merge_model

            result = merge_model(self.workspace, key, progress=progress)
        except Exception as exc:
            self.app.call_from_thread(self._done, "merge", key, _why(exc), error=True)
            return
        self.app.call_from_thread(
            self._done,
            "merge",
            key,
            f"Merged {key} into {result.path.name} ({human_size(result.size_bytes)}, {result.seconds:.0f} s).",
            select=str(result.path),
        )

    def action_gguf(self) -> None:
        e = self._entry_for("gguf", "GGUF exports a merged model: merge the adapter first (m)")
        if e is None or self._busy("gguf"):
            return
        self.app.push_screen(
            ChoiceScreen(
                f"Export [b]{e.label}[/b] as GGUF: which type? (Enter; Esc cancels)",
                [(label, qtype) for qtype, label in GGUF_TYPES],
                help_text="The file and an Ollama Modelfile are written beside the merged model, in models/.",
            ),
            lambda qtype: self._gguf_chosen(e.path, qtype),
        )

    def _gguf_chosen(self, path: str, qtype: str | None) -> None:
        if qtype:
            self._progress("gguf", f"exporting {Path(path).name} as {qtype}…")
            self._gguf(path, qtype)

    @work(thread=True, group="models-gguf", exit_on_error=False)
    def _gguf(self, path: str, qtype: str) -> None:
        def progress(text: str) -> None:
            self.app.call_from_thread(self._progress, "gguf", f"GGUF {qtype}: {text}")

        try:
            from workbench.ship.gguf import export_gguf

            result = export_gguf(Path(path), qtype=qtype, progress=progress)
        except Exception as exc:
            self.app.call_from_thread(self._done, "gguf", path, _why(exc), error=True)
            return
        self.app.call_from_thread(
            self._done,
            "gguf",
            path,
            f"Wrote {result.path.name} ({human_size(result.size_bytes)}, {result.seconds:.0f} s) and its Modelfile.",
            select=str(result.path),
        )

    def _names_for(self, action: str, what: str, *, most: int | None = None) -> list[str] | None:
        """The marked models that allow the action, else the highlighted one."""
        if self.marked:
            chosen = [e for k in self.marked for e in self.entries if e.key == k]
            wrong = [e.label for e in chosen if action not in e.actions]
            if wrong:
                self.notify(f"{', '.join(wrong)}: {what}", severity="warning", timeout=5)
                return None
            if most is not None and len(chosen) > most:
                self.notify(f"Mark at most {most} models for this (space unmarks).", severity="warning", timeout=5)
                return None
            return [e.key for e in chosen]
        e = self._entry_for(action, what)
        return None if e is None else [e.key]

    def action_chat(self) -> None:
        names = self._names_for("chat", "chat needs a model (not a GGUF file or a server)", most=2)
        if not names:
            return
        try:
            from screens.chat import ChatScreen
        except ImportError as exc:
            self.notify(f"The chat playground is not available: {one_line(exc)}", severity="error")
            return
        self.app.push_screen(ChatScreen(self.workspace, names))

    def action_serve(self) -> None:
        names = self._names_for("serve", "a server serves models (bases, adapters, checkpoints, merged models)")
        if names and not self._busy("serve"):
            self._progress("serve", f"starting a server for {', '.join(names)}…")
            self._serve(names)

    @work(thread=True, group="models-serve", exit_on_error=False)
    def _serve(self, names: list[str]) -> None:
        try:
            from workbench.serve.servedir import start_server

            sd = start_server(self.workspace, names)
            url = sd.read_status_raw().get("url")
        except Exception as exc:
            self.app.call_from_thread(self._done, "serve", names[0], _why(exc), error=True)
            return
        where = f" at {url}" if url else " (still loading; its state is in the list)"
        self.app.call_from_thread(self._done, "serve", names[0], f"Serving {', '.join(names)}{where}.", select=sd.id)

    def action_stop(self) -> None:
        e = self._entry_for("stop", "x stops a running server; highlight one")
        if e is not None and not self._busy("stop"):
            self._progress("stop", f"stopping {e.key}…")
            self._stop(e.key)

    @work(thread=True, group="models-stop", exit_on_error=False)
    def _stop(self, server_id: str) -> None:
        try:
            from workbench.serve.servedir import find_server, stop_server

            state = stop_server(find_server(self.workspace, server_id))
        except Exception as exc:
            self.app.call_from_thread(self._done, "stop", server_id, _why(exc), error=True)
            return
        self.app.call_from_thread(self._done, "stop", server_id, f"Server {server_id} is {state}.")

    def action_monitor(self) -> None:
        e = self._entry_for("monitor", "o monitors a server: highlight one (serve a model with s first)")
        if e is None:
            return
        from screens.monitor import MonitorScreen

        self.app.push_screen(MonitorScreen(self.workspace, e.key))

    def action_mark(self) -> None:
        key = self.highlighted_key()
        if key is None:
            return
        self.marked = [k for k in self.marked if k != key] if key in self.marked else [*self.marked, key]
        self._fill_table()
        self._render_header()

    def action_refresh(self) -> None:
        self.refresh_list()

    def action_copy_path(self) -> None:
        e = self.highlighted()
        if e is not None:
            self.app.copy_to_clipboard(e.path)
            self.notify(f"Copied {e.path}", timeout=3)


def _why(exc: Exception) -> str:
    """A user's error as written; anything else as one line (never a traceback on screen)."""
    return str(exc) if isinstance(exc, WorkbenchError) else one_line(exc)


def _shown_path(path: str, workspace: Path) -> str:
    """A path as typed from the workspace (relative when inside it)."""
    try:
        return str(Path(path).relative_to(workspace))
    except ValueError:
        return path


def commands(e: ModelEntry, workspace: Path) -> list[tuple[str, str]]:
    """The exact CLI command of each action (run from the workspace)."""
    key = shlex.quote(_shown_path(e.key, workspace))
    out = []
    for action in e.actions:
        if action == "merge":
            out.append(("merge", f"workbench merge {key}"))
        elif action == "gguf":
            out.append(("gguf", f"workbench gguf {key} --type q8_0"))
        elif action == "chat":
            out.append(("chat", f"workbench chat {key}"))
        elif action == "serve":
            out.append(("serve", f"workbench serve start {key}"))
        elif action == "stop":
            out.append(("stop", f"workbench serve stop {key}"))
    if e.kind == "gguf":
        name = Path(e.path).name.split(".")[0].lower()
        if e.modelfile:
            out.append(
                ("ollama", f"ollama create {shlex.quote(name)} -f {shlex.quote(_shown_path(e.modelfile, workspace))}")
            )
        out.append(("llama.cpp", f"llama-cli -m {shlex.quote(_shown_path(e.path, workspace))} -cnv"))
    if e.kind == "server" and e.url and e.state == "running":
        out.append(("call", f"curl {e.url}/v1/models"))
    return out


def detail_text(e: ModelEntry, workspace: Path) -> Text:
    """The highlighted model: what it is, where it came from, its eval figures, and the commands."""
    text = Text()
    text.append(e.label, style="bold")
    text.append(f"  {e.kind}", style=KIND_STYLE.get(e.kind, ""))
    lines: list[tuple[str, str]] = [("key", e.key if e.kind != "merged" else _shown_path(e.key, workspace))]
    if e.path != e.key:
        lines.append(("path", e.path))
    if e.source:
        lines.append(("from", e.source))
    if e.config:
        lines.append(("config", e.config))
    if e.base and e.kind != "base":
        lines.append(("base", e.base))
    if e.kind != "server":
        lines.append(("size", human_size(e.size_bytes)))
    if e.kind not in ("base",):
        lines.append(("created", _stamp(e.created)))
    if e.qtype:
        lines.append(("type", e.qtype))
    if e.kind == "server":
        lines.append(("state", e.state or "?"))
        if e.url:
            lines.append(("url", e.url))
        lines.append(("models", ", ".join(e.models) or "?"))
        lines.append(("requests", "?" if e.requests is None else str(e.requests)))
    prov = e.provenance
    if prov:
        if prov.get("dtype"):
            lines.append(("dtype", str(prov["dtype"])))
        for item in prov.get("data") or []:
            if isinstance(item, dict):
                lines.append(("data", f"{item.get('path')} ({item.get('rows')} rows)"))
        if prov.get("system_prompt"):
            lines.append(("system", _clip(str(prov["system_prompt"]), 100)))
    for label, value in lines:
        text.append(f"\n{label:<9}", style="dim")
        text.append(value)
    if e.figures:
        text.append("\nevals", style="dim")
        for f in e.figures:
            best = " ← best" if f == e.figure else ""
            text.append(f"\n  {f.eval_id}: {f.metric} {f.describe()} n={f.n}{best}")
    elif e.kind not in ("gguf", "server"):
        text.append("\nevals    ", style="dim")
        text.append("none yet (the Eval pane, 4, compares it with the base)", style="dim")
    if e.gate is not None:
        text.append("\ngate     ", style="dim")
        text.append(e.gate.summary.splitlines()[0], style="green" if e.gate.ok else "red")
    cmds = commands(e, workspace)
    if cmds:
        text.append("\ncommands (from the workspace)", style="dim")
        for label, cmd in cmds:
            text.append(f"\n  {label:<9}", style="dim")
            text.append(cmd, style="bold")
    return text
