"""Pilot tests: the app driven by keys, on fake run directories and on real tiny runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from appkit import fake_run, until
from textual.widgets import OptionList, Static, TabbedContent

from screens.app import create_app
from screens.modals import ConfirmScreen, HelpScreen, LaunchScreen
from screens.train import TrainPane
from workbench.train import runner
from workbench.train.rundir import RunDir

SIZE = (120, 40)


def app_for(workspace: Path, tmp_path: Path):
    return create_app(workspace, state_path=tmp_path / "state.json")


def text_of(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def test_switch_panes_and_help(tmp_path):
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "train"
        for key, pane in (("1", "data"), ("2", "config"), ("4", "eval"), ("3", "train")):
            await pilot.press(key)
            await pilot.pause()
            assert tabs.active == pane
        await pilot.press("4")
        assert "No evals yet" in str(app.query_one("#eval-header", Static).render())
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_empty_workspace_says_how_to_start(tmp_path):
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert "Press n to launch" in text_of(app, "#run-header")


async def test_finished_run_history_and_overfitting_alert(tmp_path):
    fake_run(tmp_path, "demo-1")
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(TrainPane)
        await until(pilot, lambda: pane.last is not None, what="the run's history")
        assert pane.last.chart.best == (24, 0.47)
        assert len(pane.last.chart.train_loss.steps) == 64
        header = text_of(app, "#run-header")
        assert "demo-1" in header and "completed" in header and "best eval 0.4700 at step 24" in header
        alert = app.query_one("#alert", Static)
        assert alert.display and "OVERFITTING since step 24" in str(alert.render())
        assert "lora" in text_of(app, "#config-summary")


async def test_corrupt_and_truncated_metrics_lines_still_show_the_rest(tmp_path):
    fake_run(tmp_path, "demo-1", corrupt=True)
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(TrainPane)
        await until(pilot, lambda: pane.last is not None)
        assert len(pane.last.chart.train_loss.steps) == 64  # the half-written line waits
        assert pane.last.bad_lines == 1
        assert "1 corrupt metrics line(s) skipped" in text_of(app, "#run-header")


async def test_failed_run_shows_the_error_and_log(tmp_path):
    fake_run(
        tmp_path,
        "broken-1",
        state="failed",
        overfit=False,
        steps=3,
        error="DataError: train.jsonl:17: field 'messages'",
    )
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(TrainPane)
        await until(pilot, lambda: pane.last is not None)
        alert = str(app.query_one("#alert", Static).render())
        assert "FAILED" in alert and "train.jsonl:17" in alert
        await until(pilot, lambda: app.focused is app.query_one("#runs"), what="focus on the runs list")
        await pilot.press("l")
        await until(
            pilot,
            lambda: pane.last.log is not None and any("DataError" in line for line in pane.last.log),
            what="log tail",
        )


@pytest.mark.parametrize("pane", ["train", "data", "eval"])
async def test_the_pane_has_the_focus_from_the_first_frame(tmp_path, pane):
    """Never the tab bar, not even for a moment: a key pressed at once goes to the pane."""
    fake_run(tmp_path, "demo-1")
    (tmp_path / "state.json").write_text(
        json.dumps({"workspaces": {str(tmp_path.resolve()): {"pane": pane}}}), encoding="utf-8"
    )
    app = app_for(tmp_path, tmp_path)
    target = {"train": "runs", "data": "examples", "eval": "eval-grid"}[pane]
    seen = []
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(10):
            seen.append(app.focused.id if app.focused is not None else None)
            await pilot.pause(0.02)
    assert seen == [target] * 10, seen


async def test_select_compare_and_remember_last_run(tmp_path):
    fake_run(tmp_path, "a-1", age_s=100)
    fake_run(tmp_path, "b-2", age_s=50, overfit=False)
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(TrainPane)
        await until(pilot, lambda: pane.last is not None and pane.last.run_id == "b-2")
        await pilot.pause()
        health = str(app.query_one("#alert", Static).render())
        assert "✓" in health and "OVERFITTING" not in health, health  # a healthy run says so
        await pilot.press("c")  # mark b-2
        await pilot.press("down")
        await until(
            pilot,
            lambda: pane.last is not None and pane.last.run_id == "a-1" and "b-2" in pane.last.overlays,
            what="the overlay of b-2",
        )
        await pilot.press("y")
        await pilot.press("2")
    again = app_for(tmp_path, tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        assert again.query_one(TabbedContent).active == "config"
        await pilot.press("3")
        pane = again.query_one(TrainPane)
        await until(pilot, lambda: pane.last is not None)
        assert pane.last.run_id == "a-1"


def tiny_config(workspace: Path, model: Path, steps: int) -> Path:
    path = workspace / "configs" / "tiny-test.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "model": str(model),
                "data": {
                    "train": "../support/train.jsonl",
                    "val": "../support/val.jsonl",
                    "max_train_examples": 32,
                    "max_eval_examples": 8,
                },
                "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                "train": {
                    "learning_rate": 1e-3,
                    "batch_size": 4,
                    "max_steps": steps,
                    "max_length": 384,
                    "precision": "fp32",
                },
                "eval": {"logging_steps": 1, "eval_steps": 10},
            }
        )
    )
    return path


async def test_launch_watch_stop_resume_by_keys(workspace, tiny_model_dir, tmp_path):
    tiny_config(workspace, tiny_model_dir, steps=400)  # long enough that the stop lands mid-run
    app = app_for(workspace, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(TrainPane)
        await pilot.pause()
        await pilot.press("n")
        assert isinstance(app.screen, LaunchScreen)
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        options.highlighted = next(i for i, label in enumerate(labels) if label.endswith("tiny-test.yaml"))
        await pilot.press("enter")
        await until(
            pilot,
            lambda: pane.last is not None and bool(pane.last.chart.train_loss),
            timeout=120,
            what="the first metrics",
        )
        assert pane.last.status.state == "running"
        run = RunDir(runner.runs_dir(workspace) / pane.run_id)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: pane.last.status.state == "stopped", timeout=120, what="stopped")
        stopped_at = pane.last.status.step
        assert stopped_at < 400 and run.checkpoints()
        await pilot.press("r")
        await until(pilot, lambda: pane.last.status.state == "completed", timeout=180, what="completed")
        assert pane.last.status.step == 400
        assert app.query_one("#loss").plt is not None


async def test_reattach_to_a_running_run(workspace, tiny_model_dir, tmp_path):
    run = runner.launch(tiny_config(workspace, tiny_model_dir, steps=400), workspace)
    try:
        deadline = time.time() + 120
        while not run.metrics() and time.time() < deadline:
            time.sleep(0.2)
        app = app_for(workspace, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            pane = app.query_one(TrainPane)
            await until(pilot, lambda: pane.last is not None and pane.last.status.state == "running", timeout=60)
            first = len(pane.last.chart.train_loss.steps)
            assert first > 0  # the history from before the app opened
            await until(pilot, lambda: len(pane.last.chart.train_loss.steps) > first + 3, timeout=60, what="new steps")
        assert run.status().state == "running"  # quitting the app left it going
    finally:
        runner.stop(run, timeout=60)


@pytest.mark.parametrize("theme", ["textual-light"])
async def test_theme_is_remembered(tmp_path, theme):
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+t")
        assert app.theme == theme
    again = app_for(tmp_path, tmp_path)
    async with again.run_test(size=SIZE):
        assert again.theme == theme


@pytest.mark.parametrize("pane", ["data", "eval"])
async def test_the_app_reopens_on_the_remembered_pane_and_stays_there(tmp_path, pane):
    fake_run(tmp_path, "demo-1")  # the Train pane has a run to show (and once stole the focus, and the tab)
    app = app_for(tmp_path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press({"data": "1", "eval": "4"}[pane])
    again = app_for(tmp_path, tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        for _ in range(10):
            await pilot.pause(0.1)
        assert again.query_one(TabbedContent).active == pane
        assert again.focused is not None and again.focused.id in ("examples", "eval-grid")


async def test_two_app_instances_watch_one_running_run(workspace, tiny_model_dir, tmp_path):
    import asyncio

    run = runner.launch(tiny_config(workspace, tiny_model_dir, steps=400), workspace)

    async def watch(state_dir: Path) -> int:
        state_dir.mkdir()
        app = app_for(workspace, state_dir)
        async with app.run_test(size=SIZE) as pilot:
            pane = app.query_one(TrainPane)
            await until(
                pilot,
                lambda: pane.last is not None and len(pane.last.chart.train_loss.steps) > 5,
                timeout=120,
                what="metrics in both apps",
            )
            return len(pane.last.chart.train_loss.steps)

    try:
        seen = await asyncio.gather(watch(tmp_path / "one"), watch(tmp_path / "two"))
        assert all(n > 5 for n in seen)
    finally:
        runner.stop(run, timeout=60)
