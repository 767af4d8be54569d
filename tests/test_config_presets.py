"""Presets, config diffs and derived figures: what the Config pane offers beside the form."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import RunConfig, load_config, save_config, validate
from workbench.config.derived import derived
from workbench.config.diff import Change, diff_configs, diff_text
from workbench.config.presets import PRESETS, apply_preset, preset_diff
from workbench.config.validate import Context, total_steps
from workbench.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "sample_data" / "configs"


def make(**sections) -> RunConfig:
    """A config from sections: make(train={"batch_size": 4}, data={"val_ratio": 0})."""
    return RunConfig.model_validate({"data": {"train": "train.jsonl"}, **sections})


# --- presets -----------------------------------------------------------------------------------------------


def test_presets_are_ordered_and_say_when_to_use_them():
    assert list(PRESETS) == ["style", "domain", "deep", "dpo"]
    assert all(p.title and p.when_to_use for p in PRESETS.values())


@pytest.mark.parametrize("preset_id", list(PRESETS))
@pytest.mark.parametrize("name", ["tiny", "dpo", "demo"])
def test_presets_apply_and_keep_data_and_model(name, preset_id):
    config = load_config(CONFIGS / f"{name}.yaml")
    applied = apply_preset(config, preset_id)
    assert applied.data == config.data and applied.model == config.model and applied.name == config.name
    assert applied.eval == config.eval and applied.base_dir == config.base_dir
    assert applied.resolve(applied.data.train) == config.resolve(config.data.train)
    assert config.model_dump() == load_config(CONFIGS / f"{name}.yaml").model_dump()  # the original is untouched
    # a preset's own settings raise no warning (the data shape is not known here, so no method rule fires)
    flagged = {f.field for f in validate(applied, Context()) if f.severity != "info"}
    assert not flagged & {"train.learning_rate", "lora.alpha", "lora.rslora", "train.epochs"}


def test_preset_values():
    config = load_config(CONFIGS / "dpo.yaml")
    style, domain, deep, dpo = (apply_preset(config, key) for key in PRESETS)
    assert (style.method, style.lora.r, style.lora.alpha, style.train.learning_rate) == ("sft", 8, 16, 2e-4)
    assert style.train.epochs == 3 and style.train.max_steps is None  # epochs now decide the length
    assert (domain.lora.r, domain.lora.alpha) == (16, 32) and 1e-4 <= domain.train.learning_rate <= 2e-4
    assert 1 <= domain.train.epochs <= 2
    assert deep.lora.r >= 32 and deep.lora.alpha in (64, 128) and deep.lora.rslora and deep.train.learning_rate == 1e-4
    assert deep.lora.target_modules == "all-linear"
    assert (dpo.method, dpo.train.learning_rate, dpo.train.dpo_beta) == ("dpo", 5e-6, 0.1)
    assert (dpo.lora.r, dpo.lora.alpha) == (16, 32) and 1 <= dpo.train.epochs <= 3


def test_preset_diff_lists_what_would_change():
    config = load_config(CONFIGS / "tiny.yaml")  # r 8, alpha 16, lr 5e-4, max_steps 4
    changes = {c.field_path: (c.old, c.new) for c in preset_diff(config, "style")}
    assert changes == {"train.learning_rate": (5e-4, 2e-4), "train.max_steps": (4, None)}
    assert preset_diff(apply_preset(config, "dpo"), "dpo") == []


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'fast'.*style, domain, deep, dpo"):
        apply_preset(make(), "fast")


# --- diff --------------------------------------------------------------------------------------------------


def test_diff_finds_nested_changes_in_schema_order():
    a = make(lora={"r": 16, "target_modules": ["q_proj"]}, train={"learning_rate": 1e-4})
    b = make(
        name="other",
        lora={"r": 8, "target_modules": ["q_proj", "v_proj"]},
        train={"learning_rate": 1e-4},
        data={"train": "train.jsonl", "val": "val.jsonl"},
    )
    assert diff_configs(a, b) == [
        Change("name", "run", "other"),
        Change("data.val", None, "val.jsonl"),
        Change("lora.r", 16, 8),
        Change("lora.target_modules", ["q_proj"], ["q_proj", "v_proj"]),
    ]
    assert diff_configs(a, a) == [] and diff_text(a, a) == ""


def test_diff_text_is_aligned_and_readable():
    text = diff_text(make(), make(lora={"r": 8, "target_modules": ["q_proj", "v_proj"]}, train={"max_steps": 50}))
    assert text.splitlines() == [
        "lora.r               16 → 8",
        "lora.target_modules  all-linear → [q_proj, v_proj]",
        "train.max_steps      (unset) → 50",
    ]


def test_diff_against_a_yaml_file(tmp_path):
    path = tmp_path / "old.yaml"
    save_config(make(train={"learning_rate": 1e-4, "packing": True}), path)
    changes = diff_configs(path, make(train={"learning_rate": 2e-4}))
    assert changes == [Change("train.learning_rate", 1e-4, 2e-4), Change("train.packing", True, False)]
    assert diff_text(str(path), make(train={"learning_rate": 2e-4})).startswith("train.learning_rate  0.0001 → 0.0002")
    with pytest.raises(ConfigError, match="no such config file"):
        diff_configs(tmp_path / "missing.yaml", make())


# --- derived figures ---------------------------------------------------------------------------------------


def test_derived_batch_steps_and_tokens():
    train = {"batch_size": 4, "grad_accum": 2, "epochs": 3, "max_length": 512}
    config = make(train=train)
    d = derived(make(train=train, distributed={"nproc_per_node": 2}), n_train=1000, mean_tokens=300)
    assert d.effective_batch == 16  # 4 per device × 2 accumulation × 2 processes
    assert d.steps_per_epoch == 63  # ceil(1000 / 16)
    assert d.total_steps == 189  # 63 × 3
    assert d.tokens_per_step == 4800  # 16 × 300
    assert derived(config, n_train=1000, mean_tokens=900).tokens_per_step == 8 * 512  # capped by max_length
    assert (
        derived(config, n_train=1000).total_steps == total_steps(config, 1000) == 375
    )  # one GPU: the validator's count


def test_derived_respects_max_steps_and_max_train_examples():
    config = make(data={"train": "t.jsonl", "max_train_examples": 100}, train={"batch_size": 8, "max_steps": 30})
    d = derived(config, n_train=1000)
    assert d.examples == 100 and d.steps_per_epoch == 13  # ceil(100 / 8)
    assert d.total_steps == 30 and d.epochs == pytest.approx(30 / 13)
    assert "max_train_examples" in d.why["examples"] and "max_steps" in d.why["total_steps"]
    assert derived(config).total_steps == 30  # max_steps needs no dataset size


def test_derived_with_packing():
    config = make(train={"batch_size": 2, "grad_accum": 4, "epochs": 2, "max_length": 1024, "packing": True})
    d = derived(config, n_train=500, mean_tokens=256)
    assert d.tokens_per_step == 8 * 1024  # full packed sequences: effective batch × max_length
    assert d.sequences == 125  # 500 × 256 tokens / 1024 per sequence
    assert d.steps_per_epoch == 16 and d.total_steps == 32  # ceil(125 / 8), × 2 epochs
    unknown = derived(config, n_train=500)  # the packed sequence count needs the example lengths
    assert unknown.steps_per_epoch is None and unknown.total_steps is None and unknown.tokens_per_step == 8192
    assert "packing" in unknown.why["steps_per_epoch"]


def test_derived_params_and_run_time():
    config = make(
        data={"train": "t.jsonl", "val_ratio": 0.2},
        train={"batch_size": 4, "grad_accum": 2, "epochs": 1},
        eval={"eval_steps": 10},
    )
    d = derived(config, n_train=400, trainable_params=1_000_000, total_params=99_000_000, step_seconds=2.0)
    assert d.trainable_share == pytest.approx(0.01)  # 1M of 99M base + 1M adapter
    assert d.total_steps == 50 and d.evals == 5 and d.train_seconds == 100.0
    # 100 held out (400 × 0.2 / 0.8) = 25 forward batches of 4, each a third of a 1-s micro-batch, 5 times
    assert d.eval_seconds == pytest.approx(5 * 25 * 1.0 / 3)
    assert d.run_seconds == pytest.approx(100 + 125 / 3)
    full = derived(make(finetune="full"), trainable_params=135_000_000, total_params=135_000_000)
    assert full.trainable_share == 1.0
    no_eval = derived(make(data={"train": "t.jsonl", "val_ratio": 0}, train={"max_steps": 10}), step_seconds=1.0)
    assert no_eval.evals == 0 and no_eval.run_seconds == 10.0


def test_derived_lines_show_unknowns_with_the_reason():
    rows = derived(make()).lines()
    assert all(len(row) == 3 for row in rows)
    by_label = {label: (value, why) for label, value, why in rows}
    assert by_label["effective batch"] == ("8", "8 per device × 1 accumulation × 1 process")
    for label in ("steps / epoch", "total steps", "trainable", "tokens / step", "run time"):
        value, why = by_label[label]
        assert value == "?" and why, label
    known = {
        r.label: r.value
        for r in derived(
            make(), n_train=80, trainable_params=2_500_000, total_params=135_000_000, mean_tokens=100, step_seconds=1.0
        ).lines()
    }
    assert known["total steps"] == "30" and known["tokens / step"] == "800" and known["trainable"] == "2.5M (1.82%)"
    # 30 s of steps + 10 evaluations (every 3 steps) of 9 held-out examples: 2 forward batches, a third of a step each
    assert known["run time"] == "0m36s"
