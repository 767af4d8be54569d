"""Eval candidates answered over HTTP: any OpenAI-compatible endpoint (ours, vLLM) or a litellm provider.

An endpoint candidate is a :class:`ModelRef` of kind ``endpoint``: ``path`` is the API base URL
(``http://127.0.0.1:8123/v1``), ``endpoint_model`` the model name sent in requests, and
``api_key_env`` the *name* of the environment variable holding the key, which is read when a
request is sent and never written anywhere. With no URL, ``endpoint_model`` is a litellm id
(``openai/gpt-4o-mini``, ``anthropic/...``) and litellm finds the provider and its key itself.

Every request goes through :class:`workbench.llm.LLM` (litellm, with its retries and plain
errors), several at once so that a batching server (ours, vLLM) answers them together. The
predictions have the same fields as a local model's, so a served model is scored in the same
grid as an adapter.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from workbench.errors import WorkbenchError
from workbench.eval.store import ENV_NAME, EvalError, GenerationSettings, ModelRef
from workbench.llm import LLM, Mock

SERVE_KEY_ENV = "WORKBENCH_SERVE_KEY"
"""The variable our own server reads its key from; a served candidate off loopback sends it."""

CONCURRENCY = 8
"""Requests in flight at once: enough for a batching server to fill a batch, few enough for a provider."""

REQUEST_TIMEOUT = 600.0
"""Seconds one answer may take: a CPU server answering a full batch of long answers is slow, not dead."""

RETRIES = 3
"""Extra attempts after a transient error (connection, timeout, rate limit, 5xx), waiting 1, 2, 4 s."""

_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


# --- refs -------------------------------------------------------------------------


def check_env_name(name: str | None) -> str | None:
    """``name`` when it is an environment variable's name; an EvalError (which never echoes it) otherwise."""
    name = (name or "").strip() or None
    if name is not None and (not ENV_NAME.fullmatch(name) or len(name) > 100):
        raise EvalError(
            "the key's environment variable must be a NAME such as WORKBENCH_SERVE_KEY "
            "(letters, digits and _), never the key itself: keys are read from the environment only"
        )
    return name


def api_base(url: str) -> str:
    """The API base of what a user typed: a scheme and host required, ``/v1`` added when there is no path."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EvalError(f"endpoint URL {url!r}: expected http(s)://HOST:PORT/v1")
    if parts.query or parts.fragment:
        raise EvalError(f"endpoint URL {url!r}: expected http(s)://HOST:PORT/v1 with no query")
    return text if parts.path not in ("", "/") else text + "/v1"


def endpoint_ref(
    url: str, model: str, *, api_key_env: str | None = None, key: str | None = None, label: str | None = None
) -> ModelRef:
    """A model behind an OpenAI-compatible API at ``url`` (``http://HOST:PORT/v1``)."""
    base = api_base(url)
    model = model.strip()
    if not model:
        raise EvalError(f"endpoint {base}: name the model to ask (URL#MODEL; `GET {base}/models` lists them)")
    host = urlsplit(base).netloc
    return ModelRef(
        key=key or f"endpoint:{host}/{model}",
        label=label or f"endpoint · {model} @ {host}",
        kind="endpoint",
        path=base,
        endpoint_model=model,
        api_key_env=check_env_name(api_key_env),
    )


def provider_ref(model_id: str, *, api_key_env: str | None = None) -> ModelRef:
    """A provider's model through litellm (``openai/gpt-4o-mini``, ``anthropic/...``); its key from the environment."""
    model_id = model_id.strip()
    if "/" not in model_id.strip("/"):
        raise EvalError(f"litellm model {model_id!r}: expected PROVIDER/MODEL, such as openai/gpt-4o-mini")
    return ModelRef(
        key=f"litellm:{model_id}",
        label=f"litellm · {model_id}",
        kind="endpoint",
        path="",
        endpoint_model=model_id,
        api_key_env=check_env_name(api_key_env),
    )


def parse_endpoint(name: str, *, api_key_env: str | None = None) -> ModelRef | None:
    """``http(s)://HOST:PORT/v1#MODEL``, ``endpoint:URL#MODEL`` or ``litellm:PROVIDER/MODEL``; None for other names."""
    text = name.strip()
    if text.startswith("litellm:"):
        return provider_ref(text.removeprefix("litellm:"), api_key_env=api_key_env)
    if text.startswith("endpoint:"):
        text = text.removeprefix("endpoint:")
    elif not text.startswith(("http://", "https://")):
        return None
    url, sep, model = text.partition("#")
    if not sep or not model.strip():
        raise EvalError(f"endpoint {name!r}: name the model after a '#': {url.rstrip('/')}#MODEL")
    return endpoint_ref(url, model, api_key_env=api_key_env)


def served_candidates(workspace: str | Path) -> list[ModelRef]:
    """Each running server's models in the workspace (``serve:<server-id>/<model>``); [] without the serve module."""
    try:
        from workbench.serve.servedir import list_servers
    except ImportError:
        return []
    try:
        servers = list_servers(workspace)
    except (WorkbenchError, OSError):
        return []
    refs: list[ModelRef] = []
    for server in servers:
        url = getattr(server, "url", None)
        if getattr(server, "state", None) != "running" or not url:
            continue
        host = str(getattr(server, "host", "") or urlsplit(str(url)).hostname or "")
        # Off loopback our server requires its key; on loopback it does when one was set where it started.
        key_env = SERVE_KEY_ENV if host not in _LOOPBACK or os.environ.get(SERVE_KEY_ENV) else None
        for model in getattr(server, "models", None) or []:
            try:
                refs.append(
                    endpoint_ref(
                        str(url),
                        str(model),
                        api_key_env=key_env,
                        key=f"serve:{server.id}/{model}",
                        label=f"served · {model} ({server.id})",
                    )
                )
            except EvalError:
                continue
    return refs


# --- talking to it -------------------------------------------------------------------


def _headers(api_key_env: str | None, where: str) -> dict[str, str]:
    if not api_key_env:
        return {}
    key = os.environ.get(api_key_env)
    if not key:
        raise EvalError(f"{where}: the key's environment variable {api_key_env} is not set")
    return {"Authorization": f"Bearer {key}"}


def endpoint_models(url: str, *, api_key_env: str | None = None, timeout: float = 10.0) -> list[str]:
    """The model names an endpoint serves (``GET URL/models``); an EvalError naming the URL and what came back."""
    import httpx

    base = api_base(url)
    where = f"endpoint {base}"
    headers = _headers(check_env_name(api_key_env), where)
    try:
        response = httpx.get(f"{base}/models", headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise EvalError(f"{where} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise EvalError(
            f"{where} cannot be reached ({reason}): is the server running? (see `workbench serve list`)"
        ) from None
    if response.status_code in (401, 403):
        fix = (
            f"the key in {api_key_env} is not the server's"
            if api_key_env
            else "name the environment variable that holds its key"
        )
        raise EvalError(f"{where} refused the request ({response.status_code} {_said(response)}): {fix}")
    if response.status_code != 200:
        raise EvalError(f"{where}/models answered {response.status_code} {_said(response)}")
    try:
        data = response.json()
        return [str(m["id"]) for m in data["data"]]
    except (ValueError, KeyError, TypeError):
        raise EvalError(
            f"{where}/models did not answer as an OpenAI-compatible API ({{'data': [{{'id': ...}}]}}): "
            f"{response.text[:200]!r}"
        ) from None


def _said(response: Any) -> str:
    """The server's own message, short."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else error or body.get("detail")
        text = str(message if message is not None else body)
    except ValueError:
        text = response.text
    text = " ".join(text.split())
    return f"'{text[:200]}'" if text else ""


def check_endpoint(ref: ModelRef, *, timeout: float = 10.0) -> None:
    """Refuse at once an endpoint that is down, refuses the key, or does not serve the model."""
    if not ref.path:  # a provider: litellm's own errors say what is wrong
        return
    served = endpoint_models(ref.path, api_key_env=ref.api_key_env, timeout=timeout)
    if ref.endpoint_model not in served:
        shown = ", ".join(served[:12]) + (" …" if len(served) > 12 else "") if served else "nothing"
        raise EvalError(f"endpoint {ref.path} does not serve model {ref.endpoint_model!r}; it serves: {shown}")


def client(ref: ModelRef, *, mock: Mock | None = None, retry_wait: float = 1.0) -> LLM:
    """The litellm client that asks this endpoint: no cache (an eval's predictions are its record)."""
    if not ref.is_endpoint or not ref.endpoint_model:
        raise EvalError(f"model {ref.key!r} is not an endpoint (kind {ref.kind})")
    model = f"openai/{ref.endpoint_model}" if ref.path else ref.endpoint_model
    return LLM(
        model,
        timeout=REQUEST_TIMEOUT,
        num_retries=RETRIES,
        retry_wait=retry_wait,
        cache_dir=None,
        mock=mock,
        api_base=ref.path or None,
        api_key_env=ref.api_key_env,
        keyless=bool(ref.path) and not ref.api_key_env,
    )


def request_params(settings: GenerationSettings) -> dict[str, Any]:
    """The eval's generation settings as an OpenAI request's: greedy is temperature 0."""
    params: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature}
    if not settings.greedy:
        params.update(top_p=settings.top_p, seed=settings.seed)
    return params


def answer(
    ref: ModelRef,
    examples: Sequence[dict[str, Any]],
    settings: GenerationSettings,
    *,
    cancel: threading.Event | None = None,
    mock: Mock | None = None,
    workers: int = CONCURRENCY,
    retry_wait: float = 1.0,
) -> Iterator[list[dict[str, Any]]]:
    """Ask the endpoint every example, ``workers`` at a time; yields the prediction records chunk by chunk.

    A chunk is ``max(batch_size, workers)`` examples, so a stop or a crash loses at most one
    chunk. When ``cancel`` is set no new request starts and the answers in hand are yielded.
    An endpoint that is down, refuses the key or does not serve the model raises an EvalError
    before anything is asked.
    """
    if mock is None:
        check_endpoint(ref)
    llm = client(ref, mock=mock, retry_wait=retry_wait)
    params = request_params(settings)
    size = max(settings.batch_size, workers)
    where = f"endpoint {ref.path}, model {ref.endpoint_model}" if ref.path else f"litellm model {ref.endpoint_model}"
    for start in range(0, len(examples), size):
        if cancel is not None and cancel.is_set():
            return
        chunk = list(examples[start : start + size])
        t0 = time.perf_counter()
        try:
            replies = llm.complete_many([list(e["messages"]) for e in chunk], workers=workers, cancel=cancel, **params)
        except WorkbenchError as exc:
            text = str(exc).removeprefix(f"{llm.model}: ")
            raise EvalError(f"{ref.key} ({where}): {text}") from None
        answered = [(e, r) for e, r in zip(chunk, replies) if r is not None]
        each = (time.perf_counter() - t0) / max(1, len(answered))
        yield [
            {
                "model": ref.key,
                "id": str(e["id"]),
                "output": r.text,
                "prompt_tokens": r.prompt_tokens,
                "output_tokens": r.completion_tokens,
                "finish": r.finish_reason or "stop",
                "seconds": round(each, 4),
            }
            for e, r in answered
        ]


__all__ = [
    "CONCURRENCY",
    "SERVE_KEY_ENV",
    "answer",
    "api_base",
    "check_endpoint",
    "check_env_name",
    "client",
    "endpoint_models",
    "endpoint_ref",
    "parse_endpoint",
    "provider_ref",
    "request_params",
    "served_candidates",
]
