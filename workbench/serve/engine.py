"""The serving engine: one base model, its LoRA adapters beside it, and one thread that batches requests.

:class:`Engine` loads the base once and each adapter once as a PEFT named adapter (never merged), so one
``generate`` call can answer a batch whose rows ask for different adapters (peft's ``adapter_names=``
argument, ``"__base__"`` for the bare base). Callers :meth:`Engine.submit` from any thread and get a
:class:`Job` at once: iterate it for text deltas as they are generated, or wait on :meth:`Job.result`.

The engine thread takes the oldest queued job, waits up to ``window_s`` for more (or until ``max_batch``
are queued; right after a batch of several, up to ``regroup_s`` for as many, since their clients are
sending their next requests), and generates for every queued job that samples the same way (greedy jobs together;
sampled jobs with the same temperature and top-p together; a job with an explicit seed alone, so the
same request with the same seed gives the same answer). Rows are left-padded; each row stops on its
own (an end-of-turn token, a stop string, its own ``max_new_tokens``) through a stopping criterion that
also decodes each row's new tokens incrementally and hands the new text to its job.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ServeError, WorkbenchError, one_line
from workbench.eval.generate import load_model, prompt_ids, stop_ids
from workbench.eval.store import GenerationSettings, ModelRef

BASE_ADAPTER = "__base__"
"""What peft's ``adapter_names=`` calls the bare base model in a mixed batch."""

_DONE = object()

REGROUP_S = 0.25
"""After a batch of several, how long the engine waits for their clients' next requests to batch them again
(bench/serve_load.py: with 20 ms alone, eight clients' next requests split into partial batches)."""


@dataclass
class Completion:
    """A finished answer."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    """``stop`` (end-of-turn token or stop string) or ``length`` (max_new_tokens reached)."""
    seconds: float
    """From submit to the last token."""
    first_token_s: float | None
    """From submit to the first generated token (None when there was none)."""


class Job:
    """One submitted request: iterate it for text deltas (blocking), or wait for :meth:`result`."""

    def __init__(
        self,
        model: str,
        prompt: list[int],
        settings: GenerationSettings,
        stop: Sequence[str],
        on_delta: Callable[[str | None], None] | None = None,
    ) -> None:
        self.model = model
        self.on_delta = on_delta
        """Called on the engine thread with each delta, then with None once the job is done (or failed)."""
        self.prompt = prompt
        self.settings = settings
        self.stop = [s for s in stop if s]
        self.submitted = time.perf_counter()
        self.first_token_s: float | None = None
        self._deltas: queue.Queue[Any] = queue.Queue()
        self._done = threading.Event()
        self._completion: Completion | None = None
        self._error: BaseException | None = None
        self.cancelled = threading.Event()

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt)

    def group_key(self) -> tuple[Any, ...]:
        """Jobs with the same key can share one generate call."""
        s = self.settings
        if s.greedy:
            return ("greedy",)
        if "seed" in s.model_fields_set:  # an explicit seed: reproducible, so alone
            return ("seeded", id(self))
        return ("sample", s.temperature, s.top_p)

    def cancel(self) -> None:
        """Stop generating for this job (a client went away); its row is dropped at the next token."""
        self.cancelled.set()

    def done(self) -> bool:
        return self._done.is_set()

    def __iter__(self) -> Iterator[str]:
        while True:
            item = self._deltas.get()
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def result(self, timeout: float | None = None) -> Completion:
        """The completion once the job is done; raises the job's error, or ServeError on a timeout."""
        if not self._done.wait(timeout):
            raise ServeError(f"model {self.model!r}: no answer within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._completion is not None
        return self._completion

    # -- called by the engine thread ------------------------------------------------

    def _push(self, text: str) -> None:
        if text:
            self._deltas.put(text)
            self._notify(text)

    def _finish(self, completion: Completion) -> None:
        self._completion = completion
        self._end()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._end()

    def _end(self) -> None:
        self._done.set()
        self._deltas.put(_DONE)
        self._notify(None)

    def _notify(self, delta: str | None) -> None:
        if self.on_delta is None:
            return
        try:
            self.on_delta(delta)
        except Exception:  # a listener gone (a closed event loop) must not fail the other rows of the batch
            self.on_delta = None


class _Row:
    """One job's row in a running batch: its tokens so far, what text has gone out, why it stopped."""

    def __init__(self, job: Job, tokenizer: Any, eos: set[int]) -> None:
        self.job = job
        self.tokenizer = tokenizer
        self.eos = eos
        self.tokens: list[int] = []
        self.text = ""
        self.sent = 0
        self.finish: str | None = None
        self.cut = False

    def add(self, token: int) -> None:
        if self.finish is not None:
            return
        if self.job.first_token_s is None:
            self.job.first_token_s = time.perf_counter() - self.job.submitted
        if self.job.cancelled.is_set():
            self.finish = "cancelled"
            return
        if token in self.eos:
            self.finish = "stop"
            self._emit(len(self.text))
            return
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        whole = not text.endswith("\ufffd")  # else half of a multi-byte character: wait for the rest
        if whole:
            cut = _first_stop(text, self.job.stop)
            if cut is not None:
                self.text, self.finish, self.cut = text[:cut], "stop", True
                self._emit(cut)
                return
        if len(self.tokens) >= self.job.settings.max_new_tokens:
            self.text, self.finish = text, "length"
            self._emit(len(text))
        elif whole:
            self.text = text
            self._emit(len(text) - _held_back(text, self.job.stop))

    def _emit(self, upto: int) -> None:
        if upto > self.sent:
            self.job._push(self.text[self.sent : upto])
            self.sent = upto

    def close(self) -> None:
        """The batch ended: whatever was held back (a partial stop string, a partial character) goes out."""
        if self.finish is None:
            self.finish = "length"
        if not self.cut and self.tokens:
            self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        self._emit(len(self.text))


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many characters at the end of ``text`` could be the start of a stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


def _stopping_criteria(rows: list[_Row]) -> Any:
    import torch
    from transformers import StoppingCriteria

    class RowsDone(StoppingCriteria):
        """Feeds each row its new token and tells generate which rows are finished."""

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            for row, token in zip(rows, input_ids[:, -1].tolist()):
                row.add(int(token))
            return torch.tensor([row.finish is not None for row in rows], device=input_ids.device)

    return RowsDone()


@dataclass
class _Served:
    """One name clients can ask for."""

    name: str
    ref: ModelRef
    adapter: str | None
    """The peft adapter name (None: the base itself)."""
    tokenizer: Any
    """The tokenizer whose chat template renders this model's prompts."""


def default_name(ref: ModelRef) -> str:
    """What clients call a ref: ``base``, ``<run-id>``, ``<run-id>/ckpt-N``, a merged or model dir's name."""
    if ref.kind == "base":
        return "base" if ref.key == "base" else Path(ref.path).name or ref.key
    if ref.kind == "adapter" and ref.run_id:
        return ref.run_id
    if ref.kind == "checkpoint" and ref.run_id and ref.step is not None:
        return f"{ref.run_id}/ckpt-{ref.step}"
    return Path(ref.path).name or ref.key


def _base_of(ref: ModelRef) -> tuple[str, Path, Path | None]:
    """(base spec, resolved base dir, adapter dir or None) of a ref."""
    from workbench.models import resolve_model

    local = (Path(ref.path) / "config.json").is_file() or (Path(ref.path) / "adapter_config.json").is_file()
    if ref.kind not in ("base", "adapter", "checkpoint") and not local:
        raise ServeError(f"model {ref.key!r} ({ref.kind}) cannot be served here: it is not a local model")
    path = Path(ref.path).expanduser()
    if ref.kind == "base":
        spec = ref.base_model or ref.path
        return spec, resolve_model(spec, trust_remote_code=ref.trust_remote_code).path.resolve(), None
    if (path / "adapter_config.json").is_file():
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        if config.get("peft_type", "LORA") != "LORA":
            raise ServeError(f"model {ref.key!r}: {path} is a {config.get('peft_type')} adapter; only LoRA is served")
        spec = ref.base_model or config.get("base_model_name_or_path") or "bundled"
        return spec, resolve_model(spec, trust_remote_code=ref.trust_remote_code).path.resolve(), path
    if (path / "config.json").is_file():
        return str(path), path.resolve(), None
    raise ServeError(f"model {ref.key!r}: {path} holds neither a LoRA adapter nor a model (config.json)")


def base_dir_of(ref: ModelRef) -> Path:
    """The resolved directory of the base a ref runs on: models with the same one can share an engine."""
    return _base_of(ref)[1]


class Engine:
    """One base model with its adapters, answering batched, streaming chat requests from a thread of its own."""

    def __init__(
        self,
        refs: Sequence[ModelRef],
        *,
        names: Sequence[str] | None = None,
        max_batch: int = 8,
        window_s: float = 0.02,
    ) -> None:
        if not refs:
            raise ServeError("nothing to serve: name at least one model")
        names = list(names) if names is not None else [default_name(r) for r in refs]
        if len(names) != len(refs):
            raise ServeError(f"{len(refs)} models but {len(names)} names")
        if len(set(names)) != len(names):
            raise ServeError(f"two models would be served under the same name: {', '.join(names)}")
        if max_batch < 1:
            raise ServeError(f"max_batch must be at least 1, not {max_batch}")
        self.max_batch = max_batch
        self.window_s = window_s
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        self._last_batch = (0, 0.0)  # (jobs, perf_counter at its end) of the batch answered last
        self.regroup_s = REGROUP_S
        """The number of rows of each generate call so far (the newest 10,000)."""
        self.on_batch: Callable[[list[Job]], None] | None = None
        """Called on the engine thread before each generate call, with its jobs."""
        self.started = time.time()
        self._load(refs, names)
        self._pending: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._running: list[Job] = []
        self._thread = threading.Thread(target=self._loop, name="serve-engine", daemon=True)
        self._thread.start()

    @classmethod
    def from_models(cls, workspace: str | Path, names: Sequence[str], **kw: Any) -> Engine:
        """An engine for what a user typed (anything :func:`resolve_models` accepts)."""
        return load_engine(workspace, names, **kw)

    # -- loading ---------------------------------------------------------------------

    def _load(self, refs: Sequence[ModelRef], names: Sequence[str]) -> None:
        from transformers import AutoTokenizer

        located = [_base_of(r) for r in refs]
        bases = {base for _, base, _ in located}
        if len(bases) > 1:
            listed = "; ".join(f"{r.key} on {base}" for r, (_, base, _) in zip(refs, located))
            raise ServeError(f"these models are on different base models, so one server cannot hold them: {listed}")
        spec, base_dir, _ = located[0]
        remote = any(r.trust_remote_code for r in refs)
        base_ref = ModelRef(
            key="base",
            label="base",
            kind="base",
            path=str(base_dir),
            base_model=str(base_dir),
            trust_remote_code=remote,
        )
        try:
            model, tokenizer = load_model(base_ref)
        except WorkbenchError as exc:
            raise ServeError(f"cannot load the base model {spec}: {exc}") from None
        self.tokenizer = tokenizer
        self.served: dict[str, _Served] = {}
        self.mixed_batches = True
        for i, (name, ref, (_, _, adapter_dir)) in enumerate(zip(names, refs, located)):
            adapter = None
            tok = tokenizer
            if adapter_dir is not None:
                adapter = f"adapter{i}"
                config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
                if config.get("use_dora"):
                    self.mixed_batches = False  # peft cannot mix DoRA adapters in one batch
                model = self._add_adapter(model, adapter_dir, adapter, ref)
                if (adapter_dir / "tokenizer_config.json").is_file():
                    tok = AutoTokenizer.from_pretrained(adapter_dir, trust_remote_code=ref.trust_remote_code)
                    if getattr(tok, "chat_template", None) is None:
                        tok = tokenizer
            self.served[name] = _Served(name, ref, adapter, tok)
        self.model = model.eval()
        self.eos = stop_ids(self.model, tokenizer)
        model_config: Any = self.model.config
        text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
        self.context_length = int(getattr(text_config, "max_position_embeddings", None) or 2048)
        self.is_peft = any(s.adapter for s in self.served.values())

    @staticmethod
    def _add_adapter(model: Any, path: Path, adapter: str, ref: ModelRef) -> Any:
        from peft import PeftModel

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                if isinstance(model, PeftModel):
                    model.load_adapter(str(path), adapter_name=adapter)
                    return model
                return PeftModel.from_pretrained(model, str(path), adapter_name=adapter)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ServeError(f"model {ref.key!r}: cannot load the adapter {path}: {one_line(exc)}") from None

    # -- the public side -------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self.served)

    @property
    def queue_length(self) -> int:
        """Jobs waiting for a batch (not counting the batch being generated)."""
        with self._cond:
            return len(self._pending)

    def prompt_tokens(self, model: str, messages: list[dict[str, Any]]) -> list[int]:
        """The prompt's tokens as the model's chat template renders them."""
        served = self._served(model)
        try:
            return prompt_ids(served.tokenizer, messages)
        except Exception as exc:  # a template that refuses the messages (jinja raise_exception, bad roles)
            raise ServeError(
                f"model {model!r}: the chat template cannot render these messages: {one_line(exc)}"
            ) from None

    def submit(
        self,
        model: str,
        messages: list[dict[str, Any]],
        settings: GenerationSettings,
        *,
        stop: list[str] | None = None,
        on_delta: Callable[[str | None], None] | None = None,
    ) -> Job:
        """Queue a chat request; returns at once. Unknown model or a prompt too long: ServeError.

        ``on_delta`` (for an event loop: wrap ``loop.call_soon_threadsafe``) is called on the engine
        thread with each text delta and then None, so a caller need not block a thread on the job.
        """
        prompt = self.prompt_tokens(model, messages)
        room = self.context_length - settings.max_new_tokens
        if len(prompt) > room:
            raise ServeError(
                f"the prompt has {len(prompt)} tokens and max_tokens is {settings.max_new_tokens}: together "
                f"{len(prompt) + settings.max_new_tokens}, over the model's context of {self.context_length} tokens"
            )
        job = Job(model, prompt, settings, stop or [], on_delta)
        with self._cond:
            if self._closed:
                raise ServeError("the engine is closed")
            self._pending.append(job)
            self._cond.notify_all()
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Stop the engine thread; queued jobs and those being generated fail with ServeError."""
        with self._cond:
            self._closed = True
            pending, self._pending = self._pending, []
            self._cond.notify_all()
        for job in list(self._running):
            job.cancel()  # their rows stop at the next token, so the thread is free at once
        for job in pending:
            job._fail(ServeError("the engine was closed before this request was answered"))
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _served(self, model: str) -> _Served:
        served = self.served.get(model)
        if served is None:
            raise ServeError(f"no model {model!r} is served here; the models are: {', '.join(self.served)}")
        return served

    # -- the engine thread -----------------------------------------------------------

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._closed:
                if not self._pending:
                    self._cond.wait()
                    continue
                oldest = self._pending[0]
                key = oldest.group_key()
                same = [j for j in self._pending if j.group_key() == key]
                want, until = self.max_batch, oldest.submitted + self.window_s
                size, ended = self._last_batch
                if size > 1 and oldest.submitted - ended < self.regroup_s:
                    # The clients of the batch just answered are sending their next requests: wait a little
                    # longer for as many as there were, or a partial batch splits them into two.
                    want, until = min(size, self.max_batch), max(until, ended + self.regroup_s)
                left = until - time.perf_counter()
                if len(same) < want and left > 0 and key[0] != "seeded":
                    self._cond.wait(left)
                    continue
                batch = same[: self.max_batch]
                taken = {id(j) for j in batch}
                self._pending = [j for j in self._pending if id(j) not in taken]
                return batch
            return None

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [j for j in batch if not j.cancelled.is_set()]
            self._running = live
            for job in batch:
                if job.cancelled.is_set():
                    job._fail(ServeError("the request was cancelled"))
            if not live:
                continue
            if not self.mixed_batches and self.is_peft:
                groups: dict[str, list[Job]] = {}
                for job in live:
                    groups.setdefault(job.model, []).append(job)
                for group in groups.values():
                    self._run(group)
            else:
                self._run(live)

    def _run(self, jobs: list[Job]) -> None:
        try:
            rows = self._generate(jobs)
        except Exception as exc:  # the batch fails, the engine goes on
            error = ServeError(f"generation failed: {one_line(exc)}")
            for job in jobs:
                if not job.done():
                    job._fail(error)
            return
        now = time.perf_counter()
        self._last_batch = (len(jobs), now)
        for row in rows:
            row.close()
            job = row.job
            if row.finish == "cancelled":
                job._fail(ServeError("the request was cancelled"))
                continue
            job._finish(
                Completion(
                    text=row.text,
                    model=job.model,
                    prompt_tokens=job.prompt_tokens,
                    completion_tokens=len(row.tokens),
                    finish_reason=row.finish or "length",
                    seconds=now - job.submitted,
                    first_token_s=job.first_token_s,
                )
            )

    def _generate(self, jobs: list[Job]) -> list[_Row]:
        import torch

        if self.on_batch is not None:
            self.on_batch(jobs)
        self.batch_sizes.append(len(jobs))
        tokenizer = self.tokenizer
        eos = set(self.eos)
        rows = [_Row(job, tokenizer, eos) for job in jobs]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos[0]
        width = max(len(j.prompt) for j in jobs)
        input_ids = torch.tensor([[pad] * (width - len(j.prompt)) + j.prompt for j in jobs], dtype=torch.long)
        attention = torch.tensor([[0] * (width - len(j.prompt)) + [1] * len(j.prompt) for j in jobs])
        settings = jobs[0].settings
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max(j.settings.max_new_tokens for j in jobs),
            pad_token_id=pad,
            eos_token_id=self.eos,
            stopping_criteria=[_stopping_criteria(rows)],
        )
        if settings.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
            seeded = "seed" in settings.model_fields_set
            torch.manual_seed(settings.seed if seeded else random.getrandbits(63))
        scope: Any = contextlib.nullcontext()
        if self.is_peft:
            adapters = [self.served[j.model].adapter or BASE_ADAPTER for j in jobs]
            if self.mixed_batches:
                kwargs["adapter_names"] = adapters
            elif adapters[0] == BASE_ADAPTER:  # one model per batch here (see _loop)
                scope = self.model.disable_adapter()
            else:
                self.model.set_adapter(adapters[0])
        device = next(self.model.parameters()).device
        with torch.inference_mode(), scope:
            self.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
        return rows


def load_engine(workspace: str | Path, names: Sequence[str], **kw: Any) -> Engine:
    """An engine for what a user typed: ``base``, ``RUN/adapter``, ``RUN/ckpt-N``, a path (see resolve_models)."""
    from workbench.eval.candidates import resolve_models
    from workbench.eval.store import EvalError

    try:
        refs = resolve_models(workspace, names)
    except EvalError as exc:
        raise ServeError(str(exc)) from None
    return Engine(refs, **kw)


__all__ = ["BASE_ADAPTER", "Completion", "Engine", "Job", "default_name", "load_engine"]
