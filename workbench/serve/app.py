"""The OpenAI-compatible HTTP API over an :class:`~workbench.serve.engine.Engine`: ``/health``, ``/v1/models``,
``/v1/chat/completions`` (streaming as server-sent events, or not).

Every model request is logged (when a :class:`~workbench.serve.log.RequestLog` is given), refused ones too:
400 for a malformed request (an OpenAI-style error body naming the field, never FastAPI's 422), 401 for a
missing or wrong key, 404 for a model not served, 500 for a failed generation, 499 for a stream the client
abandoned. Generation runs on the engine's thread; the event loop only waits on an asyncio queue fed by
the engine's per-job callback, so many clients are served at once and their requests share batches.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from workbench.errors import ServeError, one_line
from workbench.eval.store import GenerationSettings
from workbench.monitor.health import annotate
from workbench.serve.engine import Completion, Engine, Job
from workbench.serve.log import LoggedRequest, RequestLog

CHAT = "/v1/chat/completions"
DEFAULT_MAX_TOKENS = 512
"""max_tokens when a request gives none (less where the context has no room for it)."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_Part] | None = None

    def as_dict(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content or ""}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request that this server honours; others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=1)

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"model", "messages"}, exclude_none=True)


class _Refusal(Exception):
    """An OpenAI-style error answer."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": None, "code": None, **extra}}


_UNION_TAG = re.compile(r"str|int|float|bool|none|(list|dict|literal|function-\w+|tagged-union)\[.*\]")
"""The names pydantic gives the branches of a union in an error's location (not request fields)."""


def _field(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the request field it names: ``messages[0].role``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "body" and not _UNION_TAG.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
    return out


def _invalid(errors: list[Any]) -> _Refusal:
    first = errors[0]
    param = _field(tuple(first.get("loc", ())))
    message = first.get("msg", "invalid value")
    return _Refusal(400, f"{param}: {message}" if param else message, param=param or None)


def build_app(
    engine: Engine,
    log: RequestLog | None = None,
    *,
    api_key: str | None = None,
    server_id: str | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    system_prompts: Mapping[str, str] | None = None,
    schemas: Mapping[str, dict[str, Any]] | None = None,
) -> FastAPI:
    """The FastAPI app serving ``engine``; with ``api_key`` every /v1 route needs ``Authorization: Bearer KEY``.

    ``system_prompts`` (model name -> the system prompt its training data used) is put first in a request
    that brings no system message of its own, as Ollama's SYSTEM does: a fine-tuned model asked without
    the prompt it learned under answers far worse. The log keeps the request as received, with
    ``params.default_system`` set when the prompt was added.

    ``schemas`` (model name -> the task's JSON Schema) lets the log judge each answer as it is recorded
    (valid, a refusal, empty, cut at max tokens, its categorical fields and languages: see
    :func:`workbench.monitor.health.annotate`), so the monitor's figures are SQL aggregates. A judgement
    that fails leaves the health unknown; the request is logged all the same.
    """
    defaults = {k: v for k, v in (system_prompts or {}).items() if v}
    app = FastAPI(title="workbench", docs_url=None, redoc_url=None, openapi_url=None)
    started = time.time()

    task_schemas = dict(schemas or {})

    def record(entry: LoggedRequest) -> None:
        if log is not None:
            entry.server_id = server_id
            try:
                annotate(entry, task_schemas.get(entry.model or ""))
            except Exception as exc:  # the log must not lose a request to a bad answer or schema
                entry.params = {**(entry.params or {}), "health_error": one_line(exc)}
            log.record(entry)

    async def record_async(entry: LoggedRequest) -> None:
        if log is not None:
            await asyncio.to_thread(record, entry)

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise _Refusal(401, "no API key: send the header 'Authorization: Bearer KEY'", code="invalid_api_key")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), api_key.encode()):
            raise _Refusal(401, "wrong API key", code="invalid_api_key")

    def refusal_response(exc: _Refusal, request_id: str | None = None) -> JSONResponse:
        headers = {"x-request-id": request_id} if request_id else None
        return JSONResponse(exc.body, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return refusal_response(_invalid(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return refusal_response(_Refusal(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}"))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return refusal_response(_Refusal(500, f"internal error: {one_line(exc)}", kind="server_error"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "server_id": server_id,
            "models": engine.names,
            "queue": engine.queue_length,
            "uptime_s": round(time.time() - started, 3),
            "context_length": engine.context_length,
        }

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        try:
            check_key(request)
        except _Refusal as exc:
            return refusal_response(exc)
        created = int(engine.started)
        return {
            "object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "workbench"} for n in engine.names],
        }

    @app.post(CHAT)
    async def chat(request: Request) -> Any:
        request_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        arrived, t0 = time.time(), time.perf_counter()
        entry = LoggedRequest(
            id=request_id,
            time=arrived,
            model=None,
            endpoint=CHAT,
            stream=False,
            status=200,
            client=f"{request.client.host}:{request.client.port}" if request.client else None,
        )
        try:
            check_key(request)
            body = await _json_body(request, entry)
            try:
                req = ChatRequest.model_validate(body)
            except ValidationError as exc:
                raise _invalid(list(exc.errors())) from None
            entry.messages = [m.as_dict() for m in req.messages]
            entry.params = req.params()
            entry.stream = req.stream
            if req.model not in engine.served:
                raise _Refusal(
                    404,
                    f"the model {req.model!r} is not served here; the models are: {', '.join(engine.names)}",
                    param="model",
                    code="model_not_found",
                )
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            loop = asyncio.get_running_loop()
            sent = entry.messages
            if req.model in defaults and not any(m.get("role") == "system" for m in sent):
                sent = [{"role": "system", "content": defaults[req.model]}, *sent]
                entry.params = {**entry.params, "default_system": True}
            job = await asyncio.to_thread(_submit, engine, req, sent, default_max_tokens, loop, queue)
        except _Refusal as exc:
            entry.status, entry.error = exc.status, str(exc)
            entry.latency_s = time.perf_counter() - t0
            await record_async(entry)
            return refusal_response(exc, request_id)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            chunks = _stream(job, queue, req.model, request_id, int(arrived), include_usage, entry, t0, record)
            return StreamingResponse(
                chunks,
                media_type="text/event-stream",
                headers={"x-request-id": request_id, "cache-control": "no-cache"},
            )
        try:
            while await queue.get() is not None:
                pass
        except asyncio.CancelledError:
            job.cancel()
            _finish_entry(entry, job, t0, status=499, error="the client went away before the answer")
            record(entry)
            raise
        try:
            done = job.result(timeout=0)
        except ServeError as exc:
            refusal = _Refusal(500, str(exc), kind="server_error")
            _finish_entry(entry, job, t0, status=500, error=str(exc))
            await record_async(entry)
            return refusal_response(refusal, request_id)
        _finish_entry(entry, job, t0, status=200)
        await record_async(entry)
        return JSONResponse(
            _completion_body(done, request_id, int(arrived), server_id), headers={"x-request-id": request_id}
        )

    return app


async def _json_body(request: Request, entry: LoggedRequest) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Refusal(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Refusal(400, f"the request body must be a JSON object, not {type(body).__name__}")
    if isinstance(body.get("model"), str):
        entry.model = body["model"]
    if isinstance(body.get("messages"), list):
        entry.messages = [m for m in body["messages"] if isinstance(m, dict)]
    return body


def _submit(
    engine: Engine,
    req: ChatRequest,
    messages: list[dict[str, Any]],
    default_max_tokens: int,
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[str | None],
) -> Job:
    """Render, check and queue the request (on a worker thread: tokenizing a long prompt takes a while)."""
    max_tokens = req.max_completion_tokens or req.max_tokens
    if max_tokens is None:
        room = engine.context_length - len(engine.prompt_tokens(req.model, messages))
        max_tokens = max(1, min(default_max_tokens, room))
    values: dict[str, Any] = {
        "max_new_tokens": max_tokens,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "top_p": 1.0 if req.top_p is None else req.top_p,
    }
    if req.seed is not None:
        values["seed"] = req.seed
    settings = GenerationSettings(**values)

    def relay(delta: str | None) -> None:
        # A non-streamed answer wakes the event loop once, at its end, not once per token of every row of
        # the batch (eight rows x 80 tokens of wake-ups competed with generation for two cores).
        if delta is None or req.stream:
            loop.call_soon_threadsafe(queue.put_nowait, delta)

    try:
        return engine.submit(req.model, messages, settings, stop=req.stops(), on_delta=relay)
    except ServeError as exc:
        raise _Refusal(400, str(exc), param="messages") from None


def _finish_entry(entry: LoggedRequest, job: Job, t0: float, *, status: int, error: str | None = None) -> None:
    entry.status, entry.error = status, error
    entry.latency_s = time.perf_counter() - t0
    entry.first_token_s = job.first_token_s
    entry.prompt_tokens = job.prompt_tokens
    if job.done() and status == 200:
        done = job.result(timeout=0)
        entry.response = done.text
        entry.completion_tokens = done.completion_tokens
        entry.finish_reason = done.finish_reason


def _completion_body(done: Completion, request_id: str, created: int, server_id: str | None) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": done.model,
        "system_fingerprint": server_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": done.text},
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
        ],
        "usage": _usage(done),
    }


def _usage(done: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _stream(
    job: Job,
    queue: asyncio.Queue[str | None],
    model: str,
    request_id: str,
    created: int,
    include_usage: bool,
    entry: LoggedRequest,
    t0: float,
    record: Any,
) -> AsyncIterator[str]:
    """The answer as chat.completion.chunk events; the request is logged however the stream ends."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse(
            {
                "id": request_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }
        )

    logged = False

    async def log_now() -> None:
        # Logged before [DONE]: a client that has read the end finds its request in the log. Shielded, so
        # a client leaving at this moment cannot cancel the write before the executor starts it.
        nonlocal logged
        logged = True
        await asyncio.shield(asyncio.to_thread(record, entry))

    try:
        yield chunk({"role": "assistant", "content": ""})
        while (delta := await queue.get()) is not None:
            yield chunk({"content": delta})
        try:
            done = job.result(timeout=0)
        except ServeError as exc:
            _finish_entry(entry, job, t0, status=500, error=str(exc))
            await log_now()
            yield _sse({"error": {"message": str(exc), "type": "server_error", "param": None, "code": None}})
            yield "data: [DONE]\n\n"
            return
        _finish_entry(entry, job, t0, status=200)
        await log_now()
        yield chunk({}, done.finish_reason)
        if include_usage:
            usage = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model}
            yield _sse({**usage, "choices": [], "usage": _usage(done)})
        yield "data: [DONE]\n\n"
    except BaseException:  # the client went away (cancelled) or the server is shutting down
        if not job.done():
            job.cancel()
        if not logged:
            _finish_entry(entry, job, t0, status=499, error="the client went away before the answer was complete")
            logged = True
            record(entry)
        raise


__all__ = ["CHAT", "ChatMessage", "ChatRequest", "build_app"]
