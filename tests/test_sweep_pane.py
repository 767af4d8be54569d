"""Pilot: the Train pane's sweep view on a finished study, driven by keys."""

from __future__ import annotations

from pathlib import Path

from appkit import fake_run, make_app, until
from sweepkit import finished_sweep

from screens.config import ConfigPane
from screens.sweep import SweepView
from screens.train import TrainPane

SIZE = (140, 42)


def workspace(tmp_path: Path) -> Path:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("data:\n  train: x.jsonl\n")
    finished_sweep(tmp_path)
    fake_run(tmp_path, "lr-sweep-t5-20261201-093005", overfit=False)  # the best trial's run
    fake_run(tmp_path, "other-20261206-100000", age_s=86400)  # newer: the one watched first
    return tmp_path


def text(app, selector: str) -> str:
    return str(app.query_one(selector).render())


async def open_view(pilot) -> SweepView:
    await pilot.press("3", "w")
    view = pilot.app.query_one(SweepView)
    await until(pilot, lambda: view.last is not None and view.last.importances, 30, what="the sweep snapshot")
    await pilot.pause(0.2)
    return view


async def test_sweep_view_shows_trials_best_and_importances(tmp_path):
    app = make_app(workspace(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        view = await open_view(pilot)
        assert view.display and not app.query_one("#runs-view").display
        header = text(app, "#sweep-header")
        assert "6/6 trials done" in header and "1 pruned" in header and "1 failed" in header
        assert "best: trial 5" in header and "1.1980" in header
        trials = app.query_one("#trials")
        assert trials.row_count == 6
        row = [str(c) for c in trials.get_row("2")]
        assert row[1] == "pruned" and row[-3] == "10"  # state, pruned at step 10
        assert "out of memory" in str(trials.get_row("4")[-1])
        importances = text(app, "#importances")
        names = [line.split()[0] for line in importances.splitlines()[2:]]
        assert names == ["learning_rate", "r"]  # most important first
        await pilot.press("w")  # back to the runs
        assert not view.display and app.query_one("#runs-view").display


async def test_o_opens_the_best_config_and_enter_watches_a_trial(tmp_path):
    app = make_app(workspace(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot)
        await pilot.press("o")
        await pilot.pause(0.3)
        config = app.query_one(ConfigPane)
        assert app.query_one("TabbedContent").active == "config"
        assert config.path is None and config.config.name == "demo"  # the run's config, as a new unsaved one
        await pilot.press("3")
        assert app.focused is app.query_one("#trials")  # the view is still shown: its table has the keys
        pane = app.query_one(TrainPane)
        assert pane.run_id == "other-20261206-100000"
        await pilot.press(*["down"] * 5, "enter")
        await until(pilot, lambda: pane.run_id == "lr-sweep-t5-20261201-093005", 10, what="the trial's run")
        assert app.query_one("#runs-view").display


async def test_stopping_a_finished_sweep_says_why_not(tmp_path):
    app = make_app(workspace(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await open_view(pilot)
        await pilot.press("s")
        await pilot.pause(0.1)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert any("not running" in n.message for n in app._notifications)


async def test_a_pruned_trial_says_so_in_the_runs_view(tmp_path):
    run = fake_run(tmp_path, "lr-sweep-t2-20261201-093002", state="stopped", overfit=False, steps=10)
    raw = run.read_status_raw()
    raw.update(
        stop_reason="pruned by sweep lr-sweep-20261201-093000: eval loss 1.8100 at step 10 is not promising",
        sweep={"id": "lr-sweep-20261201-093000", "trial": 2},
    )
    run.write_status(raw)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(TrainPane)
        await until(pilot, lambda: pane.last is not None, 20, what="the run")
        await pilot.pause(0.2)
        alert = text(app, "#alert")
        assert "STOPPED at step 10 (trial 2 of sweep lr-sweep-20261201-093000): pruned by sweep" in alert
