"""Dataset shapes: what they are called, how to recognise them, how to check a row.

The shapes are TRL's dataset types (each "standard", with strings, or
"conversational", with lists of ``{role, content}`` messages) plus the alpaca
and ShareGPT layouts people bring from elsewhere. Detection votes over rows so
a few broken rows cannot change what the whole file is taken to be.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from workbench.errors import DataError


class Shape(str, Enum):
    """The layout of a dataset's rows; the value is the name users type."""

    LANGUAGE_MODELING = "language_modeling"
    PROMPT_ONLY = "prompt_only"
    PROMPT_COMPLETION = "prompt_completion"
    PREFERENCE = "preference"
    IMPLICIT_PREFERENCE = "implicit_preference"
    UNPAIRED_PREFERENCE = "unpaired_preference"
    ALPACA = "alpaca"
    DOLLY = "dolly"
    SHAREGPT = "sharegpt"

    @property
    def label(self) -> str:
        """The name used in messages, e.g. ``prompt-completion``."""
        return _LABELS[self]

    def fields(self, conversational: bool = False) -> tuple[str, ...]:
        """The fields a row of this shape carries (``input`` of alpaca is optional)."""
        if self is Shape.LANGUAGE_MODELING:
            return ("messages",) if conversational else ("text",)
        return _FIELDS[self]

    @classmethod
    def parse(cls, value: Shape | str) -> Shape:
        """A shape from its name, with an error that lists the names accepted."""
        try:
            return cls(value.strip().lower().replace("-", "_") if isinstance(value, str) else value)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise DataError(f"unknown dataset shape {value!r}; expected one of: {names}") from None


_LABELS = {
    Shape.LANGUAGE_MODELING: "language-modeling",
    Shape.PROMPT_ONLY: "prompt-only",
    Shape.PROMPT_COMPLETION: "prompt-completion",
    Shape.PREFERENCE: "preference",
    Shape.IMPLICIT_PREFERENCE: "implicit-prompt preference",
    Shape.UNPAIRED_PREFERENCE: "unpaired preference",
    Shape.ALPACA: "alpaca",
    Shape.DOLLY: "Dolly",
    Shape.SHAREGPT: "ShareGPT",
}

_FIELDS: dict[Shape, tuple[str, ...]] = {
    Shape.PROMPT_ONLY: ("prompt",),
    Shape.PROMPT_COMPLETION: ("prompt", "completion"),
    Shape.PREFERENCE: ("prompt", "chosen", "rejected"),
    Shape.IMPLICIT_PREFERENCE: ("chosen", "rejected"),
    Shape.UNPAIRED_PREFERENCE: ("prompt", "completion", "label"),
    Shape.ALPACA: ("instruction", "input", "output"),
    Shape.DOLLY: ("instruction", "context", "response"),
    Shape.SHAREGPT: ("conversations",),
}

OPTIONAL_FIELDS = frozenset({"input", "context"})
"""Fields a row may leave out (alpaca's ``input``, Dolly's ``context``)."""

# Most specific first: a row with prompt, chosen and rejected is a preference
# row, not a prompt-only one.
_SIGNATURES: list[tuple[Shape, frozenset[str]]] = [
    (Shape.SHAREGPT, frozenset({"conversations"})),
    (Shape.ALPACA, frozenset({"instruction", "output"})),
    (Shape.DOLLY, frozenset({"instruction", "response"})),
    (Shape.PREFERENCE, frozenset({"prompt", "chosen", "rejected"})),
    (Shape.IMPLICIT_PREFERENCE, frozenset({"chosen", "rejected"})),
    (Shape.UNPAIRED_PREFERENCE, frozenset({"prompt", "completion", "label"})),
    (Shape.PROMPT_COMPLETION, frozenset({"prompt", "completion"})),
    (Shape.LANGUAGE_MODELING, frozenset({"messages"})),
    (Shape.LANGUAGE_MODELING, frozenset({"text"})),
    (Shape.PROMPT_ONLY, frozenset({"prompt"})),
]
_PRIORITY = {shape: i for i, (shape, _) in reversed(list(enumerate(_SIGNATURES)))}

ROLES = ("system", "user", "assistant", "tool")
"""Roles a ``{role, content}`` message may have."""

SHAREGPT_ROLES: dict[str, str] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
}
"""ShareGPT ``from`` values and the role each becomes."""

_TEXT_FIELDS = frozenset({"text", "instruction", "input", "output", "context", "response"})
_MESSAGE_FIELDS = frozenset({"messages", "conversations"})


def present_keys(row: Mapping[str, Any]) -> set[str]:
    """Keys with a value: Parquet and datasets rows carry ``None`` for absent fields."""
    return {key for key, value in row.items() if value is not None}


def classify_row(row: Mapping[str, Any]) -> Shape | None:
    """The shape one row's keys point to, or None when they match none."""
    keys = present_keys(row)
    for shape, needed in _SIGNATURES:
        if needed <= keys:
            return shape
    return None


def detect_conversational(rows: Iterable[Any], shape: Shape) -> bool:
    """Whether most rows of ``shape`` hold message lists rather than strings."""
    if shape in (Shape.ALPACA, Shape.DOLLY, Shape.SHAREGPT):
        return shape is Shape.SHAREGPT
    votes = Counter[bool]()
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        if shape is Shape.LANGUAGE_MODELING:
            if row.get("messages") is not None:
                votes[True] += 1
            elif row.get("text") is not None:
                votes[False] += 1
            continue
        value = next((row[f] for f in shape.fields() if f != "label" and row.get(f) is not None), None)
        if value is not None:
            votes[isinstance(value, list)] += 1
    return votes[True] > votes[False]


# Every shape as it is shown in the "cannot tell the shape" error.
_KNOWN = [(Shape.LANGUAGE_MODELING, False), (Shape.LANGUAGE_MODELING, True)] + [
    (s, s is Shape.SHAREGPT) for s in Shape if s is not Shape.LANGUAGE_MODELING
]


def detect_shape(rows: Iterable[Any]) -> tuple[Shape, bool]:
    """The shape most rows share, and whether the data is conversational.

    Rows vote by their keys, so a handful of rows with a missing field are
    reported as bad rows of the common shape rather than changing it.
    """
    rows = list(rows)
    votes = Counter(shape for row in rows if isinstance(row, Mapping) and (shape := classify_row(row)))
    if not votes:
        keys = sorted({k for row in rows if isinstance(row, Mapping) for k in present_keys(row)})
        known = "; ".join(f"{s.label} ({describe_fields(s, c)})" for s, c in _KNOWN)
        found = ", ".join(keys[:20]) or "none"
        raise DataError(f"cannot tell the dataset's shape: rows have the keys {found}; expected one of: {known}")
    shape = max(votes, key=lambda s: (votes[s], -_PRIORITY[s]))
    return shape, detect_conversational(rows, shape)


def describe_fields(shape: Shape, conversational: bool) -> str:
    """``prompt, completion`` or ``instruction, input (optional), output``."""
    return ", ".join(f + " (optional)" if f in OPTIONAL_FIELDS else f for f in shape.fields(conversational))


def describe(shape: Shape, conversational: bool) -> str:
    """The phrase error messages use, e.g. ``conversational prompt-completion shape: prompt, completion``."""
    kind = "conversational " if conversational and shape not in (Shape.SHAREGPT, Shape.ALPACA, Shape.DOLLY) else ""
    return f"{kind}{shape.label} shape: {describe_fields(shape, conversational)}"


def type_name(value: Any) -> str:
    """A JSON-flavoured type name for messages: str, int, bool, list, object, null."""
    if value is None:
        return "null"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def validate_row(row: Any, shape: Shape, conversational: bool) -> list[tuple[str | None, str]]:
    """Every problem of one row as ``(field, message)``; empty when the row is fine.

    Each message says what was expected and names the shape and its fields,
    because the reader may not know which shape the file was taken to be.
    """
    ctx = describe(shape, conversational)
    if not isinstance(row, Mapping):
        return [(None, f"expected an object with fields ({ctx}), got {type_name(row)}")]
    problems: list[tuple[str | None, str]] = []
    for field in shape.fields(conversational):
        value = row.get(field)
        if value is None:
            if field not in OPTIONAL_FIELDS:
                problems.append((field, f"missing, expected {_expected(field, conversational)} ({ctx})"))
            continue
        problem = _check_field(field, value, shape, conversational, ctx)
        if problem:
            problems.append((field, problem))
    return problems


def _expected(field: str, conversational: bool) -> str:
    if field == "label":
        return "true or false"
    if field in _TEXT_FIELDS:
        return "a string"
    if field in _MESSAGE_FIELDS:
        return "a list of messages"
    return "a list of messages" if conversational else "a string"


def _check_field(field: str, value: Any, shape: Shape, conversational: bool, ctx: str) -> str | None:
    if field == "label":
        return None if isinstance(value, bool) else f"expected true or false ({ctx}), got {type_name(value)}"
    if field in _TEXT_FIELDS:
        return None if isinstance(value, str) else f"expected a string ({ctx}), got {type_name(value)}"
    if field in _MESSAGE_FIELDS:
        return check_messages(value, ctx, sharegpt=shape is Shape.SHAREGPT)
    if not isinstance(value, (str, list)):
        return f"expected a string or a list of messages ({ctx}), got {type_name(value)}"
    if conversational and isinstance(value, str):
        return f"expected a list of messages like the other rows ({ctx}), got a string"
    if not conversational and isinstance(value, list):
        return f"expected a string like the other rows ({ctx}), got a list"
    return check_messages(value, ctx) if conversational else None


def check_messages(value: Any, ctx: str, *, sharegpt: bool = False) -> str | None:
    """The first problem in a list of messages, or None.

    ``{role, content}`` and ShareGPT's ``{from, value}`` are both accepted in
    either place; roles must be ones a chat template knows.
    """
    if not isinstance(value, list):
        return f"expected a list of messages ({ctx}), got {type_name(value)}"
    if not value:
        return f"expected at least one message ({ctx}), got an empty list"
    for n, message in enumerate(value, 1):
        if not isinstance(message, Mapping):
            return f"message {n}: expected an object with role and content ({ctx}), got {type_name(message)}"
        keys = present_keys(message)
        use_from = "role" not in keys and ("from" in keys or sharegpt)
        role_key, content_key = ("from", "value") if use_from else ("role", "content")
        role, content = message.get(role_key), message.get(content_key)
        if role is None:
            pair = "from and value" if sharegpt else "role and content"
            return f"message {n}: missing {role_key!r}, expected {pair} ({ctx}); it has {_keys(message)}"
        allowed = SHAREGPT_ROLES if role_key == "from" else ROLES
        if not isinstance(role, str) or role not in allowed:
            return f"message {n}: unknown {role_key} {role!r}, expected one of {', '.join(allowed)} ({ctx})"
        if content is None and message.get("tool_calls") is None:
            return f"message {n}: missing {content_key!r}, expected a string ({ctx}); it has {_keys(message)}"
        if content is not None and not isinstance(content, (str, list)):
            return f"message {n}: {content_key!r} expected a string ({ctx}), got {type_name(content)}"
    return None


def _keys(message: Mapping[str, Any]) -> str:
    keys = sorted(present_keys(message))
    return "keys " + ", ".join(keys) if keys else "no keys"
