"""Starting points for common fine-tuning jobs, applied on top of a config.

A preset changes the method, the LoRA shape, the learning rate and the
training length; it never touches the data section, the model, the name or
the evaluation settings, so applying one to a config keeps what the user
trains on. :func:`preset_diff` shows what a preset would change before it is
applied.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from workbench.config.diff import Change, diff_configs
from workbench.config.schema import RunConfig
from workbench.errors import ConfigError

#: Fields a preset may not change: what the run trains on and from.
KEPT_FIELDS = ("name", "model", "trust_remote_code", "data")


@dataclass(frozen=True)
class Preset:
    """A named partial config: ``changes`` is nested like the YAML (``{"lora": {"r": 8}}``)."""

    title: str
    when_to_use: str
    changes: Mapping[str, Any]


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        "style": Preset(
            title="Style or format task",
            when_to_use="teach a tone, an output format or a fixed structure on a few hundred to a few thousand "
            "examples; a small rank is enough",
            changes={
                "method": "sft",
                "lora": {"r": 8, "alpha": 16, "rslora": False},
                "train": {"learning_rate": 2e-4, "epochs": 3.0, "max_steps": None},
            },
        ),
        "domain": Preset(
            title="Domain adaptation",
            when_to_use="bring in a field's vocabulary and facts (legal, medical, support tickets); give it more "
            "data (thousands of examples) and 1-2 epochs; lr 1e-4 to 2e-4",
            changes={
                "method": "sft",
                "lora": {"r": 16, "alpha": 32, "rslora": False},
                "train": {"learning_rate": 1e-4, "epochs": 2.0, "max_steps": None},
            },
        ),
        "deep": Preset(
            title="Deep task change",
            when_to_use="a task the model cannot do yet (new reasoning style, new language, code in a new DSL); "
            "a large rank on every linear layer with rsLoRA scaling",
            changes={
                "method": "sft",
                "lora": {"r": 64, "alpha": 64, "rslora": True, "target_modules": "all-linear"},
                "train": {"learning_rate": 1e-4, "epochs": 3.0, "max_steps": None},
            },
        ),
        "dpo": Preset(
            title="Preference tuning (DPO)",
            when_to_use="preference pairs (prompt, chosen, rejected), usually after SFT: a low learning rate and "
            "beta 0.1 keep the model near where it started",
            changes={
                "method": "dpo",
                "lora": {"r": 16, "alpha": 32, "rslora": False},
                "train": {"learning_rate": 5e-6, "dpo_beta": 0.1, "epochs": 2.0, "max_steps": None},
            },
        ),
    }
)


def get_preset(preset_id: str) -> Preset:
    """The preset with this id, or a ConfigError listing the known ids."""
    try:
        return PRESETS[preset_id]
    except KeyError:
        raise ConfigError(f"unknown preset {preset_id!r}; known presets: {', '.join(PRESETS)}") from None


def apply_preset(config: RunConfig, preset_id: str) -> RunConfig:
    """A new config: ``config`` with the preset's changes; data, model and name are kept."""
    preset = get_preset(preset_id)
    touched = sorted(set(preset.changes) & set(KEPT_FIELDS))
    if touched:  # a guard on the table above, so a future preset cannot move the data
        raise ConfigError(f"preset {preset_id!r} may not change {', '.join(touched)}")
    merged = _merge(config.model_dump(), preset.changes)
    result = RunConfig.model_validate(merged)
    result.base_dir = config.base_dir
    return result


def preset_diff(config: RunConfig, preset_id: str) -> list[Change]:
    """The fields that applying the preset would change, with their old and new values."""
    return diff_configs(config, apply_preset(config, preset_id))


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` laid over it, section by section (nested mappings merge, values replace)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
