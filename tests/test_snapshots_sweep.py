"""Snapshots of the Train pane's sweep view: a finished study, and a workspace without sweeps.

Update after an intended UI change with `pytest tests/test_snapshots_sweep.py --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from appkit import make_app, settle_for_snapshot, snapshot_workspace, until
from sweepkit import finished_sweep

from screens.sweep import SweepView

WORKSPACE = Path("/tmp/workbench-snapshot-sweep")  # fixed: the header shows the path


@pytest.fixture
def ws() -> Path:
    yield from snapshot_workspace(WORKSPACE)


def shown(importances: bool):
    async def run_before(pilot) -> None:
        await pilot.press("3", "w")
        view = pilot.app.query_one(SweepView)
        if importances:
            await until(pilot, lambda: view.last is not None and view.last.importances, 30, what="the snapshot")
        else:
            await pilot.pause(1.0)
        await settle_for_snapshot(pilot, 1.0)

    return run_before


def test_sweep_view_finished_study(snap_compare, ws):
    finished_sweep(ws)
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=shown(True))


def test_sweep_view_no_sweeps(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=shown(False))
