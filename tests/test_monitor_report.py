"""The monitor of a server: the baseline from the release eval, the drift table, and alerts that a planted
shift raises and noise of the baseline's own size does not. No model is loaded: the log is filled by hand
with answers judged as the server judges them."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from shipkit import fake_run

from workbench.cli import main
from workbench.eval.candidates import examples_from_dataset, resolve_models
from workbench.eval.store import EvalSpec, create_eval
from workbench.monitor.health import annotate, load_schema
from workbench.monitor.render import lines, markdown, write
from workbench.monitor.report import monitor, parse_since
from workbench.monitor.settings import MonitorSettings, load_settings
from workbench.serve.log import LoggedRequest, RequestLog
from workbench.serve.servedir import ServeDir, ServeSpec

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
RUN_ID = "demo-20261203-114013"
ADAPTER = f"{RUN_ID}/adapter"
SERVER = "demo-20261204-010000"
NOW = 1_796_400_000.0


@pytest.fixture
def served(tmp_path, tiny_model_dir) -> Path:
    """A run, a complete release eval of its adapter on the test split (the references as answers, all valid)
    and a server of the adapter with an empty log."""
    ws = tmp_path / "ws"
    ws.mkdir()
    fake_run(ws, tiny_model_dir, steps=(4,), best=4)
    refs = resolve_models(ws, [ADAPTER])
    examples = examples_from_dataset(SUPPORT / "test.jsonl")
    spec = EvalSpec(
        name="release", dataset=str(SUPPORT / "test.jsonl"), models=refs, schema=str(SUPPORT / "schema.json")
    )
    ev = create_eval(ws, spec, examples)
    ev.append_predictions(
        {"model": refs[0].key, "id": e["id"], "output": e["reference"], "finish": "stop"} for e in examples
    )
    ev.write_status({**ev.read_status_raw(), "state": "completed", "done": len(examples)})
    sd = ServeDir(ws / "serves" / SERVER)
    sd.path.mkdir(parents=True)
    sd.write_spec(ServeSpec(models=[ADAPTER], refs=refs, workspace=str(ws)))
    sd.write_status({"serve_id": SERVER, "state": "stopped", "created": NOW - 86400, "models": [refs[0].key]})
    RequestLog(sd.db_path).close()
    return ws


def references() -> list[tuple[list[dict], str]]:
    return [(e["messages"], e["reference"]) for e in examples_from_dataset(SUPPORT / "test.jsonl")]


def log_answers(ws: Path, answers: list[tuple[list[dict], str]], *, start: float, end: float, model: str) -> None:
    schema = load_schema(SUPPORT / "schema.json")
    with RequestLog(ws / "serves" / SERVER / "requests.db") as log:
        for i, (messages, answer) in enumerate(answers):
            t = start + (end - start) * i / max(1, len(answers))
            entry = LoggedRequest(
                id=f"chatcmpl-{t:.3f}-{i}", time=t, model=model, endpoint="/v1/chat/completions", stream=False,
                status=200, messages=messages, response=answer, prompt_tokens=50, completion_tokens=40,
                latency_s=0.5, finish_reason="stop",
            )  # fmt: skip
            annotate(entry, schema)
            log.record(entry)


def model_name(ws: Path) -> str:
    from workbench.serve.engine import default_name

    return default_name(ServeDir(ws / "serves" / SERVER).spec().refs[0])


def resample(n: int, seed: int) -> list[tuple[list[dict], str]]:
    rng = random.Random(seed)
    refs = references()
    return [rng.choice(refs) for _ in range(n)]


def other_date_format(answer: str) -> str:
    data = json.loads(answer)
    y, m, d = data["date"].split("-")
    data["date"] = f"{d}/{m}/{y}"  # 30/08/2026: not the schema's YYYY-MM-DD
    return json.dumps(data)


def test_noise_of_the_baselines_size_raises_nothing(served):
    name = model_name(served)
    log_answers(served, resample(200, seed=1), start=NOW - 86000, end=NOW - 60, model=name)
    report = monitor(served, SERVER, since_s=86400, now=NOW)
    (mm,) = report.models
    assert mm.baseline is not None and mm.baseline.source == "release" and mm.baseline.n == 40
    assert mm.rates["invalid"]["base"] == 0 and mm.rates["invalid"]["now"] == 0
    assert report.alerts == []
    readings = {row.figure: row.reading for row in mm.drift}
    assert readings["answer length"] in ("stable", "watch") and readings["field urgency"] in ("stable", "watch")
    assert "no alert" in lines(report)


def test_a_planted_date_format_shift_alerts_since_it_began(served):
    name = model_name(served)
    log_answers(served, resample(150, seed=2), start=NOW - 86000, end=NOW - 7200, model=name)
    shifted = [(m, other_date_format(a)) for m, a in resample(60, seed=3)]
    log_answers(served, shifted, start=NOW - 7200, end=NOW - 60, model=name)
    report = monitor(served, SERVER, since_s=86400, now=NOW)
    (alert,) = [a for a in report.alerts if a.kind == "failure"]
    assert alert.figure == "schema-invalid answers" and alert.model == name
    assert alert.value == pytest.approx(60 / 210)
    assert alert.since is not None and NOW - 7200 - 3600 <= alert.since <= NOW - 7200 + 1500
    assert "since" in alert.message and "0% at release" in alert.message
    text = "\n".join(lines(report))
    assert "ALERT" in text and "schema-invalid answers" in text


def test_a_categorical_field_shift_is_a_drift_alert(served):
    name = model_name(served)
    urgent = []
    for messages, answer in resample(120, seed=4):
        data = json.loads(answer)
        data["urgency"] = "high"
        urgent.append((messages, json.dumps(data)))
    log_answers(served, urgent, start=NOW - 3000, end=NOW - 10, model=name)
    report = monitor(served, SERVER, since_s=3600, now=NOW)
    drift = {a.figure: a for a in report.alerts if a.kind == "drift"}
    assert "field urgency" in drift and drift["field urgency"].value > 0.25
    assert "high" in drift["field urgency"].message


def test_too_few_requests_give_no_reading_and_no_alert(served):
    name = model_name(served)
    shifted = [(m, other_date_format(a)) for m, a in resample(5, seed=5)]
    log_answers(served, shifted, start=NOW - 600, end=NOW - 10, model=name)
    report = monitor(served, SERVER, since_s=3600, now=NOW)
    assert report.alerts == []
    assert {row.reading for row in report.models[0].drift} == {"too few"}


def test_cli_exits_1_on_an_alert_and_writes_reports(served, capsys, monkeypatch):
    name = model_name(served)
    now = time.time()
    shifted = [(m, other_date_format(a)) for m, a in resample(60, seed=6)]
    log_answers(served, shifted, start=now - 3000, end=now - 10, model=name)
    assert main(["-w", str(served), "monitor", SERVER, "--since", "1h"]) == 1
    out = capsys.readouterr().out
    assert "ALERT" in out and "schema-invalid answers" in out
    assert main(["-w", str(served), "monitor", SERVER, "--since", "1h", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["alerts"][0]["figure"] == "schema-invalid answers"
    assert main(["-w", str(served), "monitor", "report", SERVER, "--since", "1h"]) == 0
    md, page = (Path(p) for p in capsys.readouterr().out.split())
    assert md.read_text().startswith(f"# Monitor of {SERVER}") and "<svg" in page.read_text()
    assert main(["-w", str(served), "monitor", "schedule", SERVER, "--every", "30d"]) == 0
    cron = capsys.readouterr().out
    assert "monitor revalidate " + SERVER in cron and cron.count("\n17 3 1 * * ") == 1


def test_settings_come_from_monitor_yaml_and_bad_ones_are_named(tmp_path):
    assert load_settings(tmp_path) == MonitorSettings()
    (tmp_path / "monitor.yaml").write_text("psi_alert: 0.3\nmin_requests: 10\n")
    assert load_settings(tmp_path).psi_alert == 0.3 and load_settings(tmp_path).min_requests == 10
    (tmp_path / "monitor.yaml").write_text("psi_alert: high\n")
    with pytest.raises(Exception, match=r"monitor.yaml: psi_alert"):
        load_settings(tmp_path)
    (tmp_path / "monitor.yaml").write_text("psi_watch: 0.5\n")
    with pytest.raises(Exception, match="psi_watch"):
        load_settings(tmp_path)


def test_parse_since():
    assert parse_since("24h") == 86400 and parse_since("30m") == 1800 and parse_since("1w") == 7 * 86400
    with pytest.raises(Exception, match="expected a duration"):
        parse_since("yesterday")


def test_report_files(served, tmp_path):
    log_answers(served, resample(40, seed=7), start=NOW - 3000, end=NOW - 10, model=model_name(served))
    report = monitor(served, SERVER, since_s=3600, now=NOW)
    paths = write(report, tmp_path / "out")
    assert [p.suffix for p in paths] == [".md", ".html"]
    assert "| model | side | figure |" in markdown(report)


def test_cli_to_dataset_sends_the_failures_pending_with_why(served, capsys):
    import shutil

    from workbench.data.store import open_dataset

    name = model_name(served)
    now = time.time()
    log_answers(served, resample(20, seed=8), start=now - 3000, end=now - 1500, model=name)
    shifted = [(m, other_date_format(a)) for m, a in resample(12, seed=9)]
    log_answers(served, shifted, start=now - 1400, end=now - 10, model=name)
    dataset = served / "train.jsonl"
    shutil.copy(SUPPORT / "train.jsonl", dataset)
    args = ["-w", str(served), "monitor", "to-dataset", SERVER, "--since", "1h", "--out", str(dataset)]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "12 example(s) added" in out.out and "w shows the production examples" in out.err
    assert main(args) == 0  # again: nothing twice
    assert "0 example(s) added" in capsys.readouterr().out
    session = open_dataset(dataset, readonly=True)
    try:
        production = [e for e in session.visible() if e.source == "production"]
        assert len(production) == 12 and {e.status for e in production} == {"pending"}
        why = production[0].source_info["why"]
        assert why.startswith("invalid ($.date: ") and "does not match" in why  # what to correct
    finally:
        session.close()
    assert main([*args, "--filter", "failed", "3"]) == 2
    assert "takes no value" in capsys.readouterr().err
    assert main([*args, "--filter", "judge-below", "3"]) == 2
    assert "no judge grades" in capsys.readouterr().err
