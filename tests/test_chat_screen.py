"""Pilot: the chat screen with two models on the tiny model: type, both answers stream in, save as example and case."""

from __future__ import annotations

import shutil
from pathlib import Path

from appkit import make_app, until
from shipkit import SUPPORT, fake_run
from textual.widgets import Input, OptionList, Static

from screens.chat import ChatScreen, ChatSettingsScreen
from screens.modals import ChoiceScreen, PromptScreen
from workbench.data.store import open_dataset
from workbench.eval.store import GenerationSettings
from workbench.eval.suites import load_suite

SIZE = (120, 36)


def shown(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def choose(pilot, label_start: str) -> None:
    """Pick the option of the ChoiceScreen on top whose label starts so."""
    assert isinstance(pilot.app.screen, ChoiceScreen)
    options = pilot.app.screen.query_one(OptionList)
    labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
    options.highlighted = next(i for i, label in enumerate(labels) if label.startswith(label_start))
    await pilot.press("enter")
    await pilot.pause()


async def test_chat_with_two_models_streams_both_answers_and_saves_them(tmp_path: Path, tiny_model_dir):
    shutil.copytree(SUPPORT, tmp_path / "support")
    run = fake_run(tmp_path, tiny_model_dir, steps=(4,), best=4)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = ChatScreen(tmp_path, ["base", "last/adapter"], settings=GenerationSettings(max_new_tokens=8))
        app.push_screen(screen)
        await until(pilot, lambda: screen.session is not None, what="the models to load")
        session = screen.session
        assert session.models == ["base", run.name]
        assert "Answer with one line of JSON" in shown(screen, "#chat-settings")  # the training system prompt

        await pilot.press(*"hello there", "enter")
        await until(pilot, lambda: not screen.busy and session.turns == 1, what="both answers")
        for i, model in enumerate(session.models):
            answer = session.history(model)[-1]["content"]
            log = shown(screen, f"#chat-log-{i}")
            assert "hello there" in log and answer.strip()[:20] in log and "tokens ·" in log
        assert screen.query_one("#chat-input", Input).value == ""

        await pilot.press("ctrl+g")  # settings: a bad value is refused, a good one applies
        assert isinstance(app.screen, ChatSettingsScreen)
        app.screen.query_one("#set-temperature", Input).value = "-2"
        app.screen.query_one("#set-max_new_tokens", Input).focus()
        await pilot.press("enter")
        assert session.settings.temperature == 0 and "temperature" in shown(screen, "#chat-status")
        await pilot.press("ctrl+g")
        app.screen.query_one("#set-max_new_tokens", Input).value = "5"
        await pilot.press("enter")
        assert session.settings.max_new_tokens == 5 and "at most 5 new tokens" in shown(screen, "#chat-settings")

        await pilot.press("ctrl+s")  # which model's answers, then which dataset (the run's training set first)
        await choose(pilot, run.name)
        assert isinstance(app.screen, ChoiceScreen)
        first = str(app.screen.query_one(OptionList).get_option_at_index(0).prompt)
        assert first.endswith("train.jsonl") and "sample_data" in first  # the run trained on the sample's train set
        await choose(pilot, "support/train.jsonl")
        await until(pilot, lambda: "saved as example" in shown(screen, "#chat-status"), what="the example saved")
        with open_dataset(tmp_path / "support" / "train.jsonl", readonly=True) as back:
            last = back.visible()[-1]
            assert (last.status, last.source) == ("pending", "chat")
            assert last.row == {"messages": session.history(run.name)}

        await pilot.press("ctrl+r")  # a regression case: model, suite, expectation
        await choose(pilot, "base")
        await choose(pilot, "support/regression.jsonl")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = '{"must_contain": ""}'  # refused by the suite reader: nothing saved
        await pilot.press("enter")
        await until(pilot, lambda: "not saved" in shown(screen, "#chat-status"), what="the bad case refused")
        assert "must_contain" in shown(screen, "#chat-status")
        await pilot.press("ctrl+r")
        await choose(pilot, "base")
        await choose(pilot, "support/regression.jsonl")
        app.screen.query_one(Input).value = '{"refuse": false}'
        await pilot.press("enter")
        await until(pilot, lambda: "saved case" in shown(screen, "#chat-status"), what="the case saved")
        case = load_suite(tmp_path / "support" / "regression.jsonl").cases[-1]
        assert case.messages == session.history("base")[:-1] and case.expect == {"refuse": False}

        await pilot.press("ctrl+l")
        assert session.turns == 0 and "hello there" not in shown(screen, "#chat-log-0")
        await pilot.press("escape")
        assert app.screen is not screen
