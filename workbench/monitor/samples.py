"""Production requests back into a dataset: the end of the fine-tuning cycle.

A request the served model got wrong (an error, an answer that breaks the task's schema, a refusal, an
empty or truncated answer) is picked from the request log by SQL over its health columns
(:func:`select_requests`) and added to a dataset as a PENDING example (:func:`to_dataset`): the request's
turns, with the model's answer as a draft for the reviewer to correct in the Data pane. The example's
source is ``production`` and its review state keeps the request id, time, server, model and why it was
picked, so the same request is never sent twice to one dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbench.data.formats import Shape
from workbench.errors import DataError, ServeError
from workbench.serve.log import LoggedRequest, RequestLog

FILTERS = ("failed", "invalid", "refusal", "empty", "truncated", "error", "all")
"""What :func:`select_requests` can pick: ``failed`` is any of the others but ``all``."""

_WHERE = {
    "failed": "(status != 200 OR valid = 0 OR refusal = 1 OR empty = 1 OR truncated = 1)",
    "invalid": "valid = 0",
    "refusal": "refusal = 1",
    "empty": "empty = 1",
    "truncated": "truncated = 1",
    "error": "status != 200",
    "all": "1 = 1",
}
_NEEDS_HEALTH = {"invalid", "refusal", "empty", "truncated"}
SOURCE = "production"


@dataclass
class ToDataset:
    """What :func:`to_dataset` did."""

    added: list[int]
    """The new examples' ids in the dataset session (in the order of the requests)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(request id, why it was not added): already in the dataset, no user turn, a shape that cannot hold it."""
    dataset: Path = Path()


def select_requests(
    log_path: Path,
    *,
    filter: str = "failed",
    since: float | None = None,
    until: float | None = None,
    model: str | None = None,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
    predicate: Callable[[LoggedRequest], bool] | None = None,
) -> list[LoggedRequest]:
    """The logged requests a filter picks, newest first.

    Everything but ``predicate`` is SQL over the log's columns (a million-row log is not parsed row by
    row); ``predicate`` is the caller's own test on each picked request (the monitor's "drifted" or
    "judge below N"), applied before ``limit``. ``until`` is exclusive, ``since`` inclusive.
    """
    if filter not in _WHERE:
        raise DataError(f"filter {filter!r}: expected one of {', '.join(FILTERS)}")
    log_path = Path(log_path)
    if not log_path.is_file():
        raise ServeError(f"{log_path}: no request log here (has the server answered any request yet?)")
    with RequestLog(log_path, readonly=True) as log:
        where = [_WHERE[filter]]
        if not log.has_health:
            if filter in _NEEDS_HEALTH:
                raise ServeError(
                    f"{log_path}: a version 1 request log has no health columns, so filter {filter!r} cannot be "
                    "told; use 'error' or 'all', or a log written by a newer server"
                )
            if filter == "failed":
                where = [_WHERE["error"]]
        args: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time < ?")
            args.append(until)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if ids is not None:
            wanted = list(dict.fromkeys(ids))
            if not wanted:
                return []
            where.append(f"id IN ({', '.join('?' * len(wanted))})")
            args.extend(wanted)
        sql_limit = -1 if predicate is not None or limit is None else limit  # SQLite: -1 is no limit
        rows = log.matching(" AND ".join(where), args, order="time DESC, seq DESC", limit=sql_limit)
    if predicate is not None:
        rows = [r for r in rows if predicate(r)]
    return rows if limit is None else rows[:limit]


def why(request: LoggedRequest, schema: dict[str, Any] | None = None) -> str:
    """Which failures a request shows, in words (``invalid, truncated``); ``ok`` when none. With the task's
    ``schema``, an invalid answer says what the schema refused (``invalid ($.date: '19/08/2026' does not
    match ...)``): the reviewer sees what to correct."""
    reasons = []
    if request.status != 200:
        reasons.append(f"error {request.status}" + (f": {request.error}" if request.error else ""))
    if request.valid is False:
        reason = invalid_reason(request.response, schema)
        reasons.append(f"invalid ({reason})" if reason else "invalid")
    if request.refusal:
        reasons.append("refusal")
    for name in ("empty", "truncated"):
        if getattr(request, name):
            reasons.append(name)
    return ", ".join(reasons) or "ok"


def invalid_reason(response: str | None, schema: dict[str, Any] | None) -> str | None:
    """What the schema refuses in an answer (the eval's own check), None when it fits or cannot be told."""
    if response is None or not schema:
        return None
    from workbench.errors import WorkbenchError
    from workbench.eval.metrics import schema_valid

    try:
        return schema_valid(response, schema)[1]
    except WorkbenchError:
        return None


def _text(content: Any) -> str:
    """A message's content as text: OpenAI clients may send a list of parts (``{"type": "text", ...}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def answer_of(request: LoggedRequest) -> str:
    """The model's answer, the draft the reviewer corrects; "" when the request failed (there is none)."""
    if request.status != 200 or request.response is None:
        return ""
    return request.response


def example_row(
    request: LoggedRequest,
    shape: Shape,
    conversational: bool,
    *,
    system_prompt: str | None = None,
    path: Path | None = None,
) -> dict[str, Any]:
    """The request's turns and the model's answer (or "" when the request failed) as a row of this shape.

    ``system_prompt``: the training system prompt the server put first when the request had none
    (``params.default_system``); the caller resolves it from the serve dir's model refs. Without it such
    a request goes in without a system turn, as it was received.
    """
    from workbench.chat import conversation_row  # the one mapping of a conversation onto a shape

    messages = [
        {"role": str(m.get("role", "")), "content": _text(m.get("content"))}
        for m in request.messages
        if isinstance(m, dict)
    ]
    while messages and messages[-1]["role"] == "assistant":  # a client's prefill: the answer replaces it
        messages.pop()
    if not any(m["role"] == "user" for m in messages):
        raise DataError(f"request {request.id}: has no user turn, so it cannot become an example")
    has_system = any(m["role"] == "system" for m in messages)
    if not has_system and request.params.get("default_system") and system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    messages.append({"role": "assistant", "content": answer_of(request)})
    try:
        return conversation_row(messages, shape, conversational, path or Path("dataset"))
    except DataError as exc:
        raise DataError(f"request {request.id}: {exc}") from None


def source_info(
    request: LoggedRequest, *, server_id: str | None = None, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the example's review state keeps about the request it came from."""
    return {
        "request_id": request.id,
        "time": datetime.fromtimestamp(request.time, tz=timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "server_id": server_id or request.server_id,
        "model": request.model,
        "status": request.status,
        "why": why(request, schema),
    }


def sent_ids(examples: Sequence[Any]) -> set[str]:
    """The request ids already in a dataset (its ``production`` examples' source details)."""
    return {
        str(e.source_info["request_id"])
        for e in examples
        if e.source == SOURCE and e.source_info and e.source_info.get("request_id")
    }


def to_dataset(
    log_path: Path,
    dataset: Path,
    requests: Sequence[LoggedRequest],
    *,
    server_id: str | None = None,
    system_prompt: str | None = None,
    schema: dict[str, Any] | None = None,
) -> ToDataset:
    """Add the requests to a dataset as pending ``production`` examples, save it and close it.

    A request already in the dataset, or one that cannot become a row (no user turn, a shape that
    cannot hold it), is skipped with its reason; the others still go in. A dataset that is missing or
    read-only, or a log that does not exist, raises before anything is written.
    """
    from workbench.data.store import open_dataset

    log_path, dataset = Path(log_path), Path(dataset)
    if not log_path.is_file():
        raise ServeError(f"{log_path}: no request log here; the requests must come from a server's log")
    if not dataset.exists():
        raise DataError(f"{dataset}: no such dataset (pick one of the workspace's datasets, or create the file)")
    session = open_dataset(dataset)
    try:
        if session.readonly:
            raise DataError(f"{dataset}: cannot add production requests, the dataset is {session.readonly_reason}")
        have = sent_ids(session.visible())
        rows: list[dict[str, Any]] = []
        infos: list[dict[str, Any] | None] = []
        skipped: list[tuple[str, str]] = []
        for request in requests:
            if request.id in have:
                skipped.append((request.id, f"already in {dataset.name}"))
                continue
            try:
                row = example_row(
                    request, session.shape, session.conversational, system_prompt=system_prompt, path=dataset
                )
            except DataError as exc:
                skipped.append((request.id, str(exc)))
                continue
            problems = session.row_problems(row)
            if problems:
                skipped.append(
                    (request.id, f"request {request.id}: does not fit {dataset.name}: {'; '.join(problems)}")
                )
                continue
            have.add(request.id)
            rows.append(row)
            infos.append(source_info(request, server_id=server_id, schema=schema))
        added = session.add(rows, status="pending", source=SOURCE, source_info=infos) if rows else []
        if added:
            session.save()
        return ToDataset(added=added, skipped=skipped, dataset=dataset)
    finally:
        session.close()


__all__ = [
    "FILTERS",
    "SOURCE",
    "ToDataset",
    "answer_of",
    "example_row",
    "invalid_reason",
    "select_requests",
    "sent_ids",
    "source_info",
    "to_dataset",
    "why",
]
