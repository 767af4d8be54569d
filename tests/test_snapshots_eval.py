"""Snapshots of the Eval pane's states at fixed terminal sizes (pytest-textual-snapshot).

Update after an intended UI change with `pytest tests/test_snapshots_eval.py --snapshot-update`
and look at the report before committing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from appkit import make_app, settle_for_snapshot, until
from evalkit import make_eval

from screens.eval import EvalPane
from workbench.eval.ratings import Ratings

WORKSPACE = Path("/tmp/workbench-snapshot-eval")  # fixed: paths and ids show on screen
EVAL_ID = "support-20261125-120000"


@pytest.fixture
def ws() -> Path:
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    WORKSPACE.mkdir(parents=True)
    yield WORKSPACE
    shutil.rmtree(WORKSPACE, ignore_errors=True)


def with_eval(ws: Path, rated: bool = True) -> Path:
    ev = make_eval(ws)
    fixed = ev.path.rename(ev.path.parent / EVAL_ID)  # the id holds the creation time
    if rated:
        ratings = Ratings(fixed / "ratings.jsonl")
        ratings.score("0", "run/adapter", 5)
        ratings.score("0", "base", 1)
        ratings.note("3", "base says refund; it is shipping")
    return fixed


def steps(*keys: str, wait_rows: bool = True):
    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press("4")
        pane = pilot.app.query_one(EvalPane)
        if wait_rows:
            await until(pilot, lambda: pane.results is not None and pane.rows, what="the eval to load")
        else:
            await until(pilot, lambda: "No evals" in str(pilot.app.query_one("#eval-header").render()), what="empty")
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.1)
        if wait_rows:
            await until(pilot, lambda: pane.summarized, what="the summary")
        pilot.app.clear_notifications()
        await settle_for_snapshot(pilot, 0.3)

    return run_before


def test_eval_grid(snap_compare, ws):
    with_eval(ws)
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("right"))


def test_eval_grid_80x24(snap_compare, ws):
    with_eval(ws)
    assert snap_compare(make_app(ws), terminal_size=(80, 24), run_before=steps())


def test_eval_blind(snap_compare, ws):
    with_eval(ws)
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("B"))


def test_eval_regressions_filter(snap_compare, ws):
    with_eval(ws)
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("f"))


def test_eval_answer_with_diff(snap_compare, ws):
    with_eval(ws)
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("down", "down", "down", "enter"))


def test_eval_empty(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps(wait_rows=False))
