"""Pilot tests of the Data pane: triage, edit, filter, critique, LLM critic and recovery, all by keys."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from appkit import until
from textual.widgets import Input, OptionList, Static, TextArea

from screens.app import create_app
from screens.data import DataPane
from screens.edit_example import EditScreen
from screens.modals import ChoiceScreen, PromptScreen
from screens.widgets.example_list import ExampleList
from workbench.data import analyze
from workbench.data.store import open_dataset

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_data" / "support"
SIZE = (120, 40)


def make_workspace(tmp_path: Path, lines: int = 40, name: str = "train.jsonl", source: str = "train.jsonl") -> Path:
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    with open(SUPPORT / source, "rb") as fh:
        head = b"".join(fh.readline() for _ in range(lines))
    (ws / "data" / name).write_bytes(head)
    return ws


async def opened(pilot) -> DataPane:
    await pilot.pause()
    await pilot.press("1")
    pane = pilot.app.query_one(DataPane)
    await until(pilot, lambda: pane.session is not None, what="the dataset to open")
    await pilot.pause()
    return pane


def header(app) -> str:
    return str(app.query_one("#data-header", Static).render())


async def test_triage_undo_redo_and_save_by_keys(tmp_path: Path):
    ws = make_workspace(tmp_path)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        lst = app.query_one(ExampleList)
        assert app.focused is lst and lst.current.id == 0
        await pilot.press("a")  # accept 0, move to 1
        await pilot.press("r")  # reject 1, move to 2
        assert lst.current.id == 2
        await pilot.press("f")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"date looks off", "enter")
        await pilot.pause()
        s = pane.session
        assert [s.get(i).status for i in range(3)] == ["accepted", "rejected", "flagged"]
        assert s.get(2).note == "date looks off"
        assert "accepted 1" in header(app) and "3 unsaved" in header(app)
        await pilot.press("u")
        assert s.get(2).status == "pending"
        await pilot.press("U")
        assert s.get(2).status == "flagged"
        assert lst.current.id == 3  # flagging moved on, and undo/redo kept the place
        await pilot.press("k", "k", "k")
        await pilot.press("n")  # from 0: the next unreviewed is 3
        assert lst.current.id == 3
        await pilot.press("ctrl+s")
        await until(pilot, lambda: s.unsaved() == 0, what="the save")
    review = json.loads((ws / "data" / "train.jsonl.review.json").read_text())
    assert [r["status"] for r in review["rows"][:3]] == ["accepted", "rejected", "flagged"]
    assert (ws / "data" / "train.jsonl.orig").exists()


async def test_filters_by_text_and_status(tmp_path: Path):
    ws = make_workspace(tmp_path)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        lst = app.query_one(ExampleList)
        await pilot.press("a", "a")
        await pilot.press("slash")
        app.screen.query_one(Input).value = r"vacuum|kettle"
        await pilot.press("enter")
        await pilot.pause()
        matching = [e.id for e in pane.session.query(pattern="vacuum|kettle")]
        assert [e.id for e in lst.items] == matching and 0 < len(matching) < 40
        assert "/vacuum|kettle/" in str(app.query_one("#data-filter", Static).render())
        await pilot.press("escape")
        assert len(lst.items) == 40
        await pilot.press("s")  # status: pending
        assert len(lst.items) == 38
        await pilot.press("a")  # accepting under a pending filter takes it out of the list
        assert len(lst.items) == 37 and pane.session.counts()["accepted"] == 3
        await pilot.press("slash")
        app.screen.query_one(Input).value = "(unclosed"
        await pilot.press("enter")
        await pilot.pause()
        assert len(lst.items) == 37  # a bad regex is reported, not applied


async def test_edit_in_place_checks_the_shape(tmp_path: Path):
    ws = make_workspace(tmp_path, lines=5)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        editor = app.screen.query_one(TextArea)
        row = json.loads(editor.text)
        editor.text = json.dumps({"messages": "not a list"})
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, EditScreen)  # refused, with the reason
        assert "shape" in str(app.screen.query_one("#editor-error", Static).render())
        row["messages"][-1]["content"] = '{"customer": "Edited"}'
        editor.text = json.dumps(row)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, EditScreen)
        assert pane.session.get(0).row["messages"][-1]["content"] == '{"customer": "Edited"}'
        await pilot.press("d")  # duplicate: the copy is pending and selected
        lst = app.query_one(ExampleList)
        assert lst.current.id == 5 and pane.session.get(5).source == "duplicate"
        await pilot.press("x")  # delete it
        assert len(pane.session) == 5


async def test_second_instance_is_read_only(tmp_path: Path):
    ws = make_workspace(tmp_path, lines=5)
    holder = open_dataset(ws / "data" / "train.jsonl")
    try:
        app = create_app(ws, state_path=tmp_path / "state.json")
        async with app.run_test(size=SIZE) as pilot:
            pane = await opened(pilot)
            assert pane.session.readonly and "read-only" in header(app)
            await pilot.press("a")
            assert pane.session.counts()["accepted"] == 0
    finally:
        holder.close()


async def test_reopening_after_a_crash_recovers_and_says_so(tmp_path: Path):
    ws = make_workspace(tmp_path, lines=5)
    crashed = open_dataset(ws / "data" / "train.jsonl")
    crashed.set_status([0, 1], "accepted")
    crashed.flag(2, "why")
    crashed._lock_fh.close()  # the process died: its lock is gone, its journal stays
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        assert pane.session.recovered == 2
        assert pane.session.counts()["accepted"] == 2 and "2 unsaved" in header(app)
        notes = [n.message for n in app._notifications]
        assert any("Recovered 2" in m for m in notes), notes


async def test_critique_finds_planted_defects_and_bulk_rejects_duplicates(tmp_path: Path):
    ws = make_workspace(tmp_path, lines=400, name="messy.jsonl", source="messy.jsonl")
    shutil.copy(SUPPORT / "test.jsonl", ws / "data" / "test.jsonl")
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        if pane.session.path.name != "messy.jsonl":
            pane.open_path(ws / "data" / "messy.jsonl")
            await until(pilot, lambda: pane.session.path.name == "messy.jsonl")
        await pilot.press("C")
        await until(pilot, lambda: pane.analysis is not None, timeout=120, what="the critique")
        checks = pane.analysis.counts()
        for check in ("empty_output", "placeholder_output", "exact_duplicate", "leakage", "pii"):
            assert checks[check] > 0, checks
        await pilot.press("c")
        assert isinstance(app.screen, ChoiceScreen)
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        options.highlighted = next(i for i, label in enumerate(labels) if label.startswith("leakage"))
        await pilot.press("enter")
        await pilot.pause()
        lst = app.query_one(ExampleList)
        assert len(lst.items) == checks["leakage"]
        await pilot.press("escape")
        dupes = pane.analysis.duplicate_ids()
        await pilot.press("b")
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        options.highlighted = next(i for i, label in enumerate(labels) if label.startswith("Reject every duplicate"))
        await pilot.press("enter")
        await pilot.pause()
        assert pane.session.counts()["rejected"] == len(dupes) > 0
        await pilot.press("u")  # one bulk action, one undo
        assert pane.session.counts()["rejected"] == 0
        await pilot.press("v")
        assert "Duplicates" in str(app.query_one("#detail", Static).render())


async def test_llm_critic_through_litellm_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from workbench.llm import LLM

    def reply(messages: list[dict]) -> str:
        text = messages[-1]["content"]
        score = 2 if "refund" in text.lower() else 5
        return json.dumps({"score": score, "reason": "judged offline"})

    monkeypatch.setattr(analyze, "LLM_FACTORY", lambda model, cache: LLM(model, cache_dir=cache, mock=reply))
    ws = make_workspace(tmp_path, lines=6)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("L")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = "openai/gpt-4o-mini"
        await pilot.press("enter")
        await until(pilot, lambda: pane.analysis is not None, what="the LLM critic")
        scored = [f for f in pane.analysis.all_findings() if f.check == "llm_critic"]
        assert scored and all(f.score == 2 for f in scored)
        assert "LLM critic" in pane.analysis.summary_text()
    assert list((ws / ".workbench" / "llm-cache").glob("**/*.json"))


async def test_edit_in_external_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import contextlib
    import sys

    script = tmp_path / "fake-editor.py"
    script.write_text(
        "import json, sys\n"
        "p = sys.argv[1]\n"
        "row = json.load(open(p))\n"
        "row['messages'][-1]['content'] = 'from the editor'\n"
        "json.dump(row, open(p, 'w'))\n"
    )
    monkeypatch.setenv("VISUAL", f"{sys.executable} {script}")
    ws = make_workspace(tmp_path, lines=3)
    app = create_app(ws, state_path=tmp_path / "state.json")
    monkeypatch.setattr(app, "suspend", contextlib.nullcontext)  # the headless driver cannot give up the terminal
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("E")
        await pilot.pause()
        assert pane.session.get(0).row["messages"][-1]["content"] == "from the editor"
        assert pane.session.unsaved() == 1


def plain(widget: Static) -> str:
    """What a Static shows, as text (its content may be a rich Group)."""
    from rich.console import Console

    console = Console(width=120, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(widget.content)
    return console.export_text()


async def test_m_shows_the_example_token_by_token_with_the_loss_tokens(tmp_path: Path):
    ws = make_workspace(tmp_path, lines=5)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        detail = app.query_one("#detail", Static)
        await pilot.press("m")
        await until(pilot, lambda: "carry loss" in plain(detail), 30, what="the mask view")
        shown = plain(detail)
        assert "bundled" in shown and "max_length 512" in shown and "<|im_start|>assistant" in shown
        await pilot.press("down")
        await pilot.pause(0.1)
        assert "(2 of 5 shown)" in plain(detail)
        await pilot.press("m")
        await pilot.pause(0.1)
        assert pane.show_mask is False and "carry loss" not in plain(detail)
