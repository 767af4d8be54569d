"""Snapshots of the Config pane's states at fixed terminal sizes (pytest-textual-snapshot).

Update after an intended UI change with `pytest tests/test_snapshots_config.py --snapshot-update`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from appkit import make_app, settle_for_snapshot, until

from screens.config import ConfigPane

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
WORKSPACE = Path("/tmp/workbench-snapshot-config")  # fixed: the header shows the path


@pytest.fixture
def ws(monkeypatch) -> Path:
    from workbench.config import assess
    from workbench.config.validate import Hardware

    # A CPU without native bf16, whatever this machine has: what auto resolves to is part of the picture.
    monkeypatch.setattr(assess, "_hardware", Hardware())
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    (WORKSPACE / "support").mkdir(parents=True)
    for name in ("train.jsonl", "val.jsonl"):
        shutil.copy(SUPPORT / name, WORKSPACE / "support" / name)
    (WORKSPACE / "configs").mkdir()
    (WORKSPACE / "configs" / "a.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "a",
                "model": "bundled",
                "data": {"train": "../support/train.jsonl", "val": "../support/val.jsonl", "max_train_examples": 64},
                "lora": {"r": 16, "alpha": 32},
                "train": {"learning_rate": 0.02, "batch_size": 4, "epochs": 6, "max_length": 256},
            }
        )
    )
    yield WORKSPACE
    shutil.rmtree(WORKSPACE, ignore_errors=True)


def steps(*keys: str, field: str | None = None):
    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press("2")
        pane = pilot.app.query_one(ConfigPane)
        await until(pilot, lambda: pane.assessment is not None, what="the first assessment")
        if field is not None:
            pilot.app.query_one("#form").highlighted = pane._rows.index(field)
            await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.2)
        pilot.app.clear_notifications()
        await settle_for_snapshot(pilot)

    return run_before


def test_config_with_findings(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps(field="train.learning_rate"))


def test_config_80x24(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(80, 24), run_before=steps(field="train.learning_rate"))


def test_advisor(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("a"))
