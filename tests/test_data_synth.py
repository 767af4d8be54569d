"""Synthetic variations of seed examples, offline: real litellm calls answered by mock_response."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest
from test_llm import offline  # noqa: F401  (autouse: no test here may touch the network)

from workbench.data.formats import validate_row
from workbench.data.load import load_rows
from workbench.data.synth import DUPLICATE, INVALID, UNPARSED, generate_variations
from workbench.errors import DataError
from workbench.llm import LLM, extract_json

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
MODEL = "openai/gpt-4o-mini"


@pytest.fixture(scope="module")
def train():
    return load_rows(SUPPORT / "train.jsonl")


@pytest.fixture(scope="module")
def prefs():
    return load_rows(SUPPORT / "preferences.jsonl")


def seed_of(messages) -> dict:
    """The seed row the request shows (the first JSON value in the user turn)."""
    return extract_json(messages[-1]["content"])[0]


def variant(row: dict, tag: str) -> dict:
    """The row with its user turn changed: a new, valid example of the same shape."""
    new = copy.deepcopy(row)
    user = next(m for m in new["messages"] if m["role"] == "user")
    user["content"] += f" ({tag})"
    return new


def mixed_reply(messages) -> str:
    """One valid variation, one that breaks the shape, one copy of the seed; as a fenced JSON array."""
    seed = seed_of(messages)
    bad = {"messages": [{"role": "customer", "content": "hi"}]}
    return "Here you go:\n```json\n" + json.dumps([variant(seed, "v1"), bad, seed]) + "\n```"


def test_valid_invalid_and_duplicate_candidates(train):
    result = generate_variations(train.rows, train.shape, LLM(MODEL, mock=mixed_reply), seeds=[0, 5], per_seed=3)
    assert [(r.seed, r.row) for r in result.rows] == [(s, variant(train.rows[s], "v1")) for s in (0, 5)]
    assert all(validate_row(r.row, train.shape, train.conversational) == [] for r in result.rows)
    assert [(r.seed, r.kind) for r in result.rejected] == [(0, INVALID), (0, DUPLICATE), (5, INVALID), (5, DUPLICATE)]
    invalid, duplicate = result.rejected[:2]
    assert "unknown role 'customer'" in invalid.reason and invalid.candidate["messages"][0]["role"] == "customer"
    assert duplicate.reason == "duplicate: a copy of its seed (row 0)" and duplicate.candidate == train.rows[0]
    assert not result.cancelled and result.requested == 2
    assert result.usage.calls == 2 and result.usage.total_tokens > 0 and result.usage.cost_usd > 0


def test_copies_of_each_other_and_of_other_rows_are_duplicates(train):
    def copies(messages):
        seed = seed_of(messages)
        return json.dumps([variant(seed, "same"), variant(seed, "same"), train.rows[7]])

    result = generate_variations(train.rows, train.shape, LLM(MODEL, mock=copies), seeds=[0])
    assert len(result.rows) == 1
    assert [r.reason for r in result.rejected] == [
        "duplicate: a copy of another new example",
        "duplicate: a copy of row 7",
    ]


def test_jsonl_and_wrapped_replies_are_read(train):
    def jsonl(messages):
        seed = seed_of(messages)
        return "\n".join(json.dumps(variant(seed, f"line {i}")) for i in range(3))

    def wrapped(messages):
        return json.dumps({"examples": [variant(seed_of(messages), "wrapped")]})

    assert len(generate_variations(train.rows, train.shape, LLM(MODEL, mock=jsonl), seeds=[1]).rows) == 3
    (row,) = generate_variations(train.rows, train.shape, LLM(MODEL, mock=wrapped), seeds=[1]).rows
    assert row.row == variant(train.rows[1], "wrapped")


@pytest.mark.parametrize("reply", ["Sorry, I can't help with that.", ""])
def test_a_reply_without_examples_is_reported_with_the_raw_text(train, reply):
    result = generate_variations(train.rows, train.shape, LLM(MODEL, mock=reply), seeds=[2])
    assert result.rows == []
    (rejected,) = result.rejected
    assert (rejected.seed, rejected.kind, rejected.raw) == (2, UNPARSED, reply)
    assert rejected.reason == "no JSON examples in the reply"


def test_non_objects_in_the_array_are_invalid_not_dropped(train):
    result = generate_variations(train.rows, train.shape, LLM(MODEL, mock='["just text", 3]'), seeds=[0])
    assert [(r.kind, r.candidate) for r in result.rejected] == [(INVALID, "just text"), (INVALID, 3)]
    assert all("expected an object" in r.reason for r in result.rejected)


def test_preference_candidates_are_checked_against_the_preference_shape(prefs):
    def reply(messages):
        seed = seed_of(messages)
        good = copy.deepcopy(seed)
        good["chosen"][0]["content"] += " "
        no_rejected = {k: v for k, v in seed.items() if k != "rejected"}
        plain_text = {**seed, "chosen": "a plain string"}
        return json.dumps([good, no_rejected, plain_text])

    result = generate_variations(prefs.rows, prefs.shape, LLM(MODEL, mock=reply), seeds=[0], per_seed=3)
    assert len(result.rows) == 1 and set(result.rows[0].row) == {"prompt", "chosen", "rejected"}
    reasons = [r.reason for r in result.rejected]
    assert reasons[0].startswith("field 'rejected': missing")
    assert reasons[1].startswith("field 'chosen': expected a list of messages")


def test_the_request_shows_the_seed_shape_and_instructions(train):
    seen = []
    llm = LLM(MODEL, mock=lambda m: seen.append(m) or "[]")
    generate_variations(train.rows, train.shape, llm, seeds=[3], per_seed=4, instructions="Make them angrier.")
    system, user = seen[0][0]["content"], seen[0][1]["content"]
    assert "JSON array of 4 objects" in system and "messages" in system
    assert seed_of(seen[0]) == train.rows[3]
    assert "Also: Make them angrier." in user


def test_rerun_comes_from_the_cache(train, tmp_path):
    first = generate_variations(train.rows, train.shape, LLM(MODEL, mock=mixed_reply, cache_dir=tmp_path), seeds=[0])
    again = generate_variations(train.rows, train.shape, LLM(MODEL, mock="[]", cache_dir=tmp_path), seeds=[0])
    assert again.rows == first.rows and again.rejected == first.rejected
    assert again.usage.cached_calls == 1 and again.usage.cost_usd == 0


def test_cancel_midway_keeps_what_was_done(train):
    cancel = threading.Event()
    llm = LLM(MODEL, mock=mixed_reply)
    result = generate_variations(
        train.rows,
        train.shape,
        llm,
        seeds=[0, 1, 2, 3],
        workers=1,
        progress=lambda done, total: cancel.set(),
        cancel=cancel,
    )
    assert result.cancelled and result.requested == 4
    assert {r.seed for r in result.rows} == {0}


def test_bad_seeds_are_errors(train):
    with pytest.raises(DataError, match="out of range"):
        generate_variations(train.rows, train.shape, LLM(MODEL, mock="[]"), seeds=[-1])


def test_to_dict_is_plain_json(train):
    result = generate_variations(train.rows, train.shape, LLM(MODEL, mock=mixed_reply), seeds=[0])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["rows"][0]["seed"] == 0 and len(data["rejected"]) == 2 and data["usage"]["calls"] == 1
