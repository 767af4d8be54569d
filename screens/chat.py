"""The chat playground: one or two models side by side, their answers streaming in as they are generated.

Pushed by the Models pane (``ChatScreen(workspace, names)``); Escape goes back. Everything it does is a
call into :class:`workbench.chat.ChatSession`, in workers: loading the engine, sending (each delta is
posted to the UI with ``call_from_thread``), saving a conversation as a pending example or a case.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Static
from textual.worker import get_current_worker

from screens.modals import ChoiceScreen, PromptScreen
from workbench.chat import ChatDelta, ChatSession, parse_expect
from workbench.errors import WorkbenchError
from workbench.eval.store import GenerationSettings

NEW_SUITE = "\0new"


def _short(path: Path, root: Path) -> str:
    path, root = path.resolve(), root.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def settings_line(settings: GenerationSettings, system_prompt: str | None) -> Text:
    """The generation settings and the system prompt, as the screen's second line shows them."""
    how = "greedy" if settings.greedy else f"temperature {settings.temperature:g} · top p {settings.top_p:g}"
    if "seed" in settings.model_fields_set:
        how += f" · seed {settings.seed}"
    line = Text.assemble((how, "bold"), f" · at most {settings.max_new_tokens} new tokens · system: ")
    if system_prompt:
        flat = " ".join(system_prompt.split())
        line.append(flat if len(flat) <= 90 else flat[:89] + "…", style="italic")
    else:
        line.append("(none)", style="dim")
    line.append("   ctrl+g changes", style="dim")
    return line


class ChatSettingsScreen(ModalScreen[dict[str, str] | None]):
    """Temperature, max new tokens, top p, seed and the system prompt; Enter applies, Esc cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    FIELDS = [
        ("temperature", "temperature (0: greedy)"),
        ("max_new_tokens", "max new tokens"),
        ("top_p", "top p"),
        ("seed", "seed (blank: none)"),
        ("system_prompt", "system prompt (blank: none)"),
    ]

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__()
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("[b]Generation settings[/b] for the next answers")
            for key, label in self.FIELDS:
                with Horizontal(classes="chat-setting"):
                    yield Label(label, classes="chat-setting-label")
                    yield Input(self.values.get(key, ""), id=f"set-{key}")
            yield Label("[b]Enter[/b] apply    [b]Esc[/b] cancel    [b]Tab[/b] next field", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss({key: self.query_one(f"#set-{key}", Input).value for key, _ in self.FIELDS})


class ChatScreen(Screen[None]):
    """Chat with one or two models: type below, answers stream into one column per model."""

    CSS_PATH = "chat.tcss"
    BINDINGS = [
        Binding("escape", "close", "Back", id="chat.close", tooltip="Back to where the chat was opened"),
        Binding(
            "ctrl+s", "save_example", "Save as example", id="chat.save_example", tooltip="Keep it as a pending example"
        ),
        Binding("ctrl+r", "save_case", "Save as case", id="chat.save_case", tooltip="Keep it as a regression case"),
        Binding("ctrl+l", "clear", "Clear", id="chat.clear", tooltip="Start the conversation again"),
        Binding("ctrl+g", "settings", "Settings", id="chat.settings", tooltip="Temperature, tokens, system prompt"),
    ]

    def __init__(self, workspace: Path, names: Sequence[str], **kw: Any) -> None:
        session_kw = {k: kw.pop(k) for k in ("system_prompt", "settings", "engine") if k in kw}
        super().__init__(**kw)
        self.workspace = Path(workspace)
        self.names = list(names)[:2]
        self.session_kw = session_kw
        self.session: ChatSession | None = None
        self.load_error: str | None = None
        self.asking: str | None = None
        """The user turn being answered (None when idle)."""
        self.pending: dict[str, str] = {}
        self.footers: dict[str, str] = {}
        self.datasets: list[Path] = []
        self.suites: list[Path] = []

    @property
    def busy(self) -> bool:
        return self.asking is not None

    def compose(self) -> ComposeResult:
        yield Static(self._header_text(), id="chat-header")
        yield Static("", id="chat-settings")
        with Horizontal(id="chat-columns"):
            for i, name in enumerate(self.names):
                with VerticalScroll(classes="chat-column", id=f"chat-col-{i}"):
                    yield Label(f"[b]{name}[/b]", classes="chat-title", id=f"chat-title-{i}")
                    yield Static(Text("loading model…", style="dim"), classes="chat-log", id=f"chat-log-{i}")
        yield Static("", id="chat-status")
        yield Input(placeholder="loading the model…", id="chat-input")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#chat-input", Input).focus()
        self._load()

    def on_unmount(self) -> None:
        session, self.session = self.session, None
        if session is not None:  # closing waits for the engine thread: never on the UI thread
            threading.Thread(target=session.close, name="chat-close", daemon=True).start()

    # --- loading ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="chat-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            session = ChatSession(self.workspace, self.names, **self.session_kw)
            datasets, suites = session.dataset_choices(), session.suite_choices()
        except WorkbenchError as err:
            self.app.call_from_thread(self._load_failed, str(err))
            return
        if get_current_worker().is_cancelled:
            session.close()
            return
        self.app.call_from_thread(self._loaded, session, datasets, suites)

    def _loaded(self, session: ChatSession, datasets: list[Path], suites: list[Path]) -> None:
        self.session, self.datasets, self.suites = session, datasets, suites
        for i, model in enumerate(session.models):
            self.query_one(f"#chat-title-{i}", Label).update(f"[b]{model}[/b]")
        self.query_one("#chat-header", Static).update(self._header_text())
        self.query_one("#chat-input", Input).placeholder = "Type a message; Enter sends"
        self._show_settings()
        self._render_columns()

    def _load_failed(self, message: str) -> None:
        self.load_error = message
        for i in range(len(self.names)):
            self.query_one(f"#chat-log-{i}", Static).update(Text(f"cannot load: {message}", style="red"))
        self._status(f"cannot load the model: {message}", error=True)
        self.query_one("#chat-input", Input).placeholder = "the model did not load; Esc goes back"

    def _header_text(self) -> Text:
        models = self.session.models if self.session else self.names
        text = Text.assemble(("Chat", "bold"), " with ", (" and ".join(models), "bold"))
        if self.session is None and self.load_error is None:
            text.append("   loading…", style="dim")
        elif self.session is not None:
            text.append(f"   {self.session.turns} turn(s)", style="dim")
        return text

    def _show_settings(self) -> None:
        if self.session is not None:
            line = settings_line(self.session.settings, self.session.system_prompt)
            self.query_one("#chat-settings", Static).update(line)

    # --- sending ---------------------------------------------------------------------

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip():
            return
        if self.session is None:
            self._status(self.load_error or "the model is still loading", error=True)
            return
        if self.busy:
            self._status("wait for the answers before the next message", error=True)
            return
        event.input.value = ""
        self.asking = text
        self.pending = {m: "" for m in self.session.models}
        self.footers = {}
        self._status("")
        self._render_columns()
        self._send(self.session, text)

    @work(thread=True, exclusive=True, group="chat-send", exit_on_error=False)
    def _send(self, session: ChatSession, text: str) -> None:
        worker = get_current_worker()
        try:
            stream = session.send(text)
            for delta in stream:
                if worker.is_cancelled:  # the screen went away: the turn is dropped
                    stream.close()
                    return
                self.app.call_from_thread(self._delta, delta)
        except WorkbenchError as err:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._send_done, str(err))
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._send_done, None)

    def _delta(self, delta: ChatDelta) -> None:
        if delta.done and delta.completion is not None:
            c = delta.completion
            end = "stopped" if c.finish_reason == "stop" else "cut at the token limit"
            self.footers[delta.model] = f"{c.completion_tokens} tokens · {c.seconds:.1f} s · {end}"
        else:
            self.pending[delta.model] = self.pending.get(delta.model, "") + delta.text
        if self.session is not None and delta.model in self.session.models:
            self._render_column(self.session.models.index(delta.model))

    def _send_done(self, error: str | None) -> None:
        self.asking = None
        self.pending = {}
        if error:
            self._status(f"no answer: {error}", error=True)
        self.query_one("#chat-header", Static).update(self._header_text())
        self._render_columns()

    # --- rendering -------------------------------------------------------------------

    def _render_columns(self) -> None:
        if self.session is not None:
            for i in range(len(self.session.models)):
                self._render_column(i)

    def _render_column(self, i: int) -> None:
        assert self.session is not None
        model = self.session.models[i]
        text = Text()
        turns = [m for m in self.session.history(model) if m["role"] != "system"]
        if self.asking is not None:
            turns += [
                {"role": "user", "content": self.asking},
                {"role": "assistant", "content": self.pending.get(model, "")},
            ]
        for n, m in enumerate(turns):
            if m["role"] == "user":
                text.append("you  ", style="bold cyan")
                text.append(m["content"] + "\n")
            else:
                text.append(m["content"])
                if self.asking is not None and n == len(turns) - 1 and model not in self.footers:
                    text.append("▌", style="blink")
                text.append("\n")
                if n == len(turns) - 1 and model in self.footers:
                    text.append(self.footers[model] + "\n", style="dim")
                text.append("\n")
        if not turns:
            text.append("Ask something below; the answers stream here.", style="dim")
        self.query_one(f"#chat-log-{i}", Static).update(text)
        self.query_one(f"#chat-col-{i}", VerticalScroll).scroll_end(animate=False)

    def _status(self, message: str, *, error: bool = False) -> None:
        self.query_one("#chat-status", Static).update(Text(message, style="red" if error else "green"))

    # --- keys ------------------------------------------------------------------------

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_clear(self) -> None:
        if self.session is None or self.busy:
            self._status("wait for the answers before clearing", error=True)
            return
        self.session.reset()
        self.footers = {}
        self._status("conversation cleared")
        self.query_one("#chat-header", Static).update(self._header_text())
        self._render_columns()

    def action_settings(self) -> None:
        session = self.session
        if session is None:
            return
        s = session.settings
        values = {
            "temperature": f"{s.temperature:g}",
            "max_new_tokens": str(s.max_new_tokens),
            "top_p": f"{s.top_p:g}",
            "seed": str(s.seed) if "seed" in s.model_fields_set else "",
            "system_prompt": session.system_prompt or "",
        }

        def done(answer: dict[str, str] | None) -> None:
            if answer is None:
                return
            changes: dict[str, Any] = {k: answer[k].strip() for k in ("temperature", "max_new_tokens", "top_p")}
            if answer["seed"].strip():
                changes["seed"] = answer["seed"].strip()
            try:
                session.set_settings(**changes)
            except WorkbenchError as err:
                self._status(str(err), error=True)
                return
            session.system_prompt = answer["system_prompt"].strip() or None
            self._status("settings changed; they apply from the next message")
            self._show_settings()

        self.app.push_screen(ChatSettingsScreen(values), done)

    def _ready_to_save(self) -> ChatSession | None:
        if self.session is None or self.busy:
            self._status("wait for the answers before saving", error=True)
            return None
        if not self.session.turns:
            self._status("nothing to save yet: send a message first", error=True)
            return None
        return self.session

    def _pick_model(self, title: str, then: Callable[[str], None]) -> None:
        assert self.session is not None
        models = self.session.models
        if len(models) == 1:
            then(models[0])
            return
        self.app.push_screen(
            ChoiceScreen(title, [(f"{m}'s answers", m) for m in models]), lambda m: then(m) if m else None
        )

    def action_save_example(self) -> None:
        session = self._ready_to_save()
        if session is None:
            return

        def pick_dataset(model: str) -> None:
            if not self.datasets:
                self._status("no datasets in the workspace to add the example to", error=True)
                return
            options = [(_short(p, self.workspace), str(p)) for p in self.datasets]
            title = f"Add {model}'s conversation, pending, to which dataset?"
            self.app.push_screen(
                ChoiceScreen(title, options, "The chatted run's training set is first."),
                lambda path: self._save_example(session, Path(path), model) if path else None,
            )

        self._pick_model("Save whose answers as the example?", pick_dataset)

    @work(thread=True, group="chat-save", exit_on_error=False)
    def _save_example(self, session: ChatSession, path: Path, model: str) -> None:
        try:
            index = session.save_as_example(path, model)
        except WorkbenchError as err:
            self.app.call_from_thread(self._status, f"not saved: {err}", error=True)
            return
        where = _short(path, self.workspace)
        self.app.call_from_thread(self._status, f"saved as example {index} of {where} (pending, for the Data pane)")

    def action_save_case(self) -> None:
        session = self._ready_to_save()
        if session is None:
            return

        def ask_expect(model: str, suite: Path) -> None:
            answer = session.last_answer(model)

            def done(text: str | None) -> None:
                if text is None:
                    return
                try:
                    expect = parse_expect(text, answer)
                except WorkbenchError as err:
                    self._status(str(err), error=True)
                    return
                self._save_case(session, suite, model, expect)

            self.app.push_screen(
                PromptScreen(
                    f"What must {model}'s answer satisfy? (a JSON object)",
                    placeholder='blank: contains this answer; or {"must_contain": "refund"}, {"refuse": true}',
                    help_text="checks: must_contain, must_not_contain, regex, json_schema, equals, refuse",
                ),
                done,
            )

        def pick_suite(model: str) -> None:
            options = [(_short(p, self.workspace), str(p)) for p in self.suites] + [("a new suite…", NEW_SUITE)]

            def chosen(value: str | None) -> None:
                if value is None:
                    return
                if value != NEW_SUITE:
                    ask_expect(model, Path(value))
                    return
                self.app.push_screen(
                    PromptScreen("New suite file (relative to the workspace)", "suites/chat.jsonl"),
                    lambda name: ask_expect(model, self.workspace / name.strip()) if name and name.strip() else None,
                )

            self.app.push_screen(ChoiceScreen("Add the case to which suite?", options), chosen)

        self._pick_model("Save whose conversation as the case?", pick_suite)

    @work(thread=True, group="chat-save", exit_on_error=False)
    def _save_case(self, session: ChatSession, suite: Path, model: str, expect: dict[str, Any]) -> None:
        try:
            case_id = session.save_as_case(suite, model, expect)
        except WorkbenchError as err:
            self.app.call_from_thread(self._status, f"not saved: {err}", error=True)
            return
        self.app.call_from_thread(self._case_saved, suite, case_id)

    def _case_saved(self, suite: Path, case_id: str) -> None:
        if suite not in self.suites:
            self.suites.append(suite)
        self._status(f"saved case {case_id} to {_short(suite, self.workspace)}")
