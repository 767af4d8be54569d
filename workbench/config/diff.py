"""Differences between two run configs, field by field.

Every field is compared, nested ones included, and named by its dotted path
(``lora.r``, ``train.learning_rate``). A list such as ``lora.target_modules``
is one value: it changed or it did not. Either side may be a config or the
path of a YAML file, so "this config against configs/tiny.yaml" is one call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config.schema import RunConfig, load_config

ConfigSource = RunConfig | str | os.PathLike[str]
"""A config, or the path of a YAML file holding one."""

_ABSENT = object()


@dataclass(frozen=True)
class Change:
    """One field that differs: its dotted path, the value in the first config and in the second."""

    field_path: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.field_path}: {show_value(self.old)} → {show_value(self.new)}"


def as_config(source: ConfigSource) -> RunConfig:
    """A config as is; a path is loaded (errors are ConfigErrors naming the file and line)."""
    return source if isinstance(source, RunConfig) else load_config(Path(source))


def diff_configs(a: ConfigSource, b: ConfigSource) -> list[Change]:
    """Every field whose value differs from ``a`` to ``b``, in the schema's field order."""
    old, new = as_config(a).model_dump(mode="json"), as_config(b).model_dump(mode="json")
    return list(_walk(old, new, ""))


def diff_text(a: ConfigSource, b: ConfigSource) -> str:
    """The differences as aligned lines (``lora.r  16 → 8``); empty when the configs agree."""
    changes = diff_configs(a, b)
    width = max((len(c.field_path) for c in changes), default=0)
    return "\n".join(f"{c.field_path:<{width}}  {show_value(c.old)} → {show_value(c.new)}" for c in changes)


def show_value(value: Any) -> str:
    """A field value as the YAML would show it, compactly: ``[q_proj, v_proj]``, ``0.0002``, ``(unset)``."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return str(value)


def _walk(old: Any, new: Any, prefix: str) -> Iterator[Change]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        keys = list(old) + [k for k in new if k not in old]
        for key in keys:
            path = f"{prefix}{key}"
            yield from _walk(old.get(key, _ABSENT), new.get(key, _ABSENT), path + ".")
        return
    if old != new:
        yield Change(prefix[:-1], None if old is _ABSENT else old, None if new is _ABSENT else new)
