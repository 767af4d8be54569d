"""Pilot tests of the Models pane (key 5), all by keys: the list, merge, GGUF, chat, serve and stop."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from appkit import make_app, until
from shipkit import fake_run
from test_ship_inventory import MERGED, RUN_ID, merged_dir, server_dir
from textual.widgets import DataTable, OptionList, Static

from screens.modals import ChoiceScreen
from screens.models import ModelsPane, human_size
from workbench.ship import inventory

SIZE = (120, 40)


def has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


@pytest.fixture
def ws(tmp_path, tiny_model_dir) -> Path:
    inventory.clear_cache()
    fake_run(tmp_path, tiny_model_dir, steps=(4, 8), best=4)
    return tmp_path


async def opened(pilot) -> ModelsPane:
    await pilot.pause()
    await pilot.press("5")
    pane = pilot.app.query_one(ModelsPane)
    await until(pilot, lambda: pane.listed, what="the models to be listed")
    await pilot.pause()
    return pane


def keys(app) -> list[str]:
    return [str(k.value) for k in app.query_one("#models-table", DataTable).rows]


def text_of(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def highlight(pilot, pane: ModelsPane, key: str) -> None:
    """Move the cursor to the key's row with the arrow keys."""
    for _ in range(40):
        if pane.highlighted_key() == key:
            return
        await pilot.press("down")
    raise AssertionError(f"{key} is not in the list: {keys(pilot.app)}")


async def test_key_5_lists_the_runs_adapter_and_checkpoints_with_their_commands(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("1", "f5")  # F5 reaches the pane too
        assert app.query_one("TabbedContent").active == "models"
        pane = await opened(pilot)
        assert keys(app) == ["base", f"{RUN_ID}/adapter", f"{RUN_ID}/ckpt-8", f"{RUN_ID}/ckpt-4"]
        assert app.focused is app.query_one("#models-table")
        await highlight(pilot, pane, f"{RUN_ID}/ckpt-4")
        detail = text_of(app, "#models-detail")
        assert f"workbench merge {RUN_ID}/ckpt-4" in detail and f"workbench serve start {RUN_ID}/ckpt-4" in detail
        assert f"{RUN_ID} step 4" in detail
        assert "m merge" in text_of(app, "#models-actions")
        # A key that does not apply says why, and nothing breaks.
        await pilot.press("x")
        await pilot.pause()
        assert any("stops a running server" in n.message for n in app._notifications)
        await pilot.press("up", "up", "up")
        assert pane.highlighted_key() == "base"
        await pilot.press("m")
        await pilot.pause()
        assert any("only an adapter or a checkpoint" in n.message for n in app._notifications)
        await pilot.press("g")
        await pilot.pause()
        assert not isinstance(app.screen, ChoiceScreen)


async def test_marks_and_help(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("down", "space", "down", "space")
        assert pane.marked == [f"{RUN_ID}/adapter", f"{RUN_ID}/ckpt-8"]
        assert "2 marked" in text_of(app, "#models-header")
        table = app.query_one("#models-table", DataTable)
        assert str(table.get_row(f"{RUN_ID}/adapter")[1]).startswith("+")
        await pilot.press("space")
        assert pane.marked == [f"{RUN_ID}/adapter"]
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Models pane" in str(app.screen.query_one(Static).render())


async def test_the_list_follows_the_disk(ws, tiny_model_dir):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        merged_dir(ws, tiny_model_dir)
        await pilot.press("r")
        merged = str(ws / "models" / MERGED)
        await until(pilot, lambda: merged in keys(app), what="the merged model to appear")
        await highlight(pilot, pane, merged)
        assert f"workbench gguf models/{MERGED} --type q8_0" in text_of(app, "#models-detail")


@pytest.mark.skipif(not has("workbench.ship.merge"), reason="the merge (workbench.ship.merge) is not there yet")
async def test_m_merges_the_highlighted_checkpoint_and_the_merged_model_appears(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await highlight(pilot, pane, f"{RUN_ID}/ckpt-4")
        await pilot.press("m")
        merged = ws / "models" / f"{RUN_ID}-ckpt-4-merged"
        await until(pilot, lambda: str(merged) in keys(app), timeout=120, what="the merged model in the list")
        await until(pilot, lambda: pane.highlighted_key() == str(merged), what="the merged model highlighted")
        assert (merged / "config.json").is_file() and (merged / "workbench.json").is_file()
        entry = pane.highlighted()
        assert entry is not None and entry.source == f"{RUN_ID}/ckpt-4" and entry.actions[0] == "gguf"
        assert any("Merged" in n.message for n in app._notifications)


@pytest.mark.skipif(not has("workbench.ship.merge"), reason="the merge (workbench.ship.merge) is not there yet")
async def test_a_failed_merge_is_shown_not_raised(ws):
    (ws / "runs" / RUN_ID / "checkpoint-8" / "adapter_model.safetensors").write_bytes(b"broken")
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await highlight(pilot, pane, f"{RUN_ID}/ckpt-8")
        await pilot.press("m")
        await until(pilot, lambda: not pane.jobs, timeout=120, what="the merge to end")
        assert "merge failed" in text_of(app, "#models-detail")
        assert not (ws / "models" / f"{RUN_ID}-ckpt-8-merged").exists()


@pytest.mark.skipif(not has("workbench.ship.gguf"), reason="the GGUF export (workbench.ship.gguf) is not there yet")
async def test_g_asks_the_type_and_exports_the_merged_model(ws, tiny_model_dir):
    merged_dir(ws, tiny_model_dir)
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        merged = str(ws / "models" / MERGED)
        await highlight(pilot, pane, merged)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the type dialog")
        options = app.screen.query_one(OptionList)
        assert [options.get_option_at_index(i).id for i in range(options.option_count)][:2] == ["q8_0", "q4_0"]
        await pilot.press("enter")  # q8_0
        await until(pilot, lambda: not pane.jobs, timeout=120, what="the export to end")
        out = ws / "models" / f"{MERGED}.q8_0.gguf"
        assert out.is_file(), text_of(app, "#models-detail")
        await until(pilot, lambda: pane.highlighted_key() == str(out), what="the GGUF file highlighted")
        entry = pane.highlighted()
        assert entry is not None and entry.key == str(out) and entry.qtype == "q8_0" and entry.modelfile
        assert entry.source == f"models/{MERGED}"


@pytest.mark.skipif(not has("screens.chat"), reason="the chat screen (screens.chat) is not there yet")
async def test_c_opens_the_chat_with_the_two_marked_models(ws):
    from screens.chat import ChatScreen

    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("space", "down", "space")  # base and the final adapter
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), what="the chat screen")
        assert app.screen.names == ["base", f"{RUN_ID}/adapter"]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ChatScreen), timeout=30, what="back to the pane")
        assert pane.marked == ["base", f"{RUN_ID}/adapter"]
        await pilot.press("down", "space", "c")  # three marked: refused, with a reason
        await pilot.pause()
        assert not isinstance(app.screen, ChatScreen)
        assert any("at most 2" in n.message for n in app._notifications)


@pytest.mark.skipif(
    not (has("workbench.serve.servedir") and has("workbench.serve.app") and has("workbench.serve.log")),
    reason="the server (workbench.serve) is not complete yet",
)
async def test_s_starts_a_server_and_x_stops_it(ws):
    from workbench.serve.servedir import ServeDir, list_servers, stop_server

    app = make_app(ws)
    try:
        async with app.run_test(size=SIZE) as pilot:
            pane = await opened(pilot)
            await highlight(pilot, pane, f"{RUN_ID}/adapter")
            await pilot.press("s")
            await until(pilot, lambda: not pane.jobs, timeout=120, what="the server to start")
            servers = list_servers(ws)
            assert len(servers) == 1, text_of(app, "#models-detail")
            server = servers[0]
            await until(pilot, lambda: pane.highlighted_key() == server.id, what="the new server highlighted")
            await until(
                pilot,
                lambda: (pane.highlighted() or inventory.ModelEntry("", "", "", "")).state == "running",
                timeout=60,
                what="the server running",
            )
            assert "curl http://127.0.0.1:" in text_of(app, "#models-detail")
            await pilot.press("x")
            await until(pilot, lambda: not pane.jobs, timeout=60, what="the stop")
            await until(pilot, lambda: list_servers(ws)[0].state == "stopped", timeout=30, what="stopped")
    finally:
        for s in list_servers(ws):
            if s.state in ("starting", "running"):
                stop_server(ServeDir(Path(s.path)), timeout=10)


def test_human_size():
    assert [human_size(n) for n in (None, 0, 999, 1500, 27_000_000, 4_100_000_000)] == [
        "?",
        "0 B",
        "999 B",
        "1.5 kB",
        "27 MB",
        "4.1 GB",
    ]


async def test_a_lost_server_offers_nothing_to_stop(tmp_path):
    server_dir(tmp_path, "serve-20261203-120000", pid=None, beat=1.0)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await highlight(pilot, pane, "serve-20261203-120000")
        entry = pane.highlighted()
        assert entry is not None and entry.state == "lost"
        await pilot.press("x")
        await pilot.pause()
        assert not pane.jobs
        assert "No trained models yet" in text_of(app, "#models-header")


async def test_a_listing_that_fails_is_said_in_the_header(tmp_path, monkeypatch):
    import screens.models
    from workbench.errors import WorkbenchError

    def broken(workspace):
        raise WorkbenchError(f"{workspace}/runs: permission denied")

    monkeypatch.setattr(screens.models, "list_models", broken)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)
        assert "Could not list the models" in text_of(app, "#models-header")
        assert "permission denied" in text_of(app, "#models-header")
        assert keys(app) == []
