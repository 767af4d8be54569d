"""An eval read whole: scores, filters, sorting, summaries with intervals, judge verdicts and agreement."""

from __future__ import annotations

import json

import pytest
from evalkit import make_eval, ticket
from test_llm import offline  # noqa: F401  (autouse: no network)

from workbench.eval.judge import Rubric
from workbench.eval.judging import judge_eval, judge_pairs, load_verdicts, save_rubric
from workbench.eval.results import Results
from workbench.llm import LLM


def test_scores_summary_and_the_difference_against_the_base(tmp_path):
    res = Results(make_eval(tmp_path))
    assert res.primary == "schema_valid" and res.base == "base"
    by = {s.model.key: s for s in res.summaries()}
    assert by["base"].metrics["schema_valid"].mean == pytest.approx(3 / 6)
    assert by["run/adapter"].metrics["schema_valid"].mean == pytest.approx(5 / 6)
    assert by["run/adapter"].metrics["refusal"].mean == pytest.approx(1 / 6)
    assert by["run/adapter"].metrics["exact_match"].mean == pytest.approx(5 / 6)
    delta = by["run/adapter"].delta["exact_match"]
    assert by["base"].metrics["exact_match"].mean == pytest.approx(2 / 6)
    assert delta.mean == pytest.approx(5 / 6 - 2 / 6) and delta.n == 6
    assert "base" not in by["base"].delta and not by["base"].delta


def test_filters_and_sorting(tmp_path):
    res = Results(make_eval(tmp_path))
    regressions = [r.id for r in res.view("regressions")]
    assert regressions == ["5"]  # the adapter refused a ticket the base got right
    assert {r.id for r in res.view("failures")} == {"0", "2", "4", "5"}
    assert [r.id for r in res.view(search="mateo")] == ["1"]
    worst = res.view(sort="score", model="run/adapter")
    assert worst[0].id == "5"
    delta = res.view(sort="delta", model="run/adapter")
    assert delta[0].id == "5" and delta[-1].cells["base"].value("schema_valid") == 0.0
    assert res.counts()["unrated"] == 6


def test_ratings_drive_the_unrated_and_regression_filters(tmp_path):
    res = Results(make_eval(tmp_path))
    res.ratings.score("1", "base", 5)
    res.ratings.score("1", "run/adapter", 2)
    res.reload_ratings()
    assert "1" in [r.id for r in res.view("regressions")]  # worse by the person's rating
    assert "1" not in [r.id for r in res.view("unrated")]


def test_refresh_picks_up_new_predictions_and_rescoring_only_changed(tmp_path):
    ev = make_eval(tmp_path, outputs={"base": ["x"]})
    res = Results(ev)
    assert res.rows[1].cells["base"].output is None and res.summaries()[0].done == 1
    assert not res.refresh()
    ev.append_predictions([{"model": "base", "id": "1", "output": ticket("Mateo Haddad", "refund")}])
    assert res.refresh()
    assert res.rows[1].cells["base"].value("exact_match") == 1.0


def judge_reply(messages) -> str:
    """Grades 5 an answer that parses as JSON, 1 otherwise; prefers the JSON answer in a pair."""
    user = messages[-1]["content"]
    if "[answer A]" in user:
        a = user.split("[answer A]\n", 1)[1].split("\n\n[answer B]", 1)[0]
        return json.dumps({"winner": "A" if a.startswith("{") else "B", "reason": "valid JSON"})
    answer = user.split("[answer to grade]\n", 1)[1]
    score = 5 if answer.startswith("{") else 1
    return json.dumps({"score": score, "criteria": {"correctness": score, "format": score}, "reason": "ok"})


def test_judge_verdicts_are_kept_and_agreement_computed(tmp_path):
    ev = make_eval(tmp_path)
    save_rubric(ev, Rubric.parse("Grade the JSON.\n- correctness: right fields\n- format: one line of JSON"))
    llm = LLM(model="openai/gpt-4o-mini", mock=judge_reply, cache_dir=None)
    verdicts = judge_eval(ev, llm, models=["base", "run/adapter"])
    assert len(verdicts) == 12
    pairs = judge_pairs(ev, llm, model_a="base", model_b="run/adapter")
    assert {p.example_id: p.winner_model for p in pairs}["0"] == "run/adapter"
    res = Results(ev)
    assert res.rows[0].cells["base"].value("judge") == 1.0
    assert res.rows[0].cells["run/adapter"].value("judge") == 5.0
    for row in res.rows:  # a person who agrees with the judge on every answer, and on its format item
        for key, cell in row.cells.items():
            res.ratings.score(row.id, key, int(cell.value("judge")))
            res.ratings.score_item(row.id, key, "format", int(cell.value("judge")))
    res.reload_ratings()
    agreement = res.agreement()
    assert agreement["overall"].n == 12 and agreement["overall"].exact == 1.0
    assert agreement["format"].n == 12 and agreement["format"].kappa == 1.0 and "correctness" not in agreement
    assert not res.view("disagree")
    res.ratings.score("0", "base", 5)  # now 4 points from the judge's 1
    res.reload_ratings()
    assert [r.id for r in res.view("disagree")] == ["0"]


def test_a_regenerated_answer_drops_its_old_verdict(tmp_path):
    ev = make_eval(tmp_path)
    judge_eval(ev, LLM(model="openai/gpt-4o-mini", mock=judge_reply, cache_dir=None), models=["base"], ids=["0"])
    assert ("base", "0") in load_verdicts(ev).single
    ev.append_predictions([{"model": "base", "id": "0", "output": "something else"}])
    assert ("base", "0") not in load_verdicts(ev).single


def test_checkpoint_curve_picks_by_the_metric_and_says_when_loss_disagrees(tmp_path):
    from appkit import fake_run
    from evalkit import EXAMPLES, SUPPORT

    from workbench.eval.curves import checkpoint_curve, runs_with_checkpoints
    from workbench.eval.store import EvalSpec, ModelRef, create_eval

    run = fake_run(tmp_path, "demo-20261125-105024")  # eval loss is lowest at step 24
    models = [ModelRef(key="base", label="base", kind="base", path="bundled", base_model="bundled")]
    models += [
        ModelRef(
            key=f"demo/ckpt-{s}",
            label=f"step {s}",
            kind="checkpoint",
            path=str(run.path / f"checkpoint-{s}"),
            base_model="bundled",
            run_id=run.id,
            step=s,
        )
        for s in (16, 24, 48)
    ]
    ev = create_eval(tmp_path, EvalSpec(name="ckpts", models=models, schema=str(SUPPORT / "schema.json")), EXAMPLES)
    right = {16: 2, 24: 3, 48: 5}  # later checkpoints get more tickets right, though eval loss rose
    ev.append_predictions(
        {"model": f"demo/ckpt-{s}", "id": e["id"], "output": e["reference"] if i < n else "no idea"}
        for s, n in right.items()
        for i, e in enumerate(EXAMPLES)
    )
    res = Results(ev)
    assert runs_with_checkpoints(res) == [run.id]
    curve = checkpoint_curve(res, run.id)
    assert [p[0] for p in curve.points] == [16, 24, 48]
    assert curve.best_by_metric == 48 and curve.best_by_loss == 24
    assert "metric picks step 48, eval loss picks step 24" in curve.verdict()
    assert curve.eval_loss and curve.train_loss


def test_a_tied_main_metric_gives_way_to_one_that_separates_the_checkpoints(tmp_path):
    from appkit import fake_run
    from evalkit import EXAMPLES, SUPPORT, ticket

    from workbench.eval.curves import checkpoint_curve
    from workbench.eval.store import EvalSpec, ModelRef, create_eval

    run = fake_run(tmp_path, "demo-20261125-105024")
    models = [
        ModelRef(
            key=f"demo/ckpt-{s}",
            label=f"step {s}",
            kind="checkpoint",
            path=str(run.path / f"checkpoint-{s}"),
            base_model="bundled",
            run_id=run.id,
            step=s,
        )
        for s in (24, 48)
    ]
    ev = create_eval(tmp_path, EvalSpec(name="tie", models=models, schema=str(SUPPORT / "schema.json")), EXAMPLES)
    # Both always answer valid JSON (schema 100% each); step 48 gets the names right, step 24 does not.
    ev.append_predictions(
        {
            "model": f"demo/ckpt-{s}",
            "id": e["id"],
            "output": e["reference"] if s == 48 else ticket("Someone Else", "other"),
        }
        for s in (24, 48)
        for e in EXAMPLES
    )
    res = Results(ev)
    assert checkpoint_curve(res, run.id, "schema_valid").tied
    assert "cannot choose" in checkpoint_curve(res, run.id, "schema_valid").verdict()
    curve = checkpoint_curve(res, run.id)
    assert curve.metric == "token_f1" and curve.best_by_metric == 48 and curve.best_by_loss == 24
