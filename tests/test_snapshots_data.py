"""Snapshots of the Data pane's states at fixed terminal sizes (pytest-textual-snapshot).

Update after an intended UI change with `pytest tests/test_snapshots_data.py --snapshot-update`
and look at the report before committing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from appkit import make_app, settle_for_snapshot, until

from screens.data import DataPane

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
WORKSPACE = Path("/tmp/workbench-snapshot-data")  # fixed: the header shows the path


@pytest.fixture
def ws() -> Path:
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    (WORKSPACE / "support").mkdir(parents=True)
    yield WORKSPACE
    shutil.rmtree(WORKSPACE, ignore_errors=True)


def with_files(ws: Path, *names: str) -> None:
    for name in names:
        shutil.copy(SUPPORT / name, ws / "support" / name)


def steps(*keys: str, critique: bool = False):
    """Open the Data pane, wait for the dataset (and the critique), press keys, let it settle."""

    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press("1")
        pane = pilot.app.query_one(DataPane)
        await until(pilot, lambda: pane.session is not None, what="the dataset to open")
        if critique:
            await pilot.press("C")
            await until(pilot, lambda: pane.analysis is not None, 120, what="the critique")
            pilot.app.clear_notifications()
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.1)
        pilot.app.clear_notifications()
        await settle_for_snapshot(pilot)

    return run_before


def test_messy_dataset_opened(snap_compare, ws):
    with_files(ws, "messy.jsonl", "test.jsonl")
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps())


def test_messy_critiqued_worst_first(snap_compare, ws):
    with_files(ws, "messy.jsonl", "test.jsonl")
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("o", critique=True))


def test_messy_critiqued_80x24(snap_compare, ws):
    with_files(ws, "messy.jsonl", "test.jsonl")
    assert snap_compare(make_app(ws), terminal_size=(80, 24), run_before=steps("o", critique=True))


def test_summary(snap_compare, ws):
    with_files(ws, "messy.jsonl", "test.jsonl")
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("v", critique=True))


def test_preference_pair_side_by_side(snap_compare, ws):
    with_files(ws, "preferences.jsonl")
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("a", "f", *"tone", "enter"))


def test_edit_dialog(snap_compare, ws):
    with_files(ws, "alpaca_sample.json")
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("e"))


def test_mask_view(snap_compare, ws):
    with_files(ws, "messy.jsonl", "test.jsonl")

    async def run_before(pilot) -> None:
        await steps()(pilot)
        pane = pilot.app.query_one(DataPane)
        await pilot.press("m")
        await until(pilot, lambda: pane._mask_tokenizer is not None, 60, what="the tokenizer")
        await pilot.pause(0.2)
        await settle_for_snapshot(pilot)

    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=run_before)
