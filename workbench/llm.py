"""A small litellm client: one call path, a disk cache, usage totals, plain errors.

Shared by the Data pane's LLM critic, synthetic data, and the Eval pane's LLM
judge. Every call goes through the real ``litellm.completion``; the ``mock``
hook only supplies litellm's own ``mock_response=``, so tests and offline demos
run the whole litellm path without a network.

API keys are read by litellm from the environment (``OPENAI_API_KEY``...).
They are never passed as parameters, never written to the cache, and are
scrubbed from error messages.

litellm is imported lazily (it takes seconds), with its model price map taken
from the copy it ships instead of the internet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, computed_field

from workbench.errors import WorkbenchError
from workbench.fileio import atomic_write_text

Messages = list[dict[str, Any]]
"""A chat request: ``[{"role": "user", "content": "..."}]``."""

Mock = Callable[[Messages], str | Exception] | str
"""The offline hook: a fixed reply, or a function of the messages that returns one. litellm raises a
returned exception, and the reply ``litellm.RateLimitError`` as a rate limit: tests of error handling use both."""

Progress = Callable[[int, int], None]
"""Called with ``(done, total)`` as calls finish."""

CACHE_VERSION = 1

_KEY_PARAMS_IGNORED = frozenset({"timeout", "num_retries", "drop_params"})
"""Parameters that do not change the answer, so they are not part of the cache key."""

_UNSTORED_PARAMS = _KEY_PARAMS_IGNORED | {"api_base", "base_url"}
"""Parameters never written into a cache file (an api_base may carry credentials in its URL)."""

_SECRET_PARAM = re.compile(r"(^|_)(key|secret|password|credentials?|headers?|token)(_|$)", re.IGNORECASE)
"""Parameter names that would carry a credential: refused, since keys come from the environment only."""

_RUBRIC_ITEM_LINE = re.compile(r"^\s*[-*•]\s*([A-Za-z][\w -]{0,40}?)\s*:", re.MULTILINE)
"""A rubric line that names an item: ``- correctness: ...``."""

_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
"""Environment variables whose values are scrubbed from error messages."""


def load_litellm() -> ModuleType:
    """Import litellm on first use, with the price map it ships (no fetch) and no debug banner."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


@dataclass(frozen=True)
class Reply:
    """One answer from a model."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    """What this call cost in USD (``litellm.completion_cost``); None when the model's price is unknown,
    0.0 for a reply from the cache (it cost nothing this time)."""
    cached: bool = False
    """True when the reply came from the disk cache."""
    finish_reason: str | None = None
    """``stop``, ``length`` (cut off at max_tokens)... as the provider said."""

    @property
    def truncated(self) -> bool:
        """Whether the answer was cut off by ``max_tokens``."""
        return self.finish_reason == "length"


class Usage(BaseModel):
    """Totals over calls: what was asked and what it cost.

    ``calls`` counts every answered request, ``cached_calls`` those answered
    from the cache; tokens and cost count only live calls (a cached answer is
    free). ``unpriced_calls`` counts live calls whose price litellm does not
    know, so a UI can show the cost as a lower bound. ``model_dump()`` adds
    ``total_tokens`` and ``cost_known``; reading a dump ignores them.
    """

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_known(self) -> bool:
        """False when some live call had no known price (``cost_usd`` is then a lower bound)."""
        return self.unpriced_calls == 0

    def describe(self) -> str:
        """One line for people: calls, cache hits, tokens and cost."""
        cost = f"${self.cost_usd:.4f}" if self.cost_known else f"${self.cost_usd:.4f} + {self.unpriced_calls} unpriced"
        return f"{self.calls} call(s), {self.cached_calls} from cache, {self.total_tokens} tokens, {cost}"

    def add(self, reply: Reply) -> None:
        """Count one reply."""
        self.calls += 1
        if reply.cached:
            self.cached_calls += 1
            return
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        if reply.cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += reply.cost_usd

    @classmethod
    def of(cls, replies: Sequence[Reply | None]) -> Usage:
        """The totals of some replies (None entries, calls never made, are skipped)."""
        usage = cls()
        for reply in replies:
            if reply is not None:
                usage.add(reply)
        return usage


class LLM:
    """A model behind litellm, with a disk cache and usage totals.

    ``model`` is a litellm model name (``openai/gpt-4o-mini``,
    ``anthropic/claude-3-5-haiku-latest``, ``ollama/llama3``...). Retries of
    rate limits, timeouts and connection errors happen here
    (``num_retries`` more attempts, waiting ``retry_wait`` seconds, doubled each
    time, at most 30 s). With ``mock``, litellm answers with the mock instead of
    calling the provider, and no key is needed. ``api_key_env`` names an environment variable whose
    value is sent as the key (for an endpoint whose key litellm would not look for); ``keyless``
    sends a placeholder to a server that wants none. ``api_base`` (default:
    $WORKBENCH_LLM_API_BASE) sends every call to that server instead. ``cache_dir`` None turns the
    cache off. Safe to share between threads.
    """

    def __init__(
        self,
        model: str,
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        timeout: float = 60,
        num_retries: int = 2,
        cache_dir: Path | str | None = None,
        mock: Mock | None = None,
        retry_wait: float = 1.0,
        api_base: str | None = None,
        api_key_env: str | None = None,
        keyless: bool = False,
    ) -> None:
        if not model or not model.strip():
            raise WorkbenchError("no LLM model given: name one like openai/gpt-4o-mini")
        self.model = model.strip()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.num_retries = max(0, num_retries)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.mock = mock
        self.retry_wait = retry_wait
        self.api_base = api_base or os.environ.get("WORKBENCH_LLM_API_BASE") or None
        """A server to ask instead of the provider's (a local vLLM or llama.cpp with an OpenAI-style API)."""
        self.api_key_env = api_key_env or None
        """The NAME of the environment variable whose value is sent as the key (read at each call, never kept)."""
        self.keyless = keyless
        """A server that takes no key (ours on loopback): a placeholder is sent, as OpenAI-style clients need one."""
        self.cache_error: str | None = None
        """Why the last cache write failed (an unwritable cache_dir); replies still come back."""
        self._usage = Usage()
        self._lock = threading.Lock()

    @property
    def usage(self) -> Usage:
        """A snapshot of the totals since this client was made."""
        with self._lock:
            return self._usage.model_copy()

    # -- one call ---------------------------------------------------------

    def complete(self, messages: Messages, **params: Any) -> Reply:
        """Ask the model; the cache answers a request it has seen before.

        ``params`` go to ``litellm.completion`` (``temperature`` and
        ``max_tokens`` override the client's; ``seed``, ``response_format``,
        ``api_base``...). Credentials are refused: keys come from the
        environment. Raises WorkbenchError with a short message on auth
        errors, missing keys, rate limits and timeouts (after the retries), and
        unknown models.
        """
        secret = sorted(name for name in params if _SECRET_PARAM.search(name))
        if secret:
            raise WorkbenchError(
                f"LLM parameter {', '.join(secret)} refused: API keys and headers come from the environment only"
            )
        if self.api_base and "api_base" not in params:
            params["api_base"] = self.api_base
        request = {
            "temperature": params.pop("temperature", self.temperature),
            "max_tokens": params.pop("max_tokens", self.max_tokens),
            **params,
        }
        key = self._cache_key(messages, request)
        reply = self._cache_read(key)
        if reply is None:
            reply = self._call(messages, request)
            self._cache_write(key, messages, request, reply)
        with self._lock:
            self._usage.add(reply)
        return reply

    def _call(self, messages: Messages, request: dict[str, Any]) -> Reply:
        litellm = load_litellm()
        self._check_model(litellm)
        kwargs: dict[str, Any] = {"timeout": self.timeout, "drop_params": True, **request, "num_retries": 0}
        if self.mock is None:
            api_key = self._api_key()
            if api_key is None:
                self._check_keys(litellm, request.get("api_base"))
            else:
                kwargs["api_key"] = api_key  # in this call only: never in the request, the cache or an error
        attempt = 0
        while True:
            if self.mock is not None:  # asked again on each attempt, as a provider would be
                kwargs["mock_response"] = self.mock(messages) if callable(self.mock) else self.mock
            try:
                response = litellm.completion(model=self.model, messages=messages, **kwargs)
                break
            except Exception as err:
                if attempt >= self.num_retries or not self._retryable(litellm, err):
                    raise self._error(litellm, err) from None
                time.sleep(min(self.retry_wait * 2**attempt, 30.0))
                attempt += 1
        return self._reply(litellm, response, messages)

    def _reply(self, litellm: ModuleType, response: Any, messages: Messages) -> Reply:
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        if prompt_tokens is None:
            prompt_tokens = litellm.token_counter(model=self.model, messages=messages)
        if completion_tokens is None:
            completion_tokens = litellm.token_counter(model=self.model, text=text, count_response_tokens=True)
        try:
            cost: float | None = float(litellm.completion_cost(completion_response=response))
        except Exception:
            cost = None
        return Reply(text, int(prompt_tokens), int(completion_tokens), cost, False, choice.finish_reason)

    # -- many calls -------------------------------------------------------

    def complete_many(
        self,
        requests: Sequence[Messages],
        *,
        workers: int = 4,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        **params: Any,
    ) -> list[Reply | None]:
        """Ask for every request on a thread pool; the replies come back in the requests' order.

        When ``cancel`` is set no new call starts and the call returns at once
        with the replies finished so far; the rest are None (calls still in
        flight finish in the background and land in the cache). ``progress``
        is called on the caller's thread. The first error cancels what has not
        started and is raised.
        """
        results: list[Reply | None] = [None] * len(requests)
        total = len(requests)
        if not total:
            return results
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="llm")
        pending: dict[Future[Reply], int] = {}
        next_index = done = 0
        try:
            while True:
                stopping = cancel is not None and cancel.is_set()
                while not stopping and next_index < total and len(pending) < max(1, workers):
                    pending[pool.submit(self.complete, requests[next_index], **params)] = next_index
                    next_index += 1
                if stopping or not pending:
                    break
                finished, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in finished:
                    results[pending.pop(future)] = future.result()
                    done += 1
                    if progress is not None:
                        progress(done, total)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return results

    # -- checks and errors ------------------------------------------------

    def _check_model(self, litellm: ModuleType) -> None:
        """An unknown-model error before anything is sent."""
        try:
            litellm.get_llm_provider(model=self.model)
        except Exception:
            raise WorkbenchError(_unknown_model(self.model)) from None

    def _api_key(self) -> str | None:
        """The key to send: from $api_key_env, a placeholder for a keyless server, None to let litellm look."""
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise WorkbenchError(f"no API key for {self.model}: set {self.api_key_env} in the environment")
            return value
        return "EMPTY" if self.keyless else None

    def _check_keys(self, litellm: ModuleType, api_base: str | None) -> None:
        """A missing API key named before any network traffic (a missing *_API_BASE has a local default)."""
        found = litellm.validate_environment(model=self.model, api_base=api_base)
        missing = [name for name in found.get("missing_keys", []) if not name.endswith("_API_BASE")]
        if len(missing) == 1:
            raise WorkbenchError(f"no API key for {self.model}: set {missing[0]} in the environment")
        if missing:
            raise WorkbenchError(
                f"no API key for {self.model}: set it in the environment (litellm looks for {', '.join(missing)})"
            )

    @staticmethod
    def _retryable(litellm: ModuleType, err: Exception) -> bool:
        return isinstance(
            err,
            (
                litellm.RateLimitError,
                litellm.Timeout,
                litellm.APIConnectionError,
                litellm.InternalServerError,
                litellm.ServiceUnavailableError,
            ),
        )

    def _error(self, litellm: ModuleType, err: Exception) -> WorkbenchError:
        """A short message for the user, with any key from the environment scrubbed out."""
        model = self.model
        n = self.num_retries
        tries = f" (after {n} {'retry' if n == 1 else 'retries'})" if n else ""
        if isinstance(err, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
            message = f"{model}: the provider refused the API key: {_first_line(err)}"
        elif isinstance(err, litellm.RateLimitError):
            message = f"{model}: rate limited by the provider{tries}; wait, or use fewer workers"
        elif isinstance(err, litellm.Timeout):
            message = f"{model}: no answer within {self.timeout:g}s{tries}"
        elif isinstance(err, litellm.NotFoundError):
            message = f"{model}: the provider does not know this model: {_first_line(err)}"
        elif _is_unknown_provider(err):
            message = _unknown_model(model)
        elif isinstance(err, litellm.ContextWindowExceededError):
            message = f"{model}: the request is longer than the model's context window"
        elif isinstance(err, litellm.APIConnectionError) or "Connection error" in str(err):
            message = f"{model}: cannot reach the provider{tries}: {_first_line(err)}"
        elif isinstance(err, (litellm.InternalServerError, litellm.ServiceUnavailableError)):
            code = getattr(err, "status_code", None)
            said = _server_said(err) or _first_line(err)
            message = f"{model}: the server failed{f' ({code})' if code else ''}{tries}: {said}"
        else:
            message = f"{model}: {type(err).__name__}: {_first_line(err)}"
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:  # whatever the variable is called
            message = message.replace(key, "***")
        return WorkbenchError(redact(message))

    # -- cache ------------------------------------------------------------

    def _cache_key(self, messages: Messages, request: Mapping[str, Any]) -> str:
        keyed = {k: v for k, v in request.items() if k not in _KEY_PARAMS_IGNORED}
        blob = canonical_json({"v": CACHE_VERSION, "model": self.model, "messages": messages, "request": keyed})
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.json" if self.cache_dir is not None else None

    def _cache_read(self, key: str) -> Reply | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))["reply"]
            return Reply(
                text=str(stored["text"]),
                prompt_tokens=int(stored["prompt_tokens"]),
                completion_tokens=int(stored["completion_tokens"]),
                cost_usd=0.0,
                cached=True,
                finish_reason=stored.get("finish_reason"),
            )
        except (OSError, ValueError, KeyError, TypeError):  # a damaged entry is a miss; the next write repairs it
            return None

    def _cache_write(self, key: str, messages: Messages, request: Mapping[str, Any], reply: Reply) -> None:
        """One JSON file per request, written atomically; only the model, messages, safe params and reply.

        A failed write never loses the reply that was paid for: it is noted in ``cache_error``.
        """
        path = self._cache_path(key)
        if path is None:
            return
        record = {
            "v": CACHE_VERSION,
            "model": self.model,
            "request": {"messages": messages, **{k: v for k, v in request.items() if k not in _UNSTORED_PARAMS}},
            "reply": {k: v for k, v in asdict(reply).items() if k != "cached"},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(record, ensure_ascii=False, default=str, indent=1))
        except OSError as err:
            self.cache_error = f"cannot write the LLM cache in {path.parent}: {err.strerror or err}"


# -- helpers shared by the critic, synthetic data and the eval judge -------


def extract_json(text: str) -> list[Any]:
    """Every top-level JSON object or array in a model's reply, in order.

    Tolerant of what models wrap JSON in: code fences, prose before and after,
    several objects one per line (JSONL). Text that is not JSON is skipped; a
    cut-off array still yields the complete objects inside it.
    """
    decoder = json.JSONDecoder()
    found: list[Any] = []
    start = _next_open(text, 0)
    while start >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = _next_open(text, start + 1)
            continue
        found.append(value)
        start = _next_open(text, end)
    return found


def rubric_items(rubric: str) -> tuple[str, ...]:
    """The items a rubric names on its ``- name: ...`` lines, lowercased with ``_`` for spaces; () when none.

    Shared by the Data pane's critic (its criteria) and the Eval judge (its rubric items).
    """
    names = [m.group(1).strip().lower().replace(" ", "_") for m in _RUBRIC_ITEM_LINE.finditer(rubric)]
    return tuple(dict.fromkeys(names))


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value (sorted keys, no spaces): equal values give equal text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def redact(text: str) -> str:
    """``text`` with the value of every key-like environment variable replaced by ``***``."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_ENV.search(name) and value in text:
            text = text.replace(value, "***")
    return text


def _next_open(text: str, start: int) -> int:
    """Index of the next ``{`` or ``[`` at or after ``start``; -1 when there is none."""
    positions = [i for i in (text.find("{", start), text.find("[", start)) if i >= 0]
    return min(positions) if positions else -1


def _first_line(err: Exception, limit: int = 200) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^litellm\.\w+:\s*", "", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_said(err: Exception, limit: int = 200) -> str | None:
    """The message in an error answer's body (OpenAI's ``error.message``, FastAPI's ``detail``), when there is one."""
    try:
        text = str(getattr(err, "response", None).text)  # type: ignore[union-attr]
        body = json.loads(text)
    except Exception:
        return None
    said = body.get("error", body.get("detail")) if isinstance(body, dict) else None
    if isinstance(said, dict):
        said = said.get("message")
    if not isinstance(said, str) or not said.strip():
        return None
    said = " ".join(said.split())
    return said if len(said) <= limit else said[: limit - 1] + "…"


def _unknown_model(model: str) -> str:
    return f"unknown LLM model {model!r}: name it as provider/model, e.g. openai/gpt-4o-mini or ollama/llama3"


def _is_unknown_provider(err: Exception) -> bool:
    return "LLM Provider NOT provided" in str(err)
