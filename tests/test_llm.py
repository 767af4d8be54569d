"""The litellm client: every call runs through real litellm.completion with mock_response, offline."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.llm import LLM, Usage, extract_json, load_litellm, redact

ROOT = Path(__file__).resolve().parents[1]
MODEL = "openai/gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello"}]
FAKE_KEY = "sk-workbench-test-3f9a1c77d2e04b5a"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any attempt to open a connection fails the test, even one that litellm catches and wraps."""
    attempts: list[tuple[object, ...]] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
    assert attempts == [], f"network access attempted: {attempts!r}"


def ask(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {n}"}]


def echo(messages) -> str:
    return "echo: " + messages[-1]["content"]


# -- one call ---------------------------------------------------------------


def test_fixed_mock_reply_runs_through_litellm():
    reply = LLM(MODEL, mock="fine, thanks").complete(HELLO)
    assert reply.text == "fine, thanks"
    assert reply.cached is False
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert reply.finish_reason == "stop" and not reply.truncated


def test_mock_can_be_a_function_of_the_messages():
    llm = LLM(MODEL, mock=echo)
    assert llm.complete(ask(1)).text == "echo: question 1"
    assert llm.complete(ask(2)).text == "echo: question 2"


def test_tokens_and_cost_come_from_litellm():
    litellm = load_litellm()
    llm = LLM(MODEL, mock="four words of answer")
    reply = llm.complete(HELLO)
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=MODEL, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens
    )
    assert reply.cost_usd == pytest.approx(prompt_cost + completion_cost)
    assert reply.cost_usd > 0
    llm.complete(ask(1))
    usage = llm.usage
    assert usage.calls == 2 and usage.cached_calls == 0
    assert usage.total_tokens == 2 * (reply.prompt_tokens + reply.completion_tokens)
    assert usage.cost_usd == pytest.approx(2 * reply.cost_usd)
    assert usage.cost_known


def test_a_model_without_a_price_has_unknown_cost():
    llm = LLM("openai/my-own-finetune", mock="ok")
    reply = llm.complete(HELLO)
    assert reply.cost_usd is None
    assert llm.usage.unpriced_calls == 1 and not llm.usage.cost_known
    assert llm.usage.model_dump()["cost_known"] is False


def test_params_override_the_defaults_and_go_to_litellm():
    llm = LLM(MODEL, mock=echo, temperature=0.0, max_tokens=64)
    reply = llm.complete(HELLO, temperature=0.7, max_tokens=32, seed=1)
    assert reply.text == "echo: hello"


# -- cache ------------------------------------------------------------------


def test_second_run_is_answered_by_the_cache(tmp_path):
    first = LLM(MODEL, mock="the first answer", cache_dir=tmp_path)
    assert first.complete(HELLO).text == "the first answer"
    again = LLM(MODEL, mock="a different answer now", cache_dir=tmp_path)
    reply = again.complete(HELLO)
    assert reply.text == "the first answer"
    assert reply.cached is True and reply.cost_usd == 0.0
    usage = again.usage
    assert (usage.calls, usage.cached_calls, usage.total_tokens, usage.cost_usd) == (1, 1, 0, 0.0)
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_cache_key_is_model_messages_and_sampling_params(tmp_path):
    llm = LLM(MODEL, mock=echo, cache_dir=tmp_path)
    llm.complete(HELLO)
    assert llm.complete(HELLO, timeout=5).cached  # transport settings do not change the answer
    assert not llm.complete(HELLO, temperature=0.5).cached
    assert not llm.complete(HELLO, max_tokens=99).cached
    assert not llm.complete(HELLO, seed=3).cached
    assert not llm.complete(ask(1)).cached
    assert not LLM("openai/gpt-4o", mock=echo, cache_dir=tmp_path).complete(HELLO).cached
    assert len(list(tmp_path.glob("*.json"))) == 6


def test_cache_files_never_hold_the_api_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    llm = LLM(MODEL, mock=echo, cache_dir=tmp_path)
    llm.complete(HELLO)
    llm.complete_many([ask(i) for i in range(3)])
    assert llm.complete(HELLO).cached
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert FAKE_KEY not in text and "api_key" not in text.lower() and "authorization" not in text.lower()
        assert json.loads(text)["reply"]["text"].startswith("echo: ")


def test_credentials_as_parameters_are_refused(tmp_path):
    llm = LLM(MODEL, mock="x", cache_dir=tmp_path)
    for param in ("api_key", "extra_headers", "aws_secret_access_key", "azure_ad_token"):
        with pytest.raises(WorkbenchError, match="environment"):
            llm.complete(HELLO, **{param: FAKE_KEY})
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_cache_entry_is_a_miss_and_is_rewritten(tmp_path):
    LLM(MODEL, mock="good", cache_dir=tmp_path).complete(HELLO)
    (entry,) = tmp_path.glob("*.json")
    entry.write_text('{"reply": {"text": "half', encoding="utf-8")
    reply = LLM(MODEL, mock="fresh", cache_dir=tmp_path).complete(HELLO)
    assert reply.text == "fresh" and not reply.cached
    assert json.loads(entry.read_text(encoding="utf-8"))["reply"]["text"] == "fresh"
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]  # no temp file left behind


def test_an_unwritable_cache_keeps_the_reply(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    llm = LLM(MODEL, mock="paid for", cache_dir=blocker / "cache")
    assert llm.complete(HELLO).text == "paid for"
    assert llm.cache_error is not None and "cannot write the LLM cache" in llm.cache_error


def test_no_cache_dir_means_no_cache():
    llm = LLM(MODEL, mock="x")
    assert not llm.complete(HELLO).cached
    assert not llm.complete(HELLO).cached


# -- errors -----------------------------------------------------------------


def test_missing_key_is_named_before_any_network(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = LLM(MODEL, cache_dir=tmp_path)  # no mock: a real call would be made
    with pytest.raises(WorkbenchError, match="OPENAI_API_KEY"):
        llm.complete(HELLO)
    assert list(tmp_path.iterdir()) == []
    assert llm.usage.calls == 0


def test_missing_key_is_not_needed_for_a_cached_reply(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    LLM(MODEL, mock="kept", cache_dir=tmp_path).complete(HELLO)
    assert LLM(MODEL, cache_dir=tmp_path).complete(HELLO).text == "kept"


def test_an_unknown_model_is_a_plain_error():
    with pytest.raises(WorkbenchError, match="unknown LLM model 'no-such-model'"):
        LLM("no-such-model", mock="x").complete(HELLO)


def test_a_model_the_provider_does_not_know_is_a_plain_error():
    litellm = load_litellm()
    missing = litellm.NotFoundError(message="The model `gpt-9` does not exist", llm_provider="openai", model="gpt-9")
    with pytest.raises(WorkbenchError, match=r"does not know this model: .*gpt-9"):
        LLM("openai/gpt-9", mock=lambda messages: missing).complete(HELLO)


def test_rate_limit_is_retried_then_reported():
    calls = []

    def limited(messages):
        calls.append(1)
        return "litellm.RateLimitError"

    llm = LLM(MODEL, mock=limited, num_retries=2, retry_wait=0)
    with pytest.raises(WorkbenchError, match=r"rate limited.*after 2 retries"):
        llm.complete(HELLO)
    assert len(calls) == 3


def test_a_retry_that_succeeds_returns_the_reply():
    replies = iter(["litellm.RateLimitError", "litellm.InternalServerError", "made it"])
    llm = LLM(MODEL, mock=lambda messages: next(replies), num_retries=2, retry_wait=0)
    assert llm.complete(HELLO).text == "made it"


def test_timeout_is_reported():
    llm = LLM(MODEL, mock="late", timeout=0.01, num_retries=1, retry_wait=0)
    with pytest.raises(WorkbenchError, match=r"no answer within 0\.01s \(after 1 retry\)"):
        llm.complete(HELLO, mock_timeout=True)


def test_auth_error_is_short_and_never_shows_the_key(monkeypatch):
    litellm = load_litellm()
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    refused = litellm.AuthenticationError(
        message=f"Incorrect API key provided: {FAKE_KEY}\nmore detail", llm_provider="openai", model=MODEL
    )
    llm = LLM(MODEL, mock=lambda messages: refused, retry_wait=0)
    with pytest.raises(WorkbenchError, match="refused the API key") as caught:
        llm.complete(HELLO)
    message = str(caught.value)
    assert FAKE_KEY not in message and "\n" not in message and len(message) < 300


def test_redact_scrubs_key_like_environment_values(monkeypatch):
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", FAKE_KEY)
    assert redact(f"bad key {FAKE_KEY}!") == "bad key ***!"


# -- many calls -------------------------------------------------------------


def test_complete_many_keeps_the_order_and_reports_progress():
    def slow_echo(messages):
        n = int(messages[-1]["content"].split()[-1])
        time.sleep(0.02 * (5 - n % 5))  # later requests finish first
        return echo(messages)

    seen = []
    llm = LLM(MODEL, mock=slow_echo)
    replies = llm.complete_many([ask(i) for i in range(10)], workers=4, progress=lambda d, t: seen.append((d, t)))
    assert [r.text for r in replies] == [f"echo: question {i}" for i in range(10)]
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == list(range(1, 11))
    assert Usage.of(replies).calls == 10 == llm.usage.calls


def test_complete_many_stops_on_cancel_and_returns_the_done_part():
    cancel = threading.Event()

    def stop_after_three(done, total):
        if done == 3:
            cancel.set()

    llm = LLM(MODEL, mock=echo)
    replies = llm.complete_many([ask(i) for i in range(10)], workers=1, progress=stop_after_three, cancel=cancel)
    assert [r.text if r else None for r in replies] == [f"echo: question {i}" for i in range(3)] + [None] * 7


def test_complete_many_raises_the_first_error():
    llm = LLM(MODEL, mock=lambda m: "litellm.RateLimitError" if m[-1]["content"].endswith("2") else "ok", num_retries=0)
    with pytest.raises(WorkbenchError, match="rate limited"):
        llm.complete_many([ask(i) for i in range(5)], workers=2)


def test_complete_many_of_nothing():
    assert LLM(MODEL, mock="x").complete_many([]) == []


# -- helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', [{"a": 1}]),
        ('Sure! Here it is:\n```json\n{"a": 1}\n```\nAnything else?', [{"a": 1}]),
        ('[{"a": 1}, {"b": 2}]', [[{"a": 1}, {"b": 2}]]),
        ('{"a": 1}\n{"b": 2}\n', [{"a": 1}, {"b": 2}]),
        ('see [note] then {"a": "has {braces} and [brackets]"}', [{"a": "has {braces} and [brackets]"}]),
        ('[{"a": 1}, {"b": 2}, {"c": ', [{"a": 1}, {"b": 2}]),
        ("no json at all", []),
        ("", []),
    ],
)
def test_extract_json_is_tolerant(text, expected):
    assert extract_json(text) == expected


def test_importing_the_llm_layer_does_not_import_litellm():
    code = "import sys, workbench.llm, workbench.data.critic, workbench.data.synth; print('litellm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
