"""The config as a form: every field grouped once, typed text parsed, bad values refused with the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config.fields import GROUPS, all_paths, get_field, info, set_field, show
from workbench.config.schema import field_help, load_config
from workbench.errors import ConfigError

DEMO = Path(__file__).resolve().parents[1] / "sample_data" / "configs" / "demo.yaml"


def test_every_schema_field_is_in_exactly_one_group():
    paths = all_paths()
    assert len(paths) == len(set(paths))
    assert set(paths) == set(field_help())
    assert [title for title, _ in GROUPS] == [
        "Model",
        "Data",
        "Method",
        "LoRA",
        "Optimization",
        "Schedule",
        "Evaluation",
        "Hardware",
        "Distributed",
    ]


def test_kinds_and_choices_come_from_the_schema():
    assert info("lora.r").kind == "int"
    assert info("train.learning_rate").kind == "float"
    assert info("eval.load_best").kind == "bool"
    assert info("method").choices == ("sft", "dpo")
    assert info("eval.eval_steps").optional
    assert info("lora.target_modules").kind == "modules"
    assert all(info(p).description for p in all_paths())


def test_typed_text_is_parsed_and_validated():
    config = load_config(DEMO)
    assert set_field(config, "lora.r", "8").lora.r == 8
    assert set_field(config, "train.learning_rate", "2e-4").train.learning_rate == pytest.approx(2e-4)
    assert set_field(config, "eval.load_best", "no").eval.load_best is False
    assert set_field(config, "lora.target_modules", "q_proj, v_proj").lora.target_modules == ["q_proj", "v_proj"]
    assert set_field(config, "lora.target_modules", "all-linear").lora.target_modules == "all-linear"
    assert set_field(config, "eval.eval_steps", "").eval.eval_steps is None
    changed = set_field(config, "train.batch_size", "2")
    assert changed.base_dir == config.base_dir and changed.data.train == config.data.train
    assert config.train.batch_size == 4  # the original is untouched
    assert show(get_field(changed, "lora.target_modules")) == "all-linear"


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("lora.r", "0", "lora.r: Input should be greater than or equal to 1"),
        ("train.learning_rate", "fast", "train.learning_rate: Input should be a valid number"),
        ("method", "ppo", "method: Input should be 'sft' or 'dpo'"),
        ("eval.load_best", "maybe", "eval.load_best: expected true or false"),
    ],
)
def test_bad_values_name_the_field_and_what_was_expected(path, text, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        set_field(load_config(DEMO), path, text)
