"""Known failures as error-message patterns: what PyTorch, transformers, TRL, PEFT and the hub client print.

Each :class:`Pattern` matches the messages of one failure and turns the match
(and the run's config, when known) into fix steps naming run config fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from workbench.advise.diagnosis import (
    FLAT_CAUSE,
    FLAT_FIX,
    NAN_CAUSE,
    OVERFIT_CAUSE,
    Confidence,
    Diagnosis,
    instability_fix,
    overfit_fix,
)
from workbench.config.schema import RunConfig

Fix = Callable[[re.Match[str], RunConfig | None], tuple[str, ...]]
"""Fix steps from the match and the run's config (None when unknown)."""


@dataclass(frozen=True)
class Pattern:
    """A known failure: what its messages look like, what causes it, how to fix it."""

    key: str
    regex: re.Pattern[str]
    cause: str
    fix: Fix
    confidence: Confidence


def _pattern(key: str, messages: Iterable[str], cause: str, fix: Fix, confidence: Confidence = "high") -> Pattern:
    """A pattern matching any of ``messages`` (regular expressions), case-insensitively."""
    return Pattern(key, re.compile("|".join(f"(?:{m})" for m in messages), re.IGNORECASE), cause, fix, confidence)


def _steps(*steps: str) -> Fix:
    """Fix steps that do not depend on the match or the config."""
    return lambda match, config: steps


def _oom_fix(match: re.Match[str], config: RunConfig | None) -> tuple[str, ...]:
    steps: list[str] = []
    if config is None:
        steps.append("halve train.batch_size and double train.grad_accum (the effective batch stays the same)")
        steps.append("train.gradient_checkpointing: true (less activation memory, about 30% slower)")
        steps.append("lower train.max_length: activation memory grows with it")
        steps.append("finetune: lora instead of full, or finetune: qlora (4-bit base, CUDA) for a big model")
    else:
        t = config.train
        if t.batch_size > 1:
            steps.append(
                f"train.batch_size: {t.batch_size} -> {t.batch_size // 2}, and train.grad_accum: "
                f"{t.grad_accum} -> {t.grad_accum * 2} (the effective batch stays the same)"
            )
        if not t.gradient_checkpointing:
            steps.append("train.gradient_checkpointing: true (less activation memory, about 30% slower)")
        steps.append(f"train.max_length: {t.max_length} -> {max(8, t.max_length // 2)} if your examples allow it")
        steps.append(
            {
                "full": "finetune: lora (no gradients or optimizer states for the frozen base weights)",
                "lora": "finetune: qlora (a 4-bit base model; needs CUDA and bitsandbytes)",
                "qlora": "a smaller model: the 4-bit base with its activations still does not fit",
            }[config.finetune]
        )
    message = match.group(0).lower()
    if "mps" in message:
        steps.append(
            "on a Mac, PYTORCH_MPS_HIGH_WATERMARK_RATIO=0.0 lifts the MPS cap, at the risk of an unstable system"
        )
    elif "cuda" in message or "outofmemoryerror" in message:
        steps.append(
            "if much memory is 'reserved by PyTorch but unallocated', set "
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True before starting"
        )
    return tuple(steps)


def _bf16_fix(match: re.Match[str], config: RunConfig | None) -> tuple[str, ...]:
    now = f" (it is {config.train.precision})" if config is not None else ""
    return (
        f"train.precision: auto{now}: it picks bf16 only where the GPU supports it, else fp32",
        "train.precision: fp16 on an older CUDA GPU (before Ampere) if fp32 is too slow; watch for NaN losses",
        "with finetune: qlora the 4-bit base computes in bf16: on a GPU without bf16 support use finetune: lora",
    )


def _target_modules_fix(match: re.Match[str], config: RunConfig | None) -> tuple[str, ...]:
    now = ""
    if config is not None:
        targets = config.lora.target_modules
        now = f" (it is {targets if isinstance(targets, str) else ', '.join(targets)})"
    return (
        f"lora.target_modules: all-linear{now}: every linear layer, whatever this architecture calls them",
        "or the names this architecture uses: q_proj, k_proj, v_proj, o_proj (Llama, Qwen, Mistral, SmolLM), "
        "c_attn (GPT-2), query_key_value (Falcon, GPT-NeoX); print the model to see them",
    )


_MAX_POSITIONS = re.compile(r"\((\d+) > (\d+)\)")


def _length_fix(match: re.Match[str], config: RunConfig | None) -> tuple[str, ...]:
    found = _MAX_POSITIONS.search(match.string, match.start(), match.start() + 400)
    limit = found.group(2) if found else None
    steps: list[str] = []
    if limit and config is not None and config.train.max_length > int(limit):
        steps.append(f"train.max_length: {config.train.max_length} -> {limit}, the model's maximum")
    elif limit:
        steps.append(f"train.max_length at most {limit}, the model's maximum")
    else:
        steps.append("train.max_length at most the model's max_position_embeddings (in its config.json)")
    steps.append("shorten or split the longest examples; `workbench data critique` lists those that get cut")
    steps.append("as a tokenizer warning alone it is harmless: examples are truncated to train.max_length afterwards")
    return tuple(steps)


# --- the patterns -----------------------------------------------------------

_NUM = r"['\"]?\s*[:=]\s*['\"]?"

PATTERNS: list[Pattern] = [
    _pattern(
        "oom",
        [
            r"CUDA out of memory",
            r"OutOfMemoryError",
            r"MPS backend out of memory",
            r"HIP out of memory",
            r"CUDA error: out of memory",
            r"CUBLAS_STATUS_ALLOC_FAILED",
            r"DefaultCPUAllocator: (?:can't allocate|not enough) memory",
        ],
        "out of memory: the weights, optimizer state and one batch's activations do not fit on the device",
        _oom_fix,
    ),
    _pattern(
        "nan_loss",
        [
            rf"\b(?:eval_)?loss{_NUM}(?:nan|-?inf)\b",
            rf"\bgrad_norm{_NUM}(?:nan|-?inf)\b",
            r"returned nan values in its \d+(?:st|nd|rd|th) output",
            r"\bloss became (?:nan|-?inf)\b",
            r"\bloss is (?:nan|-?inf)\b",
        ],
        NAN_CAUSE,
        instability_fix,
    ),
    _pattern(
        "flat_loss",
        [
            r"\bloss (?:is|does|did|has)(?: not|n't) (?:go(?:ing|ne)? down|decreas|mov|chang|improv|drop)",
            r"\bloss (?:is |stays |stayed |remains )?(?:stuck|flat|constant|not changing)",
            r"\bloss plateau",
        ],
        FLAT_CAUSE,
        _steps(*FLAT_FIX),
        "medium",
    ),
    _pattern(
        "labels_masked",
        [r"Could not find response key", r"This instance will be ignored in loss calculation"],
        "some examples have every label masked: the response marker was not found, so they teach nothing",
        _steps(
            "make the response template match how the chat template renders the assistant turn, token for token",
            "raise train.max_length if the answers are cut off before the marker",
            "or use prompt/completion or messages data, which the trainer masks without a marker",
        ),
        "medium",
    ),
    _pattern(
        "overfitting",
        [
            r"\boverfit",
            r"\bmemoriz",
            r"eval(?:uation)?[ _]loss (?:is |keeps |started |starts )?(?:going up|rising|ris|increas)",
        ],
        OVERFIT_CAUSE,
        overfit_fix,
        "medium",
    ),
    _pattern(
        "chat_template_missing",
        [
            r"chat_template is not set",
            r"Cannot use chat template",
            r"does not have a chat template",
            r"no chat template",
        ],
        "the tokenizer has no chat template, so conversations cannot be turned into training text",
        _steps(
            "model: an instruct or chat variant of the model (its tokenizer carries a chat template)",
            "or add a chat_template to the model directory's tokenizer_config.json (or chat_template.jinja)",
            "or use plain text or prompt/completion data (data.shape) that needs no template",
        ),
    ),
    _pattern(
        "chat_roles",
        [r"Conversation roles must alternate", r"System role not supported", r"Only user and assistant roles"],
        "the chat template rejects the conversation's roles: turns must alternate user/assistant, and some "
        "templates (Gemma, Mistral) refuse a system message",
        _steps(
            "fix the rows: an optional system message, then user and assistant turns alternating",
            "merge consecutive turns of the same role; `workbench data critique` lists rows with a bad role order",
            "for a template without a system role, drop data.system_prompt (or fold it into the first user turn)",
        ),
    ),
    _pattern(
        "assistant_mask",
        [
            r"does not contain `?\{% generation %\}`? keyword",
            r"has no assistant tokens",
            r"doesn't generate assistant masks",
            r"missing the `?\{% generation %\}`? keyword",
        ],
        "the chat template does not mark the assistant's turns ({% generation %} tags), so the assistant-only "
        "loss mask cannot be built",
        _steps(
            "use a model whose chat template has {% generation %}...{% endgeneration %} around assistant replies",
            "or add those tags to the template in tokenizer_config.json",
            "or use prompt/completion data, which is masked without the template's help",
        ),
    ),
    _pattern(
        "bf16_unsupported",
        [
            r"doesn't support bf16",
            r"does not support bfloat16",
            r"bf16.{0,40}not supported",
            r"Bfloat16 is only supported",
        ],
        "this device has no bf16 support (it needs an Ampere or newer NVIDIA GPU)",
        _bf16_fix,
    ),
    _pattern(
        "qlora_unavailable",
        [
            r"requires bitsandbytes",
            r"No module named '?bitsandbytes",
            r"supported by the bitsandbytes",
            r"bitsandbytes was compiled without GPU support",
            r"No GPU found\. A GPU is needed for quantization",
            r"CUDA Setup failed",
            r"QLoRA .{0,20}needs",
        ],
        "QLoRA cannot run here: 4-bit loading needs the bitsandbytes package and a CUDA GPU",
        _steps(
            "finetune: lora on this machine (CPU or Mac): same adapters, 16-bit base",
            "or, on a CUDA machine, pip install -U bitsandbytes and keep finetune: qlora",
        ),
    ),
    _pattern(
        "pad_token",
        [r"does not have a padding token", r"no padding token", r"pad_token.{0,20}(?:is None|not set)"],
        "the tokenizer defines no padding token (and no end-of-sequence token to stand in for it)",
        _steps(
            'add "pad_token" to the model directory\'s tokenizer_config.json: an unused special token, or the eos token',
            "or use a model whose tokenizer has a pad or eos token",
            "train.batch_size: 1 needs no padding, as a stopgap (slow)",
        ),
    ),
    _pattern(
        "target_modules",
        [r"Target modules? .{0,300}?not found in the base model", r"Target module .{0,200}? is not supported"],
        "lora.target_modules names layers this model does not have (names differ between architectures)",
        _target_modules_fix,
    ),
    _pattern(
        "sequence_too_long",
        [r"Token indices sequence length is longer than the specified maximum", r"exceeds the model's maximum"],
        "a sequence is longer than the model's maximum length",
        _length_fix,
        "medium",
    ),
    _pattern(
        "index_out_of_range",
        [r"index out of range in self", r"device-side assert triggered"],
        "an embedding lookup went out of range: a sequence longer than the model's positions, or a token id beyond "
        "the vocabulary (tokens added to the tokenizer but not to the model)",
        _steps(
            "train.max_length at most the model's max_position_embeddings (in its config.json)",
            "check the tokenizer belongs to the model: the same vocabulary size, no tokens added without resizing",
            "on CUDA, rerun with CUDA_LAUNCH_BLOCKING=1 (or on CPU) to see the failing line",
        ),
        "low",
    ),
    _pattern(
        "disk_full",
        [r"No space left on device", r"\bENOSPC\b", r"\[Errno 28\]", r"StorageFull", r"Disk quota exceeded"],
        "the disk is full: checkpoints, the model cache or the dataset cache could not be written",
        _steps(
            "free space, or delete old runs' checkpoint-* folders",
            "eval.save_total_limit: 1 or 2, and a larger eval.save_steps, to keep fewer checkpoints",
            "finetune: lora saves small adapters instead of full model copies",
            "move the Hugging Face cache to a bigger disk (HF_HOME=/big/disk/hf)",
        ),
    ),
    _pattern(
        "hub_unreachable",
        [
            r"couldn't connect to '?https?://huggingface\.co",
            r"outgoing traffic has been disabled",
            r"could not be fetched from the Hugging Face hub",
            r"Max retries exceeded with url",
            r"Temporary failure in name resolution",
            r"Name or service not known",
            r"Network is unreachable",
            r"Failed to resolve '?huggingface\.co",
            r"check your (?:internet )?connection",
            r"HF_HUB_OFFLINE is set",
        ],
        "the Hugging Face hub cannot be reached (offline, or HF_HUB_OFFLINE is set) and the model is not in the "
        "local cache",
        _steps(
            "download the model once on a machine with access (hf download ORG/NAME --local-dir DIR) and set model: DIR",
            "or model: bundled, which needs no network",
            "if this machine should be online, unset HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE and check the proxy",
        ),
    ),
    _pattern(
        "hub_access",
        [
            r"is not a local folder and is not a valid model identifier",
            r"gated repo",
            r"401 Client Error",
            r"Repository Not Found",
        ],
        "the hub refused the model: a misspelled id, a private repository, or a gated model you have no access to",
        _steps(
            "check the spelling of model: (ORG/NAME, as on its hub page)",
            "for a gated or private model, request access on its page, then `hf auth login` on this machine",
        ),
    ),
    _pattern(
        "trust_remote_code",
        [
            r"contains custom code which must be executed",
            r"(?:pass the argument|set the option) `?trust_remote_code=True",
            r"requires you to execute custom code",
        ],
        "the model repository ships its own Python code, which runs only when allowed",
        _steps(
            "trust_remote_code: true, only for a repository you trust: its code runs on this machine",
            "or pick a model whose architecture transformers supports natively (no custom code)",
        ),
    ),
    _pattern(
        "fp16_grads",
        [r"Attempting to unscale FP16 gradients"],
        "the trainable weights are in fp16 while fp16 mixed precision expects fp32 master weights",
        _steps(
            "train.precision: bf16 (on a GPU that has it) or fp32",
            "finetune: lora keeps the trainable adapter weights in fp32",
        ),
    ),
]


# --- matching text ----------------------------------------------------------


def _line_at(text: str, start: int, end: int, limit: int = 300) -> str:
    """The line holding text[start:end], trimmed around the match when long."""
    lo = text.rfind("\n", 0, start) + 1
    hi = text.find("\n", end)
    hi = len(text) if hi < 0 else hi
    line = text[lo:hi].strip()
    if len(line) <= limit:
        return line
    offset = max(0, start - lo - limit // 3)
    return ("…" if offset else "") + text[lo + offset : lo + offset + limit].strip() + "…"


def match_patterns(text: str, config: RunConfig | None) -> list[tuple[int, Diagnosis]]:
    """Each pattern's last match in the text (the nearest to the final error), with its position."""
    found = []
    for p in PATTERNS:
        last = None
        for match in p.regex.finditer(text):
            last = match
        if last is not None:
            diagnosis = Diagnosis(
                p.key, p.cause, p.fix(last, config), _line_at(text, last.start(), last.end()), p.confidence
            )
            found.append((last.start(), diagnosis))
    return found
