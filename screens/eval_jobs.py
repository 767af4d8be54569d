"""The Eval pane's longer jobs: the LLM judge, MiniLM similarity, the rubric, checkpoint curves, reports.

A mixin of :class:`screens.eval.EvalPane`: each job runs in a worker with a
cancel event (its key pressed again cancels), shows its progress in the
pane's header, and ends with a notification and a re-read of the eval.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from textual import work
from textual.message import Message

from screens.eval_screens import CurveScreen, RubricScreen
from screens.modals import PromptScreen
from workbench.eval.curves import checkpoint_curve, runs_with_checkpoints
from workbench.eval.judging import judge_eval, judge_pairs, pair_tally, save_rubric
from workbench.eval.report import write_report
from workbench.eval.scoring import compute_similarity
from workbench.llm import LLM


class JobDone(Message):
    def __init__(self, title: str, text: str, error: bool = False) -> None:
        super().__init__()
        self.title, self.text, self.error = title, text, error


class EvalJobs:
    """Judge, similarity, rubric, curves and reports for the pane that mixes this in."""

    results: Any
    workspace: Any
    _cancel: threading.Event | None
    _busy: str
    _refreshing: bool
    rows: list[Any]

    def _ask_judge_model(self, title: str, then: Any) -> None:
        model = os.environ.get("WORKBENCH_LLM_MODEL", "")
        self.app.push_screen(
            PromptScreen(
                title,
                model,
                "e.g. openai/gpt-4o-mini, ollama/llama3",
                help_text="The key comes from the environment (OPENAI_API_KEY...); it is "
                "never written to disk. Replies are cached. e edits the rubric.",
            ),
            lambda value: then(value.strip()) if value and value.strip() else None,
        )

    def action_judge(self) -> None:
        res = self.results
        if res is None:
            return
        ids = [r.id for r in self.rows]
        self._ask_judge_model(
            f"LLM judge: grade the {len(ids)} shown example(s) x {len(res.keys)} model(s) with which model?",
            lambda model: self._start_job(
                f"judging with {model}…",
                lambda cancel, progress: (
                    "Judge",
                    self._judged(
                        judge_eval(
                            res.ev,
                            self._llm(model),
                            models=res.keys,
                            ids=ids,
                            rubric=res.rubric,
                            progress=progress,
                            cancel=cancel,
                        )
                    ),
                ),
            ),
        )

    def action_judge_pairs(self) -> None:
        res = self.results
        if res is None or len(res.keys) < 2:
            self.notify("Pairwise judging needs two models.", timeout=3)
            return
        a, b = (res.base or res.keys[0]), next(k for k in res.keys if k != (res.base or res.keys[0]))
        model = self._current_model()
        if model and model != a:
            b = model
        ids = [r.id for r in self.rows]
        self._ask_judge_model(
            f"A/B judge: {a} against {b} on {len(ids)} example(s), both orders; which model?",
            lambda name: self._start_job(
                f"A/B judging with {name}…",
                lambda cancel, progress: (
                    "A/B judge",
                    pair_tally(
                        judge_pairs(
                            res.ev,
                            self._llm(name),
                            model_a=a,
                            model_b=b,
                            ids=ids,
                            rubric=res.rubric,
                            progress=progress,
                            cancel=cancel,
                        ),
                        a,
                        b,
                    ),
                ),
            ),
        )

    def _llm(self, model: str) -> LLM:
        from workbench.models import cache_dir

        return LLM(model, cache_dir=cache_dir() / "llm")

    @staticmethod
    def _judged(verdicts: list[Any]) -> str:
        unparsed = sum(v.unparsed for v in verdicts)
        return f"{len(verdicts)} answer(s) graded" + (f", {unparsed} reply(ies) unreadable (J?)" if unparsed else "")

    def action_similarity(self) -> None:
        res = self.results
        if res is None:
            return
        self._start_job(
            "MiniLM similarity…",
            lambda cancel, progress: (
                "Similarity",
                f"{len(compute_similarity(res.ev, progress=progress, cancel=cancel))} answer(s) scored",
            ),
        )

    def action_rubric(self) -> None:
        res = self.results
        if res is None:
            return

        def done(rubric: Any) -> None:
            if rubric is not None:
                save_rubric(res.ev, rubric)
                res.rubric = rubric
                self.notify("Rubric saved. j grades with it (earlier verdicts stay until re-judged).", timeout=5)

        self.app.push_screen(RubricScreen(res.rubric), done)

    def action_curve(self) -> None:
        res = self.results
        if res is None:
            return
        runs = runs_with_checkpoints(res)
        if not runs:
            self.notify("Add two or more checkpoints of one run to an eval (n) to chart the metric by step.", timeout=6)
            return
        self.app.push_screen(CurveScreen([checkpoint_curve(res, run) for run in runs]))

    def action_report(self) -> None:
        res = self.results
        if res is None:
            return
        self._start_job(
            "writing the report…",
            lambda cancel, progress: (
                "Report",
                "Wrote "
                + ", ".join(
                    str(p.relative_to(self.workspace)) if p.is_relative_to(self.workspace) else str(p)
                    for p in write_report(res)
                ),
            ),
        )

    def _start_job(self, busy: str, job: Any) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.notify("Cancelling…", timeout=2)
            return
        self._cancel = threading.Event()
        self._busy = busy
        self._render_header()
        self._job(job, self._cancel)

    @work(thread=True, exclusive=True, group="eval-job", exit_on_error=False)
    def _job(self, job: Any, cancel: threading.Event) -> None:
        def progress(*args: Any) -> None:
            text = f"{args[0]}/{args[1]}" if len(args) == 2 else str(args[0])
            self.app.call_from_thread(self._set_busy, text)

        try:
            title, text = job(cancel, progress)
            self.post_message(JobDone(title, text))
        except Exception as exc:
            self.post_message(JobDone("Failed", f"{type(exc).__name__}: {exc}", error=True))

    def _set_busy(self, text: str) -> None:
        self._busy = (self._busy.split(" ")[0] + " " + text) if self._busy else text
        self._render_header()

    def on_job_done(self, message: JobDone) -> None:
        self._cancel = None
        self._busy = ""
        self.notify(
            message.text,
            title=message.title,
            severity="error" if message.error else "information",
            timeout=15 if message.error else 8,
        )
        if self.results is not None:
            self._refreshing = True
            self._refresh_results(self.results, force=True)
