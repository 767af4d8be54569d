"""The workbench app: five panes, one key each; thin on purpose.

`create_app` is the factory the CLI, the tests and the benchmarks share.
"""

from __future__ import annotations

import copy
import gc
import os
import select
import sys
import termios
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from screens.config import ConfigPane
from screens.data import DataPane
from screens.eval import EvalPane
from screens.modals import HelpScreen
from screens.models import ModelsPane
from screens.train import TrainPane
from workbench.appstate import AppState, load_state, save_state

PANES = [("data", "1 Data"), ("config", "2 Config"), ("train", "3 Train"), ("eval", "4 Eval"), ("models", "5 Models")]


class WorkbenchApp(App[None]):
    """Data, Config, Train, Eval and Models over one workspace."""

    CSS_PATH = ["app.tcss", "train.tcss", "data.tcss", "config.tcss", "eval.tcss", "models.tcss"]
    TITLE = "Fine-tuning workbench"
    BINDINGS = [
        Binding(
            "1,f1",
            "pane('data')",
            "Data",
            key_display="1",
            id="pane.data",
            show=False,
            tooltip="The Data pane (F1 too)",
        ),
        Binding(
            "2,f2",
            "pane('config')",
            "Config",
            key_display="2",
            id="pane.config",
            show=False,
            tooltip="The Config pane (F2 too)",
        ),
        Binding(
            "3,f3",
            "pane('train')",
            "Train",
            key_display="3",
            id="pane.train",
            show=False,
            tooltip="The Train pane (F3 too)",
        ),
        Binding(
            "4,f4",
            "pane('eval')",
            "Eval",
            key_display="4",
            id="pane.eval",
            show=False,
            tooltip="The Eval pane (F4 too)",
        ),
        Binding(
            "5,f5",
            "pane('models')",
            "Models",
            key_display="5",
            id="pane.models",
            show=False,
            tooltip="The Models pane (F5 too)",
        ),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="Every key of this pane"),
        Binding(
            "ctrl+t",
            "toggle_theme",
            "Light/dark",
            id="app.theme",
            show=False,
            tooltip="Light or dark theme (remembered)",
        ),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit; running trainings go on"),
    ]

    def __init__(self, workspace: Path, *, state_path: Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace.resolve()
        self.state_path = state_path
        self.state: AppState = load_state(state_path)
        self.sub_title = str(self.workspace)

    def compose(self) -> ComposeResult:
        yield Header()
        remembered = self.state.for_workspace(self.workspace)
        with TabbedContent(initial=remembered.get("pane", "train"), id="panes"):
            for pane, title in PANES:
                with TabPane(title, id=pane):
                    if pane == "train":
                        train = TrainPane(self.workspace, id="train-pane")
                        train.initial_run = remembered.get("last_run")
                        yield train
                    elif pane == "data":
                        data = DataPane(self.workspace, id="data-pane")
                        data.initial_dataset = remembered.get("last_dataset")
                        yield data
                    elif pane == "config":
                        config = ConfigPane(self.workspace, id="config-pane")
                        config.initial_config = remembered.get("last_config")
                        yield config
                    elif pane == "models":
                        yield ModelsPane(self.workspace, id="models-pane")
                    else:
                        evals = EvalPane(self.workspace, id="eval-pane")
                        evals.initial_eval = remembered.get("last_eval")
                        yield evals
        yield Footer()

    def on_mount(self) -> None:
        if self.state.theme and self.state.theme in self.available_themes:
            self.theme = self.state.theme
        self._focus_pane(self.query_one(TabbedContent).active)
        self._terminal_fd = _tty()
        if not self.is_headless and self._terminal_fd is not None:
            self.set_interval(2.0, self._check_terminal)
        # What exists after the first paint lives as long as the app: keep the garbage
        # collector from walking it again and again (full passes cost 60+ ms here).
        self.call_after_refresh(gc.freeze)

    def _check_terminal(self) -> None:
        """Quit when the terminal has hung up (an SSH drop whose SIGHUP never reached us).

        Textual's input thread would otherwise read end-of-file forever at 100% CPU. Runs go on.
        """
        if not terminal_hung_up(self._terminal_fd):
            return
        save_state(self.state, self.state_path)
        # Leaving gracefully can block for good: Textual's last writes to the dead terminal wait on
        # an output queue that no longer drains. Everything worth keeping is already on disk
        # (journals and metrics are fsynced, saves atomic), so give the exit a moment, then force it.
        force = threading.Timer(3.0, os._exit, args=(129,))
        force.daemon = True
        force.start()
        self.exit(return_code=129)

    def remember(self, **fields: Any) -> None:
        """Keep something for the next session (last run, pane)."""
        self.state.for_workspace(self.workspace).update(fields)
        # Written off the UI thread: a key press never waits for the disk.
        threading.Thread(target=save_state, args=(copy.deepcopy(self.state), self.state_path), daemon=True).start()

    def on_unmount(self) -> None:
        save_state(self.state, self.state_path)  # the last word, in case a background save was cut short

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "state", None) is not None and self.state.theme != theme:
            self.state.theme = theme
            save_state(self.state, self.state_path)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id or "train"
        self.remember(pane=pane)
        self._focus_pane(pane)

    def _focus_pane(self, pane: str) -> None:
        widget = self.query(f"#{pane}-pane")
        if widget and hasattr(widget.first(), "ensure_loaded"):
            widget.first().ensure_loaded()
        focus = {
            "train": "#runs",
            "data": "#examples",
            "config": "#form",
            "eval": "#eval-grid",
            "models": "#models-table",
        }.get(pane)
        chooser = getattr(widget.first(), "focus_selector", None) if widget else None
        if chooser is not None:
            focus = chooser()  # a pane showing one of several views says which widget has the keys
        if not focus:
            return
        # The pane's keys work from the first moment: focus now, before the screen's auto-focus
        # can hand the first key to the tab bar (it focuses the first focusable widget, the tabs,
        # when nothing has focus), and again after the refresh in case the tab was not shown yet.
        target = self.query_one(focus)
        if self.screen.focused is not target:
            self.screen.set_focus(target, scroll_visible=False)
        self.call_after_refresh(lambda: self.query_one(focus).focus())

    def action_pane(self, pane: str) -> None:
        if self.query_one(TabbedContent).active == pane:  # its key again: no tab change, so focus it here
            self._focus_pane(pane)
            return
        self.screen.set_focus(None)  # focus left in the old tab would pull the tabs back to it
        self.query_one(TabbedContent).active = pane

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_help(self) -> None:
        sections = [("Everywhere", _keys(self.BINDINGS) + [("ctrl+p", "command palette")])]
        active = self.query_one(TabbedContent).active
        if active == "train":
            sections.append(("Train pane", _keys(TrainPane.BINDINGS) + [("↑ ↓", "choose a run to watch")]))
            from screens.sweep import SweepView

            sections.append(("Sweep view (w)", _keys(SweepView.BINDINGS) + [("enter", "watch the trial's run")]))
        elif active == "data":
            sections.append(
                (
                    "Data pane",
                    _keys(DataPane.BINDINGS)
                    + [("↑ ↓ j k", "previous / next example"), ("PgUp PgDn g G", "page, first, last")],
                )
            )
        elif active == "config":
            sections.append(("Config pane", [("↑ ↓", "choose a field")] + _keys(ConfigPane.BINDINGS)))
        elif active == "eval":
            sections.append(
                (
                    "Eval pane",
                    [
                        ("↑ ↓ ← →", "move between examples and answers"),
                        ("Esc", "leave rating mode; again: leave the grid (F1-F5 always switch panes)"),
                    ]
                    + [k for k in _keys(EvalPane.BINDINGS) if k[0] not in ("2", "3", "4", "5")],
                )
            )
        elif active == "models":
            sections.append(("Models pane", [("↑ ↓", "choose a model")] + _keys(ModelsPane.BINDINGS)))
        self.push_screen(HelpScreen(sections))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for pane, title in PANES:
            yield SystemCommand(f"Go to {title[2:]}", f"Show the {title[2:]} pane", lambda p=pane: self.action_pane(p))
        for pane_id, name, cls in (
            ("data", "Data", DataPane),
            ("config", "Config", ConfigPane),
            ("train", "Train", TrainPane),
            ("eval", "Eval", EvalPane),
            ("models", "Models", ModelsPane),
        ):
            found = self.query(f"#{pane_id}-pane")
            if not found:
                continue
            widget = found.first(cls)
            for binding in cls.BINDINGS:
                yield SystemCommand(
                    f"{name}: {binding.description}",
                    binding.tooltip,
                    lambda w=widget, b=binding, p=pane_id: self._pane_action(p, w, b.action),
                )

    def _pane_action(self, pane: str, widget: Any, action: str) -> None:
        """Show the pane, then run one of its actions (from the command palette)."""
        self.action_pane(pane)
        self.call_later(widget.run_action, action)


def _tty() -> int | None:
    """The file descriptor of stdin when it is a terminal."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    return fd if os.isatty(fd) else None


def terminal_hung_up(fd: int | None) -> bool:
    """True when the terminal on fd is gone: closed, hung up (POLLHUP), or no longer a terminal.

    tcgetattr alone is not enough: a pty whose master was closed still answers it, and a process
    that ignores SIGHUP (nohup) would then wait forever on a terminal nobody can type into.
    """
    if fd is None:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLHUP | select.POLLERR | select.POLLNVAL)
        if any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, mask in poller.poll(0)):
            return True
        termios.tcgetattr(fd)
    except (termios.error, OSError, ValueError):
        return True
    return False


def _keys(bindings: list) -> list[tuple[str, str]]:
    names = {"question_mark": "?", "slash": "/", "right_square_bracket": "]", "plus": "+"}
    return [
        (b.key_display or names.get(b.key, b.key), b.tooltip or b.description)
        for b in bindings
        if isinstance(b, Binding)
    ]


def create_app(workspace: str | Path = ".", *, state_path: Path | None = None) -> WorkbenchApp:
    """The app factory shared by `workbench`, the tests and the benchmarks."""
    return WorkbenchApp(Path(workspace), state_path=state_path)


def run_app(workspace: str | Path = ".") -> int:
    create_app(workspace).run()
    return 0
