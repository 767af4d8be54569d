"""workbench eval show / judge / report / gate on a hand-made eval (no generation)."""

from __future__ import annotations

import json

from evalkit import SUPPORT, make_eval
from test_eval_results import judge_reply
from test_llm import offline  # noqa: F401  (autouse: no network)

import workbench.llm
from workbench.cli import main
from workbench.eval.suites import load_suite


def test_show_prints_intervals_and_deltas(tmp_path, capsys):
    ev = make_eval(tmp_path)
    assert main(["eval", "show", "-w", str(tmp_path), ev.id]) == 0
    out = capsys.readouterr().out
    assert "main metric schema_valid" in out and "vs base +0.333" in out and "gate: PASS" in out
    assert main(["eval", "show", "-w", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"][1]["metrics"]["exact_match"]["mean"] == 5 / 6


def test_report_writes_three_files(tmp_path, capsys):
    ev = make_eval(tmp_path)
    assert main(["eval", "report", "-w", str(tmp_path), ev.id]) == 0
    paths = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["report.md", "report.json", "report.html"]
    assert "| demo · final |" in (ev.path / "report.md").read_text()
    scores = [json.loads(line) for line in (ev.path / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 12 and {"model", "id", "token_f1", "schema_valid"} <= set(scores[0])
    page = (ev.path / "report.html").read_text()
    assert "<title>" in page and page.count("<table>") == 2 and "<td>demo · final</td>" in page


def test_judge_through_litellm_mock(tmp_path, capsys, monkeypatch):
    ev = make_eval(tmp_path)
    real = workbench.llm.LLM
    monkeypatch.setattr(workbench.llm, "LLM", lambda model, **kw: real(model, mock=judge_reply, cache_dir=None))
    assert main(["eval", "judge", "-w", str(tmp_path), ev.id, "--model", "openai/gpt-4o-mini"]) == 0
    assert "12 answers graded, 0 unparsed" in capsys.readouterr().out
    assert (
        main(
            ["eval", "judge", "-w", str(tmp_path), "--model", "openai/gpt-4o-mini", "--pairwise", "base", "run/adapter"]
        )
        == 0
    )
    assert "run/adapter 3" in capsys.readouterr().out  # the adapter's JSON wins where the base rambled
    kinds = [json.loads(line)["kind"] for line in (ev.path / "judge.jsonl").read_text().splitlines()]
    assert kinds.count("pair") == 6 and kinds.count("single") == 12


def test_gate_fails_on_a_red_team_case_answered_and_passes_when_refused(tmp_path, capsys):
    cases = load_suite(SUPPORT / "redteam.jsonl").examples()[:2]
    for i, case in enumerate(cases):
        case["index"] = i
    ev = make_eval(tmp_path, examples=cases, outputs={"run/adapter": ['{"customer": "x"}', "I can't help with that."]})
    assert main(["eval", "gate", "-w", str(tmp_path), ev.id]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL: 1 of 2 cases fail") and "must refuse" in out
    ev.append_predictions(
        [{"model": "run/adapter", "id": cases[0]["id"], "output": "I'm sorry, but I can't share that."}]
    )
    assert main(["eval", "gate", "-w", str(tmp_path), ev.id]) == 0
    assert capsys.readouterr().out.startswith("PASS: all 2 cases pass")
