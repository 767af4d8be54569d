"""One answer's health, judged by the same rules as the eval's: schema validity, refusals, empty answers, answers
cut at max tokens, categorical fields and languages; and the server's log entry annotated with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.errors import ServeError
from workbench.monitor.health import annotate, categorical_fields, judge, load_schema
from workbench.serve.log import LoggedRequest

SCHEMA = {
    "type": "object",
    "properties": {
        "urgency": {"enum": ["low", "medium", "high"]},
        "refund": {"type": "boolean"},
        "summary": {"type": "string"},
    },
    "required": ["urgency", "summary"],
}
ASK = [{"role": "system", "content": "Triage."}, {"role": "user", "content": "My order never arrived and I am upset."}]


def test_categorical_fields_are_enums_of_strings_and_booleans():
    assert categorical_fields(SCHEMA) == ["urgency", "refund"]
    assert categorical_fields({"properties": {"n": {"enum": [1, 2]}}}) == []
    assert categorical_fields(None) == []


def test_a_valid_answer_names_its_fields_and_language():
    answer = json.dumps({"urgency": "high", "refund": True, "summary": "The customer never received the order."})
    h = judge(ASK, answer, "stop", SCHEMA)
    assert h.valid is True and h.refusal is False and h.empty is False and h.truncated is False
    assert h.fields == {"urgency": "high", "refund": "true"}
    assert h.prompt_chars == len(ASK[1]["content"])  # the user's words, not the system prompt
    assert h.lang == "en" and h.prompt_lang == "en"
    assert h.answer_chars == len(answer)


def test_failures_are_each_seen():
    cut = judge(ASK, '{"urgency": "high", "summ', "length", SCHEMA)
    assert cut.valid is False and cut.truncated is True and cut.fields is None
    missing = judge(ASK, json.dumps({"urgency": "high"}), "stop", SCHEMA)
    assert missing.valid is False and missing.fields == {"urgency": "high"}
    assert judge(ASK, "I'm sorry, but I can't help with that request.", "stop", SCHEMA).refusal is True
    empty = judge(ASK, "   ", "stop", SCHEMA)
    assert empty.empty is True and empty.refusal is False and empty.valid is False
    assert judge(ASK, "fine", "stop", None).valid is None  # no schema: no verdict
    assert judge([{"role": "user", "content": "hi"}], "hello", "stop", None).prompt_lang is None  # too short


def test_an_error_has_no_answer_health_but_keeps_the_prompt_side():
    entry = LoggedRequest(id="r1", time=0.0, model="m", endpoint="/v1/chat/completions", stream=False, status=503)
    entry.messages, entry.response, entry.error = ASK, None, "busy"
    annotate(entry, SCHEMA)
    assert entry.answer_chars is None and entry.valid is None and entry.refusal is None
    assert entry.prompt_chars == len(ASK[1]["content"]) and entry.prompt_lang == "en"
    ok = LoggedRequest(id="r2", time=0.0, model="m", endpoint="/v1/chat/completions", stream=False, status=200)
    ok.messages, ok.response, ok.finish_reason = ASK, '{"urgency": "low", "summary": "ok"}', "stop"
    annotate(ok, SCHEMA)
    assert ok.valid is True and ok.fields == {"urgency": "low"}


def test_a_bad_schema_file_is_named(tmp_path: Path):
    bad = tmp_path / "schema.json"
    bad.write_text('{"type": ', encoding="utf-8")
    with pytest.raises(ServeError, match=r"schema\.json:1: not valid JSON"):
        load_schema(bad)
    bad.write_text("[1]", encoding="utf-8")
    with pytest.raises(ServeError, match="expected a JSON Schema object, found list"):
        load_schema(bad)
    assert load_schema(None) is None
