"""Turn rows of any known shape into what a TRL trainer takes.

TRL applies the chat template itself for conversational data, so everything
with chat structure becomes conversational here (``{"messages"}`` or
``{"prompt", "completion"}`` for SFT, ``{"prompt", "chosen", "rejected"}``
for DPO). Plain ``{"text"}`` stays text: it has no turns to template. The
output columns depend only on the shape and the method, so every row of a
dataset gets the same keys, as an Arrow table requires.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workbench.data.formats import SHAREGPT_ROLES, Shape
from workbench.data.hh import parse_hh, rows_are_hh
from workbench.errors import DataError

Row = dict[str, Any]
METHODS = ("sft", "dpo")


def normalize(
    rows: Sequence[Mapping[str, Any]],
    shape: Shape | str,
    method: str = "sft",
    system_prompt: str | None = None,
) -> list[Row]:
    """Rows in the form the trainer for ``method`` expects.

    Rows must already be valid for ``shape`` (see :func:`load_rows`). For SFT
    on unpaired preference data only rows labelled true are kept; the caller
    can compare lengths to report it (see :func:`normalization_notes`).
    ``system_prompt`` is prepended to conversations that have no system turn.
    """
    shape = Shape.parse(shape)
    convert = _converter(shape, method)
    if shape is Shape.IMPLICIT_PREFERENCE and rows_are_hh(list(rows)):
        convert = _hh_dpo if method == "dpo" else _hh_sft
    out: list[Row] = []
    bad: list[int] = []
    for i, row in enumerate(rows):
        new = convert(row)
        if new is None:
            continue
        if new.get("prompt") == []:
            bad.append(i)
            continue
        out.append(_with_system(new, system_prompt) if system_prompt else new)
    if bad:
        shown = ", ".join(map(str, bad[:20])) + (f" and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise DataError(
            f"rows {shown}: chosen and rejected share no leading messages, so no prompt can be taken from them; "
            "give these rows an explicit 'prompt' field"
        )
    return out


def normalization_notes(
    shape: Shape | str, method: str = "sft", rows: Sequence[Mapping[str, Any]] | None = None
) -> list[str]:
    """What normalizing ``shape`` for ``method`` changes, in words for the user (``rows``: to tell HH apart)."""
    shape = Shape.parse(shape)
    if shape is Shape.IMPLICIT_PREFERENCE and rows is not None and rows_are_hh(list(rows)):
        return [_HH_NOTES[method]]
    note = _NOTES.get((method, shape))
    return [note] if note else []


_HH_NOTES = {
    "sft": "HH transcripts (\n\nHuman: ... \n\nAssistant: ...) parsed into turns: each row trains on the "
    "chosen conversation; rejected is ignored",
    "dpo": "HH transcripts (\n\nHuman: ... \n\nAssistant: ...) parsed into turns: the turns chosen and "
    "rejected share are the prompt",
}


_NOTES = {
    ("sft", Shape.PREFERENCE): "preference data for SFT: each row trains on prompt + chosen; rejected is ignored",
    ("sft", Shape.IMPLICIT_PREFERENCE): "preference data for SFT: each row trains on the chosen conversation; "
    "rejected is ignored",
    ("sft", Shape.UNPAIRED_PREFERENCE): "unpaired preference data for SFT: only rows labelled true are kept, "
    "as prompt + completion",
    ("sft", Shape.ALPACA): "alpaca rows become a user turn (instruction, then input) and an assistant turn (output)",
    ("sft", Shape.DOLLY): "Dolly rows become a user turn (instruction, then its context) and an assistant turn "
    "(response); category is not trained on",
    ("sft", Shape.SHAREGPT): "ShareGPT turns mapped to roles: human->user, gpt->assistant, system, tool",
    ("dpo", Shape.IMPLICIT_PREFERENCE): "the prompt is taken as the leading messages that chosen and rejected share",
}


def to_hf_dataset(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Normalized rows as a ``datasets.Dataset`` for a TRL trainer."""
    from datasets import Dataset

    return Dataset.from_list([dict(r) for r in rows])


def render_chat(rows: Sequence[Mapping[str, Any]], tokenizer: Any) -> list[dict[str, str]]:
    """Normalized rows as the text the model will see, through the tokenizer's chat template.

    Uses TRL's own ``maybe_apply_chat_template`` so the split between prompt
    and completion (the part that gets the loss) matches the trainer's.
    Text rows come back unchanged as ``{"text": ...}``.
    """
    from trl import maybe_apply_chat_template

    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError("the tokenizer has no chat template, so conversational rows cannot be rendered")
    try:
        return [maybe_apply_chat_template(dict(row), tokenizer) for row in rows]
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"cannot apply the chat template: {err}") from err


def _converter(shape: Shape, method: str) -> Callable[[Mapping[str, Any]], Row | None]:
    if method not in METHODS:
        raise DataError(f"unknown training method {method!r}; expected one of {', '.join(METHODS)}")
    table = _SFT if method == "sft" else _DPO
    if shape in table:
        return table[shape]
    if method == "dpo":
        unpaired = shape is Shape.UNPAIRED_PREFERENCE
        hint = " (unpaired data with a true/false label suits KTO, not DPO)" if unpaired else ""
        raise DataError(
            "DPO needs preference pairs: rows with prompt, chosen and rejected "
            f"(or chosen and rejected sharing their opening turns); this data has the {shape.label} shape"
            f" ({', '.join(shape.fields(True))}){hint}"
        )
    raise DataError(
        "SFT needs a response to learn from (text, messages, prompt + completion, alpaca or ShareGPT rows); "
        f"this data has the {shape.label} shape ({', '.join(shape.fields())}), which suits online methods such as GRPO"
    )


def messages(value: str | Sequence[Mapping[str, Any]], role: str) -> list[Row]:
    """A field as a list of ``{role, content}`` messages; a string becomes one ``role`` turn.

    ShareGPT's ``from``/``value`` keys are mapped; other keys with a value
    (``tool_calls``, ``name``) are kept.
    """
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [_message(m) for m in value]


def _message(message: Mapping[str, Any]) -> Row:
    role = message["role"] if message.get("role") is not None else SHAREGPT_ROLES[message["from"]]
    content = message.get("content") if message.get("content") is not None else message.get("value")
    extra = {k: v for k, v in message.items() if v is not None and k not in ("role", "content", "from", "value")}
    return {"role": role, "content": content, **extra}


def _with_system(row: Row, system_prompt: str) -> Row:
    key = "messages" if "messages" in row else "prompt" if "prompt" in row else None
    if key is None or (row[key] and row[key][0]["role"] == "system"):
        return row
    return {**row, key: [{"role": "system", "content": system_prompt}, *row[key]]}


def extract_prompt(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """Split implicit-prompt preference data into ``(prompt, chosen, rejected)``.

    The prompt is the leading messages (or text, cut at a word boundary) that
    both sides share, keeping at least one turn in each answer. Written here
    rather than calling ``trl.extract_prompt``, which in trl 1.16 cuts strings
    mid-word, turns strings that differ from the first character into a
    prompt of almost all of ``chosen`` (its index steps back to -1), and fails
    on empty lists.
    """
    limit = min(len(chosen), len(rejected))
    size = 0
    while size < limit and chosen[size] == rejected[size]:
        size += 1
    if isinstance(chosen, str):
        size = max(chosen.rfind(" ", 0, size + 1), chosen.rfind("\n", 0, size + 1), 0)
    else:
        size = max(0, min(size, limit - 1))
    return chosen[:size], chosen[size:], rejected[size:]


def _lm(row: Mapping[str, Any]) -> Row:
    if row.get("messages") is not None:
        return {"messages": messages(row["messages"], "user")}
    return {"text": row["text"]}


def _prompt_completion(row: Mapping[str, Any], answer: str = "completion") -> Row:
    return {"prompt": messages(row["prompt"], "user"), "completion": messages(row[answer], "assistant")}


def _unpaired_sft(row: Mapping[str, Any]) -> Row | None:
    return _prompt_completion(row) if row["label"] else None


def _implicit_sft(row: Mapping[str, Any]) -> Row:
    chosen = row["chosen"]
    return {"text": chosen} if isinstance(chosen, str) else {"messages": messages(chosen, "user")}


def _alpaca(row: Mapping[str, Any], extra_field: str = "input", answer: str = "output") -> Row:
    extra = row.get(extra_field) or ""
    user = f"{row['instruction']}\n\n{extra}" if extra.strip() else row["instruction"]
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": row[answer]}]}


def _sharegpt(row: Mapping[str, Any]) -> Row:
    return {"messages": messages(row["conversations"], "user")}


def _preference(row: Mapping[str, Any]) -> Row:
    return {
        "prompt": messages(row["prompt"], "user"),
        "chosen": messages(row["chosen"], "assistant"),
        "rejected": messages(row["rejected"], "assistant"),
    }


def _implicit_dpo(row: Mapping[str, Any]) -> Row:
    prompt, chosen, rejected = extract_prompt(row["chosen"], row["rejected"])
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}] if prompt.strip() else []
    return _preference({"prompt": prompt, "chosen": chosen, "rejected": rejected})


def _hh_sft(row: Mapping[str, Any]) -> Row:
    return {"messages": parse_hh(row["chosen"])}


def _hh_dpo(row: Mapping[str, Any]) -> Row:
    return _implicit_dpo({"chosen": parse_hh(row["chosen"]), "rejected": parse_hh(row["rejected"])})


_SFT: dict[Shape, Callable[[Mapping[str, Any]], Row | None]] = {
    Shape.LANGUAGE_MODELING: _lm,
    Shape.PROMPT_COMPLETION: _prompt_completion,
    Shape.UNPAIRED_PREFERENCE: _unpaired_sft,
    Shape.PREFERENCE: lambda row: _prompt_completion(row, "chosen"),
    Shape.IMPLICIT_PREFERENCE: _implicit_sft,
    Shape.ALPACA: _alpaca,
    Shape.DOLLY: lambda row: _alpaca(row, "context", "response"),
    Shape.SHAREGPT: _sharegpt,
}
_DPO: dict[Shape, Callable[[Mapping[str, Any]], Row | None]] = {
    Shape.PREFERENCE: _preference,
    Shape.IMPLICIT_PREFERENCE: _implicit_dpo,
}
