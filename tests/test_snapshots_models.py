"""Snapshots of the Models pane's states at the fixed terminal size (pytest-textual-snapshot).

Update after an intended UI change with `pytest tests/test_snapshots_models.py --snapshot-update`
and look at the report before committing. Paths, ids, sizes and times on screen are fixed: the workspace
and the base model live at fixed paths, and every file time shown is set.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from appkit import make_app, settle_for_snapshot, until
from evalkit import OUTPUTS
from shipkit import fake_run
from test_ship_inventory import MERGED, RUN_ID, eval_of, merged_dir, server_dir, write_gguf

from screens.models import ModelsPane
from workbench.ship import inventory

WORKSPACE = Path("/tmp/workbench-snapshot-models")  # fixed: paths and ids show on screen
BASE = Path("/tmp/workbench-snapshot-models-base/tiny-llama")
CACHE = Path("/tmp/workbench-snapshot-models-cache")  # empty: the bundled model's size is unknown on every machine
EVAL_ID = "support-20261203-120000"
WHEN = 1_796_299_200.0  # 2026-12-03 12:00 UTC, every file time the pane shows


@pytest.fixture
def ws(monkeypatch) -> Path:
    for path in (WORKSPACE, BASE.parent, CACHE):
        shutil.rmtree(path, ignore_errors=True)
    WORKSPACE.mkdir(parents=True)
    CACHE.mkdir(parents=True)
    monkeypatch.setenv("WORKBENCH_CACHE", str(CACHE))
    inventory.clear_cache()
    yield WORKSPACE
    for path in (WORKSPACE, BASE.parent, CACHE):
        shutil.rmtree(path, ignore_errors=True)


def shipped(ws: Path, tiny_model_dir: Path) -> Path:
    """A run (adapter, two checkpoints), a merged model, its q8_0 GGUF, an eval and a running server."""
    shutil.copytree(tiny_model_dir, BASE)
    fake_run(ws, BASE, steps=(4, 8), best=4)
    merged_dir(ws, BASE)
    gguf_path = write_gguf(ws / "models" / f"{MERGED}.q8_0.gguf")
    gguf_path.with_suffix(".Modelfile").write_text(f"FROM ./{gguf_path.name}\n")
    ev = eval_of(ws, ["base", f"{RUN_ID}/adapter"], OUTPUTS)
    ev.path.rename(ev.path.parent / EVAL_ID)  # the id holds the creation time
    server_dir(ws, "serve-20261203-120000", pid=os.getpid())  # alive: this process (never stopped here)
    for top, dirs, files in os.walk(ws / "runs"):
        for name in [*dirs, *files]:
            os.utime(Path(top) / name, (WHEN, WHEN))
    os.utime(gguf_path, (WHEN, WHEN))
    return ws


def steps(*keys: str):
    async def run_before(pilot) -> None:
        await pilot.pause()
        await pilot.press("5")
        pane = pilot.app.query_one(ModelsPane)
        await until(pilot, lambda: pane.listed, what="the models to be listed")
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.1)
        pilot.app.clear_notifications()
        await settle_for_snapshot(pilot, 0.3)

    return run_before


def test_models_empty_workspace(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps())


def test_models_every_kind(snap_compare, ws, tiny_model_dir):
    shipped(ws, tiny_model_dir)
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps("down", "space"))


def test_models_merged_and_gguf_dialog(snap_compare, ws, tiny_model_dir):
    shipped(ws, tiny_model_dir)
    keys = ("down",) * 4 + ("g",)  # the merged model, then the GGUF type dialog
    assert snap_compare(make_app(ws), terminal_size=(120, 40), run_before=steps(*keys))
