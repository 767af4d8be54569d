"""Synthetic data: a teacher model writes varied new examples from seed examples.

Each seed row is shown to the teacher as JSON, in the dataset's own shape, with
a request for N new examples of the same shape that vary the situation and the
wording but keep the task and the answer format. Every candidate the reply
holds is checked like a loaded row (:func:`workbench.data.formats.validate_row`)
and against exact copies; what fails is reported with its reason, never
dropped silently. The valid rows come back for review: the caller adds them as
pending, nothing here accepts them into the dataset.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workbench.data.formats import Shape, describe, detect_conversational, validate_row
from workbench.errors import DataError, WorkbenchError
from workbench.llm import LLM, Messages, Progress, Usage, canonical_json, extract_json

INVALID, DUPLICATE, UNPARSED = "invalid", "duplicate", "unparsed"
"""Why a candidate was rejected: it does not fit the shape, it is a copy, or the reply held no example at all."""


@dataclass(frozen=True)
class SynthRow:
    """A new example, valid for the dataset's shape, waiting for review."""

    seed: int
    """The index of the seed row it was made from."""
    row: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A candidate that was not kept, and why."""

    seed: int
    kind: str
    """``invalid``, ``duplicate`` or ``unparsed``."""
    reason: str
    """For the user: the shape problems, ``duplicate: a copy of its seed (row 3)``, ``no JSON in the reply``."""
    candidate: Any = None
    """The candidate as the model wrote it; None when nothing could be read from the reply."""
    raw: str = ""
    """The whole reply, kept when nothing could be read from it."""


@dataclass
class SynthResult:
    """New rows for review, the rejected candidates with reasons, and what it cost."""

    model: str
    rows: list[SynthRow]
    rejected: list[Rejected]
    usage: Usage
    cancelled: bool = False
    requested: int = 0
    """How many seeds were asked about (more than were answered when cancelled)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "cancelled": self.cancelled,
            "requested": self.requested,
            "rows": [{"seed": r.seed, "row": r.row} for r in self.rows],
            "rejected": [asdict(r) for r in self.rejected],
            "usage": self.usage.model_dump(),
        }


def generate_variations(
    rows: Sequence[Any],
    shape: Shape | str,
    llm: LLM,
    *,
    seeds: Sequence[int],
    per_seed: int = 3,
    instructions: str = "",
    workers: int = 4,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SynthResult:
    """Ask the teacher ``llm`` for ``per_seed`` variations of each seed row.

    ``instructions`` are added to the request (``make the customers angrier``).
    The request's ``max_tokens`` is raised, when needed, to fit ``per_seed``
    examples as long as the longest seed. Candidates that do not fit the
    shape, or copy the seed, any dataset row or another candidate, are
    rejected with their reason. ``progress(done, total)`` and ``cancel`` work
    as in :meth:`LLM.complete_many`; a cancelled run returns what was done.
    """
    shape = Shape.parse(shape)
    if per_seed < 1:
        raise WorkbenchError(f"per_seed must be at least 1, not {per_seed}")
    bad = [i for i in seeds if not 0 <= i < len(rows)]
    if bad:
        raise DataError(f"seed index {bad[0]} is out of range: the dataset has {len(rows)} rows")
    seeds = list(dict.fromkeys(seeds))
    conversational = detect_conversational(rows, shape)
    shown = [json.dumps(rows[i], ensure_ascii=False) for i in seeds]
    requests = [_request(text, shape, conversational, per_seed, instructions) for text in shown]
    longest = max((len(text) for text in shown), default=0)
    max_tokens = max(llm.max_tokens, per_seed * (longest // 3 + 64))
    replies = llm.complete_many(requests, workers=workers, progress=progress, cancel=cancel, max_tokens=max_tokens)

    known = {canonical_json(row): f"row {i}" for i, row in enumerate(rows)}
    result = SynthResult(llm.model, [], [], Usage.of(replies), requested=len(seeds))
    for seed, reply in zip(seeds, replies, strict=True):
        if reply is None:
            result.cancelled = True
            continue
        candidates = _candidates(reply.text, shape, conversational)
        if not candidates:
            cut = "; the reply was cut off at max_tokens" if reply.truncated else ""
            result.rejected.append(Rejected(seed, UNPARSED, f"no JSON examples in the reply{cut}", raw=reply.text))
        for candidate in candidates:
            problems = validate_row(candidate, shape, conversational)
            if problems:
                reason = "; ".join(f"field {f!r}: {m}" if f else m for f, m in problems)
                if reply.truncated:
                    reason += " (the reply was cut off at max_tokens)"
                result.rejected.append(Rejected(seed, INVALID, reason, candidate))
                continue
            key = canonical_json(candidate)
            if key in known:
                copy = f"its seed (row {seed})" if key == canonical_json(rows[seed]) else known[key]
                result.rejected.append(Rejected(seed, DUPLICATE, f"duplicate: a copy of {copy}", candidate))
                continue
            known[key] = "another new example"
            result.rows.append(SynthRow(seed, dict(candidate)))
    return result


def _request(seed_json: str, shape: Shape, conversational: bool, count: int, instructions: str) -> Messages:
    system = (
        "You write new training examples for fine-tuning a language model. Every new example is one JSON object "
        f"with exactly the fields of the example you are given ({describe(shape, conversational)}). Keep the task, "
        "any system message and the format of the answer exactly as in the example; vary everything else: the "
        "situation, names, details, wording, length and difficulty. Each answer must be correct for its own prompt. "
        f"Reply with a JSON array of {count} objects and nothing else."
    )
    extra = f"\n\nAlso: {instructions.strip()}" if instructions.strip() else ""
    user = f"Example:\n{seed_json}{extra}\n\nWrite {count} new, different examples as a JSON array."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _candidates(text: str, shape: Shape, conversational: bool) -> list[Any]:
    """Every example in a reply: items of a JSON array, JSON lines, fenced blocks, or one wrapped list."""
    fields = set(shape.fields(conversational))
    found: list[Any] = []
    for value in extract_json(text):
        if isinstance(value, list):
            found += value
        elif isinstance(value, Mapping) and not fields & set(value) and (inner := _single_list(value)) is not None:
            found += inner  # {"examples": [...]}
        else:
            found.append(value)
    return found


def _single_list(value: Mapping[str, Any]) -> list[Any] | None:
    """The list inside a wrapper object like ``{"examples": [...]}``; None when it is not one."""
    lists = [v for v in value.values() if isinstance(v, list)]
    return lists[0] if len(value) == 1 and len(lists) == 1 else None
