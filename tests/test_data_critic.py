"""The LLM critic, offline: real litellm calls answered by mock_response."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from test_llm import offline  # noqa: F401  (autouse: no test here may touch the network)

from workbench.data.critic import (
    CHECK,
    DEFAULT_CRITERIA,
    DEFAULT_RUBRIC,
    critique_with_llm,
    parse_verdict,
    render_example,
    rubric_criteria,
)
from workbench.data.load import load_rows
from workbench.errors import DataError
from workbench.llm import LLM

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
MODEL = "openai/gpt-4o-mini"
JUDGE_MARK = "--- the example to judge ---"


@pytest.fixture(scope="module")
def train():
    return load_rows(SUPPORT / "train.jsonl")


@pytest.fixture(scope="module")
def prefs():
    return load_rows(SUPPORT / "preferences.jsonl")


def verdict_json(score, reason="looks right", **criteria) -> str:
    scores = criteria or dict.fromkeys(DEFAULT_CRITERIA, score)
    return json.dumps({"score": score, "criteria": scores, "reason": reason})


def judged(messages) -> str:
    """The part of the critic's request that shows the example being judged."""
    return messages[-1]["content"].split(JUDGE_MARK, 1)[1]


def test_default_rubric_names_the_four_criteria():
    assert rubric_criteria(DEFAULT_RUBRIC) == ("format", "correctness", "helpfulness", "diversity")
    assert rubric_criteria("Be strict.") == DEFAULT_CRITERIA
    assert rubric_criteria("- Tone: polite\n- safety: no harm") == ("tone", "safety")


def test_fixed_reply_scores_every_selected_example(train):
    llm = LLM(MODEL, mock=verdict_json(5, "clean and correct"))
    result = critique_with_llm(train.rows, train.shape, llm, indexes=[4, 0, 2])
    assert [v.index for v in result.verdicts] == [0, 2, 4]
    assert all(v.score == 5 and v.reason == "clean and correct" for v in result.verdicts)
    assert result.verdicts[0].criteria == dict.fromkeys(DEFAULT_CRITERIA, 5)
    assert result.findings() == []
    assert not result.cancelled and result.requested == 3
    assert result.usage.calls == 3 and result.usage.total_tokens > 0 and result.usage.cost_usd > 0


def test_request_shows_the_example_as_turns_with_other_examples(train):
    seen = []

    def capture(messages):
        seen.append(messages)
        return verdict_json(4)

    critique_with_llm(train.rows, train.shape, LLM(MODEL, mock=capture), indexes=[0], context=3)
    (messages,) = seen
    system, user = messages[0]["content"], messages[1]["content"]
    assert system.startswith(DEFAULT_RUBRIC.strip()) and '"score": <overall 1-5>' in system
    assert user.count("--- other example") == 3
    example = judged(messages)
    for turn in ("[system]", "[user]", "[assistant]"):
        assert turn in example
    assert "Mateo Aziz" in example  # train.jsonl row 0
    assert "Mateo Aziz" not in user.split(JUDGE_MARK)[0]


def test_preference_examples_show_chosen_and_rejected(prefs):
    seen = []
    llm = LLM(MODEL, mock=lambda m: seen.append(m) or verdict_json(4))
    critique_with_llm(prefs.rows, prefs.shape, llm, indexes=[0])
    example = judged(seen[0])
    assert "[chosen assistant]" in example and "[rejected assistant]" in example
    assert example.index("[user]") < example.index("[chosen assistant]") < example.index("[rejected assistant]")


def test_scores_become_findings_by_severity(train):
    scores = {"Mateo Aziz": 1, "Grace García": 3}

    def by_customer(messages):
        example = judged(messages)
        score = next((s for name, s in scores.items() if name in example), 5)
        return verdict_json(score, f"judged {score}", format=score, correctness=2 if score == 1 else 4)

    result = critique_with_llm(train.rows, train.shape, LLM(MODEL, mock=by_customer), indexes=[0, 1, 2])
    assert [v.score for v in result.verdicts] == [1, 3, 5]
    findings = result.findings()
    assert [(f.index, f.check, f.severity, f.score) for f in findings] == [
        (0, CHECK, "error", 1.0),
        (1, CHECK, "warning", 3.0),
    ]
    assert findings[0].message == "LLM critic score 1/5 (low: format 1, correctness 2): judged 1"
    assert findings[1].message == "LLM critic score 3/5: judged 3"


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("I think this example is quite good overall.", "no score"),
        ('{"reason": "fine", "criteria": {"format": 4}}', "no score"),
        ('{"score": 7, "reason": "off the scale"}', "not a number from 1 to 5"),
        ('{"score": 0, "reason": "zero"}', "not a number from 1 to 5"),
        ('{"score": "great", "reason": "words"}', "not a number from 1 to 5"),
        ("", "empty"),
        ("   \n", "empty"),
    ],
)
def test_malformed_replies_are_unparsed_never_a_crash(train, reply, why):
    result = critique_with_llm(train.rows, train.shape, LLM(MODEL, mock=reply), indexes=[0])
    (verdict,) = result.verdicts
    assert verdict.unparsed and verdict.score is None
    assert why in verdict.reason
    assert verdict.raw == reply
    (finding,) = result.findings()
    assert finding.severity == "info" and "could not be read" in finding.message
    assert result.unparsed == [verdict]


@pytest.mark.parametrize(
    ("reply", "score", "reason"),
    [
        ('```json\n{"score": 2, "criteria": {"format": 1}, "reason": "date not ISO"}\n```', 2, "date not ISO"),
        ('Here is my verdict:\n{"score": 4, "reason": "good"}\nHope this helps!', 4, "good"),
        ('[{"overall": "3/5", "explanation": "bland"}]', 3, "bland"),
        ('{"score": 4.5, "reason": "rounded up"}', 5, "rounded up"),
        ("Score: 2\nFormat: 1\nReason: the date is not ISO.", 2, "the date is not ISO."),
        ("**Overall score:** 4/5\n**Correctness score**: 5\nReason: fine", 4, "fine"),
    ],
)
def test_replies_are_read_tolerantly(reply, score, reason):
    verdict = parse_verdict(7, reply)
    assert (verdict.index, verdict.score, verdict.reason) == (7, score, reason)


def test_line_fallback_reads_criteria():
    verdict = parse_verdict(0, "Score: 2\nFormat: 1\n- Correctness score: 4\nReason: x")
    assert verdict.criteria == {"format": 1, "correctness": 4}


def test_rerun_is_answered_by_the_cache_and_costs_nothing(train, tmp_path):
    first = critique_with_llm(train.rows, train.shape, LLM(MODEL, mock=verdict_json(2), cache_dir=tmp_path), sample=4)
    again = critique_with_llm(train.rows, train.shape, LLM(MODEL, mock=verdict_json(5), cache_dir=tmp_path), sample=4)
    assert [v.index for v in again.verdicts] == [v.index for v in first.verdicts]
    assert [v.score for v in again.verdicts] == [2, 2, 2, 2]
    assert all(v.cached for v in again.verdicts) and not any(v.cached for v in first.verdicts)
    assert first.usage.cost_usd > 0
    assert (again.usage.calls, again.usage.cached_calls, again.usage.cost_usd, again.usage.total_tokens) == (4, 4, 0, 0)


def test_sample_is_random_but_repeatable(train):
    llm = LLM(MODEL, mock=verdict_json(4))
    picks = [
        [v.index for v in critique_with_llm(train.rows, train.shape, llm, sample=5, seed=s).verdicts] for s in (0, 0, 1)
    ]
    assert picks[0] == picks[1] != picks[2]
    assert len(set(picks[0])) == 5 and picks[0] == sorted(picks[0])
    within = critique_with_llm(train.rows, train.shape, llm, indexes=range(10, 20), sample=3)
    assert all(10 <= v.index < 20 for v in within.verdicts) and len(within.verdicts) == 3


def test_an_index_out_of_range_is_an_error(train):
    with pytest.raises(DataError, match="out of range"):
        critique_with_llm(train.rows, train.shape, LLM(MODEL, mock="x"), indexes=[len(train.rows)])


def test_cancel_midway_returns_the_verdicts_done(train):
    cancel = threading.Event()

    def stop_at_two(done, total):
        if done == 2:
            cancel.set()

    llm = LLM(MODEL, mock=verdict_json(4))
    result = critique_with_llm(
        train.rows, train.shape, llm, indexes=range(8), workers=1, progress=stop_at_two, cancel=cancel
    )
    assert result.cancelled and result.requested == 8
    assert [v.index for v in result.verdicts] == [0, 1]
    assert result.usage.calls == 2


def test_an_edited_rubric_is_sent_with_its_own_criteria(train):
    seen = []
    rubric = "Judge only the tone.\n- tone: polite and calm\n- brevity: one line"
    reply = '{"score": 4, "criteria": {"tone": 5, "brevity": 2}, "reason": "ok"}'
    llm = LLM(MODEL, mock=lambda m: seen.append(m) or reply)
    result = critique_with_llm(train.rows, train.shape, llm, indexes=[0], rubric=rubric)
    system = seen[0][0]["content"]
    assert system.startswith(rubric) and '"tone": <1-5>, "brevity": <1-5>' in system and "diversity" not in system
    assert result.verdicts[0].criteria == {"tone": 5, "brevity": 2}
    assert result.rubric == rubric


def test_to_dict_is_plain_json(train):
    result = critique_with_llm(train.rows, train.shape, LLM(MODEL, mock=verdict_json(3, "meh")), indexes=[0, 1])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["model"] == MODEL and data["cancelled"] is False
    assert data["verdicts"][0] == {
        "index": 0,
        "score": 3,
        "criteria": dict.fromkeys(DEFAULT_CRITERIA, 3),
        "reason": "meh",
        "raw": verdict_json(3, "meh"),
        "cached": False,
        "unparsed": False,
    }
    assert data["usage"]["calls"] == 2


def test_render_never_raises_on_a_broken_row():
    text = render_example({"messages": "not a list"}, "language_modeling")
    assert "not a list" in text
    assert "[unreadable parts]" in render_example({"prompt": "p"}, "preference")
