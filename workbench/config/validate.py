"""Validation of a run config: one place, many small rules.

A rule is a function ``(config, context) -> iterable of ConfigFinding``, registered
with :func:`rule`. The Config pane runs them live, ``workbench check`` prints
them, and the trainer refuses to start when any finding is an error.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.config.schema import RunConfig

if TYPE_CHECKING:
    from workbench.config.modelinfo import ModelFacts

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class ConfigFinding:
    """One thing worth telling about a config, tied to the field it concerns."""

    severity: Severity
    field: str
    message: str
    suggestion: Any = None  # a value for `field` that fixes it, when there is one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        fix = f" (suggested: {self.suggestion!r})" if self.suggestion is not None else ""
        return f"{self.severity}: {self.field}: {self.message}{fix}"


@dataclass
class Hardware:
    """What the machine can do, as far as rules care."""

    cuda: bool = False
    bf16: bool = False
    bitsandbytes: bool = False
    gpu_name: str | None = None
    gpu_total_bytes: int | None = None
    gpu_free_bytes: int | None = None
    """Free memory of the GPU a run would use (the first visible one), None when unknown."""
    cpu_bf16: str | None = None
    """The CPU's native bf16 instructions ("AMX-BF16", "AVX512-BF16"), None when it has none."""
    gpu_count: int = 0
    """CUDA GPUs visible to a run started here (CUDA_VISIBLE_DEVICES applies)."""

    @classmethod
    def detect(cls) -> Hardware:
        import torch

        from workbench.config.precision import cpu_bf16_feature

        cuda = torch.cuda.is_available()
        hw = cls(
            cuda=cuda,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None,
            cpu_bf16=cpu_bf16_feature(),
            gpu_count=torch.cuda.device_count() if cuda else 0,
        )
        if cuda:
            hw.gpu_name, hw.gpu_total_bytes, hw.gpu_free_bytes = _gpu_memory()
        return hw


def _gpu_memory() -> tuple[str | None, int | None, int | None]:
    """Name, total and free bytes of the first visible GPU: NVML first (no CUDA context), else torch."""
    from workbench.train.telemetry import SystemSampler

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    index = int(visible) if visible.isdigit() else 0
    sampler = SystemSampler()
    try:
        gpus = sampler.sample().get("gpus", [])
    finally:
        sampler.close()
    gpu = next((g for g in gpus if g.get("index") == index), None)
    if gpu and "mem_total_gb" in gpu:
        total = int(gpu["mem_total_gb"] * 2**30)
        return gpu.get("name"), total, total - int(gpu["mem_used_gb"] * 2**30)
    try:
        import torch

        free, total = torch.cuda.mem_get_info()
        return torch.cuda.get_device_name(), int(total), int(free)
    except Exception:  # a driver that answers nothing: memory unknown, the memory rule is skipped
        return None, None, None


@dataclass
class Context:
    """Facts beyond the config itself that some rules need; None means unknown (rule skipped)."""

    hardware: Hardware = field(default_factory=Hardware)
    n_train: int | None = None  # training examples after the split
    n_val: int | None = None
    data_shape: str | None = None  # detected shape of the training data
    missing_files: list[str] = field(default_factory=list)
    model: ModelFacts | None = None
    """The config's model, read from its config.json (see :mod:`workbench.config.modelinfo`)."""
    model_error: str | None = None
    """Why the model's facts could not be read (an unreadable model is an error)."""
    token_lengths: list[tuple[int, int]] | None = None
    """(prompt, answer) tokens of sampled training examples, rendered with the model's chat template;
    for preference pairs the answer is the longer of chosen and rejected."""
    lengths_from: int | None = None
    """How many training rows ``token_lengths`` was sampled from."""
    packing_isolated: bool | None = None
    """Whether transformers keeps packed examples apart without flash-attention (a mask from position ids)."""


Rule = Callable[[RunConfig, Context], Iterable[ConfigFinding]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


def validate(config: RunConfig, context: Context | None = None) -> list[ConfigFinding]:
    """Every finding of every rule, errors first."""
    ctx = context or Context()
    findings = [f for r in RULES for f in r(config, ctx)]
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order[f.severity])


def has_errors(findings: Iterable[ConfigFinding]) -> bool:
    return any(f.severity == "error" for f in findings)


def effective_batch(config: RunConfig) -> int:
    """Examples per optimizer step: per-device batch × accumulation × processes."""
    t = config.train
    return t.batch_size * t.grad_accum * config.distributed.world_size


def total_steps(config: RunConfig, n_train: int | None) -> int | None:
    """Optimizer steps the run will take, when the dataset size is known.

    Each process reads its share of every epoch (``batch_size`` rows per
    micro-batch), so a step consumes the effective batch of all processes.
    """
    t = config.train
    if t.max_steps:
        return t.max_steps
    if not n_train:
        return None
    per_epoch = max(1, math.ceil(n_train / effective_batch(config)))
    return max(1, math.ceil(per_epoch * t.epochs))


MIN_STEPS = 10
"""Fewer optimizer steps than this are too few to learn or to judge a run by."""


def eval_interval(config: RunConfig, steps: int | None) -> int:
    """The eval interval in steps: the configured one, else about ten evaluations per run."""
    if config.eval.eval_steps:
        return config.eval.eval_steps
    return max(1, (steps or 100) // 10)


# --- the rules --------------------------------------------------------------


@rule
def _data_files(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    for name in ctx.missing_files:
        yield ConfigFinding("error", f"data.{name}", f"file not found: {config.resolve(getattr(config.data, name))}")


@rule
def _learning_rate(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    lr = config.train.learning_rate
    if config.method == "dpo":
        lo, hi, typical, what = 1e-7, 5e-5 if config.finetune != "full" else 1e-5, 5e-6, "DPO"
    elif config.finetune == "full":
        lo, hi, typical, what = 5e-6, 1e-4, 2e-5, "full fine-tuning"
    else:
        lo, hi, typical, what = 2e-5, 2e-3, 2e-4, "LoRA"
    if lr > hi * 5 or lr < lo / 5:
        yield ConfigFinding(
            "error",
            "train.learning_rate",
            f"{lr:g} is far outside the usual range for {what} ({lo:g} to {hi:g})",
            typical,
        )
    elif lr > hi or lr < lo:
        yield ConfigFinding(
            "warning",
            "train.learning_rate",
            f"{lr:g} is outside the usual range for {what} ({lo:g} to {hi:g})",
            typical,
        )


@rule
def _warmup(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    if config.train.warmup_ratio == 0:
        yield ConfigFinding(
            "warning", "train.warmup_ratio", "no warmup: the first steps at full learning rate can spike the loss", 0.05
        )


@rule
def _lora(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    if config.finetune == "full":
        return
    lora = config.lora
    root = math.sqrt(lora.r) if lora.rslora else lora.r
    scale = lora.alpha / root
    ratio = "alpha/sqrt(r)" if lora.rslora else "alpha/r"
    usual = round(2 * root, 2)  # the usual scale of 2: alpha = 2r (2·sqrt(r) with rsLoRA)
    if not lora.rslora and lora.r >= 64:
        yield ConfigFinding("info", "lora.rslora", f"rank {lora.r}: rsLoRA scaling keeps large ranks learning", True)
    if scale > 8:
        yield ConfigFinding("warning", "lora.alpha", f"scale {ratio} = {scale:g} is high; the usual is 1 to 2", usual)
    elif scale < 0.25:
        yield ConfigFinding(
            "warning", "lora.alpha", f"scale {ratio} = {scale:g} is low; updates will barely move the model", usual
        )
    if config.method == "dpo" and lora.dropout > 0:
        yield ConfigFinding(
            "info", "lora.dropout", "TRL's DPO turns dropout off (disable_dropout): lora.dropout is ignored", 0.0
        )
    elif lora.dropout > 0.2:
        yield ConfigFinding(
            "warning",
            "lora.dropout",
            f"dropout {lora.dropout:g} is unusually high (0 to 0.1 is typical, 0.2 at most)",
            0.05,
        )


@rule
def _epochs(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    if not config.train.max_steps and config.train.epochs > 3:
        yield ConfigFinding(
            "warning",
            "train.epochs",
            f"{config.train.epochs:g} epochs: a task set is usually memorized after 3; watch eval loss",
            3,
        )


@rule
def _steps(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    steps = total_steps(config, ctx.n_train)
    if steps is None or steps >= MIN_STEPS:
        return
    t = config.train
    if t.max_steps:
        yield ConfigFinding(
            "info", "train.max_steps", f"only {steps} optimizer steps: enough to try the setup, too few to learn", None
        )
        return
    assert ctx.n_train is not None  # steps is known
    effective, world = effective_batch(config), config.distributed.world_size
    # the largest effective batch that still gives MIN_STEPS steps over the configured epochs
    fitting = max(1, int(ctx.n_train * t.epochs // MIN_STEPS))
    if t.grad_accum > 1:
        field_, value = "train.grad_accum", max(1, fitting // (t.batch_size * world))
    else:
        field_, value = "train.batch_size", min(t.batch_size, max(1, fitting // world))
    yield ConfigFinding(
        "warning",
        field_,
        f"only {steps} optimizer steps ({ctx.n_train} examples, effective batch {effective}, {t.epochs:g} epochs): "
        "too few to learn or to judge",
        value if value != getattr(t, field_.split(".")[1]) else None,
    )


@rule
def _evaluation(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    has_val = config.data.val is not None or config.data.val_ratio > 0
    e = config.eval
    if not has_val:
        if e.early_stopping_patience:
            yield ConfigFinding(
                "error",
                "eval.early_stopping_patience",
                "early stopping needs an eval split (data.val or data.val_ratio)",
                None,
            )
        if e.load_best:
            yield ConfigFinding(
                "error",
                "eval.load_best",
                "choosing the best checkpoint needs an eval split (data.val or data.val_ratio)",
                False,
            )
        if e.stop_on_overfit:
            yield ConfigFinding(
                "error",
                "eval.stop_on_overfit",
                "overfitting is seen on eval loss: add data.val or data.val_ratio",
                False,
            )
    if e.save_steps and e.eval_steps and e.load_best and e.save_steps % e.eval_steps:
        yield ConfigFinding(
            "error",
            "eval.save_steps",
            f"with load_best, checkpoints must fall on evaluations: save_steps ({e.save_steps}) must be a multiple of eval_steps ({e.eval_steps})",
            e.eval_steps,
        )
    steps = total_steps(config, ctx.n_train)
    if not steps:
        return
    if e.eval_steps and e.eval_steps > steps:
        yield ConfigFinding(
            "warning",
            "eval.eval_steps",
            f"eval every {e.eval_steps} steps but the run has only {steps}: no evaluation",
            max(1, steps // 10),
        )
    if e.save_steps and e.save_steps > steps:
        yield ConfigFinding(
            "warning",
            "eval.save_steps",
            f"checkpoint every {e.save_steps} steps but the run has only {steps}: no checkpoint to resume from",
            eval_interval(config, steps),
        )
    evals = steps // eval_interval(config, steps)
    if has_val and e.early_stopping_patience and 0 < evals <= e.early_stopping_patience:
        yield ConfigFinding(
            "warning",
            "eval.early_stopping_patience",
            f"patience {e.early_stopping_patience} but the run evaluates only {evals} times: early stopping can never trigger",
            max(1, evals // 3),
        )


@rule
def _hardware(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    hw = ctx.hardware
    p = config.train.precision
    if p == "bf16" and hw.cuda and not hw.bf16:
        yield ConfigFinding(
            "error", "train.precision", "bf16 is not supported on this GPU (needs Ampere or newer)", "auto"
        )
    if p == "bf16" and not hw.cuda and not hw.cpu_bf16:
        yield ConfigFinding(
            "warning",
            "train.precision",
            "no GPU, and this CPU has no AMX or AVX512-BF16: bf16 runs emulated, slower than fp32",
            "auto",
        )
    if p == "fp16" and not hw.cuda:
        yield ConfigFinding("error", "train.precision", "fp16 mixed precision needs a CUDA GPU", "auto")
    if config.train.liger_kernel and not hw.cuda:
        yield ConfigFinding("error", "train.liger_kernel", "Liger's kernels are Triton kernels: they need a GPU", False)
    elif config.train.liger_kernel and importlib.util.find_spec("liger_kernel") is None:
        yield ConfigFinding(
            "error", "train.liger_kernel", "the liger-kernel package is not installed (pip install liger-kernel)", False
        )
    if p == "auto":
        from workbench.config.trl_args import precision_plan

        plan = precision_plan(p, hw)
        yield ConfigFinding("info", "train.precision", f"auto trains in {plan.label} here: {plan.why}")
    if config.finetune == "qlora":
        if not hw.cuda:
            yield ConfigFinding("error", "finetune", "QLoRA (4-bit) needs a CUDA GPU", "lora")
        elif not hw.bitsandbytes:
            yield ConfigFinding(
                "error", "finetune", "QLoRA needs the bitsandbytes package (pip install bitsandbytes)", "lora"
            )


@rule
def _distributed(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    d, hw = config.distributed, ctx.hardware
    if d.nnodes > 1 and not d.rdzv_endpoint:
        yield ConfigFinding(
            "error",
            "distributed.rdzv_endpoint",
            f"{d.nnodes} nodes meet at a rendezvous: set host:port of a machine every node reaches (node rank 0's)",
        )
    if d.nnodes > 1 and d.rdzv_endpoint and d.node_rank is None and not d.rdzv_id:
        yield ConfigFinding(
            "warning",
            "distributed.rdzv_id",
            "each machine's run gets its own id: set an id the machines share, or node_rank on each, so they meet "
            "(the Slurm export passes the job id)",
        )
    if d.node_rank is not None and d.node_rank >= d.nnodes:
        yield ConfigFinding(
            "error", "distributed.node_rank", f"node_rank {d.node_rank} of {d.nnodes} nodes (0 to {d.nnodes - 1})", 0
        )
    elif d.node_rank is not None and d.nnodes == 1:
        yield ConfigFinding("info", "distributed.node_rank", "node_rank only matters with more than one node", None)
    if d.backend == "nccl" and not hw.cuda:
        yield ConfigFinding("error", "distributed.backend", "nccl needs CUDA GPUs; this machine has none", "auto")
    if hw.cuda and hw.gpu_count and d.nproc_per_node > hw.gpu_count:
        yield ConfigFinding(
            "warning",
            "distributed.nproc_per_node",
            f"{d.nproc_per_node} processes per node but {hw.gpu_count} GPU(s) visible here: one process per GPU "
            "(it fails on this machine; fine where it trains on bigger nodes)",
            hw.gpu_count,
        )
    if d.world_size > 1 and not hw.cuda:
        cores = os.cpu_count() or 1
        yield ConfigFinding(
            "info",
            "distributed.nproc_per_node",
            f"{d.world_size} processes on the CPU (gloo), about {max(1, cores // d.nproc_per_node)} of {cores} "
            "cores each: a check of the distributed setup rather than a speed-up",
        )
    yield from _accelerate(config, hw)


def _accelerate(config: RunConfig, hw: Hardware) -> Iterable[ConfigFinding]:
    from workbench.config.distributed import accelerate_path, read_accelerate_config
    from workbench.errors import ConfigError

    d = config.distributed
    path = accelerate_path(config)
    if path is None:
        return
    try:
        facts = read_accelerate_config(path)
    except ConfigError as exc:
        yield ConfigFinding("error", "distributed.accelerate_config", str(exc))
        return
    if facts.distributed_type == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        yield ConfigFinding(
            "error",
            "distributed.accelerate_config",
            f"{path.name} uses DeepSpeed, which is not installed (pip install deepspeed)",
        )
    if facts.distributed_type in ("FSDP", "DEEPSPEED") and not hw.cuda:
        yield ConfigFinding(
            "warning",
            "distributed.accelerate_config",
            f"{path.name} sets {facts.distributed_type}, which shards on CUDA GPUs only: on this machine's CPU "
            "the processes train as plain data parallel (gloo)",
        )
    if facts.distributed_type not in ("FSDP", "DEEPSPEED", "MULTI_GPU"):
        yield ConfigFinding(
            "warning",
            "distributed.accelerate_config",
            f"{path.name} has distributed_type {facts.distributed_type}: the workbench launches accelerate configs "
            "for FSDP, DeepSpeed or multi-GPU runs",
        )
    if facts.num_processes is not None and facts.num_processes != d.world_size:
        yield ConfigFinding(
            "info",
            "distributed.nproc_per_node",
            f"{path.name} says num_processes {facts.num_processes}; the run starts {d.world_size} "
            "(nproc_per_node × nnodes), which the launch passes to accelerate",
        )


@rule
def _method_vs_data(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    shape = ctx.data_shape
    if shape is None:
        return
    is_pref = shape.startswith("preference")
    if config.method == "dpo" and not is_pref:
        yield ConfigFinding(
            "error",
            "method",
            f"DPO needs preference pairs (prompt, chosen, rejected); the training data is {shape}",
            "sft",
        )
    elif config.method == "sft" and is_pref:
        yield ConfigFinding(
            "info", "method", f"the training data is {shape}: SFT will train on the chosen answers only", "dpo"
        )


@rule
def _trust_remote_code(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    if config.trust_remote_code:
        yield ConfigFinding(
            "warning", "trust_remote_code", "the model repository's Python code will run on this machine", False
        )


@rule
def _model(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    if ctx.model_error:
        from workbench.models import is_bundled

        yield ConfigFinding("error", "model", ctx.model_error, None if is_bundled(config.model) else "bundled")


@rule
def _context_length(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    facts = ctx.model
    length = config.train.max_length
    if facts is None or facts.max_context is None or length <= facts.max_context:
        return
    learned = any(e.in_features == facts.max_context != facts.vocab_size for e in facts.embeddings)
    why = (
        "its learned position table ends there: training would fail"
        if learned
        else "positions past it were never trained, so quality degrades"
    )
    yield ConfigFinding(
        "error" if learned else "warning",
        "train.max_length",
        f"max_length {length} is longer than the model's context of {facts.max_context} tokens; {why}",
        facts.max_context,
    )


@rule
def _truncation(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    lengths = ctx.token_lengths
    if not lengths:
        return
    limit = config.train.max_length
    over = [(p, a) for p, a in lengths if p + a > limit]
    if not over:
        return
    whole = sum(1 for p, a in over if p >= limit and a)  # the prompt fills max_length: no answer token left
    partial = len(over) - whole
    longest = max(p + a for p, a in lengths)
    context = ctx.model.max_context if ctx.model and ctx.model.max_context else None
    fits_all = min(-(-longest // 64) * 64, context or longest + 64)
    n = len(lengths)
    sampled = f" sampled (of {ctx.lengths_from})" if ctx.lengths_from and ctx.lengths_from > n else ""
    cuts = []
    if partial:
        cuts.append(f"{partial} lose the end of their answer")
    if whole:
        cuts.append(f"{whole} lose the whole answer and are dropped by the trainer")
    yield ConfigFinding(
        "error" if whole == n else "warning",
        "train.max_length",
        f"{len(over)} of {n}{sampled} training examples ({len(over) / n:.0%}) are longer than max_length {limit} "
        f"tokens (longest {longest}, chat template included): {' and '.join(cuts)}",
        fits_all if fits_all > limit else None,
    )


@rule
def _packing(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    t = config.train
    if not t.packing and t.padding_free is not True:
        return
    field = "train.packing" if t.packing else "train.padding_free"
    what = "packing" if t.packing else "padding-free rows"
    if config.method == "dpo":
        yield ConfigFinding("info", field, f"DPO pairs are padded: {what} is ignored", False)
        return
    attn = (ctx.model.attn_implementation if ctx.model else None) or "sdpa"
    if attn.startswith("flash"):
        return
    if ctx.packing_isolated is False:
        message = (
            f"{what} with {attn} attention: packed examples attend to each other (this transformers cannot "
            "mask them apart without flash-attention)"
        )
    else:
        tokens = t.batch_size * t.max_length
        message = (
            f"{what} with {attn} attention: TRL flattens each micro-batch into one row of up to {tokens} tokens "
            f"and attention runs over all of it, with a {tokens}² mask keeping the examples apart: "
            "quadratic time and memory (flash-attention handles packed rows without a mask)"
        )
    yield ConfigFinding("warning", field, message, False)


@rule
def _batches(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    """How micro-batches are made here and the share of padding that leaves (a note, for check and the pane)."""
    from workbench.config.batching import epoch_lengths, padding_share, plan_batching, worker_attention
    from workbench.config.trl_args import precision_plan

    if ctx.model is None or config.method == "dpo":
        return
    hw = ctx.hardware
    sixteen = precision_plan(config.train.precision, hw).precision != "fp32"
    plan = plan_batching(config, worker_attention(hw.cuda, sixteen) or ctx.model.attn_implementation)
    if config.train.group_by_length is True and plan.flattened:
        yield ConfigFinding(
            "info", "train.group_by_length", f"{plan.label} rows hold no padding: grouping by length changes nothing"
        )
    text = f"batches {plan.label} ({plan.why})"
    lengths = epoch_lengths(config, ctx.token_lengths)
    if lengths and not plan.flattened:
        text += f": about {padding_share(lengths, config.train.batch_size, plan):.1%} of their tokens are padding"
    yield ConfigFinding("info", "train.padding_free", text)


@rule
def _target_modules(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    facts = ctx.model
    if facts is None or config.finetune == "full":
        return
    targets = config.lora.target_modules
    unknown = facts.unknown_targets(targets)
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = facts.closest_module(name)
        hints.append(f"'{name}'" + (f" (did you mean '{close}'?)" if close else ""))
    matched = len(unknown) < len(targets)
    linear = ", ".join(facts.module_groups()["all-linear"])
    yield ConfigFinding(
        "warning" if matched else "error",
        "lora.target_modules",
        f"{facts.architecture} has no module {', '.join(hints)}"
        + ("; LoRA skips it" if matched else ": LoRA would adapt nothing")
        + f". Its linear layers: {linear}",
        "all-linear",
    )


TIGHT = 0.8
"""Share of the GPU's free memory above which a run is tight (the estimate is about ±15%)."""


@rule
def _memory(config: RunConfig, ctx: Context) -> Iterable[ConfigFinding]:
    facts = ctx.model
    if facts is None:
        return
    from workbench.config.memory import estimate_memory, gib

    hw = ctx.hardware
    estimate = estimate_memory(config, facts, seq_len=_longest(config, ctx), bf16=hw.bf16 or not hw.cuda)
    largest = sorted(
        (i for i in estimate.items if estimate.counted(i) and i.phase != "overhead"), key=lambda i: -i.bytes
    )[:3]
    parts = ", ".join(f"{i.name} {gib(i.bytes)}" for i in largest)
    padded = f"{estimate.rows} × {estimate.seq_len} tokens per micro-batch"
    if not hw.cuda:
        yield ConfigFinding(
            "info",
            "train.batch_size",
            f"on a GPU this run would need about {gib(estimate.total)} ({parts}; {padded}); "
            "this machine has no GPU, so it trains on the CPU",
            None,
        )
        return
    free = hw.gpu_free_bytes
    if free is None:
        return
    gpu = hw.gpu_name or "the GPU"
    if not estimate.fits(free):
        fixes = estimate.cheapest_fixes(free, qlora=hw.bitsandbytes)
        plan = "; then ".join(f"{fix.description} → {gib(fix.total)}" for fix in fixes) or "none found"
        first = fixes[0] if fixes else None
        yield ConfigFinding(
            "error",
            first.field if first else "train.batch_size",
            f"needs about {gib(estimate.total)} but {gpu} has {gib(free)} free ({parts}; {padded}). "
            f"Cheapest fixes: {plan}",
            first.value if first else None,
        )
    elif estimate.total > TIGHT * free and not config.train.gradient_checkpointing:
        eased = estimate.with_changes({"train.gradient_checkpointing": True})
        yield ConfigFinding(
            "warning",
            "train.gradient_checkpointing",
            f"memory is tight: about {gib(estimate.total)} of {gib(free)} free on {gpu}; gradient checkpointing "
            f"brings it to {gib(eased.total)} (about 30% slower steps)",
            True,
        )


def _longest(config: RunConfig, ctx: Context) -> int | None:
    """Tokens in the longest sampled example (capped by max_length): how long padded micro-batches get."""
    if not ctx.token_lengths or config.train.packing:
        return None
    return min(config.train.max_length, max(p + a for p, a in ctx.token_lengths))
