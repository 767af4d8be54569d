"""Merge a run's adapter into its base: one plain safetensors model directory, ready for transformers and vLLM.

:func:`merge_model` resolves what the user typed (``RUN/final``, ``RUN/ckpt-8``, a path) with the eval
core's resolver, loads the base in fp32 (CPU) or bf16/fp16 (GPU), never 4-bit, applies the adapter with
peft and folds it in (``merge_and_unload``), and saves into ``WS/models/<run-id>[-ckpt-N]-merged/``:

- the weights (safetensors) and config;
- the tokenizer with the chat template the run trained with (the one saved beside the adapter);
- ``generation_config.json`` whose ``eos_token_id`` lists every token that ends the template's
  assistant turn (``<|im_end|>`` for ChatML) and the tokenizer's EOS, so nothing rambles past the answer;
- ``workbench.json`` (provenance: see :mod:`workbench.ship.provenance`) and a ``README.md`` model card.

Everything is written into a hidden temporary directory beside the destination and renamed into place
at the end: a failure or a kill leaves nothing half-written under the final name. The run's adapter
directory is only read.

A full fine-tune's checkpoint (``config.json``, no adapter) has nothing to merge; it is saved the same
way (weights in the asked dtype, tokenizer, generation config, card), so every shipped model has one shape.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ShipError, WorkbenchError
from workbench.eval.store import ModelRef
from workbench.ship.provenance import data_files, dir_size, run_config, system_prompt_of_run, write_provenance
from workbench.workspace import Workspace

DTYPES = ("auto", "fp32", "bf16", "fp16")
FOUR_BIT = ("4bit", "int4", "nf4", "fp4", "q4", "qlora")
_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1}
DISK_FACTOR = 2.0
"""Free space asked for, as a multiple of the merged weights' size: the temporary copy and the file cache's slack."""
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
FOUR_BIT_MESSAGE = (
    "cannot merge into a 4-bit base: merge_and_unload would round the adapter's update into 4-bit weights "
    "and lose most of what training learned. Load the base in bf16 or fp16 to merge (--dtype bf16 or "
    "--dtype fp16; fp32 on a CPU): the adapter trained with QLoRA merges into the full-precision base."
)


@dataclass
class MergeResult:
    """A merged model directory and where it came from."""

    path: Path
    source: str
    """The model ref's key (``RUN/adapter``, ``RUN/ckpt-8``...)."""
    run_id: str | None
    step: int | None
    base: str
    """The base model's spec as the run named it (``bundled``, a path, a hub id)."""
    dtype: str
    """The weights' dtype as saved: fp32, bf16 or fp16."""
    seconds: float
    size_bytes: int
    notes: list[str] = field(default_factory=list)
    """Things the user should know (a QLoRA run merged into a bf16 base, a full checkpoint saved as is)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def _say(progress: Callable[[str], None] | None, text: str) -> None:
    if progress is not None:
        progress(text)


def resolve_ref(workspace: str | Path, name: str) -> ModelRef:
    """The adapter or checkpoint to merge; refusals name what was found instead."""
    from workbench.eval.candidates import resolve_models

    try:
        refs = resolve_models(workspace, [name])
    except WorkbenchError as exc:
        refs = _bare_run(workspace, name)
        if not refs:
            incomplete = _incomplete_checkpoint(workspace, name)
            raise ShipError(incomplete or f"merge: {exc}") from None
    if not refs:
        raise ShipError("merge: no model named; expected RUN, RUN/final, RUN/ckpt-N or a path")
    ref = refs[0]
    if ref.kind == "base":
        raise ShipError(
            f"merge {name!r}: that is a base model ({ref.path}); nothing to merge. "
            "Name a run's adapter or checkpoint: RUN/final, RUN/ckpt-N"
        )
    return ref


def _bare_run(workspace: str | Path, name: str) -> list[ModelRef]:
    """A run named alone (``demo``, ``last``) means its final adapter."""
    from workbench.eval.candidates import resolve_models

    if "/" in name or Path(name).expanduser().exists():
        return []
    try:
        return resolve_models(workspace, [f"{name}/final"])
    except WorkbenchError:
        return []


def _incomplete_checkpoint(workspace: str | Path, name: str) -> str | None:
    """The refusal for a name that points at a checkpoint the trainer did not finish writing, if it does."""
    path = Path(name).expanduser()
    if not path.is_dir() and "/" in name:
        from workbench.train.runner import find_run

        run_ref, _, what = name.rpartition("/")
        digits = what.rsplit("-", 1)[-1]
        try:
            run = find_run(workspace, run_ref)
        except WorkbenchError:
            return None
        path = run.path / f"checkpoint-{int(digits)}" if digits.isdigit() else run.path / what
    if path.is_dir() and (problem := checkpoint_problem(path)):
        return (
            f"merge {name!r}: {path} is incomplete ({problem}); pick a complete checkpoint or the run's final adapter"
        )
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why an adapter or checkpoint directory cannot be merged (None when it can)."""
    has_adapter = (path / "adapter_config.json").is_file()
    if path.name.startswith("checkpoint-") and not (path / "trainer_state.json").is_file():
        return "no trainer_state.json: the trainer was stopped while saving it"
    if has_adapter and not any((path / w).is_file() for w in ADAPTER_WEIGHTS):
        return "adapter_config.json but no adapter weights (adapter_model.safetensors)"
    if not has_adapter and not (path / "config.json").is_file():
        return "neither an adapter (adapter_config.json) nor a model (config.json)"
    return None


def choose_dtype(dtype: str, device: str) -> str:
    """fp32 on a CPU, bf16 (fp16 without bf16) on a GPU for ``auto``; 4-bit is refused."""
    wanted = dtype.strip().lower()
    if wanted in FOUR_BIT:
        raise ShipError(FOUR_BIT_MESSAGE)
    if wanted not in DTYPES:
        raise ShipError(f"merge: unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    if wanted != "auto":
        return wanted
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def default_out(workspace: str | Path, ref: ModelRef) -> Path:
    """``WS/models/<run-id>-merged`` for a final adapter, ``<run-id>-ckpt-N-merged`` for a checkpoint."""
    stem = ref.run_id or Path(ref.path).name
    if ref.kind == "checkpoint" and ref.step is not None:
        stem += f"-ckpt-{ref.step}"
    return Workspace(workspace).models_dir / f"{stem}-merged"


def _safetensors_elements(path: Path) -> tuple[int, int]:
    """(elements, bytes) of a safetensors file, from its header alone."""
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    elements = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in info.get("shape", []):
            n *= int(dim)
        elements += n
    return elements, path.stat().st_size


def estimate_weights_bytes(model_dir: Path, dtype: str) -> int:
    """The merged weights' size in ``dtype``: the base's parameter count (safetensors headers) times its width."""
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        return sum(_safetensors_elements(f)[0] for f in files) * _BYTES[dtype]
    return sum(f.stat().st_size for f in model_dir.glob("*.bin"))  # old checkpoints: their size as stored


def check_disk(out: Path, need: int) -> None:
    """Refuse when the destination's file system has less than ``need`` bytes free."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise ShipError(
            f"merge: not enough free disk at {probe}: {free / 1e9:.2f} GB free, about {need / 1e9:.2f} GB needed "
            f"({DISK_FACTOR:g}x the merged weights); free some space or pass -o DIR on another disk"
        )


def template_stop_tokens(tokenizer: Any) -> list[str]:
    """The special tokens the chat template writes right after an assistant's answer (``<|im_end|>``...)."""
    marker = "WORKBENCH-ANSWER-MARKER"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}], tokenize=False
        )
    except Exception:  # a template that raises on this shape: fall back to the tokenizer's eos
        return []
    tail = str(text).split(marker, 1)[-1] if marker in str(text) else ""
    specials = sorted({str(t) for t in getattr(tokenizer, "all_special_tokens", [])} | _added_specials(tokenizer))
    found = [(tail.find(t), t) for t in specials if t and t in tail]
    return [min(found)[1]] if found else []


def _added_specials(tokenizer: Any) -> set[str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return {str(tok.content) for tok in decoder.values() if getattr(tok, "special", False)}


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The template's end-of-turn tokens, then the tokenizer's EOS: what generation_config.json's eos_token_id lists."""
    ids: list[int] = []
    for token in template_stop_tokens(tokenizer):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id not in ids and token_id != tokenizer.unk_token_id:
            ids.append(token_id)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(int(tokenizer.eos_token_id))
    return ids


def merge_model(
    workspace: str | Path,
    name: str,
    out: Path | None = None,
    *,
    dtype: str = "auto",
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
    card: bool = True,
) -> MergeResult:
    """Merge the adapter ``name`` names into its base and save it (see the module docstring)."""
    from workbench.eval.generate import device_and_dtype
    from workbench.models import resolve_model

    started = time.perf_counter()
    ref = resolve_ref(workspace, name)
    src = Path(ref.path)
    if problem := checkpoint_problem(src):
        raise ShipError(f"merge {name!r}: {src} is incomplete ({problem}); pick a complete checkpoint")
    device = device_and_dtype()[0]
    chosen = choose_dtype(dtype, device)
    run_dir = src.parent if ref.run_id else None
    config = run_config(run_dir) if run_dir else {}
    is_adapter = (src / "adapter_config.json").is_file()
    base_spec = str(ref.base_model or config.get("model") or "bundled") if is_adapter else str(src)
    notes = _notes(config, is_adapter, chosen)
    out = Path(out).expanduser().resolve() if out is not None else default_out(workspace, ref)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ShipError(f"merge: {out} already exists and is not empty; pass --overwrite or -o another directory")
    _say(progress, f"resolving the base {base_spec}")
    base_dir = resolve_model(base_spec, trust_remote_code=ref.trust_remote_code).path if is_adapter else src
    need = int(estimate_weights_bytes(base_dir, chosen) * DISK_FACTOR)
    check_disk(out, need)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _merge_into(tmp, ref, src, base_dir, is_adapter, chosen, device, progress)
        provenance = _provenance(workspace, ref, src, base_spec, chosen, config, run_dir, notes)
        write_provenance(tmp, provenance)
        if card:
            from workbench.ship.card import write_model_card

            _say(progress, "writing the model card")
            write_model_card(tmp, provenance, name=out.name)
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    size = dir_size(out)
    _say(progress, f"merged in {seconds:.1f} s")
    return MergeResult(out, ref.key, ref.run_id, ref.step, base_spec, chosen, seconds, size, notes)


def _notes(config: Mapping[str, Any], is_adapter: bool, dtype: str) -> list[str]:
    notes = []
    if config.get("finetune") == "qlora" or config.get("load_in_4bit"):
        notes.append(f"the run trained QLoRA on a 4-bit base; merged into the base loaded in {dtype}, not 4-bit")
    if not is_adapter:
        notes.append(f"a full fine-tune checkpoint: nothing to merge, saved as is in {dtype}")
    return notes


def _merge_into(
    tmp: Path,
    ref: ModelRef,
    src: Path,
    base_dir: Path,
    is_adapter: bool,
    dtype: str,
    device: str,
    progress: Callable[[str], None] | None,
) -> None:
    """Load, merge and save into ``tmp`` (created here)."""
    import warnings

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    tokenizer_dir = src if (src / "tokenizer_config.json").is_file() else base_dir
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            _say(progress, f"loading {base_dir.name} in {dtype} on {device}")
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=ref.trust_remote_code)
            model: Any = AutoModelForCausalLM.from_pretrained(
                base_dir,
                dtype=torch_dtype,
                trust_remote_code=ref.trust_remote_code,
                **({"device_map": device} if device != "cpu" else {}),
            )
            if is_adapter:
                from peft import PeftModel

                _say(progress, f"applying the adapter {ref.key} and merging it (merge_and_unload)")
                model = _merge_and_unload(PeftModel.from_pretrained(model, src), device)
            if getattr(tokenizer, "chat_template", None) is None:
                raise ShipError(
                    f"merge {ref.key!r}: its tokenizer ({tokenizer_dir}) has no chat template; "
                    "a merged chat model without one cannot be prompted the way it was trained"
                )
            generation = _generation_config(model, base_dir, tokenizer, GenerationConfig)
            _say(progress, "saving safetensors weights, tokenizer and generation config")
            model.generation_config = generation
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            generation.save_pretrained(tmp)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    if not any(tmp.glob("*.safetensors")):
        raise ShipError(f"merge {ref.key!r}: save_pretrained wrote no safetensors file into {tmp}")


def _merge_and_unload(peft_model: Any, device: str) -> Any:
    """Fold the adapter into the base weights, on a CPU with one thread.

    Each layer's update is a rank-r product and an add, too small to gain from threads; on two busy
    cores (SmolLM2, r 8, all linear layers) the default two threads took 30 s against 4.7 s for one.
    """
    import torch

    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return peft_model.merge_and_unload()
    finally:
        torch.set_num_threads(threads)


def _generation_config(model: Any, base_dir: Path, tokenizer: Any, cls: Any) -> Any:
    """The base's generation config (or the model's) with eos_token_id = every stop token of the template."""
    try:
        generation = cls.from_pretrained(base_dir)
    except (OSError, ValueError):
        generation = cls.from_model_config(model.config)
    stops = stop_token_ids(tokenizer)
    if stops:
        generation.eos_token_id = stops if len(stops) > 1 else stops[0]
    if tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        generation.bos_token_id = tokenizer.bos_token_id
    return generation


def _provenance(
    workspace: str | Path,
    ref: ModelRef,
    src: Path,
    base: str,
    dtype: str,
    config: dict[str, Any],
    run_dir: Path | None,
    notes: list[str],
) -> dict[str, Any]:
    from workbench.ship.card import model_evals

    return {
        "kind": "merged",
        "source": ref.key,
        "run_id": ref.run_id,
        "step": ref.step,
        "base": base,
        "dtype": dtype,
        "created": time.time(),
        "adapter_path": str(src),
        "finetune": config.get("finetune") or ("lora" if (src / "adapter_config.json").is_file() else "full"),
        "config": config,
        "data": data_files(run_dir) if run_dir else [],
        "evals": model_evals(workspace, ref),
        "system_prompt": system_prompt_of_run(run_dir) if run_dir else None,
        "notes": notes,
    }


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out``; an old ``out`` (overwrite) is moved aside first, removed after."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old) if out.is_dir() else out.unlink()
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "DTYPES",
    "FOUR_BIT_MESSAGE",
    "MergeResult",
    "checkpoint_problem",
    "choose_dtype",
    "default_out",
    "estimate_weights_bytes",
    "merge_model",
    "resolve_ref",
    "stop_token_ids",
    "template_stop_tokens",
]
