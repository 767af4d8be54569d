"""Model facts from config.json, the GPU memory estimate (checked against hand arithmetic), and the step probe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from configkit import make_config

from workbench.config import RunConfig
from workbench.config.memory import (
    CUDA_CONTEXT_BYTES,
    Precision,
    apply_changes,
    estimate_memory,
    resolve_precision,
)
from workbench.config.modelinfo import clear_cache, facts_from_config, lora_params, model_facts
from workbench.errors import ModelError

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "support"
GIB = 2**30


def make(**overrides) -> RunConfig:
    return make_config({"train": str(SAMPLE / "train.jsonl"), "val": str(SAMPLE / "val.jsonl")}, **overrides)


def llama_7b_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )


@pytest.fixture(scope="module")
def facts_7b():
    return facts_from_config(llama_7b_config(), path="llama-7b (made up)")


# -- model facts -------------------------------------------------------------------


def test_tiny_model_facts(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    facts = model_facts(tiny_model_dir)
    real = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert facts.total_params == sum(p.numel() for p in real.parameters()) == 50_592
    assert (facts.num_layers, facts.hidden_size, facts.intermediate_size) == (2, 32, 64)
    assert (facts.num_heads, facts.num_kv_heads, facts.head_dim, facts.vocab_size) == (2, 1, 16, 1000)
    assert (facts.max_context, facts.tied_embeddings, facts.model_type, facts.weights_dtype) == (
        512,
        True,
        "llama",
        "float32",
    )
    assert facts.lm_head == "lm_head" and facts.lm_head_params == 0
    shapes = {layer.name: (layer.in_features, layer.out_features) for layer in facts.linears}
    assert shapes["model.layers.1.self_attn.k_proj"] == (32, 16)
    assert shapes["model.layers.0.mlp.down_proj"] == (64, 32)
    assert len(facts.linears) == 2 * 7 + 1
    groups = facts.module_groups()
    assert groups["attention"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert groups["mlp"] == ["gate_proj", "up_proj", "down_proj"]
    assert groups["all-linear"] == groups["attention"] + groups["mlp"]  # no lm_head, as PEFT's all-linear
    assert model_facts(tiny_model_dir) is facts  # cached per resolved path


def test_bundled_model_facts(bundled_dir):
    facts = model_facts("bundled")
    assert facts.path == str(bundled_dir)
    assert (facts.num_layers, facts.hidden_size, facts.intermediate_size, facts.vocab_size) == (30, 576, 1536, 49152)
    assert (facts.num_heads, facts.num_kv_heads, facts.max_context) == (9, 3, 8192)
    assert facts.total_params == 134_515_008 and facts.tied_embeddings


def test_7b_facts_from_config_json_without_weights(tmp_path):
    llama_7b_config().save_pretrained(tmp_path)  # config.json only: no weights anywhere
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
    facts = model_facts(tmp_path)
    assert facts.total_params == 6_738_415_616  # Llama-2-7B
    assert facts.lm_head_params == 32000 * 4096 and not facts.tied_embeddings
    assert sum(layer.params for layer in facts.body_linears) == 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)


def test_model_facts_errors_name_the_path(tmp_path):
    with pytest.raises(ModelError, match=str(tmp_path)):
        model_facts(tmp_path)  # no config.json
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"config\.json"):
        model_facts(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    clear_cache()
    with pytest.raises(ModelError, match=str(tmp_path)):
        model_facts(tmp_path)


@pytest.mark.parametrize(
    "targets,r,dora",
    [
        ("all-linear", 8, False),
        (["q_proj", "v_proj"], 4, False),
        (["embed_tokens", "o_proj"], 2, False),
        ("all-linear", 8, True),
    ],
)
def test_lora_params_matches_peft(tiny_model_dir, targets, r, dora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(
        model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, use_dora=dora, task_type="CAUSAL_LM")
    )
    trainable, total = peft_model.get_nb_trainable_parameters()
    facts = model_facts(tiny_model_dir)
    assert lora_params(facts, targets, r, dora=dora) == trainable
    assert total == facts.total_params + trainable


def test_unknown_targets_and_did_you_mean(tiny_model_dir):
    facts = model_facts(tiny_model_dir)
    assert facts.unknown_targets(["q_proj", "qproj", "self_attn.v_proj"]) == ["qproj"]
    assert facts.unknown_targets("all-linear") == []
    assert facts.closest_module("qproj") == "q_proj"
    assert facts.closest_module("c_attn") is None


# -- the estimate, by hand ---------------------------------------------------------


def test_estimate_tiny_lora_by_hand(tiny_model_dir):
    """LoRA r=8 on q and v, bf16 on a GPU, 2 × 64 tokens: every item worked out by hand."""
    facts = model_facts(tiny_model_dir)
    config = make(
        lora__r=8,
        lora__target_modules=["q_proj", "v_proj"],
        lora__dropout=0.0,
        train__precision="bf16",
        train__batch_size=2,
        train__max_length=64,
    )
    est = estimate_memory(config, facts)
    items = {i.name: i.bytes for i in est.items}
    assert est.precision == Precision("bf16", 2, 2, True)
    assert items["weights"] == 50_592 * 2
    lora = 2 * (8 * (32 + 32) + 8 * (32 + 16))  # q 32→32, v 32→16, in 2 layers
    assert lora == 1792
    assert items["LoRA parameters"] == items["gradients"] == lora * 4  # fp32 adapters
    assert items["optimizer states"] == lora * 2 * 4  # AdamW: 2 fp32 states
    assert items["optimizer step temporaries"] == lora * 4  # foreach sqrt of the second moments
    tokens = 2 * 64
    per_layer = (
        2 * (4 * 32 + 4)  # two RMSNorms keep their fp32 input and rsqrt
        + 2 * (32 + 2 * 32)
        + 2 * 32
        + 4 * 2  # q, k and v repeated to 2 heads, the output, log-sum-exp
        + 3 * 2 * 64  # gate output, its SiLU, up output
        + 2 * (32 + 32)  # q's and v's own bf16 copies of their input (PEFT casts to fp32, autocast back)
        + 2 * 2 * 8  # lora_A outputs of q and v
        + 2 * 64 * 64 * 2 // tokens  # SDPA's additive copy of the padding mask, per layer
    )
    assert per_layer == 1200
    once = tokens * (4 * 32 + 4) + 2 * 64 * 64 + lora * 2  # final norm, boolean mask, autocast's LoRA weight cache
    assert items["activations"] == 2 * tokens * per_layer + once == 335_872
    assert items["layer backward"] == tokens * per_layer
    logits = (
        128 * 32768 * 2 + tokens * 32 * (2 + 4 + 2) + tokens * 4 * 10
    )  # tile, hidden + fp32 gradient, per-token stats
    assert items["logits"] == logits == 8_426_496
    persistent = 50_592 * 2 + lora * 4 + lora * 8
    assert est.peak_moment == "loss backward"
    assert est.allocated == persistent + 335_872 + logits == 8_885_056
    assert est.total == 8_885_056 + CUDA_CONTEXT_BYTES + int(8_885_056 * 0.10)


def test_estimate_bundled_full_finetune_by_hand(bundled_dir):
    """Full fine-tuning in bf16 with checkpointing and 2 accumulation steps, 4 × 256 tokens."""
    facts = model_facts("bundled")
    config = make(
        finetune="full",
        train__precision="bf16",
        train__batch_size=4,
        train__grad_accum=2,
        train__max_length=256,
        train__gradient_checkpointing=True,
        train__learning_rate=2e-5,
    )
    est = estimate_memory(config, facts)
    items = {i.name: i for i in est.items}
    p = 134_515_008
    assert items["weights"].bytes == p * 2
    assert items["gradients"].bytes == p * 2 and items["gradients"].phase == "persistent"  # accumulating
    assert items["optimizer states"].bytes == p * 2 * 2  # torch AdamW keeps bf16 states for bf16 parameters
    assert items["optimizer step temporaries"].bytes == p * 2
    tokens = 4 * 256
    per_layer = (
        2 * (4 * 576 + 4)
        + 2 * 2 * 576  # norms, and their outputs for the trainable norm weights
        + 2 * (576 + 2 * 576)
        + 2 * 576
        + 4 * 9  # attention (3 KV heads repeated to 9)
        + 3 * 2 * 1536  # gated MLP
        + 2 * (576 + 576 + 1536)  # inputs of q/k/v (shared), gate/up (shared), down; o shares the attention output
        + 4 * 256 * 256 * 2 // tokens  # the additive mask
    )
    assert per_layer == 26_668
    kept = tokens * 30 * 2 * 576 + tokens * (4 * 576 + 4 + 2 * 576) + 4 * 256 * 256
    assert items["activations"].bytes == kept == 39_194_624
    assert items["layer backward"].bytes == 2 * tokens * per_layer  # one layer recomputed, then its backward
    logits = 1024 * 32768 * 2 + 49152 * 576 * (4 + 2) + tokens * 576 * 8 + tokens * 40  # + the LM head's fp32 gradient
    assert items["logits"].bytes == logits == 241_737_728
    persistent = p * 2 + p * 2 + p * 4
    assert est.allocated == persistent + kept + logits == 1_357_052_416
    assert est.peak_moment == "loss backward"


def test_estimate_7b_lora_by_hand(facts_7b):
    """A 7B Llama (no weights, sizes only), LoRA r=16 on all linears, one 2048-token row in bf16."""
    config = make(lora__r=16, train__precision="bf16", train__batch_size=1, train__max_length=2048)
    est = estimate_memory(config, facts_7b)
    items = {i.name: i.bytes for i in est.items}
    assert items["weights"] == 6_738_415_616 * 2
    per_layer_lora = 16 * (4 * (4096 + 4096) + 2 * (4096 + 11008) + (11008 + 4096))
    assert items["LoRA parameters"] == 32 * per_layer_lora * 4 == 159_907_840
    per_layer = (
        2 * (4 * 4096 + 4)
        + 2 * (4096 + 2 * 4096)
        + 2 * 4096
        + 4 * 32  # no grouped-query attention: k and v as they are
        + 3 * 2 * 11008
        + (6 * 4096 + 11008) * (2 + 1)  # each adapted layer's own bf16 input copy and its 1-byte dropout mask
        + 7 * 2 * 16
    )  # one row: no padding, so no mask
    assert per_layer == 238_696
    assert items["activations"] == 32 * 2048 * per_layer + 2048 * (4 * 4096 + 4) + 32 * per_layer_lora * 2
    assert items["layer backward"] == 2048 * per_layer > items["logits"]  # a 4096-wide layer outweighs the head
    assert est.peak_moment == "layer backward"


def test_qlora_weights_are_4bit(facts_7b):
    est = estimate_memory(make(finetune="qlora", train__precision="bf16"), facts_7b)
    weights = next(i.bytes for i in est.items if i.name == "weights")
    linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    rest = 6_738_415_616 - linear  # embeddings, norms and the LM head stay in bf16
    assert weights == int(linear * (0.5 + (8 / 64 + 32 / (64 * 256)) / 8) + rest * 2)
    assert 3.5 * GIB < weights < 3.7 * GIB  # against 12.6 GiB in bf16


def test_fits_and_cheapest_fixes(facts_7b):
    config = make(lora__r=16, train__precision="bf16", train__batch_size=8, train__max_length=2048)
    est = estimate_memory(config, facts_7b)
    budget = 40 * GIB
    assert not est.fits(budget)
    fixes = est.cheapest_fixes(budget)
    assert fixes and fixes[-1].total <= budget
    assert [f.total for f in fixes] == sorted((f.total for f in fixes), reverse=True)
    assert fixes[0].field == "train.batch_size" and fixes[0].changes["train.grad_accum"] * fixes[0].value == 8
    # each fix is applied on top of the ones before it
    final = config
    for fix in fixes:
        final = apply_changes(final, fix.changes)
    assert estimate_memory(final, facts_7b).total == fixes[-1].total
    assert est.with_changes({"train.batch_size": 1}).total < est.total
    assert estimate_memory(config, facts_7b).cheapest_fixes(200 * GIB) == []  # already fits


def test_fixes_reach_qlora_and_max_length(facts_7b):
    config = make(
        lora__r=16,
        train__precision="bf16",
        train__batch_size=1,
        train__max_length=4096,
        train__gradient_checkpointing=True,
    )
    fixes = estimate_memory(config, facts_7b).cheapest_fixes(8 * GIB)
    assert [f.field for f in fixes] == ["finetune", "train.max_length"]
    assert fixes[0].value == "qlora" and fixes[-1].total <= 8 * GIB
    no_qlora = estimate_memory(config, facts_7b).cheapest_fixes(8 * GIB, qlora=False)
    assert [f.field for f in no_qlora] == ["train.max_length"]  # the smallest max_length still does not fit


def test_checkpointing_and_packing_change_activations(tiny_model_dir):
    facts = model_facts(tiny_model_dir)

    def activations(config: RunConfig, **kwargs) -> int:
        return next(i.bytes for i in estimate_memory(config, facts, **kwargs).items if i.name == "activations")

    base = activations(make(train__max_length=256))
    assert activations(make(train__max_length=256, train__gradient_checkpointing=True)) < base / 4
    # padding-free packing flattens 8 rows into one: the mask is (8 × 256)² instead of 8 × 256²
    assert activations(make(train__max_length=256, train__packing=True)) > base + (8 * 256) ** 2 - 8 * 256**2
    shorter = estimate_memory(make(train__max_length=256), facts, seq_len=100)
    assert shorter.seq_len == 100 and shorter.total < estimate_memory(make(train__max_length=256), facts).total


def test_dpo_doubles_rows_and_full_dpo_keeps_a_reference(tiny_model_dir):
    facts = model_facts(tiny_model_dir)
    dpo = estimate_memory(make(method="dpo", train__learning_rate=5e-6), facts)
    assert dpo.rows == 2 * 8
    full = estimate_memory(make(method="dpo", finetune="full", train__learning_rate=1e-6), facts)
    assert any(i.name == "reference model" for i in full.items)


@pytest.mark.parametrize(
    "cuda,bf16,cpu_bf16", [(True, True, None), (True, False, None), (False, False, None), (False, False, "AMX-BF16")]
)
def test_precision_follows_the_worker(monkeypatch, cuda, bf16, cpu_bf16):
    """The estimate's precision is the worker's: the weights' dtype and whether it autocasts to 16 bits."""
    import torch

    from workbench.config import precision as precision_mod
    from workbench.config.trl_args import machine_precision, precision_arguments

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(precision_mod, "cpu_bf16_feature", lambda: cpu_bf16)
    for precision in ("auto", "bf16", "fp16", "fp32"):
        config = make(train__precision=precision)
        name, flags = precision_arguments(
            machine_precision(config.train.precision), cuda=cuda
        )  # what build_trainer loads
        dtype = getattr(torch, name)
        prec = resolve_precision(config, cuda=cuda, bf16=bf16, cpu_bf16=cpu_bf16)
        assert prec.weight == dtype.itemsize, precision
        assert prec.compute == (2 if flags.get("bf16") or flags.get("fp16") else dtype.itemsize), precision


def test_estimate_lines_mark_the_peak(tiny_model_dir):
    est = estimate_memory(make(), model_facts(tiny_model_dir))
    text = "\n".join(est.lines())
    assert "weights" in text and "total" in text and "(not at the peak)" in text


# -- the probe ---------------------------------------------------------------------


def test_probe_tiny_model(tiny_model_dir):
    from workbench.config.probe import probe_step

    config = make(model=str(tiny_model_dir), train__batch_size=2, train__max_length=128)
    result = probe_step(config)
    assert result.seconds_per_step > 0 and result.steps == 1
    assert result.device.startswith("cpu") and result.peak_kind == "cpu rss"
    assert "not comparable" in result.note
    assert result.peak_bytes > 0 and result.tensor_peak_bytes and result.batch_shape
    rows, length = result.batch_shape
    assert rows <= 2 and length <= 128
    est = estimate_memory(
        apply_changes(config, {"train.batch_size": rows}), model_facts(tiny_model_dir), device="cpu", seq_len=length
    )
    assert 0.7 < est.allocated / result.tensor_peak_bytes < 1.3


@pytest.mark.slow
def test_estimate_against_probe_on_bundled_model(bundled_dir):
    """The CPU estimate against the profiler's live-tensor peak of real steps (about 15 s on two idle cores)."""
    from workbench.config.probe import probe_step

    config = make(train__batch_size=2, train__max_length=192)
    result = probe_step(config)
    rows, length = result.batch_shape
    est = estimate_memory(
        apply_changes(config, {"train.batch_size": rows}), model_facts("bundled"), device="cpu", seq_len=length
    )
    assert result.tensor_peak_bytes is not None
    assert abs(est.allocated / result.tensor_peak_bytes - 1) < 0.15
