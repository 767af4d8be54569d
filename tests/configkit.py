"""Configs for the config tests, built from section__field keyword overrides."""

from __future__ import annotations

from typing import Any

from workbench.config import RunConfig


def make_config(data: dict[str, Any] | None = None, **overrides: Any) -> RunConfig:
    """RunConfig with data (default: a train.jsonl) and overrides like train__learning_rate=1e-3 or lora=None."""
    fields: dict[str, Any] = {"data": dict(data or {"train": "train.jsonl"})}
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            fields.setdefault(section, {})[name] = value
        else:
            fields[section] = value
    return RunConfig.model_validate(fields)
