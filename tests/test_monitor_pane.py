"""Pilot: the monitor of a server opened from the Models pane by keys, with a planted failure spike; the
alert banner, the worst requests, and the failures sent to a dataset that the Data pane shows pending."""

from __future__ import annotations

import shutil
import time

from appkit import make_app, until
from test_models_pane import highlight, opened
from test_monitor_report import SERVER, SUPPORT, log_answers, model_name, other_date_format, resample, served
from textual.widgets import DataTable, OptionList, Static

from screens.modals import ChoiceScreen
from screens.monitor import MonitorScreen
from workbench.data.store import open_dataset

__all__ = ["served"]  # the fixture, imported for this module's tests

SIZE = (120, 40)


async def monitor_opened(pilot) -> MonitorScreen:
    """As a user gets there: the Models pane (5), the server highlighted, o."""
    pane = await opened(pilot)
    await highlight(pilot, pane, SERVER)
    await pilot.press("o")
    await until(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen), what="the monitor to open")
    screen = pilot.app.screen
    assert isinstance(screen, MonitorScreen)
    return screen


async def test_alert_worst_and_to_dataset_by_keys(served):
    (served / "data").mkdir()
    dataset = served / "data" / "train.jsonl"
    shutil.copy(SUPPORT / "train.jsonl", dataset)
    now = time.time()
    name = model_name(served)
    log_answers(served, resample(100, seed=1), start=now - 80000, end=now - 4000, model=name)
    log_answers(served, [(m, other_date_format(a)) for m, a in resample(40, seed=2)], start=now - 3000,
                end=now - 5, model=name)  # fmt: skip
    app = make_app(served)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_opened(pilot)
        await until(pilot, lambda: screen.loaded, what="the monitor to read the log")
        banner = str(screen.query_one("#monitor-banner", Static).render())
        assert "ALERT" in banner and "schema-invalid answers" in banner
        assert screen.query_one("#monitor-drift", DataTable).row_count >= 4

        await pilot.press("h")  # the last hour: only the spike
        await until(pilot, lambda: screen.report is not None and screen.report.end - screen.report.start == 3600)
        await pilot.press("e")
        worst = screen.query_one("#monitor-worst", DataTable)
        await until(pilot, lambda: worst.row_count == 40, what="the 40 failed requests")
        assert "invalid" in str(screen.query_one("#monitor-worst-detail", Static).render())

        await pilot.press("e")  # back to the charts: t sends every failed request of the window
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the dataset choice")
        options = app.screen.query_one(OptionList)
        for _ in range(options.option_count):
            if "data/train.jsonl" in str(options.get_option_at_index(options.highlighted or 0).prompt):
                break
            await pilot.press("down")
        await pilot.press("enter")

        def arrived() -> bool:
            s = open_dataset(dataset, readonly=True)
            try:
                return sum(1 for e in s.visible() if e.source == "production") == 40
            finally:
                s.close()

        await until(pilot, arrived, what="40 production examples in the dataset")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, MonitorScreen), what="back to the Models pane")
    session = open_dataset(dataset, readonly=True)
    try:
        production = [e for e in session.visible() if e.source == "production"]
        assert len(production) == 40 and {e.status for e in production} == {"pending"}
    finally:
        session.close()


async def test_marked_requests_are_sent_together(served):
    (served / "data").mkdir()
    dataset = served / "data" / "train.jsonl"
    shutil.copy(SUPPORT / "train.jsonl", dataset)
    now = time.time()
    name = model_name(served)
    log_answers(served, [(m, other_date_format(a)) for m, a in resample(40, seed=3)], start=now - 3000,
                end=now - 5, model=name)  # fmt: skip
    app = make_app(served)
    async with app.run_test(size=SIZE) as pilot:
        screen = await monitor_opened(pilot)
        await until(pilot, lambda: screen.loaded, what="the monitor to read the log")
        await pilot.press("e")
        worst = screen.query_one("#monitor-worst", DataTable)
        await until(pilot, lambda: worst.row_count == 40, what="the 40 failed requests")
        await pilot.press("space", "down", "space")  # the first and the third
        assert len(screen.marked) == 2
        chosen = {screen.worst[0].id, screen.worst[2].id}
        assert screen.marked == chosen
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the dataset choice")
        assert "the 2 marked request(s)" in app.screen.title_text
        options = app.screen.query_one(OptionList)
        for _ in range(options.option_count):
            if "data/train.jsonl" in str(options.get_option_at_index(options.highlighted or 0).prompt):
                break
            await pilot.press("down")
        await pilot.press("enter")

        def arrived() -> set[str]:
            s = open_dataset(dataset, readonly=True)
            try:
                return {e.source_info["request_id"] for e in s.visible() if e.source == "production"}
            finally:
                s.close()

        await until(pilot, lambda: arrived() == chosen, what="the two marked requests in the dataset")
        await until(pilot, lambda: not screen.marked, what="the marks cleared once sent")
