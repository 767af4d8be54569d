"""Every validation rule: a config that triggers it and one that does not, and suggestions that fix what they flag."""

from __future__ import annotations

import dataclasses

import pytest
from configkit import make_config as make

from workbench.config import RunConfig, validate
from workbench.config.memory import apply_changes, estimate_memory
from workbench.config.modelinfo import facts_from_config, model_facts
from workbench.config.validate import ConfigFinding, Context, Hardware

GIB = 2**30
GPU = Hardware(
    cuda=True, bf16=True, bitsandbytes=True, gpu_name="Test GPU", gpu_total_bytes=80 * GIB, gpu_free_bytes=80 * GIB
)


def on(config: RunConfig, ctx: Context | None, field: str) -> list[ConfigFinding]:
    """The findings about one field."""
    return [f for f in validate(config, ctx) if f.field == field]


def severity(config: RunConfig, ctx: Context | None, field: str, contains: str = "") -> str | None:
    found = [f for f in on(config, ctx, field) if contains in f.message]
    return found[0].severity if found else None


def assert_fixed(config: RunConfig, ctx: Context | None, field: str, contains: str = "") -> None:
    """Applying the finding's suggestion makes that finding go away (leaving at most notes)."""
    finding = next(f for f in on(config, ctx, field) if contains in f.message)
    assert finding.suggestion is not None, finding
    fixed = apply_changes(config, {finding.field: finding.suggestion})
    left = [f for f in on(fixed, ctx, field) if contains in f.message and f.severity != "info"]
    assert not left, (finding, on(fixed, ctx, field))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return model_facts(tiny_model_dir)


@pytest.fixture(scope="module")
def big():
    from transformers import LlamaConfig

    return facts_from_config(
        LlamaConfig(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
        ),
        path="llama-7b (made up)",
    )


# -- rules that need only the config -----------------------------------------------


def test_missing_data_file():
    assert severity(make(), Context(missing_files=["train"]), "data.train") == "error"
    assert severity(make(), Context(), "data.train") is None


@pytest.mark.parametrize(
    "method,finetune,lr,expect",
    [
        ("sft", "lora", 2e-4, None),
        ("sft", "lora", 5e-3, "warning"),
        ("sft", "full", 2e-5, None),
        ("sft", "full", 2e-4, "warning"),
        ("dpo", "lora", 5e-6, None),
        ("dpo", "lora", 1e-3, "error"),
    ],
)
def test_learning_rate_for_the_method(method, finetune, lr, expect):
    config = make(method=method, finetune=finetune, train__learning_rate=lr)
    assert severity(config, None, "train.learning_rate") == expect
    if expect:
        assert_fixed(config, None, "train.learning_rate")


def test_no_warmup():
    assert severity(make(train__warmup_ratio=0.0), None, "train.warmup_ratio") == "warning"
    assert_fixed(make(train__warmup_ratio=0.0), None, "train.warmup_ratio")
    assert severity(make(), None, "train.warmup_ratio") is None


def test_alpha_over_r_and_rslora_scaling():
    assert severity(make(lora__r=4, lora__alpha=64), None, "lora.alpha") == "warning"
    assert_fixed(make(lora__r=4, lora__alpha=64), None, "lora.alpha")
    assert severity(make(lora__r=16, lora__alpha=32), None, "lora.alpha") is None
    # rsLoRA scales by alpha/sqrt(r): alpha 2r is far too strong there, 2·sqrt(r) is usual
    rs = make(lora__r=64, lora__alpha=128, lora__rslora=True)
    assert severity(rs, None, "lora.alpha", "alpha/sqrt(r)") == "warning"
    assert on(rs, None, "lora.alpha")[0].suggestion == 16
    assert_fixed(rs, None, "lora.alpha")
    assert severity(make(lora__r=64, lora__alpha=16, lora__rslora=True), None, "lora.alpha") is None
    assert severity(make(lora__r=128, lora__alpha=256), None, "lora.rslora") == "info"
    assert severity(make(lora__r=16), None, "lora.rslora") is None
    assert (
        severity(make(finetune="full", lora__r=4, lora__alpha=64, train__learning_rate=2e-5), None, "lora.alpha")
        is None
    )


def test_lora_dropout():
    assert severity(make(lora__dropout=0.3), None, "lora.dropout") == "warning"
    assert_fixed(make(lora__dropout=0.3), None, "lora.dropout")
    assert severity(make(lora__dropout=0.1), None, "lora.dropout") is None
    dpo = make(method="dpo", train__learning_rate=5e-6, lora__dropout=0.05)
    assert severity(dpo, None, "lora.dropout", "turns dropout off") == "info"
    assert severity(make(method="dpo", train__learning_rate=5e-6, lora__dropout=0.0), None, "lora.dropout") is None


def test_too_many_epochs():
    assert severity(make(train__epochs=5), None, "train.epochs") == "warning"
    assert_fixed(make(train__epochs=5), None, "train.epochs")
    assert severity(make(train__epochs=3), None, "train.epochs") is None
    assert severity(make(train__epochs=5, train__max_steps=100), None, "train.epochs") is None


def test_effective_batch_leaves_a_handful_of_steps():
    ctx = Context(n_train=20)
    config = make(train__batch_size=8, train__epochs=1)  # 3 steps
    assert severity(config, ctx, "train.batch_size", "optimizer steps") == "warning"
    assert_fixed(config, ctx, "train.batch_size", "optimizer steps")
    accum = make(train__batch_size=4, train__grad_accum=4, train__epochs=1)
    assert severity(accum, Context(n_train=100), "train.grad_accum") == "warning"  # 7 steps
    assert_fixed(accum, Context(n_train=100), "train.grad_accum")
    assert severity(make(train__batch_size=8, train__epochs=1), Context(n_train=1000), "train.batch_size") is None
    assert severity(make(train__max_steps=4), None, "train.max_steps") == "info"
    assert severity(make(train__max_steps=40), None, "train.max_steps") is None


def test_eval_split_for_early_stopping_and_best_checkpoint():
    no_val = {"train": "t.jsonl", "val_ratio": 0.0}
    assert (
        severity(
            make(data=no_val, eval__early_stopping_patience=2, eval__load_best=False),
            None,
            "eval.early_stopping_patience",
        )
        == "error"
    )
    assert severity(make(data=no_val), None, "eval.load_best") == "error"
    assert_fixed(make(data=no_val), None, "eval.load_best")
    assert severity(make(eval__early_stopping_patience=2), None, "eval.early_stopping_patience") is None
    assert severity(make(), None, "eval.load_best") is None


def test_eval_and_save_intervals():
    ctx = Context(n_train=104)  # batch 8, 1 epoch: 13 steps
    base = {"train__batch_size": 8, "train__epochs": 1}
    assert severity(make(eval__eval_steps=10, eval__save_steps=15), None, "eval.save_steps") == "error"
    assert_fixed(make(eval__eval_steps=10, eval__save_steps=15), None, "eval.save_steps")
    assert severity(make(eval__eval_steps=10, eval__save_steps=20), None, "eval.save_steps") is None
    assert severity(make(**base, eval__eval_steps=50), ctx, "eval.eval_steps") == "warning"
    assert_fixed(make(**base, eval__eval_steps=50), ctx, "eval.eval_steps")
    assert severity(make(**base, eval__eval_steps=5), ctx, "eval.eval_steps") is None
    late = make(**base, eval__save_steps=50, eval__load_best=False)
    assert severity(late, ctx, "eval.save_steps", "no checkpoint") == "warning"
    assert_fixed(late, ctx, "eval.save_steps", "no checkpoint")
    patient = make(**base, eval__eval_steps=5, eval__early_stopping_patience=3)  # 2 evaluations
    assert severity(patient, ctx, "eval.early_stopping_patience", "never trigger") == "warning"
    assert_fixed(patient, ctx, "eval.early_stopping_patience", "never trigger")
    assert severity(make(**base, eval__early_stopping_patience=3), ctx, "eval.early_stopping_patience") is None


def test_precision_and_qlora_against_the_hardware():
    cpu = Context(hardware=Hardware())
    assert severity(make(train__precision="bf16"), cpu, "train.precision", "emulated") == "warning"
    native = Context(hardware=Hardware(cpu_bf16="AMX-BF16"))
    assert severity(make(train__precision="bf16"), native, "train.precision") is None
    assert severity(make(), native, "train.precision", "bf16 autocast, fp32 weights here") == "info"
    assert severity(make(), cpu, "train.precision", "fp32 here: no CUDA GPU, and the CPU has no AMX") == "info"
    assert severity(make(train__precision="fp16"), cpu, "train.precision") == "error"
    assert_fixed(make(train__precision="fp16"), cpu, "train.precision")
    assert severity(make(train__precision="bf16"), Context(hardware=GPU), "train.precision") is None
    assert severity(make(train__precision="bf16"), Context(hardware=Hardware(cuda=True)), "train.precision") == "error"
    assert severity(make(finetune="qlora"), cpu, "finetune") == "error"
    assert_fixed(make(finetune="qlora"), cpu, "finetune")
    no_bnb = Context(hardware=dataclasses.replace(GPU, bitsandbytes=False))
    assert severity(make(finetune="qlora"), no_bnb, "finetune", "bitsandbytes") == "error"
    assert severity(make(finetune="qlora"), Context(hardware=GPU), "finetune") is None


def test_dpo_on_sft_data_and_the_reverse():
    assert (
        severity(make(method="dpo", train__learning_rate=5e-6), Context(data_shape="prompt_completion"), "method")
        == "error"
    )
    assert severity(make(), Context(data_shape="preference"), "method") == "info"
    assert severity(make(), Context(data_shape="prompt_completion"), "method") is None
    assert severity(make(method="dpo", train__learning_rate=5e-6), Context(data_shape="preference"), "method") is None


def test_trust_remote_code():
    assert severity(make(trust_remote_code=True), None, "trust_remote_code") == "warning"
    assert severity(make(), None, "trust_remote_code") is None


# -- rules that need the model's facts or the data's token lengths --------------------


def test_unreadable_model():
    ctx = Context(model_error="model '/nope': no such directory")
    assert severity(make(model="/nope"), ctx, "model") == "error"
    assert on(make(model="/nope"), ctx, "model")[0].suggestion == "bundled"
    assert severity(make(), Context(), "model") is None


def test_max_length_against_the_model_context(tiny):
    ctx = Context(model=tiny)  # RoPE, 512 positions
    assert severity(make(train__max_length=1024), ctx, "train.max_length") == "warning"
    assert_fixed(make(train__max_length=1024), ctx, "train.max_length")
    assert severity(make(train__max_length=512), ctx, "train.max_length") is None
    from transformers import GPT2Config

    gpt2 = facts_from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=128, vocab_size=100))
    assert severity(make(train__max_length=256), Context(model=gpt2), "train.max_length", "learned position") == "error"


def test_max_length_against_the_data(tiny):
    short = [(100, 50)] * 8
    ctx = Context(model=tiny, token_lengths=short + [(200, 100), (300, 20)], lengths_from=10)
    config = make(train__max_length=256)
    finding = on(config, ctx, "train.max_length")[0]
    assert finding.severity == "warning"
    assert "2 of 10" in finding.message and "1 lose the end of their answer" in finding.message
    assert "1 lose the whole answer" in finding.message and finding.suggestion == 320
    assert_fixed(config, ctx, "train.max_length")
    assert severity(config, Context(model=tiny, token_lengths=short), "train.max_length") is None
    lost = Context(token_lengths=[(100, 10)] * 3)  # every answer starts past max_length: the trainer has nothing
    assert severity(make(train__max_length=64), lost, "train.max_length") == "error"
    sampled = Context(token_lengths=short + [(300, 20)], lengths_from=50_000)
    assert "sampled (of 50000)" in on(config, sampled, "train.max_length")[0].message


def test_packing_without_flash_attention(tiny):
    packed = make(train__packing=True)
    assert severity(packed, Context(model=tiny), "train.packing", "quadratic") == "warning"
    assert_fixed(packed, Context(model=tiny), "train.packing")
    leaky = Context(model=tiny, packing_isolated=False)
    assert severity(packed, leaky, "train.packing", "attend to each other") == "warning"
    flash = Context(model=dataclasses.replace(tiny, attn_implementation="flash_attention_2"))
    assert severity(packed, flash, "train.packing") is None
    assert severity(make(), Context(model=tiny), "train.packing") is None
    dpo = make(method="dpo", train__learning_rate=5e-6, train__packing=True)
    assert severity(dpo, Context(model=tiny), "train.packing", "ignored") == "info"
    flat = make(train__padding_free=True)
    assert severity(flat, Context(model=tiny), "train.padding_free", "padding-free rows with sdpa") == "warning"
    assert severity(make(), Context(model=tiny), "train.padding_free", "quadratic time") is None  # auto never does that


def test_target_modules_the_model_lacks(tiny):
    ctx = Context(model=tiny)
    typo = make(lora__target_modules=["q_prj"])
    finding = on(typo, ctx, "lora.target_modules")[0]
    assert finding.severity == "error" and "did you mean 'q_proj'" in finding.message
    assert finding.suggestion == "all-linear"
    assert_fixed(typo, ctx, "lora.target_modules")
    assert severity(make(lora__target_modules=["q_proj", "nope"]), ctx, "lora.target_modules") == "warning"
    assert severity(make(lora__target_modules=["q_proj", "self_attn.v_proj"]), ctx, "lora.target_modules") is None
    assert (
        severity(
            make(finetune="full", lora__target_modules=["q_prj"], train__learning_rate=2e-5), ctx, "lora.target_modules"
        )
        is None
    )


def test_memory_without_a_gpu_is_an_estimate_for_one(tiny):
    finding = on(make(), Context(model=tiny), "train.batch_size")[0]
    assert finding.severity == "info" and "on a GPU" in finding.message and "no GPU" in finding.message
    assert severity(make(), Context(), "train.batch_size") is None  # no model facts: skipped


def test_memory_that_does_not_fit_lists_the_cheapest_fixes(big):
    config = make(lora__r=16, train__batch_size=8, train__max_length=2048)
    small = Context(model=big, hardware=dataclasses.replace(GPU, gpu_free_bytes=24 * GIB))
    errors = [f for f in validate(config, small) if f.severity == "error"]
    assert len(errors) == 1
    error = errors[0]
    assert "Cheapest fixes" in error.message and "Test GPU" in error.message
    fixes = estimate_memory(config, big).cheapest_fixes(24 * GIB)
    assert (error.field, error.suggestion) == (fixes[0].field, fixes[0].value)
    assert fixes[-1].total <= 24 * GIB
    huge = Context(model=big, hardware=dataclasses.replace(GPU, gpu_free_bytes=200 * GIB))
    assert not [f for f in validate(config, huge) if f.severity == "error"]


def test_tight_memory_suggests_gradient_checkpointing(big):
    config = make(lora__r=16, train__batch_size=1, train__max_length=2048)
    total = estimate_memory(config, big).total
    tight = Context(model=big, hardware=dataclasses.replace(GPU, gpu_free_bytes=int(total / 0.9)))
    assert severity(config, tight, "train.gradient_checkpointing", "tight") == "warning"
    assert_fixed(config, tight, "train.gradient_checkpointing", "tight")
    roomy = Context(model=big, hardware=dataclasses.replace(GPU, gpu_free_bytes=int(total * 2)))
    assert severity(config, roomy, "train.gradient_checkpointing") is None


def test_memory_uses_the_longest_sampled_example(big):
    config = make(lora__r=16, train__batch_size=8, train__max_length=4096)
    ctx = Context(
        model=big, hardware=dataclasses.replace(GPU, gpu_free_bytes=40 * GIB), token_lengths=[(200, 100)] * 10
    )
    assert not [f for f in validate(config, ctx) if f.severity == "error"]  # 8 × 300 tokens fit, 8 × 4096 would not
    assert [f for f in validate(config, dataclasses.replace(ctx, token_lengths=None)) if f.severity == "error"]
