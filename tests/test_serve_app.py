"""The OpenAI-compatible app over real HTTP (uvicorn on loopback, port 0): the openai and litellm clients,
refusals with OpenAI-style bodies, keys, concurrency and the request log."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest

from tests.shipkit import fake_run, serving
from workbench.eval.store import GenerationSettings
from workbench.serve.app import build_app
from workbench.serve.engine import Engine, load_engine
from workbench.serve.log import RequestLog

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
KEY = "test-key-not-a-secret"
HI = [{"role": "user", "content": "How do I reset my password?"}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir):
    ws = tmp_path_factory.mktemp("app-ws")
    run = fake_run(ws, tiny_model_dir, steps=(4,), best=4)
    engine = load_engine(ws, ["base", "demo/final"], window_s=0.0)
    log = RequestLog(ws / "requests.db")
    with serving(build_app(engine, log, api_key=KEY, server_id="srv-test")) as url:
        yield url, engine, log, run.name
    engine.close()
    log.close()


@pytest.fixture
def url(setup) -> str:
    return setup[0]


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def direct(engine: Engine, model: str, n: int) -> str:
    return engine.submit(model, HI, GenerationSettings(max_new_tokens=n, temperature=0)).result(timeout=60).text


def logged(log: RequestLog, request_id: str):
    """The log entry of a request; the server writes it as the response ends, so wait a little for it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [e for e in log.recent(500) if e.id == request_id]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"{request_id} is not in the log")


def test_openai_client_answers_as_the_engine_does(setup):
    from openai import OpenAI

    url, engine, log, run_id = setup
    client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(model=run_id, messages=HI, temperature=0, max_tokens=8)
    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion" and reply.model == run_id
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == direct(engine, run_id, 8)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8
    entry = logged(log, reply.id)
    assert (entry.status, entry.model, entry.stream, entry.response) == (
        200,
        run_id,
        False,
        reply.choices[0].message.content,
    )
    assert entry.messages == HI and entry.params["max_tokens"] == 8 and entry.completion_tokens == 8
    assert entry.server_id == "srv-test" and entry.client and entry.client.startswith("127.0.0.1:")


def test_openai_client_streams_with_usage(setup):
    from openai import OpenAI

    url, engine, log, run_id = setup
    client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=run_id, messages=HI, temperature=0, max_tokens=10, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct(engine, run_id, 10)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10
    assert len({c.id for c in chunks}) == 1
    entry = logged(log, chunks[0].id)
    assert entry.stream and entry.status == 200 and entry.response == text and entry.first_token_s is not None


def test_litellm_talks_to_it_streaming_and_not(setup):
    import litellm

    url, engine, _, run_id = setup
    kw = dict(model=f"openai/{run_id}", api_base=f"{url}/v1", api_key=KEY, messages=HI, temperature=0, max_tokens=6)
    reply = litellm.completion(**kw)
    expected = direct(engine, run_id, 6)
    assert reply.choices[0].message.content == expected
    streamed = "".join(c.choices[0].delta.content or "" for c in litellm.completion(**kw, stream=True) if c.choices)
    assert streamed == expected


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ('{"model": "base", "messages": [', None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        ({"model": "base"}, "messages", "messages: Field required"),
        ({"model": "base", "messages": "hi"}, "messages", "valid list"),
        ({"model": "base", "messages": []}, "messages", "at least 1"),
        ({"model": "base", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role", "'user'"),
        ({"model": "base", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "valid string"),
        ({"model": "base", "messages": HI, "temperature": -0.5}, "temperature", "greater than or equal to 0"),
        ({"model": "base", "messages": HI, "temperature": "hot"}, "temperature", "valid number"),
        ({"model": "base", "messages": HI, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"model": "base", "messages": HI, "stream": "perhaps"}, "stream", "valid boolean"),
        ({"messages": HI}, "model", "model: Field required"),
    ],
)
def test_a_malformed_request_is_400_naming_the_field(setup, body, param, words):
    url, _, log, _ = setup
    content = body if isinstance(body, str) else json.dumps(body)
    reply = httpx.post(
        f"{url}/v1/chat/completions", content=content, headers={**auth(), "content-type": "application/json"}
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert words in error["message"]
    entry = logged(log, reply.headers["x-request-id"])
    assert entry.status == 400 and words in (entry.error or "")


def test_a_missing_or_wrong_key_is_401_and_health_stays_open(setup):
    url, _, log, _ = setup
    body = {"model": "base", "messages": HI}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "invalid_api_key"
        assert logged(log, reply.headers["x-request-id"]).status == 401
    assert httpx.get(f"{url}/v1/models").status_code == 401
    bad_json = httpx.post(f"{url}/v1/chat/completions", content="{", headers={"content-type": "application/json"})
    assert bad_json.status_code == 401  # the key is checked before the body is read
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["models"][0] == "base" and health["queue"] == 0
    assert health["server_id"] == "srv-test" and health["uptime_s"] > 0


def test_an_unknown_model_is_404_listing_the_served_ones(setup):
    url, _, log, run_id = setup
    reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "gpt-9", "messages": HI}, headers=auth())
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'gpt-9'" in error["message"] and f"base, {run_id}" in error["message"]
    entry = logged(log, reply.headers["x-request-id"])
    assert (entry.status, entry.model) == (404, "gpt-9")


def test_a_prompt_longer_than_the_context_is_400_with_the_numbers(setup):
    url, engine, _, _ = setup
    long = [{"role": "user", "content": "order shipping password refund " * 150}]
    reply = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "base", "messages": long, "max_tokens": 64}, headers=auth()
    )
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert f"{len(engine.prompt_tokens('base', long))} tokens" in message and "512" in message


def test_unknown_routes_are_openai_style_errors(url):
    reply = httpx.get(f"{url}/v1/nothing", headers=auth())
    assert reply.status_code == 404 and "error" in reply.json()
    assert httpx.get(f"{url}/v1/chat/completions", headers=auth()).status_code == 405


def test_models_list(setup):
    url, _, _, run_id = setup
    listed = httpx.get(f"{url}/v1/models", headers=auth()).json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["base", run_id]
    assert all(m["object"] == "model" for m in listed["data"])


def test_sixteen_concurrent_clients_are_batched_and_all_logged(setup):
    url, engine, log, run_id = setup
    before = log.count()
    sizes_before = len(engine.batch_sizes)
    engine.max_batch, engine.window_s = 4, 60.0  # batches fire by count, not time: 16 requests, 4 batches of 4
    answers: dict[int, dict] = {}
    try:

        def client(i: int) -> None:
            body = {"model": run_id if i % 2 else "base", "messages": HI, "temperature": 0, "max_tokens": 4}
            with httpx.Client(timeout=120) as http:
                answers[i] = http.post(f"{url}/v1/chat/completions", json=body, headers=auth()).json()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        engine.max_batch, engine.window_s = 8, 0.0
    assert len(answers) == 16 and all("choices" in a for a in answers.values())
    assert list(engine.batch_sizes)[sizes_before:] == [4, 4, 4, 4]
    ids = {a["id"] for a in answers.values()}
    assert len(ids) == 16
    assert log.count() == before + 16
    entries = {e.id: e for e in log.recent(16)}
    assert set(entries) == ids and all(e.status == 200 for e in entries.values())
    reader = RequestLog(log.path, readonly=True)
    try:
        assert {e.id for e in reader.recent(16)} == ids
    finally:
        reader.close()


def test_a_client_leaving_a_stream_is_logged_and_the_engine_goes_on(setup):
    url, engine, log, run_id = setup
    release = threading.Event()
    engine.on_batch = lambda jobs: release.wait(30)
    try:
        body = {"model": run_id, "messages": HI, "temperature": 0, "max_tokens": 50, "stream": True}
        with (
            httpx.Client(timeout=60) as http,
            http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=auth()) as reply,
        ):
            request_id = reply.headers["x-request-id"]
            first = next(reply.iter_lines())
            assert first.startswith("data: ") and json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
        entry = logged(log, request_id)
    finally:
        release.set()
        engine.on_batch = None
    assert entry.status == 499 and entry.stream and "went away" in (entry.error or "")
    assert direct(engine, run_id, 3)


def test_a_failed_generation_is_500_in_one_line_and_logged(setup, monkeypatch):
    url, engine, log, run_id = setup

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)\nwith a second line")

    monkeypatch.setattr(engine.model, "generate", broken)
    body = {"model": run_id, "messages": HI, "max_tokens": 4}
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth())
    assert reply.status_code == 500
    error = reply.json()["error"]
    assert error["type"] == "server_error" and "RuntimeError: out of memory (simulated)" in error["message"]
    assert "second line" not in error["message"] and "Traceback" not in reply.text
    entry = logged(log, reply.headers["x-request-id"])
    assert entry.status == 500 and "out of memory" in (entry.error or "")
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=auth()) as streamed:
        lines = [line for line in streamed.iter_lines() if line]
        request_id = streamed.headers["x-request-id"]
    assert "out of memory" in json.loads(lines[-2][6:])["error"]["message"] and lines[-1] == "data: [DONE]"
    assert logged(log, request_id).status == 500


def test_without_a_key_it_serves_anyone(setup):
    _, engine, _, _ = setup
    with serving(build_app(engine)) as url:
        reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "base", "messages": HI, "max_tokens": 2})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 2


def test_a_reader_opens_the_log_read_only(tmp_path):
    from workbench.errors import ServeError
    from workbench.serve.log import LoggedRequest

    writer = RequestLog(tmp_path / "r.db")
    writer.record(LoggedRequest(id="a", time=1.0, model="m", endpoint="/x", stream=False, status=200))
    reader = RequestLog(tmp_path / "r.db", readonly=True)
    writer.record(LoggedRequest(id="b", time=2.0, model="m", endpoint="/x", stream=True, status=500, error="boom"))
    assert [e.id for e in reader.recent()] == ["b", "a"]
    assert [e.id for e in reader.recent(since=1.5)] == ["b"] and reader.count(since=1.5) == 1
    with pytest.raises(ServeError, match="read-only"):
        reader.record(LoggedRequest(id="c", time=3.0, model="m", endpoint="/x", stream=False, status=200))
    with pytest.raises(ServeError, match="no request log"):
        RequestLog(tmp_path / "missing.db", readonly=True)
    reader.close()
    writer.close()


@pytest.mark.slow
def test_the_bundled_model_through_the_openai_client(tmp_path, bundled_dir):
    from openai import OpenAI

    from workbench.eval.generate import generate_batch, prompt_ids

    engine = load_engine(tmp_path, ["base"])
    try:
        question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
        expected = generate_batch(
            engine.model,
            engine.tokenizer,
            [prompt_ids(engine.tokenizer, question)],
            GenerationSettings(max_new_tokens=24),
        )[0]
        with serving(build_app(engine, RequestLog(tmp_path / "requests.db"))) as url:
            client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            reply = client.chat.completions.create(model="base", messages=question, temperature=0, max_tokens=24)
            streamed = client.chat.completions.create(
                model="base", messages=question, temperature=0, max_tokens=24, stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    finally:
        engine.close()
    assert reply.choices[0].message.content == expected.output == text
    assert "Paris" in text
    assert reply.choices[0].finish_reason == expected.finish
    assert reply.usage is not None and reply.usage.completion_tokens == expected.output_tokens


def test_the_key_is_never_written_to_the_log(setup):
    _, _, log, _ = setup
    rows = [json.dumps(e.params) + (e.error or "") for e in log.recent(500)]
    assert not any(KEY in row for row in rows)


def test_the_training_system_prompt_goes_first_when_a_request_brings_none(setup):
    """Like Ollama's SYSTEM: the served adapter hears the prompt it was trained under unless the client sends one."""
    import httpx

    _, engine, _, run_id = setup
    system = "Answer with one line of JSON."
    with serving(build_app(engine, None, system_prompts={run_id: system})) as url:

        def ask(messages):
            body = {"model": run_id, "messages": messages, "temperature": 0, "max_tokens": 6}
            reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()
            return reply["choices"][0]["message"]["content"], reply["usage"]["prompt_tokens"]

        plain, plain_tokens = ask(HI)
        explicit, explicit_tokens = ask([{"role": "system", "content": system}, *HI])
        other, _ = ask([{"role": "system", "content": "Be brief."}, *HI])
    with_system = [{"role": "system", "content": system}, *HI]
    expected = engine.submit(run_id, with_system, GenerationSettings(max_new_tokens=6)).result(timeout=60).text
    assert (plain, plain_tokens) == (explicit, explicit_tokens) and plain == expected
    assert plain_tokens > len(engine.prompt_tokens(run_id, HI))  # the prompt was really added
    assert (
        other
        == engine.submit(
            run_id, [{"role": "system", "content": "Be brief."}, *HI], GenerationSettings(max_new_tokens=6)
        )
        .result(timeout=60)
        .text
    )  # a client's own system message is kept, not replaced
