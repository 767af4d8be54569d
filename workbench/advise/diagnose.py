"""Why did a run fail, or train badly, and what to change: known causes matched in logs and metrics.

:func:`diagnose_text` matches error text (a traceback, a pasted log) against
:data:`PATTERNS`, known failures copied from what PyTorch, transformers, TRL,
PEFT and the hub client print; loss values logged in the text are checked like
metrics. :func:`diagnose_run` reads a run directory: its status (state, error,
error tail), its metrics (the detector for overfitting and divergence, plus a
flat-loss and a train/eval gap check) and the tail of ``train.log``.

Every :class:`Diagnosis` names a cause, concrete fixes in terms of the run
config's fields, the line it rests on and how confident the match is. When
nothing matches, the answer says so and where to look; :func:`llm_diagnosis`
asks the user's LLM for a deeper reading.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean, median
from typing import TYPE_CHECKING, Any, Literal

from workbench.config.schema import RunConfig, field_help, load_config
from workbench.errors import RunError, WorkbenchError
from workbench.train.detector import _series as metric_series
from workbench.train.detector import diagnose as detect
from workbench.train.rundir import RunDir, as_float

if TYPE_CHECKING:
    from workbench.llm import LLM

Confidence = Literal["high", "medium", "low"]
_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2}

FLAT_WINDOW = 20
"""Logged train steps the flat-loss check looks at."""
FLAT_TOLERANCE = 0.02
"""Relative change of the train loss over the window below which it counts as flat."""
LOG_TAIL_BYTES = 64_000
"""How much of the end of train.log is read."""
LLM_TEXT_CHARS = 8_000
"""How much of the end of a log an LLM is shown."""


@dataclass(frozen=True)
class Diagnosis:
    """A likely cause of a problem, what to change, and the line it rests on."""

    key: str  # a stable id of the cause ("oom", "nan_loss", ...)
    cause: str
    fix: tuple[str, ...]  # concrete steps, naming run config fields
    evidence: str  # the matched line, or the metric facts
    confidence: Confidence

    def text(self) -> str:
        """The diagnosis as a few lines of plain text."""
        lines = [f"{self.cause} ({self.confidence} confidence)", f"  evidence: {self.evidence}"]
        lines += [f"  - {step}" for step in self.fix]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# --- causes and fixes shared by text patterns and metric checks --------------

NAN_CAUSE = (
    "the loss became NaN or infinite: training diverged (learning rate too high, fp16 overflow, or a batch "
    "with nothing to learn)"
)
FLAT_CAUSE = (
    "the loss does not move: the learning rate is too low, the labels are all masked, or the learning-rate "
    "schedule is stuck at 0"
)
OVERFIT_CAUSE = "overfitting: the model memorizes the training set, so eval loss rises while train loss falls"
FLAT_FIX = (
    "raise train.learning_rate; " + field_help()["train.learning_rate"],
    "check train.lr_scheduler and train.warmup_ratio: a logged learning_rate of 0 means the schedule is stuck",
    "check that answers are not masked away: an empty answer, or a chat template that marks no assistant turn, "
    "leaves nothing to learn",
    "with finetune: lora, check lora.target_modules matched layers (the run logs the trainable parameters)",
)


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


def _instability_fix(match: re.Match[str] | None, config: RunConfig | None) -> tuple[str, ...]:
    """Steps against a loss that became NaN or blew up."""
    steps: list[str] = []
    if config is None:
        steps.append("lower train.learning_rate by 2 to 10x")
        steps.append("train.warmup_ratio: 0.05 or more, and train.max_grad_norm: 1.0")
        steps.append("train.precision: bf16 or fp32 instead of fp16 (fp16 overflows to inf)")
    else:
        t = config.train
        steps.append(f"train.learning_rate: {t.learning_rate:g} -> {t.learning_rate / 5:g}")
        if t.warmup_ratio < 0.05:
            steps.append(f"train.warmup_ratio: {t.warmup_ratio:g} -> 0.05")
        if t.max_grad_norm > 1.0:
            steps.append(f"train.max_grad_norm: {t.max_grad_norm:g} -> 1.0")
        if t.precision == "fp16":
            steps.append("train.precision: bf16 or fp32 instead of fp16 (fp16 overflows to inf)")
    steps.append("look for training examples with an empty answer: a batch with every label masked gives 0/0 = NaN")
    return tuple(steps)


def _overfit_fix(match: re.Match[str] | None, config: RunConfig | None) -> tuple[str, ...]:
    steps = [
        "eval.load_best: true, so the final adapter is the checkpoint with the lowest eval loss",
        "eval.stop_on_overfit: true, or eval.early_stopping_patience: 3, to stop when eval loss turns up",
    ]
    if config is not None and not config.train.max_steps:
        steps.append(f"fewer train.epochs: {config.train.epochs:g} -> {max(1.0, config.train.epochs / 2):g}")
    else:
        steps.append("fewer train.epochs (or a lower train.max_steps)")
    steps.append("lower train.learning_rate, or a smaller lora.r with lora.dropout 0.05-0.1")
    steps.append("more, and more varied, training data: memorizing is easy on a small set")
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
        _instability_fix,
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
        _overfit_fix,
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


def _match_patterns(text: str, config: RunConfig | None) -> list[tuple[int, Diagnosis]]:
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


_LOGGED = re.compile(r"['\"](loss|eval_loss|learning_rate|grad_norm|step)['\"]\s*:\s*['\"]?([-+\w.]+)")


def records_from_text(text: str) -> list[dict[str, Any]]:
    """Metric records from logged dicts in text (the Trainer's ``{'loss': ...}`` lines, metrics.jsonl lines).

    A line without a step gets its position among the logged lines as the step.
    """
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        pairs = {k: as_float(v) for k, v in _LOGGED.findall(line)}
        if "loss" not in pairs and "eval_loss" not in pairs:
            continue
        step = pairs.pop("step", None)
        record: dict[str, Any] = {k: v for k, v in pairs.items() if v is not None}
        record["step"] = int(step) if step is not None and math.isfinite(step) else len(records) + 1
        record["type"] = "eval" if "eval_loss" in pairs else "train"
        records.append(record)
    return records


def _diagnose_text(text: str, config: RunConfig | None) -> list[Diagnosis]:
    """What the patterns and the logged losses say; nothing when nothing is known."""
    matched = _match_patterns(text, config)
    matched.sort(key=lambda pair: -pair[0])  # the last error first
    found = _merge([d for _, d in matched], _metric_diagnoses(records_from_text(text), config))
    return _by_confidence(found)


def diagnose_text(text: str, *, config: RunConfig | None = None) -> list[Diagnosis]:
    """Known causes found in error text, most confident first; an honest 'no known cause' otherwise.

    ``config``, when given, makes fixes concrete (the current value and a new one).
    """
    return _diagnose_text(text, config) or [_unknown(text)]


_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception)|Error|Killed|Traceback)\b.*$", re.MULTILINE)


def _unknown(text: str, evidence: str | None = None) -> Diagnosis:
    """The honest answer when no known cause matches, with where to look."""
    if evidence is None:
        lines = [m.group(0).strip() for m in _ERROR_LINE.finditer(text)]
        tail = [line.strip() for line in text.strip().splitlines()[-1:]]
        evidence = (lines or tail or ["(no text)"])[-1][:300]
    return Diagnosis(
        "unknown",
        "no known cause matched this text",
        (
            "read the last exception line of the traceback, then the deepest frame in code you control above it",
            "run `workbench check` on the config: it validates fields, data files and hardware",
            "search the exact message in the transformers, TRL and PEFT issue trackers",
            "ask for a deeper reading with an LLM (llm_diagnosis)",
        ),
        evidence,
        "low",
    )


# --- metrics ----------------------------------------------------------------


def _series(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(step, value) of one metric, finite values only, in order."""
    return [(step, value) for step, value in metric_series(records, key) if math.isfinite(value)]


def _metric_diagnoses(records: list[dict[str, Any]], config: RunConfig | None) -> list[Diagnosis]:
    """Divergence and overfitting (the detector), a flat loss, and an eval loss far above train."""
    found: list[Diagnosis] = []
    verdict = detect(records)
    if verdict.kind == "diverged":
        keys = ("loss", "eval_loss", "grad_norm")
        blown = all(len(_series(records, k)) == len(metric_series(records, k)) for k in keys)  # all finite
        found.append(
            Diagnosis(
                "loss_exploded" if blown else "nan_loss",
                "the loss blew up: training diverged (learning rate too high, or no warmup)" if blown else NAN_CAUSE,
                _instability_fix(None, config),
                verdict.message,
                "high",
            )
        )
    elif verdict.kind == "overfitting":
        found.append(Diagnosis("overfitting", OVERFIT_CAUSE, _overfit_fix(None, config), verdict.message, "high"))
    for check in (_flat_loss, _eval_gap):
        diagnosis = check(records, config)
        if diagnosis is not None:
            found.append(diagnosis)
    return found


def _flat_loss(records: list[dict[str, Any]], config: RunConfig | None, window: int = FLAT_WINDOW) -> Diagnosis | None:
    """A train loss that moved less than FLAT_TOLERANCE over the last ``window`` logged steps, without ever learning."""
    train = [r for r in records if r.get("type", "train") == "train" and as_float(r.get("loss")) is not None]
    points = _series(train, "loss")
    losses = [v for _, v in points]
    if len(losses) < window or len(losses) < len(train):  # too short, or not finite (divergence covers it)
        return None
    last = losses[-window:]
    k = max(3, window // 4)
    head, tail = mean(last[:k]), mean(last[-k:])
    change = abs(tail - head) / max(abs(head), 1e-8)
    if change >= FLAT_TOLERANCE:
        return None
    span = (
        f"train loss {head:.4g} -> {tail:.4g} ({change:.1%}) over the last {window} logged steps "
        f"({points[-window][0]}-{points[-1][0]})"
    )
    lrs = [v for _, v in _series(train[-window:], "learning_rate")]
    norms = [v for _, v in _series(train[-window:], "grad_norm")]
    confidence: Confidence = "high"
    if lrs and max(lrs) == 0:
        cause = "the learning rate is 0: the learning-rate schedule is stuck at 0, so nothing moves"
        span += "; learning_rate 0 throughout"
    elif max(abs(v) for v in last) < 1e-6:
        cause = "the loss is 0: no token counts toward it, so the labels are all masked"
    elif norms and max(norms) == 0:
        cause = "the gradients are 0: the labels are all masked, or no parameter is trainable"
        span += "; grad_norm 0 throughout"
    else:
        start = median(losses[:3])
        if start > 0 and (start - tail) / start > 0.10:
            return None  # it learned, then levelled off: convergence, not a fault
        cause, confidence = FLAT_CAUSE, "medium"
        span += f"; {(tail - start) / start if start else 0:+.0%} since the first logged loss"
    if config is not None:
        span += f"; train.learning_rate {config.train.learning_rate:g}, train.lr_scheduler {config.train.lr_scheduler}"
    return Diagnosis("flat_loss", cause, FLAT_FIX, span, confidence)


def _eval_gap(records: list[dict[str, Any]], config: RunConfig | None, factor: float = 2.0) -> Diagnosis | None:
    """Eval loss far above train from the first evaluation, and above where train started: the splits differ."""
    evals, train = _series(records, "eval_loss"), _series(records, "loss")
    if not evals or len(train) < 2:
        return None
    step, first_eval = evals[0]
    near = [v for s, v in train if s <= step][-3:] or [v for _, v in train[:3]]
    train_now, train_start = mean(near), median(v for _, v in train[:3])
    if train_now <= 0 or first_eval < factor * train_now or first_eval <= 1.1 * train_start:
        return None  # a gap that opened by memorizing would sit below where train started
    return Diagnosis(
        "split_mismatch",
        "eval loss is far above train loss from the first evaluation: the validation data likely differs from the "
        "training data (another chat template or format, another shape, or another distribution)",
        (
            "compare data.val with data.train: same shape and same template (`workbench data inspect` on both)",
            "to confirm, drop data.val and let data.val_ratio hold out part of train: if the gap closes, the val "
            "file is the odd one",
            "apply data.system_prompt to both splits alike",
        ),
        f"first eval loss {first_eval:.4g} at step {step} vs train loss {train_now:.4g} (started at {train_start:.4g})",
        "medium",
    )


# --- a run directory ----------------------------------------------------------


def _tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The end of a text file; empty when it does not exist."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if size <= max_bytes else text.split("\n", 1)[-1]  # drop the cut first line


def _as_run(run_dir: str | Path | RunDir) -> RunDir:
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)


def run_text(run_dir: str | Path | RunDir) -> str:
    """What a run says about how it ended: the status error, its traceback tail, and the tail of train.log."""
    run = _as_run(run_dir)
    raw = run.read_status_raw()
    parts = [str(raw["error"])] if raw.get("error") else []
    tail = raw.get("error_tail")
    if isinstance(tail, list) and tail:
        parts.append("\n".join(str(line) for line in tail))
    log = _tail(run.log_path)
    if log.strip():
        parts.append(log)
    return "\n".join(parts)


def _load_run_config(run: RunDir) -> RunConfig | None:
    try:
        return load_config(run.config_path)
    except WorkbenchError:
        return None


def diagnose_run(run_dir: str | Path | RunDir) -> list[Diagnosis]:
    """Known causes of a run's trouble, from its status, metrics and log; empty for a healthy run.

    A failed, diverged or lost run with no known cause gets the honest 'no known cause' diagnosis.
    Raises RunError when the directory is not a run.
    """
    run = _as_run(run_dir)
    if not run.exists():
        raise RunError(f"{run.path}: not a run directory (no status.json or config.yaml)")
    status = run.status()
    config = _load_run_config(run)
    text = run_text(run)
    found = _merge(_metric_diagnoses(run.metrics(), config), _diagnose_text(text, config) if text else [])
    if status.state == "lost":
        found.append(
            Diagnosis(
                "worker_lost",
                "the training process is gone without a final status: killed (often by the system when RAM ran out), "
                "or the machine restarted",
                (
                    "check the system log for the out-of-memory killer (dmesg | grep -i kill)",
                    "if RAM ran out: a smaller model, lower train.batch_size or train.max_length, or data.max_train_examples",
                    "`workbench resume` continues from the last complete checkpoint",
                ),
                f"state lost at step {status.step}",
                "medium",
            )
        )
    if not found and status.state in ("failed", "diverged"):
        found.append(_unknown(text, status.error or None))
    return _by_confidence(found)


def _merge(*groups: list[Diagnosis]) -> list[Diagnosis]:
    """The diagnoses in order, keeping the first of each cause."""
    seen: set[str] = set()
    out = []
    for group in groups:
        for d in group:
            if d.key not in seen:
                seen.add(d.key)
                out.append(d)
    return out


def _by_confidence(found: list[Diagnosis]) -> list[Diagnosis]:
    return sorted(found, key=lambda d: _RANK[d.confidence])


# --- a deeper look ----------------------------------------------------------

_DIAGNOSE_PROMPT = (
    "You diagnose failed or unhealthy fine-tuning runs of language models (PyTorch, transformers, TRL, PEFT). "
    "From the log below, name the most likely cause, then give concrete fixes, most effective first. When a fix is a "
    "config change, name the run config field; the fields are: {fields}. Say plainly when the log is not enough to "
    "tell, and what to look at next. Be brief."
)


def llm_diagnosis(text: str, llm: LLM, *, config: RunConfig | None = None) -> str:
    """A deeper diagnosis of error text by the user's LLM, with our rule-based findings as a start; its text."""
    findings = _diagnose_text(text, config)
    known = "\n".join(f"- {d.cause} (evidence: {d.evidence})" for d in findings) or "- none"
    body = f"Rule-based findings so far:\n{known}\n\nLog (its end):\n```\n{text[-LLM_TEXT_CHARS:]}\n```"
    reply = llm.complete(
        [
            {"role": "system", "content": _DIAGNOSE_PROMPT.format(fields=", ".join(field_help()))},
            {"role": "user", "content": body},
        ]
    )
    return reply.text.strip()
