"""The run config: YAML in and out, errors with lines, validation rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from configkit import make_config as make

from workbench.config import dump_config, field_help, load_config, parse_config, validate
from workbench.config.check import check_config
from workbench.config.validate import Context, Hardware, has_errors, total_steps
from workbench.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "configs"


def fields(findings, severity=None):
    return {f.field for f in findings if severity is None or f.severity == severity}


def test_yaml_round_trip():
    config = make(lora__r=8, train__learning_rate=1e-4, method="sft")
    again = parse_config(dump_config(config))
    assert again.model_dump() == config.model_dump()


def test_unknown_key_names_line_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata:\n  train: a.jsonl\n  val_ration: 0.2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert f"{path}:4" in msg and "data.val_ration" in msg and "did you mean 'val_ratio'" in msg


def test_wrong_type_and_missing_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain:\n  learning_rate: fast\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "missing required field 'data'" in msg
    assert f"{path}:3: field 'train.learning_rate'" in msg and "'fast'" in msg


def test_bad_yaml_names_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: not valid YAML"):
        load_config(path)


def test_relative_paths_resolve_against_config_dir():
    config = load_config(SAMPLE / "demo.yaml")
    assert config.resolve(config.data.train).resolve() == (SAMPLE.parent / "support" / "train.jsonl").resolve()


def test_every_field_has_help():
    help_ = field_help()
    assert "lora.r" in help_ and "train.learning_rate" in help_
    assert all(help_.values()), [k for k, v in help_.items() if not v]


@pytest.mark.parametrize(
    "method,finetune,lr,expect",
    [
        ("sft", "lora", 2e-4, None),
        ("sft", "lora", 5e-3, "warning"),
        ("sft", "lora", 5e-2, "error"),
        ("sft", "full", 2e-4, "warning"),
        ("sft", "full", 2e-5, None),
        ("dpo", "lora", 1e-3, "error"),
        ("dpo", "lora", 1e-4, "warning"),
        ("dpo", "lora", 5e-6, None),
    ],
)
def test_learning_rate_against_method(method, finetune, lr, expect):
    findings = [
        f
        for f in validate(make(method=method, finetune=finetune, train__learning_rate=lr))
        if f.field == "train.learning_rate"
    ]
    assert (findings[0].severity if findings else None) == expect
    if findings:
        assert findings[0].suggestion is not None


def test_no_warmup_warns():
    assert "train.warmup_ratio" in fields(validate(make(train__warmup_ratio=0.0)), "warning")


def test_alpha_over_r_and_rslora():
    assert "lora.alpha" in fields(validate(make(lora__r=4, lora__alpha=64)), "warning")
    assert "lora.alpha" not in fields(validate(make(lora__r=16, lora__alpha=32)))
    assert "lora.rslora" in fields(validate(make(lora__r=128, lora__alpha=256)), "info")


def test_early_stopping_needs_eval_split():
    config = make(data={"train": "t.jsonl", "val_ratio": 0.0}, eval__early_stopping_patience=2, eval__load_best=False)
    assert "eval.early_stopping_patience" in fields(validate(config), "error")


def test_save_steps_must_fall_on_evals():
    config = make(eval__eval_steps=10, eval__save_steps=15)
    assert "eval.save_steps" in fields(validate(config), "error")
    assert "eval.save_steps" not in fields(validate(make(eval__eval_steps=10, eval__save_steps=20)))


def test_precision_and_qlora_against_hardware():
    cpu = Context(hardware=Hardware(cuda=False))
    assert {"train.precision"} <= fields(validate(make(train__precision="bf16"), cpu), "warning")  # emulated
    assert {"train.precision"} <= fields(validate(make(train__precision="fp16"), cpu), "error")
    assert "finetune" in fields(validate(make(finetune="qlora"), cpu), "error")
    gpu = Context(hardware=Hardware(cuda=True, bf16=True, bitsandbytes=True))
    assert not has_errors(validate(make(train__precision="bf16", finetune="qlora", train__learning_rate=2e-4), gpu))


def test_dpo_on_sft_data_is_an_error():
    ctx = Context(data_shape="prompt_completion")
    assert "method" in fields(validate(make(method="dpo", train__learning_rate=5e-6), ctx), "error")


def test_total_steps():
    config = make(train__batch_size=4, train__grad_accum=2, train__epochs=2)
    assert total_steps(config, 100) == 26  # ceil(100 / 8) = 13 per epoch
    assert total_steps(make(train__max_steps=7), 100) == 7


def test_check_reports_missing_files_and_counts(tmp_path):
    (tmp_path / "c.yaml").write_text("data:\n  train: nope.jsonl\n")
    report = check_config(load_config(tmp_path / "c.yaml"), Hardware())
    assert any(f.field == "data.train" and "not found" in f.message for f in report.errors)
    demo = check_config(load_config(SAMPLE / "demo.yaml"), Hardware())
    assert not demo.errors
    assert demo.context.n_train == 32


@pytest.mark.parametrize("name", ["tiny.yaml", "demo.yaml", "dpo.yaml"])
def test_sample_configs_have_no_errors(name):
    report = check_config(load_config(SAMPLE / name), Hardware())
    assert not report.errors, report.errors
