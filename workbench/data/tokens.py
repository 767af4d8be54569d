"""What the model is trained on: an example rendered through the chat template, token by token,
with the tokens that carry loss told from those that don't, and the cut at max_length.

This follows TRL's SFT preparation (trl 1.16 ``SFTTrainer._prepare_dataset``) for the rows
:func:`workbench.train.dataprep.prepare_data` makes:

* conversational prompt + completion (the default for chat data: the last assistant turn is the
  completion): the prompt is rendered with the generation prompt, prompt + completion without;
  the completion starts where the two token lists part, and only it carries loss;
* a conversation without a final assistant turn, or plain text: every token carries loss (text
  gets the EOS token appended, as TRL does);
* the sequence is cut at ``max_length``: what lies beyond is never seen.

:func:`mask_findings` turns what a rendering shows into findings for a whole set: a template
that trains on the prompt, drops the system turn, cuts the answer, or renders the prompt
differently alone than before its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import DataError


@dataclass
class TokenView:
    """One example as the trainer sees it."""

    ids: list[int]
    pieces: list[str]  # each token decoded on its own
    loss: list[bool]  # whether the token is a label (carries loss)
    max_length: int | None
    prompt_tokens: int  # tokens before the completion (0 when every token carries loss)
    problems: list[str] = field(default_factory=list)

    @property
    def cut(self) -> int | None:
        """The index of the first token the trainer never sees, or None when the example fits."""
        return self.max_length if self.max_length is not None and len(self.ids) > self.max_length else None

    @property
    def loss_tokens(self) -> int:
        """Tokens that carry loss within max_length."""
        return sum(self.loss[: self.cut])

    @property
    def dropped_loss_tokens(self) -> int:
        """Answer tokens beyond the cut: the part of the answer never trained on."""
        return sum(self.loss[self.cut :]) if self.cut is not None else 0


def _ids(encoded: Any) -> list[int]:
    """Token ids from apply_chat_template / a tokenizer call, whatever container it returns."""
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def token_view(row: Mapping[str, Any], tokenizer: Any, max_length: int | None) -> TokenView:
    """A normalized SFT row (``messages``, ``prompt``/``completion`` or ``text``) as the trainer tokenizes it."""
    from workbench.train.dataprep import completion_only

    row = completion_only(dict(row))
    problems: list[str] = []
    if "prompt" in row and isinstance(row["prompt"], list):
        if getattr(tokenizer, "chat_template", None) is None:
            raise DataError("the tokenizer has no chat template, so conversational rows cannot be rendered")
        prompt = _ids(tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True))
        ids = _ids(tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True))
        start = _common_prefix(prompt, ids)
        if start < len(prompt):
            lost = tokenizer.decode(prompt[start:])
            problems.append(
                f"the prompt renders differently alone than before its answer: {lost!r} is left out of training"
            )
        loss = [False] * start + [True] * (len(ids) - start)
        system = [m.get("content") for m in row["prompt"] if m.get("role") == "system" and m.get("content")]
        rendered = tokenizer.decode(ids)
        for text in system:
            if str(text).strip() and str(text).strip() not in rendered:
                problems.append("the chat template drops the system turn: its text is not in the rendering")
    elif "messages" in row:
        ids = _ids(tokenizer.apply_chat_template(row["messages"], tokenize=True))
        loss, start = [True] * len(ids), 0
        if any(m.get("role") != "assistant" for m in row["messages"]):
            problems.append("trains on the prompt: no final assistant turn to split off, so every token carries loss")
    else:
        text = str(row.get("text", ""))
        eos = getattr(tokenizer, "eos_token", None)
        if eos and not text.endswith(eos):
            text += eos
        ids = _ids(tokenizer(text, add_special_tokens=False))
        loss, start = [True] * len(ids), 0
    view = TokenView(ids, [tokenizer.decode([i]) for i in ids], loss, max_length, start, problems)
    if view.cut is not None and view.dropped_loss_tokens:
        if view.loss_tokens == 0:
            view.problems.append(f"max_length {max_length} cuts the whole answer: nothing of it is trained on")
        else:
            view.problems.append(
                f"max_length {max_length} cuts the answer: {view.dropped_loss_tokens} of its "
                f"{view.loss_tokens + view.dropped_loss_tokens} tokens are never trained on"
            )
    return view


def mask_findings(views: Sequence[TokenView]) -> list[tuple[str, list[int]]]:
    """Each problem the renderings show, with the examples (indexes) that have it, most common first."""
    found: dict[str, list[int]] = {}
    for i, view in enumerate(views):
        for problem in view.problems:
            key = problem.split(":")[0]
            found.setdefault(key, []).append(i)
    return sorted(found.items(), key=lambda kv: -len(kv[1]))
