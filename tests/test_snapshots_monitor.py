"""Snapshots of the Monitor screen at the fixed terminal size: a server whose answers changed date format an
hour ago (the alert banner, the figures, the drift table and the charts), and its worst requests.

Update after an intended UI change with `pytest tests/test_snapshots_monitor.py --snapshot-update` and look at
the report before committing. The workspace path, the eval id and the clock are fixed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from appkit import make_app, settle_for_snapshot, until
from shipkit import fake_run
from test_monitor_pane import monitor_opened
from test_monitor_report import ADAPTER, SERVER, SUPPORT, log_answers, model_name, other_date_format, resample

from screens.monitor import MonitorScreen
from workbench.eval.candidates import examples_from_dataset, resolve_models
from workbench.eval.store import EvalSpec, create_eval
from workbench.serve.log import RequestLog
from workbench.serve.servedir import ServeDir, ServeSpec

WORKSPACE = Path("/tmp/workbench-snapshot-monitor")
BASE = Path("/tmp/workbench-snapshot-monitor-base/tiny-llama")
NOW = 1_796_400_000.0  # 2026-12-04 16:00 UTC
SIZE = (120, 40)


@pytest.fixture
def ws(tiny_model_dir, monkeypatch) -> Path:
    monkeypatch.setattr(MonitorScreen, "clock", staticmethod(lambda: NOW))
    for path in (WORKSPACE, BASE.parent):
        shutil.rmtree(path, ignore_errors=True)
    WORKSPACE.mkdir(parents=True)
    shutil.copytree(tiny_model_dir, BASE)
    fake_run(WORKSPACE, BASE, steps=(4,), best=4)
    refs = resolve_models(WORKSPACE, [ADAPTER])
    examples = examples_from_dataset(SUPPORT / "test.jsonl")
    spec = EvalSpec(
        name="release",
        dataset=str(SUPPORT / "test.jsonl"),
        models=refs,
        schema=str(SUPPORT / "schema.json"),
        created=NOW - 2 * 86400,
    )
    ev = create_eval(WORKSPACE, spec, examples)
    ev.append_predictions(
        {"model": refs[0].key, "id": e["id"], "output": e["reference"], "finish": "stop"} for e in examples
    )
    ev.write_status({**ev.read_status_raw(), "state": "completed"})
    ev.path.rename(ev.path.parent / "release-20261202-160000")  # the id holds the creation time
    sd = ServeDir(WORKSPACE / "serves" / SERVER)
    sd.path.mkdir(parents=True)
    sd.write_spec(ServeSpec(models=[ADAPTER], refs=refs, workspace=str(WORKSPACE)))
    sd.write_status({"serve_id": SERVER, "state": "stopped", "created": NOW - 86400, "models": [refs[0].key]})
    RequestLog(sd.db_path).close()
    name = model_name(WORKSPACE)
    log_answers(WORKSPACE, resample(160, seed=1), start=NOW - 86000, end=NOW - 3600, model=name)
    shifted = [(m, other_date_format(a)) for m, a in resample(50, seed=2)]
    log_answers(WORKSPACE, shifted, start=NOW - 3600, end=NOW - 30, model=name)
    yield WORKSPACE
    for path in (WORKSPACE, BASE.parent):
        shutil.rmtree(path, ignore_errors=True)


def opened(*keys: str):
    """As a user gets there: the Models pane (5), the server highlighted, o; then ``keys``."""

    async def run_before(pilot) -> None:
        screen = await monitor_opened(pilot)
        await until(pilot, lambda: screen.loaded, what="the monitor to read the log")
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.2)
        await until(pilot, lambda: screen.loaded and not screen._reading, what="the monitor to read again")
        pilot.app.clear_notifications()
        await settle_for_snapshot(pilot, 0.3)

    return run_before


def test_monitor_alert_after_a_date_format_shift(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=SIZE, run_before=opened())


def test_monitor_worst_requests(snap_compare, ws):
    assert snap_compare(make_app(ws), terminal_size=SIZE, run_before=opened("h", "e"))
