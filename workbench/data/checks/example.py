"""One row as the dataset critic sees it, and the text helpers its checks share.

:class:`Example` wraps :func:`~workbench.data.view.view` with what several
checks need: whether the row is a chat conversation, what format its answer
has (JSON object, list, prose, a placeholder...) and the answer parsed when it
is JSON. Everything is computed once per row, so the checks stay cheap; the
view itself is dropped once the one-example checks are done with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from workbench.data.checks.lang import detect
from workbench.data.checks.text import PROMPT, REJECTED, RESPONSE, SYSTEM, words
from workbench.data.formats import Shape
from workbench.data.view import ExampleView, Turn, view

# -- placeholders -------------------------------------------------------------------

_PLACEHOLDERS = frozenset(
    {
        "n/a",
        "na",
        "n.a",
        "todo",
        "to do",
        "tbd",
        "tba",
        "tbc",
        "fixme",
        "xxx",
        "placeholder",
        "no output",
        "nooutput",
        "no_output",
        "no input",
        "noinput",
        "no_input",
        "no response",
        "no answer",
        "output",
        "answer",
        "response",
        "answer here",
        "your answer here",
        "insert answer here",
        "insert output here",
        "to be done",
        "to be determined",
        "lorem ipsum",
        "not available",
        "not applicable",
    }
)
"""Answers that are a stand-in for an answer: an error wherever they are trained on."""
_MAYBE_PLACEHOLDERS = frozenset({"none", "null", "nil", "nan", "undefined", "empty", "blank", "missing"})
"""Answers that are placeholders in most datasets but can be a real answer ("Is there a bug?" "None.")."""
_WRAPPING = " \t\n<>[](){}\"'`*_#:"
_PREFIX_PLACEHOLDER = re.compile(r"(?:todo|tbd|fixme|xxx)\b\W", re.IGNORECASE)


def placeholder_severity(text: str) -> str | None:
    """``error`` when ``text`` is a placeholder (``N/A``, ``<No Output>``, ``TODO``, ``...``),
    ``warning`` when it may be one (``none``, ``null``), None for a real answer."""
    if len(text) > 48 and len(text.strip()) > 48:
        return None
    flat = " ".join(text.lower().split())
    if not flat or len(flat) > 48:
        return None
    core = flat.strip(_WRAPPING).rstrip(".").strip(_WRAPPING)
    if not core:
        return "error"  # only punctuation: '...', '…', '-', '?'
    if core in _PLACEHOLDERS or all(not c.isalnum() for c in core):
        return "error"
    if core in _MAYBE_PLACEHOLDERS:
        return "warning"
    if _PREFIX_PLACEHOLDER.match(core):
        return "error"  # 'TODO: write the answer'
    return None


# -- output formats -----------------------------------------------------------------

FORMATS = ("none", "empty", "placeholder", "json object", "json array", "json (invalid)", "code", "list", "prose")
"""How an answer is written, as the summary counts it (``none``: the row has no answer turn)."""

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)\n?```", re.DOTALL)
LIST_ITEM = re.compile(r"^[ \t]*([-*•+]|\d{1,3}[.)])[ \t]+\S", re.MULTILINE)
"""A list item at the start of a line; group 1 is its marker."""
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \w[\w.]* import |#include|function\b|(?:public|private|static) |return\b"
    r"|(?:if|for|while)\s*\(|SELECT\b|[}\]]\s*;?$|.*[;{]\s*$)"
)


def classify_output(text: str) -> tuple[str, Any]:
    """The answer's format (one of :data:`FORMATS`) and, for JSON, the parsed value."""
    stripped = text.strip()
    if not stripped:
        return "empty", None
    if placeholder_severity(stripped):
        return "placeholder", None
    body = stripped
    fence = _FENCE.fullmatch(stripped)
    if fence:
        if fence.group(1).lower() not in ("", "json") or fence.group(2).lstrip()[:1] not in ("{", "["):
            return "code", None
        body = fence.group(2).strip()
    if body[0] == "{" or (body[0] == "[" and body[-1] == "]"):
        try:
            value = json.loads(body)
        except ValueError:
            return "json (invalid)", None
        if isinstance(value, dict):
            return "json object", value
        if isinstance(value, list):
            return "json array", value
    if "```" in stripped or _looks_like_code(stripped):
        return "code", None
    if len(LIST_ITEM.findall(stripped)) >= 2:
        return "list", None
    return "prose", None


def _looks_like_code(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= 3 and sum(1 for line in lines if _CODE_LINE.match(line)) >= 0.5 * len(lines)


def json_strings(value: Any) -> list[str]:
    """Every string value inside a parsed JSON value (not the keys), depth first."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(item.values()))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return out


# -- the example --------------------------------------------------------------------

_UNSET: Any = object()

_TOOL_PROMPT = re.compile(
    r"you (?:have|can) (?:access to|use|call) (?:the following |these )?(?:tools|functions|apis)"
    r"|<tools>|\bfunction[ _-]?call(?:ing|s)?\b|\btools? (?:available|you can (?:use|call))"
    r'|"parameters"\s*:|\bbrowse\(|\bsearch\(|\bfetch(?:_url|_page)?\(',
    re.IGNORECASE,
)


def declares_tools(row: Any, system: str, prompt: str) -> bool:
    """Whether the example hands the model tools: a ``tools``/``functions`` field, or a prompt defining them."""
    if isinstance(row, dict) and any(row.get(k) for k in ("tools", "functions")):
        return True
    text = f"{system}\n{prompt}"
    return ("tool" in text.lower() or "function" in text.lower() or "(" in text) and bool(_TOOL_PROMPT.search(text))


class Example:
    """A row seen by the critic: its view while the row checks run, then only what the dataset-wide checks need.

    Built with slots and plain strings and tuples, and without the view once :meth:`release` is called, so 100k of
    them give the garbage collector little to walk.
    """

    __slots__ = (
        "_language",
        "_natural",
        "_words",
        "chat",
        "declares_tools",
        "format",
        "has_rejected",
        "has_response",
        "index",
        "needs_answer",
        "parsed",
        "plain_text",
        "prompt_text",
        "response_text",
        "system",
        "undesirable",
        "view",
    )

    def __init__(self, index: int, row: Any, shape: Shape) -> None:
        self.index = index
        self.view: ExampleView = view(row, shape)
        """The row's turns; gone after :meth:`release`."""
        self.chat = _is_chat(row, shape)
        """Whether the trainer sees turns with roles (and so a chat template); False for plain text."""
        self.needs_answer = self.chat and shape is not Shape.PROMPT_ONLY
        """Whether the conversation must end on an answer to train on."""
        self.response_text = self.view.response_text
        self.has_response = bool(self.view.response)
        self.parsed: Any
        self.format, self.parsed = classify_output(self.response_text) if self.has_response else ("none", None)
        self.prompt_text = self.view.prompt_text
        """The user-side text (no system prompt)."""
        self.system = self.view.system
        self.declares_tools = declares_tools(row, self.system, self.prompt_text)
        """The example gives the model tools (a ``tools`` field, or a prompt that defines functions to call)."""
        self.has_rejected = self.view.rejected is not None
        self.plain_text = self.has_response and self.view.response[0].role == "text"
        """Plain text trained on as a whole (language modeling), not an answer to a prompt."""
        self.undesirable = self.view.label is False
        """An unpaired preference completion labelled false: a bad answer on purpose, so it sets no convention."""
        self._words: tuple[str, ...] | None = None
        self._language: str | None = _UNSET
        self._natural: str | None = None

    def release(self) -> None:
        """Drop the view: the one-example checks are done with it."""
        del self.view

    @property
    def answered(self) -> bool:
        """Whether the answer is real text: not missing, empty or a placeholder."""
        return self.format not in ("none", "empty", "placeholder")

    @property
    def user_turns(self) -> tuple[Turn, ...]:
        return tuple(t for t in self.view.prompt if t.role == "user")

    @property
    def prompt_words(self) -> tuple[str, ...]:
        """The user text's lower-cased words (a tuple of strings: the garbage collector stops tracking it)."""
        if self._words is None:
            self._words = tuple(words(self.prompt_text))
        return self._words

    @property
    def prompt_language(self) -> str | None:
        """The language of the user text (see :func:`~workbench.data.checks.lang.detect`), None if unclear."""
        if self._language is _UNSET:
            self._language = detect(self.prompt_text, self.prompt_words)
        return self._language

    @property
    def natural_response(self) -> str:
        """The answer's natural-language text: prose as is, the longer string values of JSON, nothing for code."""
        if self._natural is None:
            if self.format in ("prose", "list"):
                self._natural = self.response_text
            elif self.format in ("json object", "json array"):
                self._natural = "\n".join(s for s in json_strings(self.parsed) if s.count(" ") >= 2)
            else:
                self._natural = ""
        return self._natural

    def parts(self) -> Iterator[tuple[str, str]]:
        """``(field, text)`` for every turn: system, prompt, response and rejected."""
        for turn in self.view.prompt:
            yield (SYSTEM if turn.role == "system" else PROMPT), turn.content
        for turn in self.view.response:
            yield RESPONSE, turn.content
        for turn in self.view.rejected or ():
            yield REJECTED, turn.content


def _is_chat(row: Any, shape: Shape) -> bool:
    """Whether the trainer gets this row as messages (see normalize): all shapes but plain text."""
    if not isinstance(row, Mapping):
        return False
    if shape is Shape.LANGUAGE_MODELING:
        return row.get("messages") is not None
    if shape is Shape.IMPLICIT_PREFERENCE:
        return isinstance(row.get("chosen"), list)
    return True
