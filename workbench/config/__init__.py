"""The run config: schema, YAML I/O and validation."""

from workbench.config.schema import (
    DataConfig,
    EvalConfig,
    LoraConfig,
    RunConfig,
    TrainConfig,
    dump_config,
    field_help,
    load_config,
    parse_config,
    save_config,
)
from workbench.config.validate import ConfigFinding, Context, Hardware, has_errors, validate

__all__ = [
    "ConfigFinding",
    "Context",
    "DataConfig",
    "EvalConfig",
    "Hardware",
    "LoraConfig",
    "RunConfig",
    "TrainConfig",
    "dump_config",
    "field_help",
    "has_errors",
    "load_config",
    "parse_config",
    "save_config",
    "validate",
]
