"""Export a plain model directory (a merged model, a base) to one GGUF file for llama.cpp and Ollama.

Written with the ``gguf`` package from the llama.cpp project (its writer, tensor-name map and Q8_0/Q4_0
quantizers): nothing is compiled. What we do the way llama.cpp's ``convert_hf_to_gguf.py`` does, so that
its runtime and transformers' GGUF loader (our oracle in the tests) both read the file right:

* Llama and Mistral are written as gguf arch ``llama``, with the Q and K projections permuted from HF's
  rotary layout (halves) to llama.cpp's (interleaved pairs); transformers' loader undoes exactly that
  permutation for ``llama``. Qwen2 is written as ``qwen2``, unpermuted (NeoX rotary), with its biases.
* Tied embeddings (SmolLM2): ``token_embd`` alone, no ``output.weight``; readers tie them again.
* Llama 3.1-style rope scaling is written as llama.cpp's ``rope_freqs`` tensor (transformers' GGUF loader
  ignores it, so only llama.cpp and Ollama run such a file at full fidelity); linear scaling as metadata.
* Norms and every other 1-D tensor stay F32. Q8_0/Q4_0 quantize 2-D matrices whose rows are a multiple of
  the 32-value block; any other matrix falls back to F16 (listed in the result). In Q4_0 the embedding /
  output matrix is kept at Q8_0, as llama.cpp's own quantizer keeps the output at higher precision.
* The vocabulary, merges, token types and special ids; the chat template; EOS = the template's end-of-turn
  token (``<|im_end|>`` for ChatML), also written as ``eot_token_id``: a GGUF without it rambles on.

The file is written to a temporary name beside the target and renamed when complete, one tensor in memory
at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ShipError, one_line
from workbench.ship.modelfile import END_OF_TURN, FAMILY_STOPS, modelfile_text, template_family

GGUF_TYPES = ("f16", "bf16", "q8_0", "q4_0")

SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
}
"""HF architecture -> gguf architecture (llama.cpp runs Mistral as ``llama``)."""

_PERMUTED_ARCHES = {"llama"}
"""gguf architectures whose Q/K weights llama.cpp stores in its interleaved rotary layout."""

_SKIPPED_TENSORS = ("rotary_emb.inv_freq",)

_PRE_TOKENIZER_SPLITS = {
    # llama.cpp's names for the split regexes of the families we support (llama-vocab.cpp).
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


@dataclass
class GgufResult:
    """One exported GGUF file and its Modelfile."""

    path: Path
    modelfile: Path
    qtype: str
    arch: str
    seconds: float
    size_bytes: int
    tensor_types: dict[str, int] = field(default_factory=dict)
    """How many tensors were written in each GGML type (``{"Q8_0": 210, "F32": 61}``)."""
    fallbacks: list[str] = field(default_factory=list)
    """Matrices that could not take the asked type (rows not a multiple of the block), written as F16."""
    eos_token: str = ""
    notes: list[str] = field(default_factory=list)


def default_gguf_path(model_dir: Path, qtype: str) -> Path:
    return model_dir.parent / f"{model_dir.name}.{qtype}.gguf"


def modelfile_path(gguf_path: Path) -> Path:
    """``NAME.q8_0.gguf`` -> ``NAME.q8_0.Modelfile`` beside it."""
    stem = gguf_path.name[: -len(".gguf")] if gguf_path.name.endswith(".gguf") else gguf_path.name
    return gguf_path.with_name(stem + ".Modelfile")


# --- checks -----------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ShipError(f"{path}: cannot be read as JSON ({one_line(exc)})") from exc
    if not isinstance(data, dict):
        raise ShipError(f"{path}: expected a JSON object")
    return data


def _check_model_dir(model_dir: Path, qtype: str) -> tuple[dict[str, Any], list[Path]]:
    if qtype not in GGUF_TYPES:
        raise ShipError(f"GGUF type {qtype!r} is not one we write; expected one of {', '.join(GGUF_TYPES)}")
    if not model_dir.is_dir():
        raise ShipError(f"{model_dir}: no such model directory")
    if not (model_dir / "config.json").is_file():
        if (model_dir / "adapter_config.json").is_file():
            raise ShipError(
                f"{model_dir} is a LoRA adapter, not a full model: merge it into its base first "
                f"(workbench merge RUN[/checkpoint-N]) and export the merged directory"
            )
        raise ShipError(f"{model_dir}: no config.json; expected a model directory saved with save_pretrained")
    config = _read_json(model_dir / "config.json")
    shards = sorted(model_dir.glob("*.safetensors"))
    if not shards:
        raise ShipError(
            f"{model_dir}: no *.safetensors weights (a .bin-only model: load it and save_pretrained it again)"
        )
    arch = (config.get("architectures") or ["?"])[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ShipError(
            f"{model_dir}: architecture {arch!r} cannot be exported to GGUF here; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return config, shards


# --- hyperparameters --------------------------------------------------------------------------------


def _rope(config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """``(rope_theta, rope scaling dict or {})`` from a transformers 4 or 5 config."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    theta = float(params.get("rope_theta") or config.get("rope_theta") or 10000.0)
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind == "default":
        return theta, {}
    merged = {**scaling, **params, "rope_type": kind}
    if kind not in ("linear", "llama3"):
        raise ShipError(
            f"rope scaling {kind!r} is not exported yet (only none, 'linear' and 'llama3'); "
            "export the model with llama.cpp's convert_hf_to_gguf.py instead"
        )
    return theta, merged


def llama3_rope_factors(config: dict[str, Any]) -> np.ndarray | None:
    """The ``rope_freqs`` tensor llama.cpp divides its rotary frequencies by for Llama 3.1+ scaling
    (as convert_hf_to_gguf computes it); None when the model has no llama3 rope scaling."""
    theta, scaling = _rope(config)
    if scaling.get("rope_type") != "llama3":
        return None
    heads = int(config["num_attention_heads"])
    dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    freqs = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    factor = float(scaling.get("factor", 8.0))
    low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
    old_context = float(scaling.get("original_max_position_embeddings", 8192))
    wavelen = 2 * np.pi / freqs
    smooth = (old_context / wavelen - low) / (high - low)
    factors = np.where(
        wavelen < old_context / high,
        1.0,
        np.where(wavelen > old_context / low, factor, 1 / ((1 - smooth) / factor + smooth)),
    )
    return factors.astype(np.float32)


def _add_hparams(writer: Any, config: dict[str, Any], n_vocab: int) -> None:
    import gguf

    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    writer.add_context_length(int(config.get("max_position_embeddings") or 2048))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps") or 1e-6))
    writer.add_vocab_size(n_vocab)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    theta, scaling = _rope(config)
    writer.add_rope_freq_base(theta)
    if scaling.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(scaling["factor"]))


# --- tokenizer --------------------------------------------------------------------------------------


def pre_tokenizer_name(tokenizer_json: dict[str, Any]) -> str | None:
    """llama.cpp's name for how this byte-level BPE splits text before merging (None: not one we know)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"]:
        regex = (steps[0].get("pattern") or {}).get("Regex")
        for name, split in _PRE_TOKENIZER_SPLITS.items():
            if regex == split:
                return name
    return None


def _vocab(model_dir: Path, tokenizer: Any, n_vocab: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their gguf token types, as llama.cpp's converter lists them (padded to n_vocab)."""
    import gguf

    reverse = {i: tok for tok, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added and i in decoder:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if decoder[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    if len(reverse) > n_vocab:
        raise ShipError(
            f"{model_dir}: the tokenizer has {len(reverse)} tokens but the model's embedding only {n_vocab} rows"
        )
    return tokens, types


def _eos_candidates(model_dir: Path, config: dict[str, Any], tokenizer: Any) -> list[int]:
    gen = _read_json(model_dir / "generation_config.json")
    ids: list[int] = []
    for source in (gen.get("eos_token_id"), config.get("eos_token_id"), tokenizer.eos_token_id):
        for value in source if isinstance(source, list) else [source]:
            if isinstance(value, int) and value not in ids:
                ids.append(value)
    return ids


def _end_of_turn(template: str | None, eos_ids: list[int], tokens: list[str]) -> int | None:
    """The id generation must stop on: the template family's end-of-turn token when the vocabulary has it,
    else the first EOS candidate the template writes, else the first EOS candidate."""
    family = template_family(template)
    if family and END_OF_TURN[family] in tokens:
        return tokens.index(END_OF_TURN[family])
    for i in eos_ids:
        if template and 0 <= i < len(tokens) and tokens[i] in template:
            return i
    return eos_ids[0] if eos_ids else None


def _add_tokenizer(writer: Any, model_dir: Path, config: dict[str, Any], n_vocab: int) -> dict[str, Any]:
    """The vocabulary, merges, special ids and chat template; returns what the Modelfile needs."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer_json = _read_json(model_dir / "tokenizer.json")
    model = tokenizer_json.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ShipError(
            f"{model_dir}: the tokenizer is not a byte-level BPE (tokenizer.json model {model.get('type')!r}, "
            f"byte_fallback {model.get('byte_fallback')}); only byte-level BPE vocabularies are exported "
            "(SmolLM, Qwen2, Llama 3, Mistral Tekken)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except Exception as exc:  # tokenizer files come in many broken shapes
        raise ShipError(f"{model_dir}: the tokenizer cannot be loaded ({one_line(exc)})") from exc
    tokens, types = _vocab(model_dir, tokenizer, n_vocab)
    writer.add_tokenizer_model("gpt2")
    pre = pre_tokenizer_name(tokenizer_json)
    notes = [] if pre else ["pre-tokenizer not recognized: written as 'default' (GPT-2 splitting)"]
    writer.add_tokenizer_pre(pre or "default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)

    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    if not special.merges:
        raise ShipError(f"{model_dir}: tokenizer.json has no BPE merges; the GGUF could not tokenize")
    template = special.chat_template if isinstance(special.chat_template, str) else tokenizer.chat_template
    special.chat_template = template
    eos = _end_of_turn(template, _eos_candidates(model_dir, config, tokenizer), tokens)
    if eos is None:
        raise ShipError(f"{model_dir}: no EOS token in generation_config.json, config.json or the tokenizer")
    special.special_token_ids["eos"] = eos
    special.special_token_ids["eot"] = eos
    probe = tokenizer("a").input_ids
    special.add_special_token["bos"] = bool(probe) and probe[0] == tokenizer.bos_token_id
    special.add_special_token["eos"] = bool(probe) and probe[-1] == tokenizer.eos_token_id and len(probe) > 1
    special.add_to_gguf(writer, quiet=True)  # eos and eot: the end-of-turn id set above
    family = template_family(template)
    stops = [tokens[eos], *(s for s in FAMILY_STOPS.get(family or "", ()) if s in tokens)]
    return {"template": template or "", "stops": list(dict.fromkeys(stops)), "eos": tokens[eos], "notes": notes}


# --- tensors ----------------------------------------------------------------------------------------


def llama_permute(weights: np.ndarray, n_head: int, n_head_kv: int) -> np.ndarray:
    """HF rotary layout -> llama.cpp's (convert_hf_to_gguf's LlamaModel.permute); transformers undoes it."""
    if n_head_kv != n_head:
        n_head = n_head_kv
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


@dataclass
class _Plan:
    """One tensor to write: where it comes from and how it is stored."""

    source: str
    shard: Path
    name: str
    shape: tuple[int, ...]
    ggml_type: Any  # gguf.GGMLQuantizationType
    data: np.ndarray | None = None
    """A tensor computed here rather than read from the shard (llama3's rope_freqs)."""


def _plan(config: dict[str, Any], shards: list[Path], arch: str, qtype: str) -> tuple[list[_Plan], list[str]]:
    import gguf
    from safetensors import safe_open

    q = gguf.GGMLQuantizationType
    wanted = {"f16": q.F16, "bf16": q.BF16, "q8_0": q.Q8_0, "q4_0": q.Q4_0}[qtype]
    gguf_arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    name_map = gguf.get_tensor_name_map(gguf_arch, int(config["num_hidden_layers"]))
    tied = bool(config.get("tie_word_embeddings", False))
    plans: list[_Plan] = []
    fallbacks: list[str] = []
    seen: dict[str, str] = {}
    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if key.endswith(_SKIPPED_TENSORS) or (tied and key == "lm_head.weight"):
                    continue
                name = name_map.get_name(key, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise ShipError(f"{shard}: tensor {key!r} has no GGUF name for arch {arch!r}")
                if name in seen:
                    raise ShipError(f"{shard}: tensors {seen[name]!r} and {key!r} both map to {name!r}")
                seen[name] = key
                shape = tuple(int(n) for n in f.get_slice(key).get_shape())
                ggml_type = wanted
                if len(shape) <= 1 or name.endswith("_norm.weight"):
                    ggml_type = q.F32
                elif wanted in (q.Q8_0, q.Q4_0):
                    if wanted == q.Q4_0 and name in ("token_embd.weight", "output.weight"):
                        ggml_type = q.Q8_0
                    if shape[-1] % gguf.GGML_QUANT_SIZES[ggml_type][0] != 0:
                        fallbacks.append(name)
                        ggml_type = q.F16
                plans.append(_Plan(key, shard, name, shape, ggml_type))
    factors = llama3_rope_factors(config)
    if factors is not None:
        name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        plans.append(_Plan("", shards[0], name, factors.shape, q.F32, data=factors))
    return plans, fallbacks


def _byte_shape(plan: _Plan) -> tuple[tuple[int, ...], Any]:
    """The shape and numpy dtype the writer is told about (quantized types are uint8 byte rows)."""
    import gguf

    q = gguf.GGMLQuantizationType
    if plan.ggml_type == q.F32:
        return plan.shape, np.dtype(np.float32)
    if plan.ggml_type == q.F16:
        return plan.shape, np.dtype(np.float16)
    return gguf.quant_shape_to_byte_shape(plan.shape, plan.ggml_type), np.dtype(np.uint8)


def _tensor_data(plans: list[_Plan], config: dict[str, Any], arch: str) -> Iterator[tuple[_Plan, np.ndarray]]:
    """Each planned tensor converted, permuted and quantized, one at a time, in plan order."""
    import gguf
    import torch
    from safetensors import safe_open

    q = gguf.GGMLQuantizationType
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    handles: dict[Path, Any] = {}
    try:
        for plan in plans:
            if plan.data is not None:
                yield plan, np.ascontiguousarray(plan.data, dtype=np.float32)
                continue
            if plan.shard not in handles:
                handles[plan.shard] = safe_open(str(plan.shard), framework="pt").__enter__()
            tensor = handles[plan.shard].get_tensor(plan.source)
            if plan.ggml_type == q.BF16 and tensor.dtype == torch.bfloat16:
                data = tensor.view(torch.int16).numpy()  # exact: the bf16 bits as they are
            else:
                data = tensor.to(torch.float32).numpy()
            if arch in _PERMUTED_ARCHES and plan.name.endswith(("attn_q.weight", "attn_q.bias")):
                data = llama_permute(data, heads, heads)
            elif arch in _PERMUTED_ARCHES and plan.name.endswith(("attn_k.weight", "attn_k.bias")):
                data = llama_permute(data, heads, kv_heads)
            if plan.ggml_type == q.BF16 and data.dtype == np.int16:
                out = np.ascontiguousarray(data).view(np.uint8)
            else:
                out = gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), plan.ggml_type)
            yield plan, np.ascontiguousarray(out)
    finally:
        for handle in handles.values():
            handle.__exit__(None, None, None)


# --- the export -------------------------------------------------------------------------------------


def _system_prompt(model_dir: Path) -> str | None:
    from workbench.ship.provenance import read_provenance

    value = read_provenance(model_dir).get("system_prompt")
    return value if isinstance(value, str) and value.strip() else None


def export_gguf(
    model_dir: Path,
    out: Path | None = None,
    *,
    qtype: str = "q8_0",
    system_prompt: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> GgufResult:
    """Write ``model_dir`` as one GGUF file of type ``qtype`` and an Ollama Modelfile beside it.

    ``out`` defaults to ``<model_dir.parent>/<model_dir.name>.<qtype>.gguf``; ``system_prompt`` None takes
    the training data's system prompt from the model's ``workbench.json`` (written by the merge).
    """
    import gguf

    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    model_dir = Path(model_dir).expanduser()
    qtype = qtype.lower()
    config, shards = _check_model_dir(model_dir, qtype)
    arch = SUPPORTED_ARCHITECTURES[config["architectures"][0]]
    path = Path(out).expanduser() if out is not None else default_gguf_path(model_dir, qtype)
    if path.is_dir():
        raise ShipError(f"{path} is a directory; -o takes the GGUF file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    plans, fallbacks = _plan(config, shards, arch, qtype)
    embed = next((p for p in plans if p.name == "token_embd.weight"), None)
    if embed is None:
        raise ShipError(f"{model_dir}: no embedding tensor (model.embed_tokens.weight) in the weights")
    n_vocab = embed.shape[0]
    need = sum(int(np.prod(_byte_shape(p)[0])) * _byte_shape(p)[1].itemsize for p in plans) + 16 * 2**20
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise ShipError(
            f"{path.parent}: {free / 2**20:.0f} MiB free, the {qtype} GGUF needs about {need / 2**20:.0f} MiB"
        )

    tmp = path.with_name(f".{path.name}.partial")
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        writer.add_name(model_dir.name)
        writer.add_type("model")
        file_type = {"f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0", "q4_0": "MOSTLY_Q4_0"}
        writer.add_file_type(int(gguf.LlamaFileType[file_type[qtype]]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_hparams(writer, config, n_vocab)
        say("tokenizer")
        vocab = _add_tokenizer(writer, model_dir, config, n_vocab)
        for plan in plans:
            shape, dtype = _byte_shape(plan)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            raw = (
                None
                if plan.ggml_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
                else plan.ggml_type
            )
            writer.add_tensor_info(plan.name, shape, dtype, nbytes, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, (plan, data) in enumerate(_tensor_data(plans, config, arch), 1):
            if i == 1 or i % 20 == 0 or i == len(plans):
                say(f"tensor {i}/{len(plans)} {plan.name} -> {plan.ggml_type.name}")
            writer.write_tensor_data(data)
        assert writer.fout is not None
        for fout in writer.fout:
            fout.flush()
            os.fsync(fout.fileno())
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise

    if system_prompt is None:
        system_prompt = _system_prompt(model_dir)
    modelfile = modelfile_path(path)
    text = modelfile_text(path.name, vocab["template"], vocab["stops"], system_prompt)
    modelfile_tmp = modelfile.with_name(f".{modelfile.name}.partial")
    modelfile_tmp.write_text(text, encoding="utf-8")
    os.replace(modelfile_tmp, modelfile)
    counts: dict[str, int] = {}
    for plan in plans:
        counts[plan.ggml_type.name] = counts.get(plan.ggml_type.name, 0) + 1
    say(f"wrote {path}")
    return GgufResult(
        path=path,
        modelfile=modelfile,
        qtype=qtype,
        arch=arch,
        seconds=time.perf_counter() - started,
        size_bytes=path.stat().st_size,
        tensor_types=counts,
        fallbacks=fallbacks,
        eos_token=vocab["eos"],
        notes=vocab["notes"],
    )
