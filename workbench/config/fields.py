"""The run config as a form: fields grouped for people, read and set by dotted path from text.

The Config pane lists :data:`GROUPS`; editing a field calls :func:`set_field`
with what the user typed, which returns a new, validated config or raises a
:class:`~workbench.errors.ConfigError` that names the field and what it expects.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from workbench.config.schema import RunConfig
from workbench.errors import ConfigError

GROUPS: list[tuple[str, list[str]]] = [
    ("Model", ["name", "model", "trust_remote_code"]),
    (
        "Data",
        [
            "data.train",
            "data.val",
            "data.test",
            "data.val_ratio",
            "data.split_seed",
            "data.max_train_examples",
            "data.max_eval_examples",
            "data.shape",
            "data.system_prompt",
            "data.skip_bad_rows",
        ],
    ),
    ("Method", ["method", "finetune", "train.dpo_beta"]),
    ("LoRA", ["lora.r", "lora.alpha", "lora.dropout", "lora.target_modules", "lora.rslora", "lora.dora"]),
    (
        "Optimization",
        [
            "train.learning_rate",
            "train.optimizer",
            "train.batch_size",
            "train.grad_accum",
            "train.weight_decay",
            "train.max_grad_norm",
        ],
    ),
    ("Schedule", ["train.epochs", "train.max_steps", "train.lr_scheduler", "train.warmup_ratio", "seed"]),
    (
        "Evaluation",
        [
            "eval.logging_steps",
            "eval.eval_steps",
            "eval.save_steps",
            "eval.save_total_limit",
            "eval.early_stopping_patience",
            "eval.stop_on_overfit",
            "eval.load_best",
        ],
    ),
    (
        "Hardware",
        [
            "train.precision",
            "train.max_length",
            "train.packing",
            "train.padding_free",
            "train.group_by_length",
            "train.gradient_checkpointing",
            "train.liger_kernel",
        ],
    ),
    (
        "Distributed",
        [
            "distributed.nproc_per_node",
            "distributed.nnodes",
            "distributed.backend",
            "distributed.rdzv_endpoint",
            "distributed.rdzv_id",
            "distributed.node_rank",
            "distributed.accelerate_config",
        ],
    ),
]
"""Every editable field of RunConfig, once, in the order the pane shows them."""


@dataclass(frozen=True)
class FieldInfo:
    path: str
    description: str
    kind: str  # text, int, float, bool, choice, modules
    choices: tuple[str, ...] = ()
    optional: bool = False


def _field(path: str) -> Any:
    model: type[BaseModel] = RunConfig
    parts = path.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    return model.model_fields[parts[-1]]


def info(path: str) -> FieldInfo:
    """What the form needs to know to show and edit a field."""
    f = _field(path)
    ann = f.annotation
    args = typing.get_args(ann)
    optional = type(None) in args
    base = [a for a in args if a is not type(None)] if args else [ann]
    if path == "lora.target_modules":
        return FieldInfo(path, f.description or "", "modules")
    if typing.get_origin(ann) is typing.Literal:
        return FieldInfo(path, f.description or "", "choice", tuple(show(a) for a in args))
    kind = {bool: "bool", int: "int", float: "float"}.get(base[0] if base else str, "text")
    return FieldInfo(path, f.description or "", kind, optional=optional)


def get_field(config: RunConfig, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def show(value: Any) -> str:
    """A value as the form shows it (and as it can be typed back)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def parse(path: str, text: str) -> Any:
    """Typed text to a value for ``path`` (validated later, with the whole config)."""
    meta = info(path)
    text = text.strip()
    if text == "" and (meta.optional or meta.kind == "text"):
        return None if meta.optional else ""
    if meta.kind == "modules":
        if text in ("all-linear", ""):
            return "all-linear"
        return [m.strip() for m in text.replace(" ", ",").split(",") if m.strip()]
    if meta.kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{path}: expected true or false, got {text!r}")
    if meta.kind == "choice":  # a choice among strings and booleans (auto, true, false)
        return next((a for a in typing.get_args(_field(path).annotation) if show(a) == text.lower()), text)
    return text  # pydantic coerces numbers and checks choices, with its own messages


def set_field(config: RunConfig, path: str, value: Any) -> RunConfig:
    """A new config with ``path`` set to ``value`` (text is parsed); every constraint is checked."""
    if isinstance(value, str) and info(path).kind != "text":
        value = parse(path, value)
    data = config.model_dump(mode="python")
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    try:
        new = RunConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}: {err['msg']} (got {value!r})") from None
    new.base_dir = config.base_dir
    return new


def all_paths() -> list[str]:
    return [p for _, paths in GROUPS for p in paths]
