"""What a model is, read from its ``config.json`` alone: sizes, layers, module names.

:func:`model_facts` builds the model on PyTorch's ``meta`` device, where a
tensor has a shape and a dtype but no storage: the parameter count and every
linear layer's name and shape are exact, and no weight is read or allocated
(a 7B model takes about a second). The config rules, the memory estimate and
the Config pane's module picker all read the same :class:`ModelFacts`.

Module names follow PEFT: a LoRA target ``q_proj`` matches every module whose
dotted name is ``q_proj`` or ends in ``.q_proj``, and ``all-linear`` means
every linear layer except the output projection (the LM head).
"""

from __future__ import annotations

import difflib
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from workbench.errors import ModelError, one_line

ALL_LINEAR = "all-linear"
"""PEFT's shorthand for every linear layer but the LM head."""

_ATTENTION_PARTS = ("attn", "attention")
_MLP_PARTS = ("mlp", "ffn", "feed_forward", "feedforward")
_ATTENTION_OUTPUTS = frozenset({"o_proj", "out_proj", "c_proj", "dense", "wo", "o", "proj"})
"""Short names of attention output projections across common architectures."""


@dataclass(frozen=True)
class Layer:
    """One layer LoRA can adapt: a linear (``nn.Linear`` or GPT-2's ``Conv1D``) or an embedding.

    For an embedding, ``in_features`` is the number of rows (the vocabulary) and
    ``out_features`` the embedding width, which is how LoRA sizes its A and B.
    """

    name: str
    """Full dotted module name, e.g. ``model.layers.0.self_attn.q_proj``."""
    in_features: int
    out_features: int
    bias: bool = False
    kind: str = "linear"
    """``linear`` or ``embedding``."""

    @property
    def short_name(self) -> str:
        """The last part of the name (``q_proj``): what target_modules usually lists."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def params(self) -> int:
        """Parameters of the layer itself (weight, plus bias for a linear)."""
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)

    def matches(self, target: str) -> bool:
        """Whether a PEFT target_modules entry selects this layer (exact name or dotted suffix)."""
        return self.name == target or self.name.endswith("." + target)


@dataclass(frozen=True)
class ModelFacts:
    """A causal LM's architecture as far as training cost and config checks need it."""

    path: str
    """Where the config was read from (a directory), or a label for a config built in memory."""
    model_type: str
    architecture: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_context: int | None
    """max_position_embeddings (None when the config has no such limit)."""
    tied_embeddings: bool
    weights_dtype: str | None
    """dtype the weights are saved in (``float32``, ``bfloat16``...), None when the config does not say."""
    total_params: int
    """Every parameter, counted once (tied embeddings are one tensor)."""
    linears: tuple[Layer, ...]
    """Every linear layer, LM head included, in module order."""
    embeddings: tuple[Layer, ...]
    """Every embedding table (usually just the token embeddings)."""
    lm_head: str | None
    """Full name of the output projection, None when the model has none."""
    attn_implementation: str | None
    """The attention the model gets when loaded without asking for one (``sdpa``, ``eager``...)."""

    # -- sizes ---------------------------------------------------------------

    @property
    def q_dim(self) -> int:
        """Width of the queries (and of the attention output): heads × head_dim."""
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of keys and values: KV heads × head_dim (smaller than q_dim with grouped-query attention)."""
        return self.num_kv_heads * self.head_dim

    @cached_property
    def body_linears(self) -> tuple[Layer, ...]:
        """The linear layers except the LM head: what ``all-linear`` adapts and what QLoRA quantizes."""
        return tuple(layer for layer in self.linears if layer.name != self.lm_head)

    @property
    def lm_head_params(self) -> int:
        """Parameters of the LM head that are not shared with the token embeddings."""
        if self.lm_head is None or self.tied_embeddings:
            return 0
        return sum(layer.params for layer in self.linears if layer.name == self.lm_head)

    @cached_property
    def gated_mlp(self) -> bool:
        """Whether the MLP is gated (gate, up and down projections, as in Llama), from its module names."""
        return len(self.module_groups()["mlp"]) >= 3

    # -- names ---------------------------------------------------------------

    def module_groups(self) -> dict[str, list[str]]:
        """Short module names grouped for a picker: ``attention``, ``mlp`` and ``all-linear``.

        A name is attention (or MLP) when its parent module's name says so
        (``self_attn``, ``mlp``...). ``all-linear`` lists every linear but the
        LM head, as PEFT's shorthand does; a name can sit in two groups (GPT-2's
        ``c_proj`` is both an attention and an MLP projection).
        """
        return {group: list(names) for group, names in self._groups.items()}

    @cached_property
    def _groups(self) -> dict[str, tuple[str, ...]]:
        groups: dict[str, list[str]] = {"attention": [], "mlp": [], ALL_LINEAR: []}
        for layer in self.body_linears:
            group = _block(layer)
            if group and layer.short_name not in groups[group]:
                groups[group].append(layer.short_name)
            if layer.short_name not in groups[ALL_LINEAR]:
                groups[ALL_LINEAR].append(layer.short_name)
        return {group: tuple(names) for group, names in groups.items()}

    def input_role(self, layer: Layer) -> str:
        """What a linear layer reads, for telling which layers share one input tensor.

        ``attn_in`` (q, k, v: the normed hidden states), ``attn_out`` (the output
        projection: the attention's result), ``mlp_in`` (gate and up), ``mlp_out``
        (down: the MLP's inner activations), else the layer's own short name.
        """
        return self._roles.get(layer.name) or layer.short_name

    @cached_property
    def _roles(self) -> dict[str, str]:
        roles = {}
        for layer in self.linears:
            block = _block(layer)
            if block == "attention":
                roles[layer.name] = "attn_out" if layer.short_name in _ATTENTION_OUTPUTS else "attn_in"
            elif block == "mlp":
                roles[layer.name] = "mlp_out" if layer.in_features > self.hidden_size else "mlp_in"
        return roles

    def adapted(self, target_modules: str | Sequence[str]) -> list[Layer]:
        """The layers LoRA adapts for a target_modules value, matched the way PEFT matches them."""
        if isinstance(target_modules, str):
            if target_modules.lower() == ALL_LINEAR:
                return list(self.body_linears)
            target_modules = [target_modules]
        return [layer for layer in self.linears + self.embeddings if any(layer.matches(t) for t in target_modules)]

    def unknown_targets(self, target_modules: str | Sequence[str]) -> list[str]:
        """Entries of target_modules that select no layer of this model."""
        if isinstance(target_modules, str):
            return [] if target_modules.lower() == ALL_LINEAR else self.unknown_targets([target_modules])
        layers = self.linears + self.embeddings
        return [t for t in target_modules if not any(layer.matches(t) for layer in layers)]

    def closest_module(self, name: str) -> str | None:
        """The module name most like ``name`` (for did-you-mean), None when nothing is close."""
        names = list(dict.fromkeys(layer.short_name for layer in self.linears + self.embeddings))
        close = difflib.get_close_matches(name.rsplit(".", 1)[-1], names, n=1, cutoff=0.5)
        return close[0] if close else None


def _block(layer: Layer) -> str | None:
    """``attention`` or ``mlp`` when a parent module's name says which block the layer is in."""
    parents = layer.name.lower().split(".")[:-1]
    for group, parts in (("attention", _ATTENTION_PARTS), ("mlp", _MLP_PARTS)):
        if any(part in p for p in parents for part in parts):
            return group
    return None


def lora_params(facts: ModelFacts, target_modules: str | Sequence[str], r: int, *, dora: bool = False) -> int:
    """Trainable LoRA parameters, exactly: ``r × (in + out)`` per adapted layer.

    LoRA adds A (r × in) and B (out × r) to each adapted layer; DoRA adds a
    magnitude vector of ``out`` per layer as well. Matches PEFT's
    ``get_nb_trainable_parameters`` (tested on a tiny Llama).
    """
    layers = facts.adapted(target_modules)
    return sum(r * (layer.in_features + layer.out_features) + (layer.out_features if dora else 0) for layer in layers)


# -- reading a model's config ---------------------------------------------------

_CACHE: dict[tuple[str, bool, int], ModelFacts] = {}
_CACHE_LOCK = threading.Lock()


def model_facts(spec_or_path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> ModelFacts:
    """The facts of a model spec (``bundled``, a local directory or a hub id), from its config.json only.

    Cached per resolved directory (and config.json's modification time), so a
    live Config pane can ask on every keystroke. A hub id reads only the hub
    cache's config.json (downloaded alone when the hub is reachable), never the
    weights. Raises :class:`~workbench.errors.ModelError` naming the path.
    """
    directory = _config_dir(str(spec_or_path), trust_remote_code)
    config_file = directory / "config.json"
    try:
        stamp = config_file.stat().st_mtime_ns
    except OSError:
        raise ModelError(f"model {spec_or_path!s}: no config.json in {directory}") from None
    key = (str(directory), trust_remote_code, stamp)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    from workbench.models import model_config

    try:
        config = model_config(directory, trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for a bad config
        hint = "" if trust_remote_code else " (a model with its own code needs trust_remote_code: true)"
        raise ModelError(f"{config_file}: cannot read the model config: {one_line(exc)}{hint}") from None
    facts = facts_from_config(config, path=str(directory), trust_remote_code=trust_remote_code)
    with _CACHE_LOCK:
        _CACHE[key] = facts
    return facts


def _config_dir(spec: str, trust_remote_code: bool) -> Path:
    """The directory holding a spec's config.json, without fetching any weights."""
    from workbench.models import is_bundled, resolve_model

    local = Path(spec).expanduser()
    if is_bundled(spec) or local.exists() or spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        return resolve_model(spec, trust_remote_code=trust_remote_code).path
    try:  # a hub id: its config.json from the hub cache, or that one file from the hub
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(spec, "config.json", etag_timeout=10)).parent
    except Exception as exc:  # offline, unknown repo, gated repo...
        raise ModelError(
            f"model {spec!r}: its config.json is not in the hub cache and could not be fetched "
            f"({one_line(exc)}); pass a local model directory instead"
        ) from None


def facts_from_config(config: Any, *, path: str = "<config>", trust_remote_code: bool = False) -> ModelFacts:
    """Facts from a transformers config object: the model is built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"{path}: cannot build a causal LM from its config: {one_line(exc)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    linears, embeddings = _layers(model)
    output = model.get_output_embeddings()
    lm_head = next((name for name, module in model.named_modules() if module is output), None)
    hidden = int(text.hidden_size)
    heads = int(text.num_attention_heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    input_emb = model.get_input_embeddings()
    tied = output is not None and input_emb is not None and output.weight is input_emb.weight
    return ModelFacts(
        path=path,
        model_type=str(getattr(config, "model_type", "") or type(model).__name__),
        architecture=type(model).__name__,
        num_layers=int(text.num_hidden_layers),
        hidden_size=hidden,
        intermediate_size=int(getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden),
        num_heads=heads,
        num_kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
        head_dim=head_dim,
        vocab_size=int(text.vocab_size),
        max_context=_int_or_none(getattr(text, "max_position_embeddings", None)),
        tied_embeddings=bool(tied),
        weights_dtype=_dtype_name(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)),
        total_params=sum(p.numel() for p in model.parameters()),
        linears=tuple(linears),
        embeddings=tuple(embeddings),
        lm_head=lm_head,
        attn_implementation=getattr(model.config, "_attn_implementation", None),
    )


def _layers(model: Any) -> tuple[list[Layer], list[Layer]]:
    """Linear (and Conv1D) layers and embeddings, with their shapes, in module order."""
    import torch
    from transformers.pytorch_utils import Conv1D

    linears: list[Layer] = []
    embeddings: list[Layer] = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            linears.append(Layer(name, module.in_features, module.out_features, module.bias is not None))
        elif isinstance(module, Conv1D):  # GPT-2 style: weight is (in, out)
            n_in, n_out = module.weight.shape
            linears.append(Layer(name, int(n_in), int(n_out), module.bias is not None))
        elif isinstance(module, torch.nn.Embedding):
            embeddings.append(Layer(name, module.num_embeddings, module.embedding_dim, kind="embedding"))
    return linears, embeddings


def _dtype_name(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text.removeprefix("torch.") if text not in ("auto", "") else None


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and not math.isinf(number) else None


def clear_cache() -> None:
    """Forget every cached :class:`ModelFacts` (for tests, or after a model directory is replaced)."""
    with _CACHE_LOCK:
        _CACHE.clear()
