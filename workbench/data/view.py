"""One example of any shape seen as a conversation: what critique, dedup and the Data pane read.

A row may be alpaca, ShareGPT, prompt/completion, preference... and may even be
half broken while someone edits it. :func:`view` never raises: it gives the
turns it can find (system, user, assistant, tool), the final answer, and for
preference data the chosen and rejected answers beside the shared prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.data.formats import SHAREGPT_ROLES, Shape


@dataclass(frozen=True)
class Turn:
    role: str  # system, user, assistant, tool (other roles are kept as written)
    content: str


@dataclass(frozen=True)
class ExampleView:
    """The parts of an example, as text."""

    prompt: tuple[Turn, ...]
    """Every turn before the answer (system and user turns, earlier exchanges)."""
    response: tuple[Turn, ...]
    """The answer being trained on: the final assistant turn(s); for preference data, the chosen answer."""
    rejected: tuple[Turn, ...] | None = None
    """For preference data, the rejected answer; None otherwise."""
    label: bool | None = None
    """For unpaired preference data, whether the completion is desirable."""
    problems: tuple[str, ...] = field(default_factory=tuple)
    """What could not be read (a missing field, a message that is not an object): the row is shown anyway."""

    @property
    def system(self) -> str:
        return "\n".join(t.content for t in self.prompt if t.role == "system")

    @property
    def prompt_text(self) -> str:
        """The prompt's non-system turns, joined by blank lines."""
        return "\n\n".join(t.content for t in self.prompt if t.role != "system")

    @property
    def response_text(self) -> str:
        return "\n\n".join(t.content for t in self.response)

    @property
    def rejected_text(self) -> str:
        return "\n\n".join(t.content for t in self.rejected or ())

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The whole conversation in order (prompt, then the answer)."""
        return self.prompt + self.response

    @property
    def is_preference(self) -> bool:
        return self.rejected is not None

    def text(self) -> str:
        """Everything a reader sees, for search and near-duplicate detection."""
        parts = [t.content for t in self.turns] + [t.content for t in self.rejected or ()]
        return "\n".join(parts)


def as_text(value: Any) -> str:
    """A content value as text: strings as they are, lists of parts joined, other values as JSON-ish."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # multimodal content parts: [{"type": "text", "text": ...}]
        out = []
        for part in value:
            if isinstance(part, Mapping):
                out.append(str(part.get("text") if part.get("text") is not None else f"<{part.get('type', 'part')}>"))
            else:
                out.append(str(part))
        return "\n".join(out)
    return str(value)


def _turns(value: Any, default_role: str, problems: list[str], name: str) -> tuple[Turn, ...]:
    if value is None:
        problems.append(f"no {name!r}")
        return ()
    if isinstance(value, str):
        return (Turn(default_role, value),)
    if not isinstance(value, list):
        problems.append(f"{name!r} is neither text nor a list of messages")
        return (Turn(default_role, as_text(value)),)
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            problems.append(f"{name}[{i}] is not a message object")
            out.append(Turn(default_role, as_text(message)))
            continue
        role = message.get("role")
        if role is None and message.get("from") is not None:
            role = SHAREGPT_ROLES.get(str(message["from"]), str(message["from"]))
        content = message.get("content") if "content" in message else message.get("value")
        if message.get("tool_calls") and not content:
            content = f"<tool calls: {message['tool_calls']}>"
        out.append(Turn(str(role or default_role), as_text(content)))
    return tuple(out)


def _split_final(turns: tuple[Turn, ...]) -> tuple[tuple[Turn, ...], tuple[Turn, ...]]:
    """Prompt and answer of a conversation: the answer is the trailing assistant turn(s)."""
    end = len(turns)
    start = end
    while start > 0 and turns[start - 1].role == "assistant":
        start -= 1
    return turns[:start], turns[start:]


def view(row: Any, shape: Shape | str | None = None) -> ExampleView:
    """See a row as a conversation; ``shape`` picks the fields (guessed from the keys when None)."""
    problems: list[str] = []
    if not isinstance(row, Mapping):
        return ExampleView((), (Turn("assistant", as_text(row)),), problems=("the row is not an object",))
    if shape is None:
        from workbench.data.formats import classify_row

        shape = classify_row(row) or Shape.LANGUAGE_MODELING
    shape = Shape.parse(shape)
    if shape in (Shape.ALPACA, Shape.DOLLY):
        extra_field, answer = ("input", "output") if shape is Shape.ALPACA else ("context", "response")
        instruction = as_text(row.get("instruction"))
        extra = as_text(row.get(extra_field))
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        prompt = ((Turn("system", as_text(row["system"])),) if row.get("system") else ()) + (Turn("user", user),)
        if "instruction" not in row:
            problems.append("no 'instruction'")
        if answer not in row:
            problems.append(f"no '{answer}'")
        return ExampleView(prompt, (Turn("assistant", as_text(row.get(answer))),), problems=tuple(problems))
    if shape is Shape.SHAREGPT:
        prompt, response = _split_final(_turns(row.get("conversations"), "user", problems, "conversations"))
        return ExampleView(prompt, response, problems=tuple(problems))
    if shape is Shape.LANGUAGE_MODELING:
        if row.get("messages") is not None:
            prompt, response = _split_final(_turns(row.get("messages"), "user", problems, "messages"))
            return ExampleView(prompt, response, problems=tuple(problems))
        return ExampleView((), (Turn("text", as_text(row.get("text"))),), problems=tuple(problems))
    if shape is Shape.PROMPT_ONLY:
        return ExampleView(_turns(row.get("prompt"), "user", problems, "prompt"), (), problems=tuple(problems))
    if shape in (Shape.PROMPT_COMPLETION, Shape.UNPAIRED_PREFERENCE):
        prompt = _turns(row.get("prompt"), "user", problems, "prompt")
        response = _turns(row.get("completion"), "assistant", problems, "completion")
        label = bool(row["label"]) if shape is Shape.UNPAIRED_PREFERENCE and "label" in row else None
        return ExampleView(prompt, response, label=label, problems=tuple(problems))
    if shape is Shape.PREFERENCE:
        prompt = _turns(row.get("prompt"), "user", problems, "prompt")
        chosen = _turns(row.get("chosen"), "assistant", problems, "chosen")
        rejected = _turns(row.get("rejected"), "assistant", problems, "rejected")
        return ExampleView(prompt, chosen, rejected, problems=tuple(problems))
    # implicit preference: the shared opening is the prompt
    from workbench.data.normalize import extract_prompt

    chosen_raw, rejected_raw = row.get("chosen"), row.get("rejected")
    if chosen_raw is None or rejected_raw is None or type(chosen_raw) is not type(rejected_raw):
        chosen = _turns(chosen_raw, "assistant", problems, "chosen")
        rejected = _turns(rejected_raw, "assistant", problems, "rejected")
        return ExampleView((), chosen, rejected, problems=tuple(problems))
    try:
        prompt_raw, chosen_raw, rejected_raw = extract_prompt(chosen_raw, rejected_raw)
    except Exception:
        prompt_raw = [] if isinstance(chosen_raw, list) else ""
    prompt = _turns(prompt_raw, "user", problems, "prompt") if prompt_raw else ()
    chosen = _turns(chosen_raw, "assistant", problems, "chosen")
    rejected = _turns(rejected_raw, "assistant", problems, "rejected")
    return ExampleView(prompt, chosen, rejected, problems=tuple(problems))
