"""One snapshot per Train pane state, at fixed terminal sizes (pytest-textual-snapshot).

Update after an intended UI change with `pytest tests/test_snapshots.py --snapshot-update`
and look at the report before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from appkit import fake_run, make_app, settle_for_snapshot, snapshot_workspace, until

from screens.train import TrainPane

WORKSPACE = Path("/tmp/workbench-snapshot-workspace")  # fixed: the header shows the path


@pytest.fixture
def ws() -> Path:
    yield from snapshot_workspace(WORKSPACE)


async def settled(pilot) -> None:
    """Wait until the followed run has been rendered (or there is none)."""
    pane = pilot.app.query_one(TrainPane)
    has_runs = any((WORKSPACE / "runs").glob("*")) if (WORKSPACE / "runs").exists() else False
    table = pilot.app.query_one("#runs")
    if has_runs:
        await until(pilot, lambda: pane.last is not None and table.row_count, 20, what="the followed run")
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(1.0)


def test_overfitting_run(snap_compare, ws):
    fake_run(ws, "demo-20261125-105024")
    fake_run(ws, "tiny-20261125-105543", overfit=False, age_s=4 * 86400)
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=settled)


def test_overfitting_run_80x24(snap_compare, ws):
    fake_run(ws, "demo-20261125-105024")
    assert snap_compare(make_app(ws), terminal_size=(80, 24), run_before=settled)


def test_failed_run(snap_compare, ws):
    fake_run(
        ws,
        "broken-20261125-110000",
        state="failed",
        overfit=False,
        steps=3,
        error="DataError: train.jsonl:17: field 'messages': expected a list of messages, got str",
    )
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=settled)


def test_empty_workspace(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=settled)


def after(key: str):
    """A run_before that waits for the pane, then presses a key."""

    async def run_before(pilot) -> None:
        await settled(pilot)
        await pilot.press(key)
        await settle_for_snapshot(pilot, 0.2)

    return run_before


def test_launch_dialog(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=after("n"))


def test_help(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=after("question_mark"))


def test_data_placeholder(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(80, 24), run_before=after("1"))
