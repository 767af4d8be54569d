"""GGUF export: transformers loads the file back and its logits match the source model's within a tolerance
per type; the metadata (template, EOS/EOT, vocabulary, merges) read back with gguf's own reader; refusals;
Mistral and Qwen2 as well as Llama; the Ollama Modelfile.

Tolerances are on max |logit difference| / max |logit|, measured on the tiny random Llama (f16 2e-4,
bf16 1.7e-3, q8_0 7e-3, q4_0 4e-2) and on the bundled SmolLM2 (f16 1.1e-3, q8_0 3.5e-2), with room to spare.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CHATML, SAMPLE, tiny_tokenizer

from workbench.errors import ShipError
from workbench.ship.gguf import GGUF_TYPES, SUPPORTED_ARCHITECTURES, export_gguf, llama_permute
from workbench.ship.modelfile import modelfile_text, template_family

TINY_TOLERANCE = {"f16": 1e-3, "bf16": 8e-3, "q8_0": 3e-2, "q4_0": 1.5e-1}
CHATS = [
    [{"role": "user", "content": "How do I reset my password?"}],
    [
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "My order 12345 never arrived, can I get a refund?"},
    ],
]


def _load(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def _source(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def _prompts(tokenizer, chats=CHATS) -> list[list[int]]:
    return [tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=False) for chat in chats]


def _relative_error(a, b, ids: list[int]) -> float:
    import torch

    with torch.no_grad():
        x = a(torch.tensor([ids])).logits[0]
        y = b(torch.tensor([ids])).logits[0]
    return float((x - y).abs().max() / x.abs().max())


def _greedy(model, ids: list[int], n: int = 16) -> list[int]:
    import torch

    out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, len(ids) :].tolist()


def _fields(path: Path) -> dict:
    """The metadata and tensor types of a GGUF file, read with gguf's own reader."""
    import gguf

    reader = gguf.GGUFReader(path)
    fields = {}
    for key, field in reader.fields.items():
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
            fields[key] = [bytes(field.parts[i]).decode() for i in field.data]
        elif key == "tokenizer.ggml.token_type":
            fields[key] = [int(field.parts[i][0]) for i in field.data]
        else:
            fields[key] = field.contents()
    fields["tensors"] = {t.name: t.tensor_type.name for t in reader.tensors}
    return fields


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path) -> Path:
    """The tiny Llama copied where the default outputs (beside the model dir) land in this test's tmp."""
    dest = tmp_path / "models" / "tiny-merged"
    shutil.copytree(tiny_model_dir, dest)
    return dest


def _tiny_family(tmp_path: Path, kind: str, *, tied: bool = True) -> Path:
    """A tiny random Mistral or Qwen2 with the tiny ChatML tokenizer."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

    texts = (SAMPLE / "support" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    tokenizer = tiny_tokenizer(texts)
    shape = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=tied,
        initializer_range=0.1,
    )
    if kind == "mistral":
        config, cls = MistralConfig(**shape, sliding_window=None), MistralForCausalLM
    else:
        config, cls = Qwen2Config(**shape), Qwen2ForCausalLM
    torch.manual_seed(1)
    model = cls(config)
    with torch.no_grad():  # random biases, so that a dropped or misplaced bias shows
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0, 0.1)
    out = tmp_path / f"tiny-{kind}"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", GGUF_TYPES)
def test_round_trip_logits_within_tolerance(model_copy, tmp_path, qtype):
    result = export_gguf(model_copy, tmp_path / "out" / f"tiny.{qtype}.gguf", qtype=qtype)
    source, source_tok = _source(model_copy)
    loaded, loaded_tok = _load(result.path)
    assert result.arch == "llama" and result.qtype == qtype and result.size_bytes == result.path.stat().st_size
    assert loaded.config.tie_word_embeddings and loaded.config.eos_token_id == source_tok.convert_tokens_to_ids(
        "<|im_end|>"
    )
    for chat, ids in zip(CHATS, _prompts(source_tok)):
        assert loaded_tok.apply_chat_template(chat, add_generation_prompt=True, return_dict=False) == ids
        assert _relative_error(source, loaded, ids) < TINY_TOLERANCE[qtype]
        if qtype == "f16":
            assert _greedy(source, ids) == _greedy(loaded, ids)


def test_q8_0_and_q4_0_are_smaller_and_norms_stay_f32(model_copy, tmp_path):
    sizes = {}
    for qtype in ("f16", "q8_0", "q4_0"):
        result = export_gguf(model_copy, tmp_path / f"t.{qtype}.gguf", qtype=qtype)
        sizes[qtype] = result.size_bytes
        tensors = _fields(result.path)["tensors"]
        assert all(kind == "F32" for name, kind in tensors.items() if name.endswith("norm.weight"))
        assert result.fallbacks == []
        if qtype == "q4_0":
            assert tensors["token_embd.weight"] == "Q8_0" and tensors["blk.0.attn_q.weight"] == "Q4_0"
            assert result.tensor_types == {"F32": 5, "Q8_0": 1, "Q4_0": 14}
    assert sizes["q4_0"] < sizes["q8_0"] < sizes["f16"]


@pytest.mark.parametrize("kind", ["mistral", "qwen2"])
def test_mistral_and_qwen2_round_trip(tmp_path, kind):
    model_dir = _tiny_family(tmp_path, kind, tied=kind == "mistral")
    result = export_gguf(model_dir, qtype="f16")
    assert result.path == tmp_path / f"tiny-{kind}.f16.gguf"
    assert result.arch == SUPPORTED_ARCHITECTURES[f"{kind.capitalize()}ForCausalLM"]
    tensors = _fields(result.path)["tensors"]
    if kind == "qwen2":
        assert {"blk.0.attn_q.bias", "blk.1.attn_v.bias", "output.weight"} <= set(tensors)
    else:
        assert "output.weight" not in tensors
    source, tok = _source(model_dir)
    rounded, _ = _source(model_dir)  # what f16 storage alone does: matrices rounded, 1-D tensors kept f32
    for param in rounded.parameters():
        if param.ndim > 1:
            param.data = param.data.half().float()
    loaded, _ = _load(result.path)
    assert loaded.config.tie_word_embeddings == (kind == "mistral")
    for ids in _prompts(tok):
        # larger weights than the tiny Llama's: f16 rounding alone costs 1e-3; a wrong Q/K layout costs 0.6
        assert _relative_error(source, loaded, ids) < 3e-3
        assert _relative_error(rounded, loaded, ids) < 1e-4
        assert _greedy(source, ids) == _greedy(loaded, ids)


def test_permutation_is_what_transformers_undoes():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    q = rng.standard_normal((9 * 8, 16)).astype(np.float32)
    k = rng.standard_normal((3 * 8, 16)).astype(np.float32)
    undo = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    assert not np.array_equal(llama_permute(q, 9, 9), q)
    assert np.array_equal(undo.process(llama_permute(q, 9, 9), "blk.0.attn_q.weight").weights, q)
    assert np.array_equal(undo.process(llama_permute(k, 9, 3), "blk.0.attn_k.weight").weights, k)


# --- metadata ---------------------------------------------------------------------------------------


def test_metadata_carries_template_eos_vocabulary_and_merges(model_copy, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_copy)
    result = export_gguf(model_copy, qtype="q8_0")
    fields = _fields(result.path)
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    assert fields["general.architecture"] == "llama"
    assert fields["tokenizer.chat_template"] == CHATML
    assert fields["tokenizer.ggml.eos_token_id"] == end_of_turn == fields["tokenizer.ggml.eot_token_id"]
    assert result.eos_token == "<|im_end|>"
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens) == len(tok) == fields["llama.vocab_size"]
    assert tokens[end_of_turn] == "<|im_end|>" and fields["tokenizer.ggml.token_type"][end_of_turn] == 3  # CONTROL
    merges = json.loads((model_copy / "tokenizer.json").read_text())["model"]["merges"]
    assert len(fields["tokenizer.ggml.merges"]) == len(merges) > 100
    assert fields["llama.block_count"] == 2 and fields["llama.attention.head_count_kv"] == 1
    assert "output.weight" not in fields["tensors"]  # tied: token_embd alone, as llama.cpp writes it
    assert not list(result.path.parent.glob(".*partial"))


def test_eos_comes_from_the_generation_config_when_the_template_is_unknown(model_copy, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_copy)
    template = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}<|endoftext|>{% endfor %}"
    config = json.loads((model_copy / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (model_copy / "tokenizer_config.json").write_text(json.dumps(config))
    (model_copy / "chat_template.jinja").unlink(missing_ok=True)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    generation = json.loads((model_copy / "generation_config.json").read_text())
    generation["eos_token_id"] = [tok.convert_tokens_to_ids("<unk>"), eot]
    (model_copy / "generation_config.json").write_text(json.dumps(generation))
    result = export_gguf(model_copy, qtype="f16")
    fields = _fields(result.path)
    assert fields["tokenizer.ggml.eos_token_id"] == eot and fields["tokenizer.chat_template"] == template
    text = result.modelfile.read_text()
    assert "not one we recognize" in text and 'PARAMETER stop "<|endoftext|>"' in text


# --- refusals ---------------------------------------------------------------------------------------


def test_unsupported_architecture_is_refused_naming_the_supported(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    out = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=64)).save_pretrained(out)
    with pytest.raises(ShipError, match=r"'GPT2LMHeadModel' cannot be exported.*LlamaForCausalLM.*Qwen2ForCausalLM"):
        export_gguf(out)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*partial"))


def test_adapter_dir_missing_weights_and_unknown_type_are_refused(model_copy, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ShipError, match=r"LoRA adapter.*workbench merge"):
        export_gguf(adapter)
    with pytest.raises(ShipError, match=r"no config\.json"):
        export_gguf(tmp_path / "models")
    with pytest.raises(ShipError, match="no such model directory"):
        export_gguf(tmp_path / "nowhere")
    with pytest.raises(ShipError, match=r"'q5_k' is not one we write.*f16, bf16, q8_0, q4_0"):
        export_gguf(model_copy, qtype="q5_k")
    for weights in model_copy.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ShipError, match=r"no \*\.safetensors"):
        export_gguf(model_copy)


# --- the Modelfile ----------------------------------------------------------------------------------


def test_modelfile_beside_the_gguf_with_the_system_prompt_of_the_training_data(model_copy):
    (model_copy / "workbench.json").write_text(json.dumps({"kind": "merged", "system_prompt": "Answer in JSON."}))
    result = export_gguf(model_copy, qtype="q4_0")
    assert result.path == model_copy.parent / "tiny-merged.q4_0.gguf"
    assert result.modelfile == model_copy.parent / "tiny-merged.q4_0.Modelfile"
    text = result.modelfile.read_text()
    assert "FROM ./tiny-merged.q4_0.gguf\n" in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'SYSTEM """Answer in JSON."""' in text
    assert "{{ .Content }}<|im_end|>" in text and text.count("TEMPLATE") == 1
    override = export_gguf(model_copy, qtype="q4_0", system_prompt="Be kind.")
    assert 'SYSTEM """Be kind."""' in override.modelfile.read_text()


def test_modelfile_templates_per_family():
    llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}...<|eot_id|>"
    mistral = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"
    assert [template_family(t) for t in (CHATML, llama3, mistral, "plain", None)] == [
        "chatml",
        "llama3",
        "mistral",
        None,
        None,
    ]
    text = modelfile_text("m.gguf", llama3, ["<|eot_id|>"], None, {"temperature": 0.2, "num_ctx": 4096})
    assert "<|start_header_id|>{{ .Role }}<|end_header_id|>" in text and "SYSTEM" not in text
    assert text.count('PARAMETER stop "<|eot_id|>"') == 1 and 'PARAMETER stop "<|start_header_id|>"' in text
    assert "PARAMETER temperature 0.2\n" in text and "PARAMETER num_ctx 4096\n" in text
    text = modelfile_text("m.gguf", mistral, ["</s>"], 'Say "hi".\nThen stop.', None)
    assert "[INST] " in text and "[/INST]" in text and 'PARAMETER stop "[INST]"' in text
    assert 'SYSTEM """Say "hi".\nThen stop."""' in text
    assert "not one we recognize" not in text


# --- the bundled model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled_exports(bundled_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundled-gguf")
    return {q: export_gguf(bundled_dir, out / f"smollm2.{q}.gguf", qtype=q) for q in ("f16", "q8_0")}


def _sample_chats(n: int = 2) -> list[list[dict]]:
    rows = [json.loads(line) for line in (SAMPLE / "support" / "test.jsonl").read_text().splitlines()[:n]]
    return [[m for m in row["messages"] if m["role"] != "assistant"] for row in rows]


@pytest.mark.slow
def test_bundled_f16_gives_the_same_greedy_answers(bundled_dir, bundled_exports):
    source, tok = _source(bundled_dir)
    loaded, loaded_tok = _load(bundled_exports["f16"].path)
    assert loaded.config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    for chat, ids in zip(_sample_chats(), _prompts(tok, _sample_chats())):
        assert loaded_tok.apply_chat_template(chat, add_generation_prompt=True, return_dict=False) == ids
        assert _relative_error(source, loaded, ids) < 5e-3
        assert _greedy(source, ids, 32) == _greedy(loaded, ids, 32)


@pytest.mark.slow
def test_bundled_q8_0_logits_within_tolerance(bundled_dir, bundled_exports):
    import torch

    source, tok = _source(bundled_dir)
    loaded, _ = _load(bundled_exports["q8_0"].path)
    for ids in _prompts(tok, _sample_chats()):
        assert _relative_error(source, loaded, ids) < 8e-2
        with torch.no_grad():
            agree = source(torch.tensor([ids])).logits[0].argmax(-1) == loaded(torch.tensor([ids])).logits[0].argmax(-1)
        assert agree.float().mean() > 0.9
    assert bundled_exports["q8_0"].size_bytes < 0.6 * bundled_exports["f16"].size_bytes


def test_merged_run_exports_with_its_training_system_prompt(workspace, tiny_model_dir):
    from shipkit import fake_run

    from workbench.ship.merge import merge_model
    from workbench.ship.provenance import system_prompt_of_run

    run = fake_run(workspace, tiny_model_dir, steps=(4,), best=4)
    merged = merge_model(workspace, f"{run.name}/adapter")
    result = export_gguf(merged.path, qtype="q8_0")
    assert result.path.parent == workspace / "models" and result.path.name == f"{merged.path.name}.q8_0.gguf"
    prompt = system_prompt_of_run(run)
    assert prompt and f'SYSTEM """{prompt}"""' in result.modelfile.read_text()
    fields = _fields(result.path)
    assert fields["tokenizer.ggml.tokens"][fields["tokenizer.ggml.eos_token_id"]] == "<|im_end|>"


def test_llama3_rope_scaling_becomes_llama_cpps_rope_freqs(tmp_path, tiny_model_dir):
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        rope_parameters=rope,
        tie_word_embeddings=True,
    )
    out = tmp_path / "llama3-rope"
    LlamaForCausalLM(config).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model_dir / name).is_file():
            shutil.copy(tiny_model_dir / name, out / name)
    result = export_gguf(out, qtype="f16")
    tensor = next(t for t in gguf.GGUFReader(result.path).tensors if t.name == "rope_freqs.weight")
    factors = np.asarray(tensor.data, dtype=np.float64)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config)
    base = 1.0 / (500000.0 ** (torch.arange(0, 32, 2, dtype=torch.float64) / 32))
    assert factors.shape == (16,) and factors.min() == 1.0 and factors.max() == 32.0
    assert np.allclose(base.numpy() / factors, scaled.double().numpy(), rtol=1e-5)


def test_pre_tokenizer_names_follow_llama_cpp():
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    from workbench.ship.gguf import pre_tokenizer_name

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}

    def split(regex):
        no_regex = {**byte_level, "use_regex": False}
        return {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": regex}}, no_regex]}

    assert pre_tokenizer_name({"pre_tokenizer": byte_level}) == "gpt-2"
    digits = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    assert pre_tokenizer_name({"pre_tokenizer": digits}) == "smollm"  # SmolLM2's own tokenizer.json
    assert pre_tokenizer_name({"pre_tokenizer": split(PRETOKENIZE_REGEX)}) == "qwen2"
    assert pre_tokenizer_name({"pre_tokenizer": split(GGUF_PRE_TOKENIZER_SPLITS["llama-bpe"])}) == "llama-bpe"
    assert pre_tokenizer_name({"pre_tokenizer": split(r"\w+")}) is None


def test_an_interrupted_export_leaves_nothing_behind(model_copy, tmp_path):
    def stop_at_tensors(message: str) -> None:
        if message.startswith("tensor"):
            raise KeyboardInterrupt

    target = tmp_path / "out" / "x.q8_0.gguf"
    with pytest.raises(KeyboardInterrupt):
        export_gguf(model_copy, target, progress=stop_at_tensors)
    assert list(target.parent.iterdir()) == []
