"""Revalidation against our own server (the app over real HTTP, the tiny model): an eval of the endpoint on the
release's test rows, the suites and recent production prompts, with the release's answers as a frozen baseline
column; a served model worse than its release fails the gate, the same answers pass it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from shipkit import fake_run, serving

from workbench.cli import main
from workbench.eval.candidates import examples_from_dataset, resolve_models
from workbench.eval.results import Results
from workbench.eval.store import EvalDir, EvalSpec, GenerationSettings, create_eval
from workbench.monitor.health import load_schema
from workbench.monitor.revalidate import revalidate
from workbench.serve.app import build_app
from workbench.serve.engine import Engine
from workbench.serve.log import RequestLog
from workbench.serve.servedir import ServeDir, ServeSpec

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
RUN_ID = "demo-20261203-114013"
SERVER = "demo-20261204-020000"
ROWS = list(range(6))
SETTINGS = GenerationSettings(max_new_tokens=12, batch_size=1)


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_model_dir):
    """A run's adapter served by the app on loopback, its server directory saying 'running', and four
    production requests in its log (three distinct prompts)."""
    ws = tmp_path_factory.mktemp("reval-ws")
    fake_run(ws, tiny_model_dir, steps=(4,), best=4)
    refs = resolve_models(ws, [f"{RUN_ID}/adapter"])
    engine = Engine(refs, max_batch=1, window_s=0.0)  # one at a time: the same prompt, the same greedy answer
    sd = ServeDir(ws / "serves" / SERVER)
    sd.path.mkdir(parents=True)
    log = RequestLog(sd.db_path)
    schema = load_schema(SUPPORT / "schema.json")
    app = build_app(engine, log, server_id=SERVER, schemas={RUN_ID: schema})
    with serving(app) as url:
        sd.write_spec(ServeSpec(models=[f"{RUN_ID}/adapter"], refs=refs, workspace=str(ws)))
        sd.write_status(
            {
                "serve_id": SERVER,
                "state": "running",
                "url": f"{url}/v1",
                "pid": os.getpid(),
                "heartbeat": time.time() + 3600,
                "created": time.time(),
                "models": [RUN_ID],
            }
        )
        for text in ("My parcel is late", "I was charged twice", "My parcel is late", "Cancel my plan please"):
            body = {"model": RUN_ID, "messages": [{"role": "user", "content": text}], "max_tokens": 8}
            assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200
        yield ws, refs[0]
    engine.close()
    log.close()


def release(ws: Path, ref, outputs: dict[str, str]) -> EvalDir:
    examples = examples_from_dataset(SUPPORT / "test.jsonl", selection=ROWS)
    spec = EvalSpec(
        name="release",
        dataset=str(SUPPORT / "test.jsonl"),
        selection=ROWS,
        models=[ref],
        generation=SETTINGS,
        schema=str(SUPPORT / "schema.json"),
    )
    ev = create_eval(ws, spec, examples)
    ev.append_predictions(
        {"model": ref.key, "id": e["id"], "output": outputs[e["id"]], "finish": "stop"} for e in examples
    )
    ev.write_status({**ev.read_status_raw(), "state": "completed"})
    time.sleep(1.05)  # eval ids carry the second
    return ev


def test_a_served_model_worse_than_its_release_fails_the_gate(live, capsys):
    ws, ref = live
    refs = {e["id"]: e["reference"] for e in examples_from_dataset(SUPPORT / "test.jsonl", selection=ROWS)}
    rel = release(ws, ref, refs)  # the release answered with the references: all valid
    ev = revalidate(ws, SERVER, production=10, suites=[SUPPORT / "regression.jsonl"], wait=True)
    spec = ev.spec()
    assert spec.baseline == f"release:{ref.key}" and spec.model_extra["revalidation"]["release"] == rel.id
    assert [m.key for m in spec.models] == [spec.baseline, f"serve:{SERVER}/{RUN_ID}"]
    examples = ev.examples()
    production = [e for e in examples if e.get("source") == "production"]
    assert len(production) == 3 and all(e["id"] == f"prod-{e['request_id']}" for e in production)  # distinct prompts
    assert sum(1 for e in examples if e.get("expect")) > 0  # the regression suite's cases
    assert ev.status().state == "completed"
    res = Results(ev)
    frozen = [c for row in res.rows if (c := row.cells[spec.baseline]).output is not None]
    assert len(frozen) == len(ROWS)  # copied, never generated: the suite and production rows stay empty
    served = f"serve:{SERVER}/{RUN_ID}"
    assert all(row.cells[served].output is not None for row in res.rows)  # the endpoint answered every row
    (drop,) = [r for r in res.regressions() if r.metric == "schema_valid"]  # random weights: no valid JSON
    assert drop.model == served and drop.diff.mean == pytest.approx(-1.0)
    assert any(res.worse_than_base(row, served) for row in res.rows)  # flagged in the grid
    capsys.readouterr()
    assert main(["-w", str(ws), "eval", "gate", ev.id]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "regression:" in out and "schema_valid" in out


def test_the_same_answers_pass_and_the_cli_exits_by_the_gate(live, capsys):
    ws, ref = live
    first = revalidate(ws, SERVER, production=0, suites=[], wait=True)  # the endpoint's own answers ...
    theirs = first.predictions()
    served = f"serve:{SERVER}/{RUN_ID}"
    outputs = {e["id"]: theirs[(served, e["id"])]["output"] for e in first.examples()}
    release(ws, ref, outputs)  # ... made the release
    capsys.readouterr()
    code = main(["-w", str(ws), "monitor", "revalidate", SERVER, "--production", "0", "--wait"])
    out = capsys.readouterr()
    assert code == 0, out
    assert "PASS" in out.out and "no significant drop against release:" in out.out
    newest = EvalDir(sorted(p for p in (ws / "evals").iterdir() if p.name.startswith("revalidate"))[-1])
    res = Results(newest)
    assert res.spec.baseline and res.regressions() == []
    assert not any(res.worse_than_base(row, served) for row in res.rows)


def test_a_stopped_server_is_refused_with_what_to_do(tmp_path, live):
    ws, ref = live
    sd = ServeDir(ws / "serves" / "gone-1")
    sd.path.mkdir(parents=True, exist_ok=True)
    sd.write_spec(ServeSpec(models=["x"], refs=[ref], workspace=str(ws)))
    sd.write_status({"serve_id": "gone-1", "state": "stopped", "created": time.time(), "models": [RUN_ID]})
    with pytest.raises(Exception, match="gone-1 is stopped: revalidation asks the served endpoint"):
        revalidate(ws, "gone-1")
    assert json.loads((sd.path / "status.json").read_text())["state"] == "stopped"


def test_a_configured_judge_grades_production_prompts_and_low_grades_go_to_a_dataset(live, capsys, monkeypatch):
    import shutil

    from test_eval_judge import grade
    from test_llm import offline  # noqa: F401

    from workbench.data.store import open_dataset

    ws, _ref = live
    (ws / "monitor.yaml").write_text("judge_model: openai/gpt-4o-mini\n")  # where a judge is configured

    def judge(messages) -> str:  # the parcel ticket's answer is graded 1, every other 5
        return grade(1, "wrong") if "My parcel is late" in messages[-1]["content"] else grade(5)

    ev = revalidate(ws, SERVER, production=10, suites=[], wait=True, llm_mock=judge)
    res = Results(ev)
    served = f"serve:{SERVER}/{RUN_ID}"
    graded = {row.id: row.cells[served].value("judge") for row in res.rows}
    production = [e for e in ev.examples() if e.get("source") == "production"]
    assert production and all(graded[e["id"]] is not None for e in production)
    low = {e["request_id"] for e in production if graded[e["id"]] < 3}  # the rubric's 1-5
    assert len(low) == 1
    dataset = ws / "fixes.jsonl"
    shutil.copy(SUPPORT / "train.jsonl", dataset)
    capsys.readouterr()
    args = ["-w", str(ws), "monitor", "to-dataset", SERVER, "--filter", "judge-below", "3", "--out", str(dataset)]
    assert main(args) == 0, capsys.readouterr().err
    session = open_dataset(dataset, readonly=True)
    try:
        assert {e.source_info["request_id"] for e in session.visible() if e.source == "production"} == low
    finally:
        session.close()
    (ws / "monitor.yaml").unlink()
