"""Training fast: the precision auto picks per kind of hardware, and batches that waste fewer padding tokens
while the loss still falls on exactly the completions."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from pathlib import Path

import pytest

from workbench.config.batching import BatchingPlan, grouped_order, padding_share, plan_batching
from workbench.config.fields import info, set_field
from workbench.config.precision import cpu_bf16_feature
from workbench.config.schema import RunConfig, dump_config, parse_config
from workbench.config.trl_args import precision_plan, training_arguments
from workbench.config.validate import Hardware

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_data" / "support"


def config(model: str = "bundled", **train) -> RunConfig:
    return RunConfig.model_validate(
        {
            "model": model,
            "data": {"train": str(SUPPORT / "train.jsonl"), "max_train_examples": 12, "val_ratio": 0.0},
            "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            "train": {"batch_size": 4, "max_steps": 3, "max_length": 384, **train},
            "eval": {"logging_steps": 1},
        }
    )


# -- precision ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "hardware,setting,precision,weights,autocast,why",
    [
        (Hardware(cuda=True, bf16=True), "auto", "bf16", "bfloat16", False, "GPU computes bf16"),
        (Hardware(cuda=True, bf16=False), "auto", "fp16", "float32", True, "no bf16"),
        (Hardware(cpu_bf16="AMX-BF16"), "auto", "bf16", "float32", True, "AMX-BF16"),
        (Hardware(cpu_bf16="AVX512-BF16"), "auto", "bf16", "float32", True, "AVX512-BF16"),
        (Hardware(), "auto", "fp32", "float32", False, "no AMX or AVX512-BF16"),
        (Hardware(), "bf16", "bf16", "float32", True, "emulated"),
        (Hardware(cpu_bf16="AMX-BF16"), "fp32", "fp32", "float32", False, "set in the config"),
        (Hardware(cuda=True, bf16=True, cpu_bf16="AMX-BF16"), "fp16", "fp16", "float32", True, "set in the config"),
    ],
)
def test_precision_per_kind_of_hardware(hardware, setting, precision, weights, autocast, why):
    plan = precision_plan(setting, hardware)
    assert (plan.precision, plan.weights, plan.autocast) == (precision, weights, autocast)
    assert why in plan.why
    assert plan.flags == {"bf16": precision == "bf16", "fp16": precision == "fp16"}  # both always given to TRL


def test_cpu_bf16_is_read_from_the_feature_flags(tmp_path):
    def cpu(flags: str) -> str | None:
        path = tmp_path / f"cpuinfo-{len(list(tmp_path.iterdir()))}"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        return cpu_bf16_feature(str(path))

    assert cpu("fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16") == "AMX-BF16"
    assert cpu("fpu sse avx2 avx512f avx512_bf16") == "AVX512-BF16"
    assert cpu("fpu sse avx2 avx512f") is None  # AVX-512 alone computes bf16 by emulation
    assert cpu_bf16_feature(str(tmp_path / "absent")) is None  # macOS, Windows: no /proc/cpuinfo


def test_liger_is_asked_for_only_where_it_can_run():
    from workbench.config.validate import Context, validate

    liger = config(liger_kernel=True)
    assert training_arguments(liger, output_dir="o", steps=3, has_eval=False)["use_liger_kernel"] is True
    assert "use_liger_kernel" not in training_arguments(config(), output_dir="o", steps=3, has_eval=False)
    errors = [f.message for f in validate(liger, Context(hardware=Hardware())) if f.field == "train.liger_kernel"]
    assert errors and "need a GPU" in errors[0]


def test_check_says_what_auto_resolved_to_and_why():
    from workbench.config.validate import Context, validate

    notes = [f for f in validate(config(), Context(hardware=Hardware(cpu_bf16="AVX512-BF16"))) if f.severity == "info"]
    precision = next(f.message for f in notes if f.field == "train.precision")
    assert "bf16 autocast, fp32 weights" in precision and "AVX512-BF16" in precision


def test_a_tiny_run_under_bf16_autocast_on_the_cpu_completes(tiny_model_dir, tmp_path):
    import torch

    from workbench.train.rundir import RunDir
    from workbench.train.worker import run_worker

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config_path.write_text(dump_config(config(str(tiny_model_dir), precision="bf16")))
    run.write_status({"state": "starting"})
    assert run_worker(run) == "completed", run.read_status_raw().get("error")
    assert run.read_status_raw()["step"] == 3
    losses = [r["loss"] for r in run.metrics() if r["type"] == "train" and "loss" in r]
    assert losses and all(loss == loss and loss > 0 for loss in losses)  # finite, no NaN from bf16
    from safetensors.torch import load_file

    adapter = load_file(run.adapter_path / "adapter_model.safetensors")
    assert {t.dtype for t in adapter.values()} == {torch.float32}  # fp32 weights under autocast


# -- batching ----------------------------------------------------------------------


def test_batching_fields_parse_from_the_form_and_yaml():
    c = set_field(config(), "train.padding_free", "true")
    assert c.train.padding_free is True
    assert set_field(c, "train.padding_free", "auto").train.padding_free == "auto"
    assert info("train.group_by_length").choices == ("auto", "true", "false")
    back = parse_config(dump_config(set_field(c, "train.group_by_length", "false")))
    assert back.train.padding_free is True and back.train.group_by_length is False


def test_plans_per_attention_and_setting():
    auto = config()
    assert plan_batching(auto, "sdpa") == BatchingPlan(False, False, True, plan_batching(auto, "sdpa").why)
    assert plan_batching(auto, "flash_attention_2").padding_free  # varlen kernels need no mask
    assert plan_batching(config(padding_free=True), "sdpa").padding_free
    packed = plan_batching(config(packing=True), "sdpa")
    assert packed.packing and packed.flattened and not packed.group_by_length
    assert not plan_batching(config(group_by_length=False), "sdpa").group_by_length
    args = training_arguments(config(padding_free=True), output_dir="o", steps=3, has_eval=False)
    assert args["padding_free"] and args["max_length"] is None  # TRL refuses both; the worker truncates
    grouped = training_arguments(auto, output_dir="o", steps=3, has_eval=False)
    assert grouped["train_sampling_strategy"] == "group_by_length" and not grouped["padding_free"]


def test_padding_share_against_a_hand_count():
    shuffled = BatchingPlan(False, False, False, "")
    # one micro-batch of everything: 10 + 20 + 30 + 40 = 100 real tokens of 4 × 40 = 160
    assert padding_share([10, 20, 30, 40], 4, shuffled) == pytest.approx(60 / 160)
    # equal lengths never pad; packed and padding-free rows hold no padding
    assert padding_share([25] * 9, 2, shuffled) == 0
    assert padding_share([10, 40], 2, BatchingPlan(False, True, False, "")) == 0
    # grouping sorts mega-batches of 16 // (2 × 4) = 2 micro-batches: in this order [10, 40 | 20, 30] pads
    # 30 + 10 of 140 tokens, sorted [40, 30 | 20, 10] pads 10 + 10 of 120
    lengths = [10, 40, 20, 30] * 4
    order = grouped_order(list(range(16)), lengths, 2)
    assert [lengths[i] for i in order] == [40, 30, 20, 10] * 4
    grouped = padding_share(lengths, 2, BatchingPlan(False, False, True, ""))
    assert grouped < padding_share(lengths, 2, shuffled)


def test_padding_share_follows_transformers_length_grouped_sampler():
    """The simulated share against the batches transformers' own sampler makes, over many seeds."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    rng = random.Random(3)
    lengths = [rng.randint(20, 400) for _ in range(600)]

    def share(order: list[int], batch: int) -> float:
        padded = sum(
            max(lengths[j] for j in order[i : i + batch]) * len(order[i : i + batch]) for i in range(0, 600, batch)
        )
        return 1 - sum(lengths) / padded

    real = statistics.mean(
        share(get_length_grouped_indices(lengths, 8, generator=torch.Generator().manual_seed(s)), 8) for s in range(8)
    )
    assert padding_share(lengths, 8, BatchingPlan(False, False, True, "")) == pytest.approx(real, abs=0.01)


def _trained_text(config_: RunConfig, tmp_path: Path) -> tuple[list[str], list[str], float, object]:
    """Per example, the text of the tokens that carry loss in the trainer's real batches, the expected
    completions, the measured padding share, and the trainer."""
    from transformers import TrainerCallback

    from workbench.train.rundir import RunDir
    from workbench.train.worker import build_trainer

    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True, exist_ok=True)
    trainer, tokenizer = build_trainer(run, config_, TrainerCallback())
    trained: list[str] = []
    padded = total = 0
    for batch in trainer.get_train_dataloader():
        labels = batch["labels"]
        if "position_ids" in batch and "attention_mask" not in batch:  # one row of several examples
            starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [labels.shape[1]]
            rows = [labels[0, a:b] for a, b in itertools.pairwise(starts)]
            total += labels.numel()
        else:
            rows = list(labels)
            padded += int((batch["attention_mask"] == 0).sum())
            total += batch["attention_mask"].numel()
        for row in rows:
            ids = [int(t) for t in row if t != -100]
            trained.append(tokenizer.decode(ids))
    rows = [
        json.loads(line)
        for line in (SUPPORT / "train.jsonl").read_text().splitlines()[: config_.data.max_train_examples]
    ]
    expected = [r["messages"][-1]["content"] + "<|im_end|>\n" for r in rows]
    return trained, expected, padded / total, trainer


@pytest.mark.parametrize(
    "settings,label",
    [
        ({"padding_free": False, "group_by_length": False}, "padded, shuffled"),
        ({"padding_free": False, "group_by_length": True}, "padded, grouped by length"),
        ({"padding_free": True}, "padding-free"),
        ({"packing": True, "max_length": 512}, "packed (best-fit, padding-free)"),
    ],
)
def test_the_trained_tokens_are_exactly_the_completions(tiny_model_dir, tmp_path, settings, label, capsys):
    c = config(str(tiny_model_dir), **settings)
    c.data.max_train_examples = 16
    trained, expected, _, _ = _trained_text(c, tmp_path)
    assert f"batches: {label}" in capsys.readouterr().out
    assert sorted(trained) == sorted(expected)  # every completion once, nothing of any prompt


def test_padding_free_rows_are_truncated_to_max_length(tiny_model_dir, tmp_path):
    c = config(str(tiny_model_dir), padding_free=True, max_length=150)
    _, _, _, trainer = _trained_text(c, tmp_path)
    assert max(len(ids) for ids in trainer.train_dataset["input_ids"]) == 150  # cut, and some are kept


def test_the_padding_figure_against_the_trainers_real_batches(tiny_model_dir, tmp_path):
    """The Config pane's share, from the sampled token lengths, against the pad tokens counted in real batches."""
    from workbench.config.assess import assess

    c = config(str(tiny_model_dir), padding_free=False, group_by_length=False, batch_size=8)
    c.data.max_train_examples = 240
    _, _, measured, _ = _trained_text(c, tmp_path)
    derived = assess(c, hw=Hardware()).derived
    assert derived.batches == "padded, shuffled"
    assert derived.padding_share == pytest.approx(measured, abs=0.03)
    assert any(line.label == "padding / step" and "of tokens" in line.value for line in derived.lines())


def test_a_model_that_lets_packed_examples_see_each_other_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    import transformers.masking_utils as masking
    from transformers import AutoModelForCausalLM

    from workbench.config import batching
    from workbench.errors import ConfigError
    from workbench.train.packed import packed_rows_isolated
    from workbench.train.worker import _batching

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert packed_rows_isolated(model)[0]  # transformers masks packed rows apart from their position ids
    monkeypatch.setattr(masking, "find_packed_sequence_indices", lambda position_ids: None)  # as old attention code
    isolated, difference = packed_rows_isolated(model)
    assert not isolated and difference > 0.05
    with pytest.raises(ConfigError, match=r"train\.padding_free: packed examples attend to each other"):
        _batching(config(str(tiny_model_dir), padding_free=True), model)
    with pytest.raises(ConfigError, match=r"train\.packing"):
        _batching(config(str(tiny_model_dir), packing=True), model)
    monkeypatch.setattr(batching, "varlen_attention", lambda attention: True)  # auto would flatten here
    fallback = _batching(config(str(tiny_model_dir)), model)
    assert not fallback.flattened and fallback.group_by_length and "attend to each other" in fallback.why
