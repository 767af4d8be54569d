"""The chat playground's core: one conversation with one or two models, answers streamed side by side.

A :class:`ChatSession` holds the user's turns and each model's own answers (the same questions, each
model answering its own conversation). :meth:`ChatSession.send` submits one job per model to the
serving engine (:class:`workbench.serve.engine.Engine`: the base and every adapter loaded once,
concurrent jobs batched into one ``generate`` call), and yields the text of both answers as it
arrives, interleaved. A conversation can be kept as a pending example of a dataset (in the
dataset's own shape, through the Data pane's store) or as a regression case of a suite (validated by
the suite reader itself). ``workbench chat`` and the app's chat screen are both thin shells over it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import tempfile
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from workbench.data.formats import Shape, describe
from workbench.errors import DataError, WorkbenchError
from workbench.eval.candidates import resolve_models
from workbench.eval.store import GenerationSettings, ModelRef
from workbench.fileio import atomic_write_bytes
from workbench.serve.engine import Completion, Engine, base_dir_of, default_name

SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}
"""Our roles as ShareGPT's ``from`` values (what the sample ShareGPT data uses)."""


class ChatError(WorkbenchError):
    """A chat that cannot go on as asked: no model, an unknown model, an empty message or conversation."""


@dataclass
class ChatDelta:
    """Some new text of one model's answer; the last one of each answer has ``done`` and the completion."""

    model: str
    text: str
    done: bool = False
    completion: Completion | None = None


def default_system_prompt(workspace: str | Path, refs: Sequence[ModelRef]) -> str | None:
    """The system prompt the models were trained with: the first run's most common one, or a merged model's."""
    for ref in refs:
        found = _system_prompt_of(workspace, ref)
        if found:
            return found
    return None


def _system_prompt_of(workspace: str | Path, ref: ModelRef) -> str | None:
    from workbench.ship.provenance import system_prompt_of_ref

    return system_prompt_of_ref(workspace, ref)


class EngineGroup:
    """One engine per base model, behind the engine's ``names``/``served``/``submit``/``close``.

    A merged model and its base (or two runs on different bases) cannot share one engine; the playground
    still compares them side by side, each answered by its own engine (so not in one batch).
    """

    def __init__(self, engines: Sequence[Engine]) -> None:
        self.engines = list(engines)
        self._by_name = {name: e for e in self.engines for name in e.names}

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    @property
    def served(self) -> dict[str, Any]:
        return {name: s for e in self.engines for name, s in getattr(e, "served", {}).items()}

    def submit(self, model: str, *args: Any, **kwargs: Any) -> Any:
        engine = self._by_name.get(model)
        if engine is None:
            raise ChatError(f"model {model!r} is not loaded (loaded: {', '.join(self._by_name)})")
        return engine.submit(model, *args, **kwargs)

    def close(self) -> None:
        for engine in self.engines:
            engine.close()


def open_engines(refs: Sequence[ModelRef], names: Sequence[str]) -> Engine | EngineGroup:
    """One engine when every model shares a base (answers batched together), else one per base."""
    groups: dict[Path, list[int]] = {}
    for i, ref in enumerate(refs):
        groups.setdefault(base_dir_of(ref), []).append(i)
    if len(groups) == 1:
        return Engine(refs, names=names, max_batch=max(8, len(names)))
    engines: list[Engine] = []
    try:
        for idx in groups.values():
            engines.append(Engine([refs[i] for i in idx], names=[names[i] for i in idx], max_batch=8))
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return EngineGroup(engines)


class ChatSession:
    """A conversation with one or two models; see the module doc."""

    def __init__(
        self,
        workspace: str | Path,
        names: Sequence[str],
        *,
        system_prompt: str | None = None,
        settings: GenerationSettings | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.workspace = Path(workspace)
        names = [n.strip() for n in names if n and n.strip()]
        if not names:
            raise ChatError("no model to chat with: name one or two (base, RUN/adapter, RUN/ckpt-N or a path)")
        self.refs: list[ModelRef] = []
        if engine is None:
            self.refs = resolve_models(self.workspace, names)
            self.models: list[str] = _unique([default_name(r) for r in self.refs])
            self.engine: Engine | EngineGroup = open_engines(self.refs, self.models)
            self._own_engine = True
        else:
            self.engine, self._own_engine = engine, False
            self.models = self._engine_models(names)
        self.system_prompt = system_prompt if system_prompt is not None else default_system_prompt(workspace, self.refs)
        self.settings = settings or GenerationSettings()
        self._users: list[str] = []
        self._answers: dict[str, list[str]] = {m: [] for m in self.models}
        self._lock = threading.Lock()

    def _engine_models(self, names: Sequence[str]) -> list[str]:
        """Names on a given engine: as the engine calls them, or anything resolve_models accepts for one of them."""
        served = list(self.engine.names)
        out = []
        for name in names:
            if name not in served:
                with contextlib.suppress(WorkbenchError):  # a workspace name for a model the engine serves
                    name = default_name(resolve_models(self.workspace, [name])[0])
                if name not in served:
                    raise ChatError(f"model {name!r} is not loaded in the engine (it serves: {', '.join(served)})")
            out.append(name)
        table = getattr(self.engine, "served", {})
        self.refs = [table[n].ref for n in out if n in table]
        return _unique(out)

    # --- the conversation -----------------------------------------------------------

    @property
    def turns(self) -> int:
        """User turns answered so far."""
        return len(self._users)

    def history(self, model: str) -> list[dict[str, str]]:
        """The conversation as ``model`` had it: the system prompt, then each user turn and its answer."""
        self._check_model(model)
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for user, answer in zip(self._users, self._answers[model]):
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return messages

    def send(self, text: str) -> Generator[ChatDelta, None, None]:
        """Ask every model ``text``; yield their answers' text as it comes (interleaved), then a done delta each.

        The turn joins the conversation once every answer is complete; an error (raised from here) or a
        generator closed early leaves the conversation as it was.
        """
        if not text.strip():
            raise ChatError("nothing to send: the message is empty")
        settings = self.settings.model_copy()
        jobs: list[tuple[str, Any]] = []
        finished: dict[str, Completion] = {}
        try:
            for m in self.models:
                jobs.append((m, self.engine.submit(m, [*self.history(m), {"role": "user", "content": text}], settings)))
            events: queue.Queue[tuple[str, str | None, Any]] = queue.Queue()
            for model, job in jobs:
                threading.Thread(target=_pump, args=(model, job, events), daemon=True, name=f"chat-{model}").start()
            while len(finished) < len(jobs):
                model, delta, end = events.get()
                if isinstance(end, BaseException):
                    raise end
                if delta is not None:
                    yield ChatDelta(model, delta)
                else:
                    finished[model] = end
                    yield ChatDelta(model, "", done=True, completion=end)
        finally:  # an error, or the caller stopped reading: answers still being generated are cancelled
            for model, job in jobs:
                if model not in finished:
                    job.cancel()
        with self._lock:
            self._users.append(text)
            for model in self.models:
                self._answers[model].append(finished[model].text)

    def set_settings(self, **changes: Any) -> GenerationSettings:
        """Change generation settings for the next turns (max_new_tokens, temperature, top_p, seed), validated."""
        self.settings = make_settings(self.settings, **changes)
        return self.settings

    def ask(self, text: str) -> dict[str, str]:
        """``send`` to the end: each model's answer."""
        return {d.model: d.completion.text for d in self.send(text) if d.done and d.completion is not None}

    def reset(self) -> None:
        """Forget the conversation (the models, settings and system prompt stay)."""
        with self._lock:
            self._users.clear()
            for answers in self._answers.values():
                answers.clear()

    def close(self) -> None:
        """Close the engine when this session created it."""
        if self._own_engine:
            self.engine.close()

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_model(self, model: str) -> None:
        if model not in self._answers:
            raise ChatError(f"no model {model!r} in this chat (it has: {', '.join(self.models)})")

    def _conversation(self, model: str) -> list[dict[str, str]]:
        self._check_model(model)
        if not self._users:
            raise ChatError("nothing to save yet: the conversation is empty (send a message first)")
        return self.history(model)

    # --- keeping a conversation ----------------------------------------------------

    def last_answer(self, model: str) -> str:
        """``model``'s newest answer ('' before the first)."""
        self._check_model(model)
        return self._answers[model][-1] if self._answers[model] else ""

    def dataset_choices(self) -> list[Path]:
        """Where a conversation can be kept: the chatted runs' training sets first, then the workspace's datasets."""
        from workbench.ship.provenance import run_config
        from workbench.train.runner import find_run
        from workbench.workspace import Workspace

        first: list[Path] = []
        for run_id in dict.fromkeys(r.run_id for r in self.refs if r.run_id):
            try:
                run = find_run(self.workspace, run_id)
            except WorkbenchError:
                continue
            train = (run_config(run.path).get("data") or {}).get("train")
            if isinstance(train, str) and train:
                path = Path(train).expanduser()
                path = (path if path.is_absolute() else run.path / path).resolve()
                if path.is_file() and path not in first:
                    first.append(path)
        rest = [p.resolve() for p in Workspace(self.workspace).datasets()]
        return first + [p for p in rest if p not in first]

    def suite_choices(self) -> list[Path]:
        """The workspace's regression and red-team suites."""
        from workbench.workspace import Workspace

        return Workspace(self.workspace).suites()

    def save_as_example(self, dataset: str | Path, model: str) -> int:
        """The conversation with ``model``'s answers, added to ``dataset`` as one pending example (source
        ``chat``) in the dataset's own shape, and saved; returns its 0-based position among the examples."""
        from workbench.data.store import open_dataset

        messages = self._conversation(model)
        path = Path(dataset).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such dataset (pick one of the workspace's datasets, or create the file)")
        session = open_dataset(path)
        try:
            if session.readonly:
                raise DataError(f"{path}: cannot add the conversation, the dataset is {session.readonly_reason}")
            row = conversation_row(messages, session.shape, session.conversational, path)
            new_id = session.add([row], status="pending", source="chat")[0]
            session.save()
            return [e.id for e in session.visible()].index(new_id)
        finally:
            session.close()

    def save_as_case(self, suite: str | Path, model: str, expect: dict[str, Any], *, case_id: str | None = None) -> str:
        """The conversation up to the last question, with ``expect`` on the answer, appended to a suite
        (created when absent) after the suite reader has accepted it; returns the case id."""
        from workbench.eval.suites import load_suite

        messages = self._conversation(model)[:-1]  # the model answers the last user turn when the suite runs
        path = Path(suite).expanduser()
        if path.suffix != ".jsonl":
            raise DataError(f"{path}: a suite is a .jsonl file (one case a line)")
        old = path.read_bytes() if path.exists() else b""
        taken: set[str] = set()
        if old.strip():
            try:
                taken = {c.id for c in load_suite(path).cases}
            except DataError as err:
                raise DataError(f"{path}: not a suite this case can join ({str(err).splitlines()[0]})") from None
        case_id = case_id or _new_case_id(model, taken)
        if case_id in taken:
            raise DataError(f"{path}: the suite already has a case {case_id!r}")
        line = json.dumps({"id": case_id, "messages": messages, "expect": expect}, ensure_ascii=False)
        _check_case(line, path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"{path}: cannot create the suite's folder ({err.strerror})") from None
        atomic_write_bytes(path, old + (b"" if not old or old.endswith(b"\n") else b"\n") + line.encode() + b"\n")
        return case_id


def make_settings(settings: GenerationSettings | None = None, **changes: Any) -> GenerationSettings:
    """Generation settings with these changes, validated: a ChatError naming the setting otherwise."""
    unknown = sorted(set(changes) - set(GenerationSettings.model_fields))
    if unknown:
        raise ChatError(
            f"unknown generation setting {unknown[0]!r}; expected one of max_new_tokens, temperature, top_p, seed"
        )
    try:
        # only what was set is carried: an explicit seed makes the engine generate a job alone (reproducible)
        values = (settings or GenerationSettings()).model_dump(exclude_unset=True)
        return GenerationSettings.model_validate({**values, **changes})
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ChatError(f"generation setting {field}: {first['msg']} (got {first.get('input')!r})") from None


def parse_expect(text: str, answer: str) -> dict[str, Any]:
    """What a case expects, as typed: a JSON object, or nothing for 'the output contains this answer'."""
    text = text.strip()
    if not text:
        if not answer.strip():
            raise ChatError("the answer is empty, so 'contains the answer' checks nothing; type an expectation")
        return {"must_contain": answer.strip()}
    try:
        expect = json.loads(text)
    except ValueError as err:
        raise ChatError(f'the expectation is not valid JSON ({err}); e.g. {{"must_contain": "refund"}}') from None
    if not isinstance(expect, dict):
        raise ChatError(f'the expectation must be a JSON object, e.g. {{"must_contain": "refund"}}, not {text!r}')
    return expect


def _pump(model: str, job: Any, events: queue.Queue[tuple[str, str | None, Any]]) -> None:
    """One job's deltas onto the shared queue, then its completion (or the error that ended it)."""
    try:
        for delta in job:
            if delta:
                events.put((model, delta, None))
        events.put((model, None, job.result()))
    except BaseException as err:  # handed to the consumer, which raises it
        events.put((model, None, err))


def _unique(names: list[str]) -> list[str]:
    seen = [n for i, n in enumerate(names) if n in names[:i]]
    if seen:
        raise ChatError(f"model {seen[0]!r} is named twice; pick two different models")
    return names


def _new_case_id(model: str, taken: set[str]) -> str:
    stem = "chat-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-") or "model")
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def _check_case(line: str, suite: Path) -> None:
    """The suite reader's verdict on one case line: a DataError with its words when it refuses it."""
    from workbench.eval.suites import load_suite

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / suite.name
        probe.write_text(line + "\n", encoding="utf-8")
        try:
            problems: list[Any] = list(load_suite(probe).problems)
        except DataError as err:
            problems = list(err.bad_rows)
            if not problems:
                raise DataError(f"{suite}: the case was refused: {err}") from None
    if problems:
        bad = problems[0]
        field = getattr(bad, "field", None)
        raise DataError(
            f"{suite}: the case was refused: " + (f"{field}: " if field else "") + str(getattr(bad, "message", bad))
        )


def conversation_row(messages: list[dict[str, str]], shape: Shape, conversational: bool, path: Path) -> dict[str, Any]:
    """A conversation (system, user, assistant, ...) as one row of a dataset of this shape, or a DataError
    saying why this shape cannot hold it."""
    where = f"{path} ({describe(shape, conversational)})"
    if shape is Shape.SHAREGPT:
        return {"conversations": [{"from": SHAREGPT_FROM[m["role"]], "value": m["content"]} for m in messages]}
    if shape is Shape.LANGUAGE_MODELING and conversational:
        return {"messages": [dict(m) for m in messages]}
    if shape is Shape.PROMPT_COMPLETION and conversational:
        return {"prompt": [dict(m) for m in messages[:-1]], "completion": [dict(messages[-1])]}
    if shape in (Shape.PROMPT_COMPLETION, Shape.ALPACA, Shape.DOLLY):
        system = [m["content"] for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        if len(turns) != 2:
            raise DataError(
                f"{where}: a row holds one question and one answer, and this conversation has "
                f"{len(turns) // 2} turns; save after the first answer, or pick a conversational dataset"
            )
        user, answer = turns[0]["content"], turns[1]["content"]
        if shape is Shape.DOLLY:  # like alpaca's, with Dolly's names (a system prompt is the instruction)
            first, second = (system[0], user) if system else (user, "")
            return {"instruction": first, "context": second, "response": answer}
        if shape is Shape.ALPACA:  # the system prompt goes where this shape's rows keep it: the instruction
            return (
                {"instruction": system[0], "input": user, "output": answer}
                if system
                else {
                    "instruction": user,
                    "input": "",
                    "output": answer,
                }
            )
        if system:
            raise DataError(
                f"{where}: a text prompt-completion row has no place for the system prompt; "
                "clear it (/system with no text) or pick a conversational dataset"
            )
        return {"prompt": user, "completion": answer}
    reason = {
        Shape.LANGUAGE_MODELING: "plain-text rows have no turns",
        Shape.PROMPT_ONLY: "prompt-only rows have no answer",
    }.get(shape, "a preference row needs a chosen and a rejected answer")
    raise DataError(
        f"{where}: cannot hold a conversation ({reason}); pick a conversational, prompt-completion, "
        "alpaca, Dolly or ShareGPT dataset"
    )


__all__ = [
    "ChatDelta",
    "ChatError",
    "ChatSession",
    "conversation_row",
    "default_system_prompt",
    "make_settings",
    "parse_expect",
]
