"""Pilot tests of the Data pane's source filter: production requests sent back by to_dataset, reviewed by keys."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from appkit import until
from rich.console import Console
from textual.widgets import Static, TextArea

from screens.app import create_app
from screens.data import DataPane
from screens.edit_example import EditScreen
from screens.widgets.example_list import ExampleList
from workbench.data.store import open_dataset
from workbench.monitor.samples import select_requests, to_dataset
from workbench.serve.log import LoggedRequest, RequestLog

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_data" / "support"
SIZE = (120, 40)
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
FIXED = '{"customer":"Ann","product":"Drift","issue":"refund","date":"2026-03-13","urgency":"high","summary":"x"}'


def workspace_with_production(tmp_path: Path, lines: int = 12) -> tuple[Path, list[int]]:
    """A workspace whose dataset has ``lines`` rows from the file, one chat example and three from production."""
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    dataset = ws / "data" / "train.jsonl"
    with open(SUPPORT / "train.jsonl", "rb") as fh:
        dataset.write_bytes(b"".join(fh.readline() for _ in range(lines)))
    with open_dataset(dataset) as s:
        s.add(
            [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}],
            source="chat",
        )
        s.save()
    log_path = tmp_path / "serve" / "requests.sqlite"
    with RequestLog(log_path) as log:
        for i, (ok, health) in enumerate([(True, {}), (False, {"valid": False}), (False, {"refusal": True})] * 2):
            log.record(
                LoggedRequest(
                    id=f"req-{i}",
                    time=T0 + i,
                    model="demo",
                    endpoint="/v1/chat/completions",
                    stream=False,
                    status=200 if i != 5 else 500,
                    messages=[{"role": "user", "content": f"ticket number {i}"}],
                    response='{"issue":"weather"}' if i != 5 else None,
                    valid=ok and i != 5,
                    refusal=health.get("refusal", False),
                    empty=False,
                    truncated=False,
                    server_id="demo-1",
                )
            )
    result = to_dataset(log_path, dataset, select_requests(log_path, limit=3))
    assert result.skipped == [] and len(result.added) == 3
    return ws, result.added


async def opened(pilot) -> DataPane:
    await pilot.pause()
    await pilot.press("1")
    pane = pilot.app.query_one(DataPane)
    await until(pilot, lambda: pane.session is not None, what="the dataset to open")
    await pilot.pause()
    return pane


def text_of(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def test_source_filter_shows_exactly_the_production_examples_and_one_is_fixed_and_accepted(tmp_path: Path):
    ws, added = workspace_with_production(tmp_path)
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        lst = app.query_one(ExampleList)
        assert len(lst.items) == 12 + 1 + 3
        await pilot.press("w")  # all -> production (the first source present in the cycle)
        assert pane.source_filter == "production"
        assert [e.id for e in lst.items] == added
        assert "source: production (3" in text_of(app, "#data-header")
        assert "source=production" in text_of(app, "#data-filter")
        detail = app.query_one("#detail", Static)
        assert lst.current.source_info["request_id"] == "req-5"  # newest first: the failed request
        # the detail names the request
        assert "from production" in _rendered(app, detail) and "req-5" in _rendered(app, detail)
        await pilot.press("w")  # production -> chat
        assert pane.source_filter == "chat" and len(lst.items) == 1
        await pilot.press("w")  # chat -> file
        assert pane.source_filter == "file" and len(lst.items) == 12
        await pilot.press("w")  # file -> all
        assert pane.source_filter is None and len(lst.items) == 16
        await pilot.press("w")  # all -> production again
        # fix the model's answer of the first production example and accept it
        assert lst.current.id == added[0]
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        editor = app.screen.query_one(TextArea)
        row = json.loads(editor.text)
        assert row["messages"][-1] == {"role": "assistant", "content": ""}  # req-5 failed: no draft answer
        row["messages"][-1]["content"] = FIXED
        editor.text = json.dumps(row)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, EditScreen)
        await pilot.press("a")
        ex = pane.session.get(added[0])
        assert ex.status == "accepted" and ex.row["messages"][-1]["content"] == FIXED
        assert ex.source == "production" and ex.source_info["request_id"] == "req-5"
        await pilot.press("escape")
        assert pane.source_filter is None and len(lst.items) == 16
        await pilot.press("ctrl+s")
        await until(pilot, lambda: pane.session.unsaved() == 0, what="the save")
    with open_dataset(ws / "data" / "train.jsonl") as s:
        back = s.get(added[0])
        assert (back.status, back.source, back.source_info["request_id"]) == ("accepted", "production", "req-5")


def _rendered(app, widget: Static) -> str:
    """The widget's content (a Rich renderable) as plain text, as the terminal shows it."""
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def test_source_filter_says_so_when_there_is_one_source(tmp_path: Path):
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    shutil.copy(SUPPORT / "val.jsonl", ws / "data" / "val.jsonl")
    app = create_app(ws, state_path=tmp_path / "state.json")
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("w")
        await pilot.pause()
        assert pane.source_filter is None
        assert any("one source" in str(n.message) for n in app._notifications)
