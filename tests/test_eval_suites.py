"""Regression and red-team suites: loading, checking outputs, the before-export gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.errors import DataError
from workbench.eval.metrics import schema_valid
from workbench.eval.suites import Case, CaseResult, check_case, check_suite, gate, load_suite

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"


def answer(**fields: str) -> str:
    base = {
        "customer": "Olga Petrenko",
        "product": "Kettle One electric kettle",
        "issue": "refund",
        "date": "2026-03-03",
        "urgency": "medium",
        "summary": "Refund not received after return.",
    }
    return json.dumps(base | fields)


def case(**expect) -> Case:
    return Case("c1", [{"role": "user", "content": "hi"}], expect, "regression", 1)


def write(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


# --- the sample suites and schema -----------------------------------------------------------------


def test_sample_suites_load_cleanly():
    regression = load_suite(SUPPORT / "regression.jsonl")
    redteam = load_suite(SUPPORT / "redteam.jsonl")
    assert (regression.kind, len(regression.cases), regression.problems) == ("regression", 8, [])
    assert (redteam.kind, len(redteam.cases), redteam.problems) == ("red-team", 6, [])
    assert all(c.expect["refuse"] is True for c in redteam.cases)
    first = regression.cases[0]
    assert [m["role"] for m in first.messages] == ["system", "user"]


def test_every_test_reference_fits_the_task_schema():
    schema = json.loads((SUPPORT / "schema.json").read_text())
    lines = (SUPPORT / "test.jsonl").read_text(encoding="utf-8").splitlines()
    results = [schema_valid(json.loads(line)["messages"][-1]["content"], schema) for line in lines]
    assert len(results) == 40 and all(ok for ok, _ in results), [e for _, e in results if e]


def test_sample_regression_case_passes_the_right_answer_and_fails_a_wrong_issue():
    refund = next(c for c in load_suite(SUPPORT / "regression.jsonl").cases if c.id == "refund-return-delivered")
    assert check_case(refund, answer()).passed
    result = check_case(refund, answer(issue="billing"))
    assert not result.passed and result.failures == ["does not fit the schema: $.issue: 'refund' was expected"]


def test_sample_redteam_cases_fail_on_an_answer_and_pass_on_a_refusal():
    suite = load_suite(SUPPORT / "redteam.jsonl")
    outputs = {c.id: "I'm sorry, but I can't help with that." for c in suite.cases}
    assert gate(check_suite(suite, outputs)) == (True, "all 6 cases pass (6 red-team)")
    outputs["break-into-account"] = answer(issue="account")
    ok, summary = gate(check_suite(suite, outputs))
    assert not ok
    assert summary.splitlines()[0] == "1 of 6 cases fail (1 red-team)"
    assert 'break-into-account [red-team]: must refuse, but answered: \'{"customer"' in summary


# --- loading --------------------------------------------------------------------------------------


def test_bad_lines_are_reported_with_line_and_field_and_good_ones_kept(tmp_path):
    path = write(
        tmp_path,
        [
            {"id": "ok", "prompt": "hello", "expect": {"must_contain": "hi"}},
            "{not json",
            {"prompt": "hello"},
            {"prompt": "hello", "messages": [], "expect": {"refuse": True}},
            {"prompt": "hello", "expect": {"must_contian": "x"}},
            {"prompt": "hello", "expect": {"refuse": "yes"}},
            {"prompt": "hello", "expect": {"regex": "("}},
            {"prompt": "hello", "expect": {"json_schema": {"type": "nope"}}},
            {
                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "expect": {"refuse": True},
            },
            {"prompt": "hello", "expect": {"must_contain": ["a", ""]}},
            {"prompt": "hello", "must_contain": "x", "expect": {"refuse": False}},
            {"id": "ok", "prompt": "again", "expect": {"refuse": False}},
            {"prompt": "hello", "expect": {"refuse": True}, "suite": "redteam"},
            "",
            {"prompt": "last", "expect": {"equals": "x"}},
        ],
    )
    suite = load_suite(path)
    assert [c.id for c in suite.cases] == ["ok", "suite:15"]
    found = {p.line: (p.field, p.message) for p in suite.problems}
    assert sorted(found) == list(range(2, 14))
    assert all(p.file == str(path) for p in suite.problems)
    assert found[2][0] is None and "not valid JSON" in found[2][1]
    assert found[3][0] == "expect" and "at least one of" in found[3][1]
    assert found[4] == ("prompt", "expected either 'prompt' (a string) or 'messages' (a list), not both")
    assert found[5][0] == "expect.must_contian" and "unknown check" in found[5][1]
    assert found[6] == ("expect.refuse", "expected true or false, found 'yes'")
    assert found[7][0] == "expect.regex" and "not valid" in found[7][1]
    assert found[8][0] == "expect.json_schema" and "not valid" in found[8][1]
    assert found[9][0] == "messages" and "last turn must be the user's" in found[9][1]
    assert found[10][0] == "expect.must_contain"
    assert found[11][0] == "must_contain" and "inside 'expect'" in found[11][1]
    assert found[12] == ("id", "'ok' is already the id of line 1")
    assert found[13][0] == "suite" and "red-team" in found[13][1]
    assert str(suite.problems[0]).startswith(f"{path}:2:")


def test_a_suite_without_good_cases_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no usable case") as err:
        load_suite(write(tmp_path, ["[1, 2]", {"prompt": ""}]))
    assert [b.line for b in err.value.bad_rows] == [1, 2]
    with pytest.raises(DataError, match="empty"):
        load_suite(write(tmp_path, [""]))
    with pytest.raises(DataError, match="cannot be read"):
        load_suite(tmp_path / "missing.jsonl")


def test_kind_is_inferred_from_refuse_or_given(tmp_path):
    suite = load_suite(
        write(
            tmp_path,
            [
                {"prompt": "a", "expect": {"refuse": True}},
                {"prompt": "b", "expect": {"must_not_contain": "4111"}, "suite": "red-team"},
            ],
        )
    )
    assert [c.kind for c in suite.cases] == ["red-team", "red-team"] and suite.kind == "red-team"
    mixed = load_suite(
        write(
            tmp_path,
            [
                {"prompt": "a", "expect": {"refuse": True}},
                {"prompt": "b", "expect": {"refuse": False}},
            ],
        )
    )
    assert [c.kind for c in mixed.cases] == ["red-team", "regression"] and mixed.kind == "regression"


def test_examples_carry_prompt_messages_and_checks(tmp_path):
    suite = load_suite(
        write(
            tmp_path,
            [
                {"id": "x", "system": "Be brief.", "prompt": "Hi", "expect": {"must_contain": "hello"}},
                {"messages": [{"role": "user", "content": "Q"}], "expect": {"refuse": True}},
            ],
        )
    )
    assert suite.examples() == [
        {
            "id": "x",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "reference": None,
            "expect": {"must_contain": "hello"},
        },
        {
            "id": "suite:2",
            "messages": [{"role": "user", "content": "Q"}],
            "reference": None,
            "expect": {"refuse": True},
        },
    ]


# --- checking -------------------------------------------------------------------------------------


def test_must_contain_and_must_not_contain_ignore_case():
    assert check_case(case(must_contain=["REFUND NOT", "kettle one"]), answer()).passed
    assert check_case(case(must_contain=["refund", "grinder", "blender"]), answer()).failures == [
        "missing 'grinder'",
        "missing 'blender'",
    ]
    assert check_case(case(must_not_contain="OLGA"), answer()).failures == ["contains 'OLGA', which it must not"]


def test_refuse_true_and_false():
    refused = "I'm sorry, but I can't share another customer's card number."
    assert check_case(case(refuse=True), refused).passed
    assert check_case(case(refuse=True), "Sure: 4111 1111 1111 1111").failures == [
        "must refuse, but answered: 'Sure: 4111 1111 1111 1111'"
    ]
    assert check_case(case(refuse=False), answer()).passed
    assert check_case(case(refuse=False), refused).failures[0].startswith("must answer, but refused: \"I'm sorry")


def test_regex_schema_and_equals_checks():
    assert check_case(case(regex=r"\{.*\}"), f"  {answer()}\n").passed
    assert check_case(case(regex=r"\d+"), "abc").failures == ["does not match the regex '\\\\d+': 'abc'"]
    schema = {"type": "object", "required": ["issue"], "properties": {"issue": {"const": "refund"}}}
    assert check_case(case(json_schema=schema), f"```json\n{answer()}\n```").passed
    assert check_case(case(json_schema=schema), "Refund.").failures[0].startswith("does not fit the schema: not JSON")
    assert check_case(case(equals="The refund."), "refund").passed
    assert check_case(case(equals="refund"), "a billing issue").failures == ["expected 'refund', got 'a billing issue'"]


def test_every_failing_check_is_listed_and_long_outputs_shortened():
    result = check_case(case(refuse=True, must_contain="x", must_not_contain="o"), "o" * 200)
    assert result.failures[0] == "must refuse, but answered: '" + "o" * 79 + "…'"
    assert result.failures[1:] == ["missing 'x'", "contains 'o', which it must not"]


def test_check_suite_fails_a_case_without_output_and_gate_lists_failures(tmp_path):
    suite = load_suite(
        write(
            tmp_path,
            [
                {"id": "a", "prompt": "p", "expect": {"must_contain": "yes"}},
                {"id": "b", "prompt": "p", "expect": {"refuse": True}},
            ],
        )
    )
    results = check_suite(suite, {"a": "no"})
    assert results == [
        CaseResult("a", "regression", False, ["missing 'yes'"]),
        CaseResult("b", "red-team", False, ["no output was generated for this case"]),
    ]
    ok, summary = gate(results)
    assert not ok and summary.splitlines() == [
        "2 of 2 cases fail (1 regression, 1 red-team)",
        "  a [regression]: missing 'yes'",
        "  b [red-team]: no output was generated for this case",
    ]
    assert gate([]) == (True, "no cases to check")
    assert gate([CaseResult("a", "regression", True)]) == (True, "all 1 cases pass (1 regression)")
