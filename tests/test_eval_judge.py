"""The LLM judge, offline: real litellm calls answered by mock_response."""

from __future__ import annotations

import json
import threading

import pytest
from test_llm import offline  # noqa: F401  (autouse: no test here may touch the network)

from workbench.errors import WorkbenchError
from workbench.eval.judge import (
    DEFAULT_ITEMS,
    DEFAULT_RUBRIC,
    JudgeCase,
    PairVerdict,
    Rubric,
    SingleVerdict,
    judge_pairwise,
    judge_single,
    parse_choice,
    parse_single,
    usage_of,
)
from workbench.llm import LLM

MODEL = "openai/gpt-4o-mini"
PASS_FAIL = Rubric.parse(DEFAULT_RUBRIC, "pass/fail")


def llm(mock) -> LLM:
    return LLM(model=MODEL, mock=mock, cache_dir=None)


def case(example_id, output, model="base", reference=None) -> JudgeCase:
    return JudgeCase(example_id, f"[user]\nquestion {example_id}", reference, output, model)


def grade(score, reason="fine", **items) -> str:
    return json.dumps({"score": score, "criteria": items or dict.fromkeys(DEFAULT_ITEMS, score), "reason": reason})


def shown(messages) -> tuple[str, str]:
    """The two answers of a pairwise request, in the order the judge saw them."""
    user = messages[-1]["content"]
    a = user.split("[answer A]\n", 1)[1].split("\n\n[answer B]\n", 1)[0]
    return a, user.split("[answer B]\n", 1)[1]


# -- the rubric ---------------------------------------------------------------


def test_default_rubric_and_edited_items():
    assert Rubric().items == DEFAULT_ITEMS == ("correctness", "format", "completeness", "concision")
    assert Rubric.parse("Be kind.\n- Tone: polite\n- safety: no harm").items == ("tone", "safety")
    assert Rubric.parse("Just grade it.").items == ()  # an overall grade only
    assert Rubric.parse("  ", "pass/fail") == PASS_FAIL  # an emptied editor falls back to the default
    assert Rubric.parse("x", "Pass-Fail").scale == "pass/fail" and Rubric.parse("x", "1 to 5").scale == "1-5"
    assert Rubric.from_dict(PASS_FAIL.to_dict()) == PASS_FAIL
    with pytest.raises(WorkbenchError, match="unknown judge scale"):
        Rubric.parse("x", "1-10")


# -- single-answer grading ----------------------------------------------------


def test_single_grades_each_case_with_reasons_tokens_and_cost():
    cases = [case(1, "four"), case(2, "five", model="lora-1")]
    verdicts = judge_single(llm(grade(4, "right answer", correctness=5, format=3)), cases)
    assert [(v.example_id, v.model, v.score) for v in verdicts] == [(1, "base", 4), (2, "lora-1", 4)]
    first = verdicts[0]
    assert first.item_scores == {"correctness": 5, "format": 3} and first.reasons == "right answer"
    assert not first.unparsed and first.tokens > 0 and first.cost_usd > 0
    total = usage_of(verdicts)
    assert total.calls == 2 and total.total_tokens == sum(v.tokens for v in verdicts)


def test_single_request_is_blind_and_carries_rubric_and_reference():
    seen = []
    judge = llm(lambda m: seen.append(m) or grade(3))
    judge_single(judge, [case(1, "Paris", model="secret-adapter", reference="Paris, France"), case(2, "")])
    (system, user), (_, user_no_ref) = [[turn["content"] for turn in m] for m in seen]
    assert system.startswith(DEFAULT_RUBRIC) and '"score": <overall 1-5>' in system and '"concision": <1-5>' in system
    assert "[conversation]\n[user]\nquestion 1" in user and "[answer to grade]\nParis" in user
    assert "[reference answer]" in user and "Paris, France" in user
    assert "[reference answer]" not in user_no_ref and "(empty answer)" in user_no_ref
    assert "secret-adapter" not in json.dumps(seen)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty"),
        ("The answer looks quite good to me.", "no score"),
        ('{"score": 4, "criteria": {"correctness": 5', "no score"),  # cut off mid-JSON
        ('{"score": 9, "reason": "off the scale"}', "not a number from 1 to 5"),
        ('{"score": "four", "reason": "in words"}', "not a number from 1 to 5"),
        ('{"score": null}', "not a number from 1 to 5"),
        ("[1, 2, 3]", "no score"),
    ],
)
def test_malformed_replies_are_unparsed_never_a_crash(reply, why):
    (verdict,) = judge_single(llm(reply), [case(1, "an answer")])
    assert verdict.unparsed and verdict.score is None and verdict.item_scores == {}
    assert why in verdict.reasons and verdict.raw == reply
    assert verdict.usage.calls == 1  # the call was paid for all the same


@pytest.mark.parametrize(
    ("reply", "score", "items", "reason"),
    [
        ('```json\n{"score": 2, "criteria": {"format": 1}, "reason": "not JSON"}\n```', 2, {"format": 1}, "not JSON"),
        ('My verdict:\n{"score": "4/5", "reason": "good"}\nThanks!', 4, {}, "good"),
        ('{"score": 5, "criteria": {"correctness": 7, "format": "2"}, "reason": "r"}', 5, {"format": 2}, "r"),
        ("Score: 3\nCorrectness: 2\nReason: the date is wrong", 3, {"correctness": 2}, "the date is wrong"),
    ],
)
def test_replies_are_read_tolerantly(reply, score, items, reason):
    verdict = parse_single(reply, Rubric(), example_id="e1", model="base")
    assert (verdict.score, verdict.item_scores, verdict.reasons) == (score, items, reason)


@pytest.mark.parametrize(
    ("reply", "score", "items"),
    [
        (
            '{"verdict": "pass", "criteria": {"correctness": "pass", "format": "fail"}, "reason": "ok"}',
            1,
            {"correctness": 1, "format": 0},
        ),
        ('{"verdict": false, "correctness": true}', 0, {"correctness": 1}),
        ("Verdict: FAIL\nCorrectness: fail\nReason: wrong sum", 0, {"correctness": 0}),
        ("PASS", 1, {}),
        ("**FAILED** - the date is not ISO", 0, {}),
    ],
)
def test_pass_fail_replies(reply, score, items):
    (verdict,) = judge_single(llm(reply), [case(1, "x")], PASS_FAIL)
    assert (verdict.score, verdict.item_scores, verdict.scale) == (score, items, "pass/fail")


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("PASS or FAIL, hard to say", "both PASS and FAIL"),
        ('{"verdict": "maybe"}', "not pass or fail"),
        ('{"score": 4}', "not pass or fail"),
        ("it passes, mostly", "no pass or fail"),
    ],
)
def test_pass_fail_malformed_is_unparsed(reply, why):
    (verdict,) = judge_single(llm(reply), [case(1, "x")], PASS_FAIL)
    assert verdict.unparsed and why in verdict.reasons


def test_pass_fail_request_asks_for_pass_or_fail():
    seen = []
    judge_single(llm(lambda m: seen.append(m) or "PASS"), [case(1, "x")], PASS_FAIL)
    system = seen[0][0]["content"]
    assert '"verdict": "pass" | "fail"' in system and '"format": "pass" | "fail"' in system


def test_rerun_is_cached_at_temperature_zero(tmp_path):
    cases = [case(1, "a"), case(2, "b")]
    first = judge_single(LLM(MODEL, mock=grade(2), cache_dir=tmp_path, temperature=0.9), cases)
    again = judge_single(LLM(MODEL, mock=grade(5), cache_dir=tmp_path, temperature=0.9), cases)
    assert [v.score for v in again] == [2, 2]
    assert usage_of(again).cached_calls == 2 and usage_of(again).cost_usd == 0 and usage_of(first).cost_usd > 0
    stored = [json.loads(p.read_text())["request"]["temperature"] for p in tmp_path.glob("*.json")]
    assert stored == [0.0, 0.0]


def test_cancel_returns_the_verdicts_done():
    cancel = threading.Event()
    verdicts = judge_single(
        llm(grade(4)),
        [case(i, "x") for i in range(6)],
        workers=1,
        cancel=cancel,
        progress=lambda done, total: done == 2 and cancel.set(),
    )
    assert [v.example_id for v in verdicts] == [0, 1]


def test_verdicts_round_trip_through_json():
    (single,) = judge_single(llm(grade(4, "ok", correctness=5)), [case("ex-1", "x")])
    assert SingleVerdict.model_validate(json.loads(json.dumps(single.model_dump(mode="json")))) == single
    (pair,) = judge_pairwise(llm('{"winner": "A", "reason": "shorter"}'), [(case(1, "x"), case(1, "y", "lora"))])
    data = json.loads(json.dumps(pair.model_dump(mode="json")))
    assert data["consistent"] is False and PairVerdict.model_validate(data) == pair


# judge.jsonl records as earlier versions wrote them (the dataclasses' hand-written to_dict)
OLD_SINGLE = (
    '{"example_id": 3, "model": "base", "score": 4, "item_scores": {"correct": 4}, "reasons": "ok", "raw": "{...}", '
    '"scale": "1-5", "unparsed": false, "usage": {"calls": 1, "cached_calls": 0, "prompt_tokens": 10, '
    '"completion_tokens": 5, "cost_usd": 0.001, "unpriced_calls": 0, "total_tokens": 15, "cost_known": true}}'
)
OLD_PAIR = (
    '{"example_id": "q", "model_a": "base", "model_b": "lora", "winner": null, "first": null, "second": "b", '
    '"reason_first": "", "reason_second": "", "raw_first": "", "raw_second": "", "consistent": false, '
    '"usage": {"calls": 2, "cached_calls": 1, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, '
    '"unpriced_calls": 1, "total_tokens": 0, "cost_known": false}}'
)


@pytest.mark.parametrize(("cls", "line"), [(SingleVerdict, OLD_SINGLE), (PairVerdict, OLD_PAIR)])
def test_old_judge_records_read_back_and_are_written_byte_for_byte_the_same(cls, line):
    verdict = cls.model_validate({"kind": "x", "judge": "m", "sha": "s", **json.loads(line)})
    assert json.dumps(verdict.model_dump(mode="json"), ensure_ascii=False) == line


# -- pairwise: the swap -------------------------------------------------------


def test_a_judge_that_always_picks_the_first_place_gives_ties():
    pairs = [(case(i, f"base answer {i}"), case(i, f"lora answer {i}", "lora")) for i in range(3)]
    verdicts = judge_pairwise(llm('{"winner": "A", "reason": "the first one"}'), pairs)
    assert [(v.first, v.second, v.winner) for v in verdicts] == [("a", "b", "tie")] * 3
    assert not any(v.consistent for v in verdicts) and {v.position_bias for v in verdicts} == {"first"}
    assert all(v.usage.calls == 2 for v in verdicts) and usage_of(verdicts).calls == 6


def test_a_judge_that_always_picks_the_second_place_gives_ties():
    (verdict,) = judge_pairwise(llm("[[B]]"), [(case(1, "x"), case(1, "y", "lora"))])
    assert (verdict.first, verdict.second, verdict.winner, verdict.position_bias) == ("b", "a", "tie", "second")


@pytest.mark.parametrize("good_side", ["a", "b"])
def test_a_judge_that_prefers_one_model_makes_it_win_in_both_orders(good_side):
    def prefers_good(messages):
        first, _ = shown(messages)
        return json.dumps({"winner": "A" if "good" in first else "B", "reason": "the good one"})

    texts = {"a": "a bad answer", "b": "a bad answer"} | {good_side: "a good answer"}
    seen = []
    judge = llm(lambda m: seen.append(shown(m)) or prefers_good(m))
    (verdict,) = judge_pairwise(judge, [(case(7, texts["a"]), case(7, texts["b"], "lora"))], workers=1)
    assert seen == [(texts["a"], texts["b"]), (texts["b"], texts["a"])]  # the second round swaps the places
    assert (verdict.first, verdict.second, verdict.winner) == (good_side, good_side, good_side)
    assert verdict.consistent and verdict.position_bias is None
    assert verdict.winner_model == {"a": "base", "b": "lora"}[good_side]
    assert verdict.reason_first == verdict.reason_second == "the good one"


def test_tie_answers_are_a_consistent_tie():
    (verdict,) = judge_pairwise(llm('{"winner": "tie", "reason": "same"}'), [(case(1, "x"), case(1, "y", "lora"))])
    assert (verdict.winner, verdict.consistent, verdict.winner_model) == ("tie", True, "tie")


def test_a_tie_against_a_win_is_a_tie():
    replies = iter(['{"winner": "A"}', '{"winner": "tie"}'])
    (verdict,) = judge_pairwise(llm(lambda m: next(replies)), [(case(1, "x"), case(1, "y", "lora"))], workers=1)
    assert (verdict.first, verdict.second, verdict.winner, verdict.consistent) == ("a", "tie", "tie", False)


@pytest.mark.parametrize("broken", ["first", "second"])
def test_one_unreadable_round_makes_the_pair_unparsed(broken):
    def judge(messages):
        first, _ = shown(messages)
        is_first_round = first == "x"
        return "I cannot decide." if is_first_round == (broken == "first") else '{"winner": "A"}'

    (verdict,) = judge_pairwise(llm(judge), [(case(1, "x"), case(1, "y", "lora"))])
    assert verdict.unparsed and verdict.winner is None and not verdict.consistent
    assert getattr(verdict, broken) is None
    assert "I cannot decide." in (verdict.raw_first + verdict.raw_second)


def test_identical_answers_are_a_tie_without_a_call():
    calls = []
    (verdict,) = judge_pairwise(llm(lambda m: calls.append(m) or "[[A]]"), [(case(1, " same "), case(1, "same", "l"))])
    assert calls == [] and verdict.winner == "tie" and verdict.consistent and verdict.usage.calls == 0


def test_a_pair_of_different_examples_is_refused():
    with pytest.raises(WorkbenchError, match="one example's two answers"):
        judge_pairwise(llm("[[A]]"), [(case(1, "x"), case(2, "y", "lora"))])


def test_pairwise_request_carries_rubric_and_reference():
    seen = []
    judge_pairwise(llm(lambda m: seen.append(m) or "A"), [(case(1, "x", reference="ref"), case(1, "y", "lora"))])
    system, user = seen[0][0]["content"], seen[0][1]["content"]
    assert system.startswith(DEFAULT_RUBRIC) and '"winner": "A" | "B" | "tie"' in system
    assert "[reference answer]" in user and "lora" not in user


@pytest.mark.parametrize(
    ("reply", "choice"),
    [
        ('{"winner": "B", "reason": "r"}', "b"),
        ('```json\n{"winner": "Answer A"}\n```', "a"),
        ('{"better": "tie"}', "tie"),
        ("Winner: Answer B\nReason: r", "b"),
        ("**Winner:** A", "a"),
        ("[[C]]", "tie"),
        ("B", "b"),
        (" tie. ", "tie"),
        ("", None),
        ("Both are fine.", None),
        ('{"winner": "Z"}', None),
        ('{"winner": null}', None),
        ('{"winner": "A"', None),
    ],
)
def test_choices_are_read_tolerantly(reply, choice):
    assert parse_choice(reply)[0] == choice
