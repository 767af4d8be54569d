"""Pilot tests of the Eval pane, all by keys: rate blind, filter regressions, A/B, notes, judge, report, evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from appkit import make_app, until
from evalkit import make_eval
from test_eval_results import judge_reply
from textual.widgets import DataTable, Input, SelectionList, Static, TabbedContent

from screens.eval import EvalPane
from screens.eval_screens import CellScreen, NewEvalScreen, RubricScreen
from screens.modals import PromptScreen
from workbench.eval.ratings import Ratings
from workbench.eval.store import EvalDir, list_evals
from workbench.llm import LLM

SIZE = (120, 40)


async def opened(pilot) -> EvalPane:
    await pilot.pause()
    await pilot.press("4")
    pane = pilot.app.query_one(EvalPane)
    await until(pilot, lambda: pane.results is not None and pane.rows, what="the eval to load")
    await pilot.pause()
    return pane


def header(app) -> str:
    return str(app.query_one("#eval-header", Static).render())


async def test_rate_blind_by_keys_and_ratings_land_on_the_real_models(tmp_path: Path):
    ev = make_eval(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("B")
        assert pane.blind and "BLIND" in header(app)
        table = app.query_one("#eval-grid", DataTable)
        assert [str(c.label) for c in table.columns.values()][2:] == ["Model A", "Model B"]
        assert "hidden" in str(app.query_one("#eval-summary", Static).render())
        rated = {}
        await pilot.press("r")  # rating mode: only now do digits rate
        assert pane.rating and "RATING" in header(app)
        for row_index in range(3):
            table.move_cursor(row=row_index, column=2)
            await pilot.press("4")
            table.move_cursor(row=row_index, column=3)
            await pilot.press("2")
            order = pane.orders[row_index]
            rated[pane.rows[row_index].id] = {order[0]: 4, order[1]: 2}
        assert len({tuple(o) for o in pane.orders}) == 2  # the columns really are shuffled per example
        await pilot.press("B")
        assert not pane.blind
    saved = Ratings(ev.path / "ratings.jsonl")
    for example_id, scores in rated.items():
        for model, score in scores.items():
            assert saved.score_of(example_id, model) == score


async def test_a_digit_pressed_to_switch_panes_never_becomes_a_rating(tmp_path: Path):
    """The app reopens on the Eval pane with the grid focused; 3 goes to the Train pane and rates nothing."""
    ev = make_eval(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot)  # the app now remembers the Eval pane
    ratings = ev.path / "ratings.jsonl"
    before = ratings.read_bytes() if ratings.exists() else b""
    again = make_app(tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        pane = again.query_one(EvalPane)
        tabs = again.query_one(TabbedContent)
        await until(pilot, lambda: pane.results is not None and pane.rows, what="the eval to load")
        grid = again.query_one("#eval-grid", DataTable)
        await until(pilot, lambda: grid.has_focus, what="the grid to have the focus")
        grid.move_cursor(row=0, column=2)
        await pilot.pause()
        await pilot.press("3")
        await until(pilot, lambda: tabs.active == "train", what="the Train pane")
        await pilot.press("4")
        await until(pilot, lambda: tabs.active == "eval" and grid.has_focus, what="the grid again")
        for key in ("5", "0", "a", "b", "t"):
            await pilot.press(key)
            await pilot.press("4")  # back to the Eval pane if a digit switched away
            await until(pilot, lambda: tabs.active == "eval", what="the Eval pane")
    after = ratings.read_bytes() if ratings.exists() else b""
    assert after == before
    assert Ratings(ratings).rated_count() == 0


async def test_rating_mode_is_entered_with_r_shown_and_left_with_escape(tmp_path: Path):
    ev = make_eval(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        tabs = app.query_one(TabbedContent)
        grid = app.query_one("#eval-grid", DataTable)
        grid.move_cursor(row=0, column=2)
        await pilot.press("r")
        assert pane.rating and "RATING" in header(app)
        footer_keys = {b.binding.key for b in app.active_bindings.values() if b.enabled}
        assert "3" in footer_keys and pane.check_action("rate", (3,))
        await pilot.press("3")
        assert tabs.active == "eval" and pane.rows[0].cells[pane.orders[0][0]].human == 3
        await pilot.press("escape")
        assert not pane.rating and "RATING" not in header(app)
        assert grid.has_focus  # the first Esc leaves rating mode, not the grid
        await pilot.press("3")
        await until(pilot, lambda: tabs.active == "train", what="the Train pane")
        assert not pane.rating
    assert Ratings(ev.path / "ratings.jsonl").score_of(pane.rows[0].id, pane.orders[0][0]) == 3


async def test_filter_regressions_search_note_and_ab(tmp_path: Path):
    ev = make_eval(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        assert len(pane.rows) == 6 and "regressions 1" in header(app)
        await pilot.press("f")
        assert pane.filter == "regressions" and [r.id for r in pane.rows] == ["5"]
        assert "filter: regressions (1/6)" in header(app)
        await pilot.press("f")  # disagree: no judge yet, so nothing
        assert pane.filter == "disagree" and not pane.rows
        await pilot.press("f", "f", "f")
        assert pane.filter == "all"
        await pilot.press("slash")
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one(Input).value = "omar"
        await pilot.press("enter")
        assert [r.id for r in pane.rows] == ["3"]
        await pilot.press("b")  # not in rating mode: no A/B choice is made
        assert "your A/B" not in str(app.query_one("#eval-detail", Static).render())
        await pilot.press("r", "b")  # the second column (the adapter) is better
        await pilot.press("escape")
        assert "your A/B: run/adapter better" in str(app.query_one("#eval-detail", Static).render())
        await pilot.press("N")
        app.screen.query_one(Input).value = "base got the issue wrong"
        await pilot.press("enter")
        assert pane.rows[0].note == "base got the issue wrong"
        await pilot.press("s")
        assert pane.sort == "score"
    saved = Ratings(ev.path / "ratings.jsonl")
    assert saved.choice_of("3", "base", "run/adapter") == "b"
    assert saved.get("3").note == "base got the issue wrong"


async def test_open_an_answer_rate_it_and_move_between_models(tmp_path: Path):
    ev = make_eval(tmp_path)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        app.query_one("#eval-grid", DataTable).move_cursor(row=3, column=2)
        await pilot.press("enter")
        assert isinstance(app.screen, CellScreen)
        out = str(app.screen.query_one("#cell-out", Static).render())
        assert "refund" in out  # the base said refund; the reference says shipping
        await pilot.press("5", "right", "3", "i", "2")
        assert "[correctness 2]" in str(app.screen.query_one("#cell-facts", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, CellScreen)
        assert pane.results.ratings.score_of("3", "base") == 5
        assert pane.results.ratings.score_of("3", "run/adapter") == 3
    saved = Ratings(ev.path / "ratings.jsonl")
    assert saved.score_of("3", "run/adapter") == 3 and saved.item_of("3", "run/adapter", "correctness") == 2


async def test_judge_rubric_and_report_by_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ev = make_eval(tmp_path)
    monkeypatch.setattr(EvalPane, "_llm", lambda self, model: LLM(model, mock=judge_reply, cache_dir=None))
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, RubricScreen)
        await pilot.press("ctrl+s")
        await pilot.press("j")
        app.screen.query_one(Input).value = "openai/gpt-4o-mini"
        await pilot.press("enter")
        await until(
            pilot,
            lambda: pane.results.verdicts.single and len(pane.results.verdicts.single) == 12,
            what="the judge's verdicts",
        )
        await until(pilot, lambda: "judge" in pane.summary_metrics, what="the judge's column in the summary")
        assert pane.rows[0].cells["run/adapter"].value("judge") == 5.0
        await pilot.press("R")
        await until(pilot, lambda: (ev.path / "report.html").exists(), what="the report")
    report = json.loads((ev.path / "report.json").read_text())
    assert report["judge"]["verdicts"] == 12 and report["models"][1]["key"] == "run/adapter"
    assert "Worst examples" in (ev.path / "report.md").read_text()


@pytest.mark.slow
async def test_evaluate_the_tiny_model_from_the_new_eval_dialog(tmp_path: Path, tiny_model_dir: Path):
    ws = tmp_path / "ws"
    shutil.copytree(Path(__file__).resolve().parents[1] / "sample_data" / "support", ws / "support")
    run = ws / "runs" / "tiny-20261125-100000"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "model": str(tiny_model_dir),
                "data": {"train": str(ws / "support" / "train.jsonl"), "test": str(ws / "support" / "test.jsonl")},
            }
        )
    )
    (run / "status.json").write_text(
        json.dumps({"run_id": run.name, "name": "tiny", "state": "completed", "created": 1.0, "heartbeat": 1.0})
    )
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("4")
        pane = app.query_one(EvalPane)
        await until(pilot, lambda: "No evals yet" in header(app), what="the empty pane")
        await pilot.press("n")
        assert isinstance(app.screen, NewEvalScreen)
        await until(pilot, lambda: app.screen.query_one("#new-models", SelectionList).option_count, what="candidates")
        assert app.screen.query_one("#new-models", SelectionList).selected == ["base"]
        app.screen.query_one("#new-limit", Input).value = "4"
        app.screen.query_one("#new-tokens", Input).value = "8"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: pane.results is not None, what="the new eval")
        ev = EvalDir(list_evals(ws)[0].path)
        await until(pilot, lambda: ev.status().state == "completed", 120, what="generation")
        await until(
            pilot,
            lambda: all(r.cells["base"].output is not None for r in pane.rows),
            10,
            what="the grid to follow the generation",
        )
        await until(pilot, lambda: "completed 4/4" in header(app), 10, what="the header to say completed")
        assert len(pane.rows) == 4
        assert pane.results.schema is not None  # schema.json beside the test split is used
        assert len((ev.path / "scores.jsonl").read_text().splitlines()) == 4  # written when generation completed


async def test_evaluate_a_run_from_the_train_pane_ticks_its_checkpoints(tmp_path: Path):
    from appkit import fake_run

    run = fake_run(tmp_path, "demo-20261125-105024")
    for name in ("adapter", "checkpoint-24", "checkpoint-48"):
        (run.path / name).mkdir()
        (run.path / name / "adapter_config.json").write_text("{}")
        if name != "adapter":
            (run.path / name / "trainer_state.json").write_text('{"global_step": 1}')
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await until(pilot, lambda: app.query_one("TrainPane").run_id is not None, what="the run to be watched")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, NewEvalScreen), what="the new-eval dialog")
        models = app.screen.query_one("#new-models", SelectionList)
        await until(pilot, lambda: models.option_count, what="candidates")
        assert sorted(models.selected) == sorted(
            ["base", f"{run.id}/adapter", f"{run.id}/ckpt-24", f"{run.id}/ckpt-48"]
        )
        models.deselect_all()
        models.highlighted = 2
        await pilot.press("ctrl+a")
        assert sorted(models.selected) == sorted([f"{run.id}/adapter", f"{run.id}/ckpt-24", f"{run.id}/ckpt-48"])
