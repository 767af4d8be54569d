"""Endpoints as eval candidates: a real OpenAI-compatible server on loopback, asked through litellm.

The server is ours (workbench.serve.app.build_app over workbench.serve.engine.Engine on the tiny
random model) run by uvicorn in a thread on 127.0.0.1 (port 0); the eval's predictions must be the
engine's own greedy answers, token counts and finish reasons included. Errors (server down, a missing or wrong key, a model it does not serve)
are EvalErrors naming the URL; no key is ever written into the eval directory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException

from workbench.eval.candidates import list_candidates, resolve_models
from workbench.eval.generate import generate
from workbench.eval.plan import create_from_plan, plan_eval
from workbench.eval.remote import answer, endpoint_models, endpoint_ref, parse_endpoint, provider_ref
from workbench.eval.store import EvalDir, EvalError, GenerationSettings, ModelRef, parse_spec
from workbench.eval.worker import run_eval

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
KEY_ENV = "WORKBENCH_TEST_ENDPOINT_KEY"
SECRET = "sk-endpoint-test-9d2f71c04b3a5e66"
SETTINGS = GenerationSettings(max_new_tokens=12, batch_size=4)


# --- a real server on loopback ----------------------------------------------------------


@dataclass
class Served:
    url: str
    """The API base: http://127.0.0.1:PORT/v1."""
    model: str
    engine: Any
    log: Any
    """The server's request log (workbench.serve.log.RequestLog)."""

    def answer(self, messages: list[dict[str, Any]], settings: GenerationSettings) -> tuple[str, int, int, str]:
        """The engine's own answer, asked directly: (text, prompt tokens, completion tokens, finish reason)."""
        done = self.engine.submit(self.model, messages, settings).result(timeout=120)
        return done.text, done.prompt_tokens, done.completion_tokens, done.finish_reason

    def requests(self) -> list[Any]:
        """Every chat request the server logged, oldest first."""
        return sorted(self.log.recent(limit=10_000), key=lambda r: r.time)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[Any]:
    """Our serving engine on the tiny model, served as 'tiny'."""
    from workbench.serve.engine import Engine

    ref = ModelRef(key="base", label="tiny", kind="base", path=str(tiny_model_dir), base_model=str(tiny_model_dir))
    engine = Engine([ref], names=["tiny"])
    yield engine
    engine.close()


def _serve(app: Any) -> Iterator[int]:
    """uvicorn in a thread on 127.0.0.1, port 0; yields the port, stops at the end."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


def _ours(engine: Any, db: Path, api_key: str | None) -> Iterator[Served]:
    from workbench.serve.app import build_app
    from workbench.serve.log import RequestLog

    log = RequestLog(db)
    try:
        for port in _serve(build_app(engine, log, api_key=api_key)):
            yield Served(f"http://127.0.0.1:{port}/v1", "tiny", engine, log)
    finally:
        log.close()


@pytest.fixture(scope="module")
def served(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Our server (workbench.serve.app) on loopback with no key, as `workbench serve` runs there."""
    yield from _ours(engine, tmp_path_factory.mktemp("serve") / "requests.db", None)


@pytest.fixture(scope="module")
def served_with_key(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _ours(engine, tmp_path_factory.mktemp("serve-key") / "requests.db", SECRET)


def _flaky_app(answer: Any, fail: Any) -> Any:
    """A bare OpenAI-style server whose ``fail()`` decides which requests get a 503."""
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> Any:
        return {"object": "list", "data": [{"id": "tiny", "object": "model"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict[str, Any]) -> Any:
        if fail():
            raise HTTPException(503, "busy, try again")
        settings = GenerationSettings(max_new_tokens=body.get("max_tokens") or 256)
        text, prompt_tokens, completion_tokens, finish = answer(body["messages"], settings)
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "tiny",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    return app


def _eval(workspace: Path, refs: list[ModelRef], limit: int = 6) -> EvalDir:
    plan = plan_eval(refs, data=SUPPORT / "test.jsonl", limit=limit, settings=SETTINGS, name="endpoint")
    return create_from_plan(workspace, plan)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- names ------------------------------------------------------------------------------


def test_endpoint_names_resolve_to_endpoint_refs(tmp_path: Path):
    url, key_env = resolve_models(tmp_path, ["http://127.0.0.1:8123/v1#tiny", "endpoint:http://gpu-box:8000#m/x"])
    assert (url.kind, url.path, url.endpoint_model, url.api_key_env) == (
        "endpoint",
        "http://127.0.0.1:8123/v1",
        "tiny",
        None,
    )
    assert url.key == "endpoint:127.0.0.1:8123/tiny"
    assert (key_env.path, key_env.endpoint_model) == ("http://gpu-box:8000/v1", "m/x")  # /v1 added
    [provider] = resolve_models(tmp_path, ["litellm:anthropic/claude-3-5-haiku-latest"], api_key_env="MY_KEY")
    assert (provider.kind, provider.path, provider.endpoint_model, provider.api_key_env) == (
        "endpoint",
        "",
        "anthropic/claude-3-5-haiku-latest",
        "MY_KEY",
    )
    assert provider.key == "litellm:anthropic/claude-3-5-haiku-latest"
    # with the local models, in one list
    keys = [r.key for r in resolve_models(tmp_path, ["base", "https://api.example.com/v1/#gpt-4o-mini"])]
    assert keys == ["base", "endpoint:api.example.com/gpt-4o-mini"]
    assert parse_endpoint("RUN/adapter") is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("http://127.0.0.1:8123/v1", "name the model after a '#'"),
        ("http://127.0.0.1:8123/v1#", "name the model after a '#'"),
        ("endpoint:127.0.0.1:8123#tiny", "expected http(s)://HOST:PORT/v1"),
        ("http://127.0.0.1:8123/v1?x=1#tiny", "with no query"),
        ("litellm:gpt-4o-mini", "expected PROVIDER/MODEL"),
    ],
)
def test_bad_endpoint_names_say_what_was_expected(tmp_path: Path, name: str, message: str):
    with pytest.raises(EvalError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        resolve_models(tmp_path, [name])


def test_a_key_given_where_its_variable_name_goes_is_refused_without_echoing_it(tmp_path: Path):
    with pytest.raises(EvalError) as caught:
        resolve_models(tmp_path, ["http://127.0.0.1:8123/v1#tiny"], api_key_env=SECRET)
    assert "NAME" in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(ValueError):  # the spec refuses it too, whoever builds the ref
        ModelRef(key="k", label="k", kind="endpoint", path="", endpoint_model="a/b", api_key_env=SECRET)


# --- an eval against the server ---------------------------------------------------------


def test_eval_against_a_served_model_gets_the_servers_own_greedy_answers(tmp_path: Path, served: Served):
    ref = endpoint_ref(served.url, served.model)
    ev = _eval(tmp_path, [ref])
    before = len(served.requests())
    assert generate(ev) == "completed"
    predictions = ev.predictions()
    examples = ev.examples()
    assert len(predictions) == len(examples) == 6
    for example in examples:
        text, prompt_tokens, completion_tokens, finish = served.answer(example["messages"], SETTINGS)
        got = predictions[(ref.key, example["id"])]
        assert (got["output"], got["prompt_tokens"], got["output_tokens"], got["finish"]) == (
            text,
            prompt_tokens,
            completion_tokens,
            finish,
        )
    asked = served.requests()[before:]
    assert len(asked) == 6 and {r.status for r in asked} == {200}
    assert {(r.params.get("temperature"), r.params.get("max_tokens")) for r in asked} == {(0.0, 12)}  # greedy
    assert generate(ev) == "completed" and len(served.requests()) == before + 6  # nothing asked twice


def test_a_served_model_is_scored_in_the_same_grid_as_a_local_one(tmp_path: Path, served: Served, tiny_model_dir):
    from workbench.eval.results import Results

    local = ModelRef(key="base", label="tiny", kind="base", path=str(tiny_model_dir), base_model=str(tiny_model_dir))
    ref = endpoint_ref(served.url, served.model)
    ev = _eval(tmp_path, [local, ref], limit=4)
    assert run_eval(ev, handle_signals=False, log=lambda _t: None) == "completed"
    res = Results(ev)
    assert res.keys == ["base", ref.key]
    for row in res.rows:  # the same model behind the server answers what it answers here
        assert row.cells[ref.key].output == row.cells["base"].output is not None
    assert (ev.path / "scores.jsonl").is_file()


def test_the_key_comes_from_the_environment_and_never_lands_in_the_eval(
    tmp_path: Path, served_with_key: Served, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(KEY_ENV, SECRET)
    [ref] = resolve_models(tmp_path, [f"{served_with_key.url}#tiny"], api_key_env=KEY_ENV)
    ev = _eval(tmp_path, [ref], limit=3)
    assert run_eval(ev, handle_signals=False, log=lambda _t: None) == "completed"
    assert len(ev.predictions()) == 3
    spec = parse_spec(ev.spec_path.read_text())
    assert spec.models[0].api_key_env == KEY_ENV
    files = [p for p in ev.path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"eval.yaml", "predictions.jsonl", "status.json", "examples.jsonl"}
    for path in files:
        assert SECRET not in path.read_text(encoding="utf-8", errors="replace"), path


def test_a_missing_or_wrong_key_is_a_clear_error(tmp_path: Path, served_with_key: Served, monkeypatch):
    ref = endpoint_ref(served_with_key.url, "tiny", api_key_env=KEY_ENV)
    monkeypatch.delenv(KEY_ENV, raising=False)
    ev = _eval(tmp_path, [ref], limit=2)
    with pytest.raises(EvalError, match=f"{KEY_ENV} is not set"):
        generate(ev)
    monkeypatch.setenv(KEY_ENV, "sk-not-the-right-one-0000")
    with pytest.raises(EvalError) as caught:
        generate(ev)
    assert f"endpoint {served_with_key.url} refused the request (401" in str(caught.value)
    assert f"the key in {KEY_ENV} is not the server's" in str(caught.value)
    no_key = endpoint_ref(served_with_key.url, "tiny")
    with pytest.raises(EvalError, match="name the environment variable that holds its key"):
        generate(_eval(tmp_path, [no_key], limit=2))
    assert ev.predictions() == {}


def test_a_server_that_is_down_fails_the_eval_with_the_url(tmp_path: Path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    ev = _eval(tmp_path, [endpoint_ref(url, "tiny")], limit=2)
    started = time.monotonic()
    assert run_eval(ev, handle_signals=False, log=lambda _t: None) == "failed"
    error = ev.status().error
    assert f"endpoint {url} cannot be reached" in error and "workbench serve list" in error
    assert time.monotonic() - started < 30  # refused at once, not retried for minutes
    with pytest.raises(EvalError, match="cannot be reached"):
        endpoint_models(url)


def test_a_model_the_server_does_not_serve_names_what_it_does(tmp_path: Path, served: Served):
    ev = _eval(tmp_path, [endpoint_ref(served.url, "nope")], limit=2)
    with pytest.raises(EvalError, match=rf"endpoint {served.url} does not serve model 'nope'; it serves: tiny"):
        generate(ev)


def test_a_server_that_fails_now_and_then_is_retried(tmp_path: Path, served: Served):
    """Transient 503s are retried with backoff; the answers are the engine's, as if nothing had failed."""
    calls: list[int] = []

    def fail() -> bool:
        calls.append(1)
        return len(calls) % 2 == 1  # every request fails once, then gets through

    for port in _serve(_flaky_app(served.answer, fail)):
        ref = endpoint_ref(f"http://127.0.0.1:{port}/v1", "tiny")
        ev = _eval(tmp_path, [ref], limit=3)
        records = [r for chunk in answer(ref, ev.examples(), SETTINGS, retry_wait=0.01, workers=1) for r in chunk]
        assert [r["output"] for r in records] == [served.answer(e["messages"], SETTINGS)[0] for e in ev.examples()]
        assert len(calls) == 6


def test_a_server_that_keeps_failing_is_reported_with_the_endpoint_and_its_words(tmp_path: Path, served: Served):
    calls: list[int] = []

    def fail() -> bool:
        calls.append(1)
        return True

    for port in _serve(_flaky_app(served.answer, fail)):
        url = f"http://127.0.0.1:{port}/v1"
        ref = endpoint_ref(url, "tiny")
        ev = _eval(tmp_path, [ref], limit=2)
        with pytest.raises(EvalError) as caught:
            list(answer(ref, ev.examples(), SETTINGS, retry_wait=0.01, workers=1))
        assert f"{ref.key} (endpoint {url}, model tiny)" in str(caught.value)
        assert "busy, try again" in str(caught.value)
        assert len(calls) == 4  # the first attempt and three retries, then the eval stops


# --- a provider through litellm, offline ------------------------------------------------


def test_a_litellm_provider_ref_runs_through_litellm_with_a_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access refused by the test")

    ref = provider_ref("anthropic/claude-3-5-haiku-latest")
    ev = _eval(tmp_path, [ref], limit=5)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    seen: list[str] = []

    def mock(messages: list[dict[str, Any]]) -> str:
        seen.append(messages[-1]["content"])
        return json.dumps({"echo": messages[-1]["content"][:20]})

    assert generate(ev, llm_mock=mock) == "completed"
    assert attempts == []
    predictions = ev.predictions()
    assert len(predictions) == 5 and len(seen) == 5
    for example in ev.examples():
        got = predictions[(ref.key, example["id"])]
        assert got["output"] == json.dumps({"echo": example["messages"][-1]["content"][:20]})
        assert got["finish"] == "stop" and got["prompt_tokens"] > 0 and got["output_tokens"] > 0


# --- running servers of the workspace, and the CLI ------------------------------------------


def _running_server(workspace: Path, served: Served, server_id: str = "tiny-20261203-120000") -> str:
    """A serves/<id>/ whose status says running at the loopback server's address (this process keeps it alive)."""
    pytest.importorskip("workbench.serve.servedir")
    port = int(served.url.rsplit(":", 1)[1].split("/")[0])
    path = workspace / "serves" / server_id
    path.mkdir(parents=True)
    now = time.time()
    status = {
        "state": "running",
        "pid": os.getpid(),
        "heartbeat": now,
        "created": now,
        "url": f"http://127.0.0.1:{port}",
        "host": "127.0.0.1",
        "port": port,
        "models": [served.model],
    }
    (path / "status.json").write_text(json.dumps(status))
    return server_id


def test_running_servers_models_are_candidates_and_resolve_by_key_or_url(
    tmp_path: Path, served: Served, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("WORKBENCH_SERVE_KEY", raising=False)
    server_id = _running_server(tmp_path, served)
    candidates = list_candidates(tmp_path)
    [endpoint] = [c for c in candidates if c.is_endpoint]
    assert (endpoint.key, endpoint.path, endpoint.endpoint_model, endpoint.api_key_env) == (
        f"serve:{server_id}/tiny",
        served.url,
        "tiny",
        None,
    )
    assert [c.key for c in list_candidates(tmp_path, served=False) if c.is_endpoint] == []
    by_key, by_url = (resolve_models(tmp_path, [name])[0] for name in (endpoint.key, f"{served.url}#tiny"))
    assert by_key == by_url == endpoint
    ev = _eval(tmp_path, [by_key], limit=2)
    assert generate(ev) == "completed" and len(ev.predictions()) == 2


def test_cli_lists_served_models_and_evaluates_an_endpoint(tmp_path: Path, served: Served, capsys):
    from workbench.cli import main

    server_id = _running_server(tmp_path, served)
    assert main(["eval", "candidates", "-w", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert f"serve:{server_id}/tiny" in listed and f"{served.url}#tiny" in listed
    data = str(SUPPORT / "test.jsonl")
    args = ["eval", "new", "-w", str(tmp_path), "--data", data, "--limit", "2", "--max-new-tokens", "6"]
    assert main([*args, "--models", f"{served.url}#tiny", "--wait"]) == 0
    ev = EvalDir(Path(tmp_path / "evals").iterdir().__next__())
    assert ev.status().state == "completed" and len(ev.predictions()) == 2
    down = f"http://127.0.0.1:{_closed_port()}/v1#tiny"
    assert main([*args, "--models", down]) == 2  # refused before an eval is made
    err = capsys.readouterr().err
    assert "error: endpoint http://127.0.0.1:" in err and "cannot be reached" in err and "Traceback" not in err
    assert len(list((tmp_path / "evals").iterdir())) == 1


# --- the Eval pane ------------------------------------------------------------------------


async def test_add_an_endpoint_in_the_new_eval_dialog_and_evaluate_it(tmp_path: Path, served: Served):
    from appkit import make_app, until
    from textual.widgets import Input, SelectionList, Static

    from screens.eval import EvalPane
    from screens.eval_endpoint import EndpointScreen
    from screens.eval_screens import NewEvalScreen
    from workbench.eval.store import list_evals

    shutil.copytree(SUPPORT, tmp_path / "support")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("4")
        pane = app.query_one(EvalPane)
        await until(pilot, lambda: "No evals yet" in str(app.query_one("#eval-header", Static).render()), what="pane")
        await pilot.press("n")
        assert isinstance(app.screen, NewEvalScreen)
        dialog = app.screen
        models = dialog.query_one("#new-models", SelectionList)
        await until(pilot, lambda: models.option_count, what="candidates")
        await pilot.press("ctrl+e")
        await until(pilot, lambda: isinstance(app.screen, EndpointScreen), what="the endpoint dialog")
        endpoint = app.screen
        endpoint.query_one("#endpoint-url", Input).value = served.url
        endpoint.query_one("#endpoint-model", Input).value = "nope"
        await pilot.press("ctrl+s")
        error = endpoint.query_one("#endpoint-error", Static)
        await until(pilot, lambda: "does not serve model 'nope'" in str(error.render()), what="the refusal")
        assert "it serves: tiny" in str(error.render()) and app.screen is endpoint
        endpoint.query_one("#endpoint-model", Input).value = ""  # no model: the dialog offers the server's
        await pilot.press("ctrl+s")
        await until(pilot, lambda: endpoint.query_one("#endpoint-model", Input).value == "tiny", what="the offer")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is dialog, what="the endpoint to be added")
        key = "endpoint:" + served.url.removeprefix("http://").removesuffix("/v1") + "/tiny"
        assert key in models.selected
        models.deselect_all()
        models.select(key)
        dialog.query_one("#new-limit", Input).value = "2"
        dialog.query_one("#new-tokens", Input).value = "6"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: pane.results is not None, what="the new eval")
        ev = EvalDir(list_evals(tmp_path)[0].path)
        assert [m.key for m in ev.spec().models] == [key]
        await until(pilot, lambda: ev.status().state in ("completed", "failed"), 120, what="generation")
        assert ev.status().state == "completed", ev.status().error
        assert len(ev.predictions()) == 2


@pytest.mark.slow  # a detached server process: about 25 s on two busy cores
def test_a_detached_server_of_the_workspace_is_scored_beside_the_model_it_serves(tmp_path: Path, tiny_model_dir):
    """`workbench serve start` for real (a detached worker); its model is a candidate and answers as the model does."""
    from workbench.eval.results import Results
    from workbench.serve.servedir import list_servers, start_server, stop_server

    sd = start_server(tmp_path, [str(tiny_model_dir)], wait=120)
    try:
        [server] = [s for s in list_servers(tmp_path) if s.id == sd.id]
        assert server.state == "running", server.error
        [ref] = [c for c in list_candidates(tmp_path) if c.is_endpoint]
        assert ref.key == f"serve:{sd.id}/{server.models[0]}"
        [local] = resolve_models(tmp_path, [str(tiny_model_dir)])
        ev = _eval(tmp_path, [local, ref], limit=3)
        assert run_eval(ev, handle_signals=False, log=lambda _t: None) == "completed", ev.status().error
        res = Results(ev)
        assert [row.cells[ref.key].output for row in res.rows] == [row.cells[local.key].output for row in res.rows]
    finally:
        stop_server(sd)
    assert [c for c in list_candidates(tmp_path) if c.is_endpoint] == []  # a stopped server is no candidate
