"""Generate an eval's predictions: each model in turn, batched, resumable, cancellable.

:func:`generate` loads one model at a time (a base model, or a base with a LoRA adapter
merged into it, or a full fine-tuned checkpoint), renders each example through the
model's own chat template, and generates in batches: prompts sorted by length so a batch
wastes little padding, padded on the left so every row's new tokens start at the same
column. Each finished batch is appended to ``predictions.jsonl`` at once; pairs already
there are skipped, which is all that resuming a half-done eval takes.

Why merge adapters: the unmerged LoRA layers add two small matmuls to every adapted linear
at every generated token; merging (about 1 s for SmolLM2 at r 32) made CPU generation
about 1.2x faster at batch 16, with the same answers (bench/eval_throughput.py --merge).
"""

from __future__ import annotations

import gc
import json
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ModelError
from workbench.eval.store import EvalDir, GenerationSettings, ModelRef
from workbench.llm import Mock


@dataclass
class Generated:
    """One example's answer from one model."""

    output: str
    prompt_tokens: int
    output_tokens: int
    finish: str
    """``stop`` (the model ended its turn) or ``length`` (max_new_tokens was reached)."""


@dataclass
class GenerationProgress:
    """Where :func:`generate` is, for a progress line or status.json."""

    phase: str
    """``loading`` a model, ``generating`` (after each batch), or ``done``."""
    model: str
    """The key of the model being generated."""
    done: int
    """(model, example) pairs with a prediction, all models together."""
    total: int
    model_done: int
    model_total: int
    examples_per_s: float | None = None
    """This model's speed so far in this process."""


def device_and_dtype() -> tuple[str, Any]:
    """A GPU in bf16 (fp16 without bf16) where there is one, else the CPU in fp32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return "cpu", torch.float32


def load_model(ref: ModelRef, *, merge: bool = True) -> tuple[Any, Any]:
    """The model and tokenizer of a ref, in eval mode on the best device.

    A directory with ``adapter_config.json`` is a PEFT adapter applied to ``ref.base_model``
    (merged unless ``merge=False``); one with ``config.json`` is a full model (a full
    fine-tune's checkpoint); a base ref is resolved with :func:`workbench.models.resolve_model`.
    The tokenizer is the one saved beside the adapter or checkpoint when there is one (it
    carries the chat template the run trained with), else the base model's.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from workbench.models import resolve_model

    if ref.is_endpoint:
        raise ModelError(
            f"model {ref.key!r} is an endpoint ({ref.path or ref.endpoint_model}): it is asked over HTTP, not loaded"
        )
    device, dtype = device_and_dtype()
    trust_remote_code = ref.trust_remote_code
    path = Path(ref.path).expanduser()
    adapter = None
    if ref.kind == "base":
        model_dir = resolve_model(ref.base_model or ref.path, trust_remote_code=trust_remote_code).path
    elif (path / "adapter_config.json").is_file():
        adapter = path
        base = ref.base_model or json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        model_dir = resolve_model(base, trust_remote_code=trust_remote_code).path
    elif (path / "config.json").is_file():
        model_dir = path
    else:
        raise ModelError(
            f"model {ref.key!r}: {path} holds neither a PEFT adapter (adapter_config.json) nor a model (config.json)"
        )
    tokenizer_dir = path if ref.kind != "base" and (path / "tokenizer_config.json").is_file() else model_dir
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls a transformers method deprecated in v5
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=trust_remote_code)
            model: Any = AutoModelForCausalLM.from_pretrained(
                model_dir,
                dtype=dtype,
                trust_remote_code=trust_remote_code,
                **({"device_map": device} if device != "cpu" else {}),
            )
            if adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter)
                if merge:
                    model = model.merge_and_unload()
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    if getattr(tokenizer, "chat_template", None) is None:
        raise ModelError(
            f"model {ref.key!r}: its tokenizer ({tokenizer_dir}) has no chat template, "
            "so the examples' messages cannot be rendered as a prompt"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def prompt_ids(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> list[int]:
    """The prompt's tokens: the chat template with the assistant's turn opened."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token that ends the assistant's turn: the generation config's eos ids and the tokenizer's."""
    found: list[int] = []
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        for token in value if isinstance(value, list | tuple) else [value]:
            if token is not None and token not in found:
                found.append(int(token))
    return found


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings,
    *,
    seed: int | None = None,
) -> list[Generated]:
    """Generate for a batch of tokenized prompts, left-padded together; only the new tokens are decoded."""
    import torch

    eos = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    kwargs: dict[str, Any] = dict(max_new_tokens=settings.max_new_tokens, pad_token_id=pad, eos_token_id=eos)
    if settings.greedy:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0)
        torch.manual_seed(settings.seed if seed is None else seed)
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs)
    results = []
    for row, prompt in zip(out[:, width:].tolist(), prompts):
        end = next((i for i, token in enumerate(row) if token in eos), None)
        tokens = row if end is None else row[:end]
        results.append(
            Generated(
                output=tokenizer.decode(tokens, skip_special_tokens=True),
                prompt_tokens=len(prompt),
                output_tokens=len(tokens),
                finish="length" if end is None else "stop",
            )
        )
    return results


def batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indexes grouped into batches of similar length, longest first (an out-of-memory shows at once)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


def _batch_seed(seed: int, model: str, ids: Sequence[str]) -> int:
    """A sampling seed that depends on what is generated, not on how far an earlier attempt got."""
    return zlib.crc32(f"{seed}\0{model}\0{chr(0).join(ids)}".encode())


def generate(
    ev: EvalDir,
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[GenerationProgress], None] | None = None,
    merge: bool = True,
    llm_mock: Mock | None = None,
) -> str:
    """Generate every missing (model, example) prediction; returns ``completed`` or ``stopped``.

    Stops between batches once ``cancel`` is set: what was generated is kept, and a later
    call goes on from there. An endpoint ref is asked over HTTP (:mod:`workbench.eval.remote`);
    ``llm_mock`` makes litellm answer those with its ``mock_response`` instead (tests, demos).
    """
    spec = ev.spec()
    settings = spec.generation
    examples = ev.examples()
    ids = {str(e["id"]) for e in examples}
    have = {pair for pair in ev.predictions() if pair[1] in ids}
    total = len(examples) * len(spec.models)
    done = len(have)
    report = progress or (lambda _p: None)
    for ref in spec.models:
        if ref.frozen:  # copied from another eval, never generated here
            total -= len(examples) - sum(1 for e in examples if (ref.key, str(e["id"])) in have)
            continue
        todo = [e for e in examples if (ref.key, str(e["id"])) not in have]
        model_done = len(examples) - len(todo)
        if not todo:
            continue
        if cancel is not None and cancel.is_set():
            return "stopped"
        report(GenerationProgress("loading", ref.key, done, total, model_done, len(examples)))
        if ref.is_endpoint:
            from workbench.eval.remote import answer

            started = time.perf_counter()
            for records in answer(ref, todo, settings, cancel=cancel, mock=llm_mock):
                ev.append_predictions(records)
                done += len(records)
                model_done += len(records)
                speed = (model_done - (len(examples) - len(todo))) / max(time.perf_counter() - started, 1e-9)
                report(GenerationProgress("generating", ref.key, done, total, model_done, len(examples), speed))
            if model_done < len(examples):  # the only way out short of every answer: a stop
                return "stopped"
            continue
        model, tokenizer = load_model(ref, merge=merge)
        try:
            prompts = [prompt_ids(tokenizer, e["messages"]) for e in todo]
            started, generated = time.perf_counter(), 0
            for batch in batches([len(p) for p in prompts], settings.batch_size):
                if cancel is not None and cancel.is_set():
                    return "stopped"
                batch_ids = [str(todo[i]["id"]) for i in batch]
                t0 = time.perf_counter()
                outputs = generate_batch(
                    model,
                    tokenizer,
                    [prompts[i] for i in batch],
                    settings,
                    seed=_batch_seed(settings.seed, ref.key, batch_ids),
                )
                each = (time.perf_counter() - t0) / len(batch)
                ev.append_predictions(
                    {
                        "model": ref.key,
                        "id": example_id,
                        "output": g.output,
                        "prompt_tokens": g.prompt_tokens,
                        "output_tokens": g.output_tokens,
                        "finish": g.finish,
                        "seconds": round(each, 4),
                    }
                    for example_id, g in zip(batch_ids, outputs)
                )
                generated += len(batch)
                done += len(batch)
                model_done += len(batch)
                speed = generated / max(time.perf_counter() - started, 1e-9)
                report(GenerationProgress("generating", ref.key, done, total, model_done, len(examples), speed))
        finally:
            del model
            _free_memory()
    report(
        GenerationProgress(
            "done", spec.models[-1].key if spec.models else "", done, total, len(examples), len(examples)
        )
    )
    return "completed"


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


__all__ = [
    "Generated",
    "GenerationProgress",
    "batches",
    "device_and_dtype",
    "generate",
    "generate_batch",
    "load_model",
    "prompt_ids",
    "stop_ids",
]
