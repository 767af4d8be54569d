"""Pilot tests of the Config pane: edit a field, see the finding, apply its fix; presets, save, export, advisor."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from appkit import until
from textual.widgets import Input, OptionList, Static, TextArea

from screens.advisor import AdvisorScreen, DiagnoseScreen
from screens.app import create_app
from screens.config import ConfigPane
from screens.modals import ChoiceScreen, PromptScreen
from workbench.config.schema import load_config

ROOT = Path(__file__).resolve().parents[1]
SIZE = (120, 40)


def make_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "support").mkdir(parents=True)
    for name in ("train.jsonl", "val.jsonl"):
        shutil.copy(ROOT / "sample_data" / "support" / name, ws / "support" / name)
    (ws / "configs").mkdir()
    (ws / "configs" / "a.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "a",
                "model": "bundled",
                "data": {"train": "../support/train.jsonl", "val": "../support/val.jsonl", "max_train_examples": 64},
                "lora": {"r": 16, "alpha": 32},
                "train": {"learning_rate": 2e-4, "batch_size": 4, "epochs": 2, "max_length": 256},
            }
        )
    )
    return ws


async def ready(pilot) -> ConfigPane:
    await pilot.pause()
    await pilot.press("2")
    pane = pilot.app.query_one(ConfigPane)
    await until(pilot, lambda: pane.assessment is not None, what="the first assessment")
    return pane


async def goto(pilot, pane: ConfigPane, path: str) -> None:
    pilot.app.query_one("#form", OptionList).highlighted = pane._rows.index(path)
    await pilot.pause()


async def test_edit_a_field_see_the_finding_and_apply_its_fix(tmp_path: Path):
    ws = make_workspace(tmp_path)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await ready(pilot)
        assert not pane.findings_for("train.learning_rate")
        await goto(pilot, pane, "train.learning_rate")
        await pilot.press("enter")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = "0.02"
        await pilot.press("enter")
        await until(pilot, lambda: pane.findings_for("train.learning_rate"), what="the learning-rate finding")
        finding = pane.findings_for("train.learning_rate")[0]
        assert finding.suggestion is not None
        assert "learning_rate" in str(app.query_one("#field-help", Static).render())
        assert "modified" in str(app.query_one("#config-header", Static).render())
        await pilot.press("f")
        assert pane.config.train.learning_rate == finding.suggestion
        await until(pilot, lambda: not pane.findings_for("train.learning_rate"), what="the finding to go")
        await pilot.press("u")  # undo the fix
        assert pane.config.train.learning_rate == 0.02
        await goto(pilot, pane, "lora.rslora")
        await pilot.press("enter")  # a toggle
        assert pane.config.lora.rslora is True
        await goto(pilot, pane, "lora.r")
        await pilot.press("enter")
        app.screen.query_one(Input).value = "0"
        await pilot.press("enter")
        await pilot.pause()
        assert pane.config.lora.r == 16  # refused, with the reason in a notification


async def test_preset_save_and_export(tmp_path: Path):
    ws = make_workspace(tmp_path)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await ready(pilot)
        await pilot.press("p")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("enter")  # the first preset: style or format task
        assert pane.config.lora.r == 8 and pane.config.data.train == "../support/train.jsonl"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert load_config(ws / "configs" / "a.yaml").lora.r == 8
        await pilot.press("x")
        options = app.screen.query_one(OptionList)
        options.highlighted = 1  # TRL's CLI config
        await pilot.press("enter")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("enter")
        await pilot.pause()
    exported = ws / "exports" / "a.trl.yaml"
    assert exported.exists() and "lora_r: 8" in exported.read_text()


async def test_advisor_questionnaire_gives_a_starter_config(tmp_path: Path):
    ws = make_workspace(tmp_path)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await ready(pilot)
        await pilot.press("a")
        assert isinstance(app.screen, AdvisorScreen)
        screen = app.screen
        for _ in range(len(screen.questions)):
            await pilot.press("enter")  # the first answer to each question
        assert screen.advice is not None
        assert screen.advice.title in str(screen.query_one("#advisor-title").render())
        if screen.advice.starter_config:
            await pilot.press("enter")
            await until(pilot, lambda: pane.path is None, what="the starter config")
            assert pane.dirty
        else:
            await pilot.press("escape")


async def test_diagnose_a_pasted_error(tmp_path: Path):
    ws = make_workspace(tmp_path)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("D")
        assert isinstance(app.screen, DiagnoseScreen)
        app.screen.query_one(TextArea).text = (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
            "of 23.64 GiB of which 1.12 GiB is free."
        )
        await pilot.press("ctrl+s")
        await pilot.pause()
        shown = str(app.screen.query_one("#advisor-text", Static).render())
        assert "batch_size" in shown or "gradient_checkpointing" in shown, shown
