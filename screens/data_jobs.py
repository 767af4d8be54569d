"""The Data pane's analyses: the critique, similar examples (MiniLM), the LLM critic, generation and splitting.

A mixin of :class:`screens.data.DataPane`. Each runs in a thread worker and
reports back by message; pressing an analysis key again cancels it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message

from screens.modals import PromptScreen
from screens.widgets.example_list import ExampleList
from workbench.data import analyze
from workbench.data.findings import DataFinding
from workbench.data.store import DatasetSession
from workbench.errors import WorkbenchError


@dataclass
class AnalysisDone(Message):
    result: analyze.Analysis | None
    error: str = ""


@dataclass
class Progress(Message):
    text: str


class DataJobs:
    """Analyses for the pane that mixes this in (it provides the session, the list, rendering and reload)."""

    workspace: Path
    session: DatasetSession | None
    analysis: analyze.Analysis | None
    findings: dict[int, list[DataFinding]]
    show_summary: bool
    _cancel: threading.Event | None
    _progress: str

    def action_critique(self) -> None:
        self._toggle_analysis(
            "critique: starting…",
            lambda s, cancel, progress: analyze.analyze(s, workspace=self.workspace, cancel=cancel, progress=progress),
        )

    def action_semantic(self) -> None:
        self._toggle_analysis(
            "similar examples: loading MiniLM…",
            lambda s, cancel, progress: analyze.semantic(s, previous=self.analysis, cancel=cancel, progress=progress),
        )

    def _toggle_analysis(self, starting: str, job: Callable[..., Any]) -> None:
        """Start an analysis of the open dataset, or cancel the one running (its key pressed again)."""
        if self._cancel is not None:
            self._cancel.set()
            self.notify("Cancelling…", timeout=2)
            return
        if self.session is not None:
            self._start_analysis(starting, self.session, job)

    def _start_analysis(self, starting: str, s: DatasetSession, job: Callable[..., Any]) -> None:
        self._cancel = threading.Event()
        self._set_progress(starting)
        self._analysis(s, job, self._cancel)

    @work(thread=True, exclusive=True, group="data-analysis", exit_on_error=False)
    def _analysis(self, s: DatasetSession, job: Callable[..., Any], cancel: threading.Event) -> None:
        """Run job(session, cancel, progress) off the UI thread; its result or error comes back as AnalysisDone."""
        try:
            result = job(s, cancel, lambda text: self.post_message(Progress(text)))
        except Exception as exc:
            self.post_message(AnalysisDone(None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(AnalysisDone(result))

    def on_progress(self, message: Progress) -> None:
        self._set_progress(message.text)

    def _set_progress(self, text: str) -> None:
        self._progress = text
        self._render_header()

    def on_analysis_done(self, message: AnalysisDone) -> None:
        self._cancel = None
        self._progress = ""
        if message.result is None:
            self.notify(message.error, title="Critique failed", severity="error", timeout=15)
            self._render_header()
            return
        result = message.result
        self.analysis = result
        self.findings = result.findings
        hint = "o sorts worst first · c filters by finding · ] jumps to the next · v summary"
        self.notify(f"{result.headline()}\n{hint}", title="Critique", timeout=8)
        self.reload()

    def action_toggle_summary(self) -> None:
        """The summary takes the whole pane; v again returns to the examples."""
        self.show_summary = not self.show_summary
        self.query_one("#examples-col").display = not self.show_summary
        self._render_detail()
        # Keep the focus inside the pane (its keys work only there): the summary scrolls by keys.
        (self.query_one("#detail-col") if self.show_summary else self.query_one(ExampleList)).focus()

    def action_llm_critic(self) -> None:
        s = self.session
        if s is None:
            return
        shown = [e.id for e in self.query_one(ExampleList).items]
        model = os.environ.get("WORKBENCH_LLM_MODEL", "")

        def done(value: str | None) -> None:
            if value:
                self._start_analysis(
                    f"LLM critic ({value.strip()}): starting…",
                    s,
                    lambda s, cancel, progress: analyze.llm_critic(
                        s,
                        value.strip(),
                        shown[:50],
                        workspace=self.workspace,
                        cancel=cancel,
                        progress=progress,
                        previous=self.analysis,
                    ),
                )

        self.app.push_screen(
            PromptScreen(
                f"LLM critic on the first {min(50, len(shown))} example(s) shown: which model? (litellm name)",
                model,
                "e.g. openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, ollama/llama3",
                help_text="The key comes from the environment (OPENAI_API_KEY...); it is never written to disk. "
                "Replies are cached. C cancels.",
            ),
            done,
        )

    def action_generate(self) -> None:
        s, ex_id = self._writable(), self._current_id()
        if s is None or ex_id is None:
            return
        model = os.environ.get("WORKBENCH_LLM_MODEL", "")

        def done(value: str | None) -> None:
            if value:
                self._set_progress(f"generating variations of example {ex_id}…")
                self._generate(s, value.strip(), ex_id)

        self.app.push_screen(
            PromptScreen(
                f"Generate 3 variations of example {ex_id} with which teacher model?",
                model,
                "e.g. openai/gpt-4o-mini",
                help_text="New examples arrive as pending for review, never accepted.",
            ),
            done,
        )

    @work(thread=True, exclusive=True, group="data-generate", exit_on_error=False)
    def _generate(self, s: DatasetSession, model: str, ex_id: int) -> None:
        try:
            ids, rejected = analyze.generate(s, model, [ex_id], workspace=self.workspace)
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", severity="error", timeout=15)
            self.app.call_from_thread(self._set_progress, "")
            return

        def show() -> None:
            self._set_progress("")
            self.reload(keep_id=ids[0] if ids else None)
            extra = f"; {len(rejected)} candidate(s) refused: {rejected[0]}" if rejected else ""
            self.notify(f"{len(ids)} new example(s), pending review{extra}", timeout=8)

        self.app.call_from_thread(show)

    def action_split(self) -> None:
        s = self.session
        if s is None:
            return
        default = f"0.8 0.1 0.1 seed=0 -> {s.path.parent.name}/split"

        def done(value: str | None) -> None:
            if value:
                self._split(s, value)

        self.app.push_screen(
            PromptScreen(
                "Split the accepted and pending examples: ratios, seed and output folder",
                default,
                help_text="Near-duplicate clusters stay whole in one split (run C first to find them). "
                "Writes train, val and test files in the dataset's own type.",
            ),
            done,
        )

    @work(thread=True, exclusive=True, group="data-split", exit_on_error=False)
    def _split(self, s: DatasetSession, spec: str) -> None:
        try:
            written = analyze.split_session(s, spec, workspace=self.workspace, analysis=self.analysis)
        except (WorkbenchError, OSError, ValueError) as exc:
            self.app.call_from_thread(self.notify, f"Not split: {exc}", severity="error", timeout=12)
            return
        text = ", ".join(f"{name} {n}" for name, (_, n) in written.items())
        folder = next(iter(written.values()))[0].parent
        self.app.call_from_thread(self.notify, f"Split written to {folder}: {text}", timeout=8)
