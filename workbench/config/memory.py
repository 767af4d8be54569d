"""How much GPU memory a run needs, item by item, from the config and the model's facts.

The estimate follows what the workbench's trainer (TRL + PEFT, built by
:func:`workbench.train.worker.build_trainer`) actually allocates; each factor
below was read off the library code (transformers 5, TRL 1.x, PEFT 0.2x) and
checked by counting the bytes autograd keeps and the live-tensor peak of real
steps (``torch.profiler`` allocation events on CPU; see
:mod:`workbench.config.probe` and ``tests/test_config_memory.py``). Notation: ``P`` parameters, ``T`` tokens in
one micro-batch (rows × sequence length; DPO has two rows per pair), ``L``
layers, ``h`` hidden size, ``I`` MLP width, ``q``/``kv`` query and key/value
widths, ``V`` vocabulary, ``d`` bytes of an activation (2 under bf16/fp16
autocast, 4 in fp32), ``w`` bytes of a weight as loaded.

Precision is the worker's (:mod:`workbench.config.precision`): ``bf16`` on a
GPU loads the weights in bf16 and autocasts, on a CPU it autocasts over fp32
weights; ``fp16`` keeps fp32 weights (fp16 autocast needs fp32 master
weights); ``fp32`` is plain fp32 (the worker passes ``bf16=False``
explicitly, since TRL would otherwise turn bf16 autocast on); ``auto`` is
bf16 on a GPU that has it, else fp16, and on a CPU bf16 autocast where the
CPU has AMX or AVX512-BF16, else fp32.

Weights
    ``P × w``. QLoRA: every linear but the LM head in NF4, 0.5 B per weight
    plus the quantization constants (double quantization: an 8-bit absmax per
    64 weights and an fp32 constant per 256 blocks, +0.0159 B per weight); the
    rest (embeddings, norms, LM head) in the load dtype.
LoRA parameters
    ``r × (in + out)`` per adapted layer (:func:`~workbench.config.modelinfo.lora_params`),
    fp32: PEFT upcasts adapters of a 16-bit model (``autocast_adapter_dtype``);
    bf16 for QLoRA, where TRL casts them down.
Gradients
    One per trainable parameter, in its dtype. The trainer sets them to None
    after each optimizer step, so with one accumulation step they live from
    backward to the step (counted at the step, not at the start of backward);
    with accumulation they live throughout.
Optimizer states
    AdamW keeps two states per trainable parameter in the parameter's dtype
    (8 B each for fp32 LoRA, 4 B for bf16 full fine-tuning); 8-bit optimizers
    1 B per state, lion/adagrad/rmsprop one state, SGD none, Adafactor's
    factored moments next to nothing. The multi-tensor (foreach) AdamW that
    ``adamw_torch`` runs on a GPU allocates one more state-sized temporary
    during the step (``torch._foreach_sqrt`` of the second moments).
Activations (per token per layer, summed over ``L``, times ``T``)
    * RMSNorm upcasts its input to fp32 and keeps it: ``2 × 4h`` (two norms);
      full fine-tuning also keeps each norm's output for its weight: ``2 × d·h``.
    * Attention keeps q, k, v as they enter SDPA and its output:
      ``d × (q + 2·kv' + q)``, with ``kv' = q`` for grouped-query attention with
      a padding mask (transformers repeats k and v then) and ``kv`` otherwise;
      plus the fp32 log-sum-exp per head. Eager attention also keeps the
      ``heads × length`` probabilities, in fp32 and as cast: ``(4 + d)·heads·length``.
    * A gated MLP keeps the gate output, its activation and the up output:
      ``3 × d·I`` (one ``d·I`` for a plain MLP).
    * Linear inputs: a layer whose weight trains keeps its input. Layers that
      read the same tensor share it (q/k/v; gate/up; the output projection
      shares the attention's output). Under autocast each LoRA layer keeps its
      own copy instead, because PEFT casts the input to the fp32 adapter's
      dtype and autocast casts it back (a new tensor each time); so does each
      layer when LoRA dropout is on (the dropped-out input), plus the dropout
      mask (1 B per element on CUDA). DPO turns dropout off (TRL's
      ``disable_dropout``).
    * LoRA's own ``d × r`` per adapted layer, and autocast's cached 16-bit copy
      of every LoRA weight (``d`` per LoRA parameter, once).
    * Once per micro-batch: the final norm.
    * The attention mask when rows are padded or packed: ``rows × length²``
      bytes of booleans, and the additive copy SDPA makes at every call, which
      CUDA's memory-efficient kernel keeps for backward (``d`` bytes per
      element per layer). TRL's padding-free packing flattens the micro-batch
      into one row, so the square is ``(rows × length)²``: packing without
      flash-attention is expensive.
    * fp32 weights under 16-bit autocast (``fp16``): every frozen linear's
      16-bit weight copy is kept for the input gradient (full fine-tuning:
      autocast's cache of the trainable weights): the body's linear weights × ``d``.
    * The backward of one layer holds its gradients while its saved tensors
      are still alive: one more layer's worth (a moment of its own, see below).
    * Gradient checkpointing keeps only each layer's input (``w·h`` per token
      per layer, the residual stream's dtype) and recomputes one layer at a
      time during backward: ``L × w·h``, plus two layers at the layer moment.
    * QLoRA dequantizes one linear at a time to 16-bit (the largest one counts).
    The per-layer terms match the bytes autograd keeps on SmolLM2-135M within
    1% (LoRA and full, fp32 and bf16 autocast, with and without dropout and
    grouped-query repetition); whole CPU steps of the real trainer peak within
    0-4% of ``estimate_memory(..., device="cpu")`` (LoRA with and without
    dropout and checkpointing, q/v-only LoRA, full fine-tuning, DPO).
Logits
    TRL (1.x) scores tokens through a fused, chunked LM head: the
    ``T × V`` logits never exist. It keeps the final hidden states it scores
    (``T·h·d``), works on a tile of at most 4096 tokens × 32768 vocabulary
    entries in the compute dtype, and accumulates the hidden-state gradient in
    fp32 (``T·h·(4 + d)``); when the LM head trains (full fine-tuning) its
    gradient is accumulated in fp32 too (``V·h·(4 + w)``). On a GPU only the
    positions with a label are scored (the estimate assumes all of them); on
    a CPU every position is, with about 7 fp32 tile-sized temporaries in the
    torch fallback of its kernel. Without the fused
    head (an older TRL) the logits would be ``T × V × (d + 4 + 4)``: 16-bit
    logits, their fp32 upcast for the loss and its gradient, which is what
    dominates small models with big vocabularies.
CUDA context and allocator
    The CUDA context, cuBLAS workspace and kernels take about 0.5 GiB that
    ``torch.cuda.max_memory_allocated`` does not see but the GPU's free memory
    does; the caching allocator's rounding and fragmentation add about 10% to
    the allocated peak (reserved/allocated ratios of 1.05-1.15 are typical).

Items belong to phases, and the peak is the largest of three moments: the
start of backward through the LM head (persistent items, everything the
forward kept, the head's working memory), the backward of the first layer
(the same, with one layer's backward instead of the head's) and the
optimizer step (persistent items and the step's temporaries). The overheads
come on top.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from workbench.config.distributed import Sharding, sharding
from workbench.config.modelinfo import Layer, ModelFacts, lora_params
from workbench.config.schema import RunConfig

GIB = 2**30
MIB = 2**20

Phase = Literal["persistent", "forward", "loss backward", "layer backward", "optimizer step", "overhead"]
MOMENTS: dict[str, tuple[Phase, ...]] = {
    "loss backward": ("persistent", "forward", "loss backward"),
    "layer backward": ("persistent", "forward", "layer backward"),
    "optimizer step": ("persistent", "optimizer step"),
}
"""The moments that can make the peak, and the phases whose items are alive then."""

CUDA_CONTEXT_BYTES = 512 * MIB
"""CUDA context, cuBLAS workspace and loaded kernels of a training process (driver-dependent: 0.3-0.8 GiB)."""
ALLOCATOR_OVERHEAD = 0.10
"""Share of the allocated peak the caching allocator holds on top of it (rounding, fragmentation)."""
NF4_BYTES = 0.5 + (8 / 64 + 32 / (64 * 256)) / 8
"""Bytes per 4-bit NF4 weight with double-quantized constants (bitsandbytes, blocksize 64)."""
LOGPROB_TILE = (4096, 32768)
"""Tokens × vocabulary entries of one tile of TRL's chunked log-prob head."""
_TILE_TEMPORARIES_CPU = 7.25
"""fp32 tile-sized temporaries of the chunked head's torch fallback (CPU backward: upcast, exp, gradient terms)."""


@dataclass(frozen=True)
class MemoryItem:
    """One line of the estimate."""

    name: str
    bytes: int
    explanation: str
    phase: Phase = "persistent"


@dataclass(frozen=True)
class Fix:
    """A config change that lowers the estimate; fixes apply one after the other."""

    changes: dict[str, Any]
    """Dotted field → new value; the first is the one a suggestion sets."""
    description: str
    total: int
    """Estimated total with this fix and every fix before it in the list."""

    @property
    def field(self) -> str:
        return next(iter(self.changes))

    @property
    def value(self) -> Any:
        return next(iter(self.changes.values()))


@dataclass(frozen=True)
class Precision:
    """How the worker runs a precision setting: bytes of a weight, of an activation, and whether it autocasts."""

    name: str
    weight: int
    compute: int
    autocast: bool


@dataclass(frozen=True, eq=False)
class MemoryEstimate:
    """The memory one training process needs on one device, item by item."""

    items: tuple[MemoryItem, ...]
    config: RunConfig
    facts: ModelFacts
    precision: Precision
    seq_len: int
    rows: int
    """Sequences in one micro-batch (DPO: chosen and rejected of each pair)."""
    device: Literal["cuda", "cpu"] = "cuda"
    world_size: int = 1
    sharding: str = "one process"
    """How the processes split the training state (:func:`workbench.config.distributed.sharding`)."""
    notes: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_moment(self) -> str:
        """The moment of the step with the most memory allocated (a key of :data:`MOMENTS`)."""
        return _peak(self.items)[0]

    @property
    def allocated(self) -> int:
        """The peak of allocated tensor memory: what ``torch.cuda.max_memory_allocated`` reports."""
        return _peak(self.items)[1]

    @property
    def total(self) -> int:
        """What the GPU must have free: the allocated peak plus CUDA context and allocator overhead."""
        return self.allocated + sum(i.bytes for i in self.items if i.phase == "overhead")

    def counted(self, item: MemoryItem) -> bool:
        """Whether an item is alive at the peak moment (overheads always are)."""
        return item.phase == "overhead" or item.phase in MOMENTS[self.peak_moment]

    def fits(self, free_bytes: int) -> bool:
        return self.total <= free_bytes

    def cheapest_fixes(self, budget: int, *, qlora: bool = True) -> list[Fix]:
        """Changes that bring the total under ``budget``, mildest first, each applied on top of the ones before.

        The order is by what a change costs: splitting the batch into
        accumulation steps (same effective batch, same result), gradient
        checkpointing (about 30% slower), LoRA instead of full fine-tuning,
        QLoRA (``qlora``: only where CUDA and bitsandbytes are there; a little
        quality), then a shorter max_length (longer examples get truncated).
        Each step takes the mildest value that fits; the list stops as soon as
        the total fits, and is empty when it already does.
        """
        fixes: list[Fix] = []
        current = self
        for step in (_fix_batch, _fix_checkpointing, _fix_full, _fix_qlora if qlora else None, _fix_length):
            if current.total <= budget:
                break
            found = step(current, budget) if step else None
            if found is not None:
                changes, description, current = found
                fixes.append(Fix(changes, description, current.total))
        return fixes

    def with_changes(self, changes: dict[str, Any]) -> MemoryEstimate:
        """The estimate for the same model with some config fields changed (dotted names)."""
        return estimate_memory(apply_changes(self.config, changes), self.facts, device=self.device, **self.options)

    def lines(self) -> list[str]:
        """The estimate as text lines: one per item, then the total."""
        out = []
        for item in self.items:
            mark = "" if self.counted(item) else "  (not at the peak)"
            out.append(f"{item.name:<26} {gib(item.bytes):>10}  {item.explanation}{mark}")
        out.append(
            f"{'total':<26} {gib(self.total):>10}  peak at the {self.peak_moment}, "
            f"{self.rows} × {self.seq_len} tokens per micro-batch, {self.precision.name}"
        )
        return out + [f"note: {n}" for n in self.notes]


def gib(n: float) -> str:
    """Bytes as GiB (or MiB below one GiB)."""
    return f"{n / GIB:.2f} GiB" if abs(n) >= GIB else f"{n / MIB:.0f} MiB"


def resolve_precision(
    config: RunConfig, *, cuda: bool = True, bf16: bool = True, cpu_bf16: str | None = None
) -> Precision:
    """How the worker will train: the plan of :func:`workbench.config.precision.plan_precision`.

    ``auto`` is bf16 on a GPU that has it, else fp16 on a GPU; on a CPU,
    bf16 autocast over fp32 weights where ``cpu_bf16`` names the CPU's native
    bf16 instructions, else fp32.
    """
    from workbench.config.precision import plan_precision

    plan = plan_precision(config.train.precision, cuda=cuda, gpu_bf16=cuda and bf16, cpu_bf16=cpu_bf16)
    weight = 2 if plan.weights in ("bfloat16", "float16") else 4
    return Precision(plan.label, weight, 4 if plan.precision == "fp32" else 2, plan.precision != "fp32")


def apply_changes(config: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """A copy of the config with dotted fields set (``{"train.batch_size": 4}``), every constraint checked."""
    from workbench.config.fields import set_field

    for path, value in changes.items():
        config = set_field(config, path, value)
    return config


# -- the estimate ---------------------------------------------------------------


def estimate_memory(
    config: RunConfig,
    facts: ModelFacts,
    *,
    seq_len: int | None = None,
    bf16: bool = True,
    device: Literal["cuda", "cpu"] = "cuda",
    fused_lm_head: bool | None = None,
    cpu_bf16: str | None = "detect",
) -> MemoryEstimate:
    """Memory of one training process per device (see the module docstring for every formula).

    ``seq_len`` is the padded length of the longest micro-batch (default
    ``max_length``: the worst case; packing always fills ``max_length``).
    ``bf16`` says whether the GPU has bf16, which is what ``precision: auto``
    becomes. Several processes (the config's ``distributed`` section) are
    data parallel: under DDP every GPU holds a full replica and a gradient
    bucket copy; FSDP and DeepSpeed ZeRO (an accelerate config) divide the
    parameters, gradients and optimizer states they shard by the processes
    that share them, and gather one layer's parameters at a time for compute
    (:func:`workbench.config.distributed.sharding`). ``device="cpu"`` follows the CPU code paths
    (no CUDA context, the chunked head scoring every position), for comparing
    with a probe on a machine without a GPU. ``fused_lm_head`` defaults to
    whether the installed TRL has its chunked log-prob head. ``cpu_bf16``
    (with ``device="cpu"``) names the CPU's native bf16, which makes ``auto``
    autocast to bf16 there; "detect" reads this machine's.
    """
    t = config.train
    cuda = device == "cuda"
    if cpu_bf16 == "detect":
        from workbench.config.precision import cpu_bf16_feature

        cpu_bf16 = None if cuda else cpu_bf16_feature()
    prec = resolve_precision(config, cuda=cuda, bf16=bf16, cpu_bf16=None if cuda else cpu_bf16)
    length = t.max_length if t.packing or seq_len is None else max(1, min(seq_len, t.max_length))
    rows = t.batch_size * (2 if config.method == "dpo" else 1)
    fused = _trl_has_fused_head() if fused_lm_head is None else fused_lm_head
    spec = _Spec(config, facts, prec, length, rows, cuda, sharding(config))
    items = [*_weights(spec), *_trainable(spec), *_transients(spec, fused)]
    allocated = _peak(items)[1]
    if cuda:
        items.append(
            MemoryItem(
                "CUDA context",
                CUDA_CONTEXT_BYTES,
                "driver context, cuBLAS workspace and kernels (not in max_memory_allocated)",
                "overhead",
            )
        )
        items.append(
            MemoryItem(
                "allocator overhead",
                int(allocated * ALLOCATOR_OVERHEAD),
                f"caching allocator rounding and fragmentation, ~{ALLOCATOR_OVERHEAD:.0%} of the peak",
                "overhead",
            )
        )
    notes = []
    if not t.packing and seq_len is None:
        notes.append(f"every micro-batch assumed padded to max_length {t.max_length}: the worst case")
    if config.train.precision == "auto":
        notes.append(f"precision auto is {prec.name} here")
    if not fused:
        notes.append("the installed TRL materializes the full logits")
    if config.distributed.world_size > 1:
        notes.append(f"per GPU, {config.distributed.world_size} processes: {spec.sharding.label}")
    return MemoryEstimate(
        tuple(items),
        config,
        facts,
        prec,
        length,
        rows,
        device,
        config.distributed.world_size,
        spec.sharding.label,
        tuple(notes),
        {"seq_len": seq_len, "bf16": bf16, "fused_lm_head": fused_lm_head, "cpu_bf16": cpu_bf16},
    )


def _peak(items: Iterable[MemoryItem]) -> tuple[str, int]:
    """The moment with the most bytes alive, and those bytes."""
    items = list(items)
    sums = {m: sum(i.bytes for i in items if i.phase in phases) for m, phases in MOMENTS.items()}
    moment = max(sums, key=lambda m: sums[m])
    return moment, sums[moment]


@dataclass(frozen=True)
class _Spec:
    """What every item's formula needs, worked out once."""

    config: RunConfig
    facts: ModelFacts
    prec: Precision
    length: int
    rows: int
    cuda: bool
    sharding: Sharding

    @property
    def tokens(self) -> int:
        return self.rows * self.length

    @property
    def full(self) -> bool:
        return self.config.finetune == "full"

    @property
    def qlora(self) -> bool:
        return self.config.finetune == "qlora"

    @property
    def adapted(self) -> list[Layer]:
        return [] if self.full else self.facts.adapted(self.config.lora.target_modules)

    @property
    def dropout(self) -> float:
        """LoRA dropout as trained: none for full fine-tuning, and TRL's DPO turns dropout off."""
        return 0.0 if self.full or self.config.method == "dpo" else self.config.lora.dropout

    @property
    def adapter_bytes(self) -> int:
        """LoRA parameters' dtype: fp32 (PEFT upcasts), bf16 for QLoRA (TRL casts them)."""
        return 2 if self.qlora else 4

    @property
    def trainable(self) -> int:
        if self.full:
            return self.facts.total_params
        lora = self.config.lora
        return lora_params(self.facts, lora.target_modules, lora.r, dora=lora.dora)

    @property
    def trainable_bytes(self) -> int:
        """Bytes of one trainable parameter (and of its gradient)."""
        return self.prec.weight if self.full else self.adapter_bytes


def _sharded(item: MemoryItem, by: int) -> MemoryItem:
    """The item as one process holds it when ``by`` processes share it."""
    if by == 1:
        return item
    return MemoryItem(item.name, -(-item.bytes // by), f"{item.explanation}; sharded ÷ {by}", item.phase)


def _weights(s: _Spec) -> list[MemoryItem]:
    out = [_sharded(item, s.sharding.params) for item in _full_weights(s)]
    if s.sharding.gathered_layer:
        f = s.facts
        layer = sum(linear.params for linear in f.body_linears) // max(1, f.num_layers) * s.prec.weight
        out.append(
            MemoryItem(
                "gathered layers",
                2 * layer,
                "sharded parameters are gathered a layer at a time for compute: the current and the prefetched one",
                "forward",
            )
        )
    return out


def _full_weights(s: _Spec) -> list[MemoryItem]:
    f, w = s.facts, s.prec.weight
    if s.qlora:
        quantized = sum(layer.in_features * layer.out_features for layer in f.body_linears)
        rest = f.total_params - quantized
        items = [
            MemoryItem(
                "weights",
                int(quantized * NF4_BYTES + rest * w),
                f"{_count(quantized)} linear weights in NF4 ({NF4_BYTES:.3f} B each with constants), "
                f"{_count(rest)} others (embeddings, norms) at {w} B",
            )
        ]
    else:
        items = [
            MemoryItem("weights", f.total_params * w, f"{_count(f.total_params)} parameters × {w} B ({s.prec.name})")
        ]
    if s.config.method == "dpo" and s.full:
        items.append(
            MemoryItem(
                "reference model",
                f.total_params * w,
                "DPO keeps a frozen copy of the model to compare against (LoRA reuses the base)",
            )
        )
    return items


def _trainable(s: _Spec) -> list[MemoryItem]:
    n, b, shard = s.trainable, s.trainable_bytes, s.sharding
    items = []
    if not s.full:
        lora = s.config.lora
        what = f"r={lora.r} on {len(s.adapted)} layers" + (" + DoRA magnitudes" if lora.dora else "")
        items.append(
            _sharded(
                MemoryItem("LoRA parameters", n * b, f"{_count(n)} = r × (in + out) per layer, {what}, × {b} B"),
                shard.params,
            )
        )
    accumulating = s.config.train.grad_accum > 1  # else gradients are freed after each step (set to None)
    gradients = MemoryItem(
        "gradients",
        n * b,
        f"one per trainable parameter, {_count(n)} × {b} B"
        + ("" if accumulating else "; alive from backward to the optimizer step"),
        "persistent" if accumulating else "optimizer step",
    )
    items.append(_sharded(gradients, shard.grads))
    states, state_bytes, foreach = _optimizer(s.config.train.optimizer, b)
    opt = int(n * states * state_bytes)
    name = s.config.train.optimizer
    optimizer = MemoryItem(
        "optimizer states", opt, f"{name}: {states} state(s) × {state_bytes:g} B per trainable parameter"
    )
    items.append(_sharded(optimizer, shard.optimizer))
    if shard.ddp:
        world = s.config.distributed.world_size
        items.append(
            MemoryItem(
                "DDP gradient buckets", n * b, f"data parallel over {world} GPUs keeps a bucket copy of the gradients"
            )
        )
    if foreach:
        temp = n * b if s.cuda else _largest_trainable(s) * b
        step = MemoryItem(
            "optimizer step temporaries",
            temp,
            "foreach AdamW computes sqrt of the second moments for all parameters at once"
            if s.cuda
            else "per-parameter AdamW temporaries (CPU)",
            "optimizer step",
        )
        items.append(_sharded(step, shard.optimizer) if s.cuda else step)
    return items


def _optimizer(name: str, param_bytes: int) -> tuple[int, float, bool]:
    """(states per parameter, bytes per state, whether the step makes a state-sized temporary)."""
    low = name.lower()
    state_bytes: float = 1 if "8bit" in low else 0.5 if "4bit" in low else param_bytes
    if low in ("sgd", "lomo", "adalomo") or "adafactor" in low:
        return 0, state_bytes, False
    states = 1 if any(k in low for k in ("lion", "adagrad", "rmsprop")) else 3 if "ademamix" in low else 2
    foreach = low == "adamw_torch"  # torch.optim.AdamW, foreach by default on CUDA
    return states, state_bytes, foreach


def _largest_trainable(s: _Spec) -> int:
    if s.full:
        return max([layer.params for layer in s.facts.linears + s.facts.embeddings] or [0])
    r = s.config.lora.r
    return max([r * max(layer.in_features, layer.out_features) for layer in s.adapted] or [0])


def _transients(s: _Spec, fused: bool) -> list[MemoryItem]:
    per_layer, breakdown = _per_layer(s)
    f, t = s.facts, s.config.train
    one_layer = s.tokens * per_layer
    once = s.tokens * _final_norm(s) + _mask_square(s) + _lora_weight_cache(s)  # + the boolean mask, built once
    if t.gradient_checkpointing:
        kept: float = s.tokens * f.num_layers * s.prec.weight * f.hidden_size + once
        how = f"checkpointing keeps each layer's input ({s.prec.weight}h B per token) × {f.num_layers} layers"
        backward, again = 2 * one_layer, "one layer recomputed and its backward"
    else:
        kept = f.num_layers * one_layer + once
        how = f"{per_layer:,.0f} B per token per layer ({breakdown}) × {f.num_layers} layers"
        backward, again = one_layer, "one layer's gradients while its saved tensors are alive"
    items = [
        MemoryItem("activations", int(kept), f"{s.rows} × {s.length} tokens; {how}", "forward"),
        MemoryItem("logits", int(_logits(s, fused)), _logits_explanation(s, fused), "loss backward"),
        MemoryItem("layer backward", int(backward), f"{again} ({per_layer:,.0f} B per token)", "layer backward"),
    ]
    if s.qlora:
        largest = max([layer.params for layer in f.body_linears] or [0])
        items.append(
            MemoryItem(
                "dequantized weight", largest * 2, "QLoRA dequantizes one linear at a time to 16-bit", "layer backward"
            )
        )
    elif s.prec.weight != s.prec.compute:
        weights = sum(layer.params for layer in f.body_linears) * s.prec.compute
        why = (
            "autocast caches a 16-bit copy of every trainable fp32 weight"
            if s.full
            else "autocast casts each frozen fp32 weight to 16-bit and the copy is kept for the input gradient"
        )
        if t.gradient_checkpointing:  # only the recomputed layer's copies live
            items.append(
                MemoryItem("autocast weight copies", weights // f.num_layers, f"{why}: one layer's", "layer backward")
            )
        else:
            items.append(MemoryItem("autocast weight copies", weights, why, "forward"))
    return items


def _per_layer(s: _Spec) -> tuple[float, str]:
    """Bytes one decoder layer keeps for backward per token, and how they add up."""
    f, d = s.facts, s.prec.compute
    h, inter, q = f.hidden_size, f.intermediate_size, f.q_dim
    flash = (f.attn_implementation or "").startswith("flash")
    kv = q if f.num_kv_heads < f.num_heads and not flash else f.kv_dim
    parts = {
        "norms": 2 * (4 * h + 4) + (2 * d * h if s.full else 0),
        "attention": d * (q + 2 * kv)
        + d * q
        + 4 * f.num_heads
        + ((4 + d) * f.num_heads * s.length if f.attn_implementation == "eager" else 0),
        "mlp": d * inter * (3 if f.gated_mlp else 1),
        "linear inputs": _linear_inputs(s) / f.num_layers,
        "lora": len(s.adapted) * d * s.config.lora.r / f.num_layers,
        # SDPA turns the boolean mask into an additive one at every call and keeps it for backward
        "mask": _mask_square(s) * d / s.tokens,
    }
    text = ", ".join(f"{name} {value:,.0f}" for name, value in parts.items() if value)
    return sum(parts.values()), text


def _linear_inputs(s: _Spec) -> float:
    """Bytes per token (all layers) of the inputs that linear layers keep for their weight gradients."""
    f, d = s.facts, s.prec.compute
    dropout = s.dropout
    mask = (1 if s.cuda else s.adapter_bytes) if dropout > 0 else 0
    adapted = {layer.name for layer in s.adapted}
    shared: set[tuple[str, str]] = set()
    total = 0.0
    for layer in f.body_linears:
        role = f.input_role(layer)
        parent = layer.name.rsplit(".", 1)[0]
        if layer.name in adapted and (dropout > 0 or (s.prec.autocast and s.adapter_bytes != d)):
            total += layer.in_features * (d + mask)  # a private copy: PEFT's dtype cast or the dropped-out input
            if not s.qlora:
                continue
        elif s.full and s.prec.weight != d and role in ("attn_in", "mlp_in"):
            total += layer.in_features * d  # autocast casts the fp32 normed hidden states for each layer
            continue
        keeps = s.full or s.qlora or layer.name in adapted  # bitsandbytes keeps every 4-bit layer's input
        if keeps and role != "attn_out" and (parent, role) not in shared:
            shared.add((parent, role))
            total += layer.in_features * d
    return total


def _final_norm(s: _Spec) -> int:
    h = s.facts.hidden_size
    return 4 * h + 4 + (s.prec.compute * h if s.full else 0)


def _mask_square(s: _Spec) -> int:
    """Elements of SDPA's attention mask: rows × length² when rows are padded or packed, else none.

    A mask exists when rows are padded (more than one row) or packed (TRL's
    padding-free packing flattens the micro-batch into one row of
    ``rows × length`` tokens whose mask keeps the examples apart).
    Flash-attention needs no mask.
    """
    if (s.facts.attn_implementation or "").startswith("flash"):
        return 0
    if s.config.train.packing:
        return s.tokens * s.tokens
    return s.rows * s.length * s.length if s.rows > 1 else 0


def _lora_weight_cache(s: _Spec) -> int:
    """Autocast caches a 16-bit copy of every fp32 leaf weight that trains: the LoRA weights."""
    if s.full or not s.prec.autocast or s.adapter_bytes == s.prec.compute:
        return 0
    return s.trainable * s.prec.compute


def _logits(s: _Spec, fused: bool) -> float:
    f, d, w, n = s.facts, s.prec.compute, s.prec.weight, s.tokens
    h, v = f.hidden_size, f.vocab_size
    if not fused:
        return n * v * (d + 4 + 4)
    rows, cols = min(n, LOGPROB_TILE[0]), min(v, LOGPROB_TILE[1])
    tiles: float = rows * LOGPROB_TILE[1] * d  # the tile buffer is allocated full width
    if not s.cuda:
        tiles += _TILE_TEMPORARIES_CPU * rows * cols * 4
    chunk = cols * h * d if w != d else 0  # the head's weight, cast chunk by chunk
    head = v * h * (4 + w) if s.full else 0
    return tiles + chunk + n * h * (d + 4 + d) + n * 4 * 10 + head


def _logits_explanation(s: _Spec, fused: bool) -> str:
    if not fused:
        return f"{s.tokens:,} tokens × {s.facts.vocab_size:,} vocabulary: 16-bit logits, fp32 upcast and gradient"
    extra = "; the LM head's fp32 gradient" if s.full else ""
    return (
        f"TRL's chunked LM head: a {min(s.tokens, LOGPROB_TILE[0])} × {LOGPROB_TILE[1]} "
        f"tile, the scored hidden states and their fp32 gradient{extra} (never tokens × vocabulary)"
    )


def _trl_has_fused_head() -> bool:
    """Whether the installed TRL scores tokens through its chunked head (found without importing TRL)."""
    import importlib.util

    try:
        return importlib.util.find_spec("trl.kernels.chunked_logprob") is not None
    except (ImportError, ValueError):
        return False


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


# -- fixes ------------------------------------------------------------------------


def _fix_batch(est: MemoryEstimate, budget: int) -> tuple[dict[str, Any], str, MemoryEstimate] | None:
    t = est.config.train
    if t.batch_size == 1:
        return None
    effective = t.batch_size * t.grad_accum
    candidates = [b for b in range(t.batch_size - 1, 0, -1) if t.batch_size % b == 0] or [1]
    return _mildest(
        est,
        budget,
        [
            (
                {"train.batch_size": b, "train.grad_accum": math.ceil(effective / b)},
                f"batch_size {b} × grad_accum {math.ceil(effective / b)} (same effective batch {effective})",
            )
            for b in candidates
        ],
    )


def _fix_checkpointing(est: MemoryEstimate, budget: int) -> tuple[dict[str, Any], str, MemoryEstimate] | None:
    if est.config.train.gradient_checkpointing:
        return None
    changes = {"train.gradient_checkpointing": True}
    return changes, "gradient checkpointing (about 30% slower steps)", est.with_changes(changes)


def _fix_full(est: MemoryEstimate, budget: int) -> tuple[dict[str, Any], str, MemoryEstimate] | None:
    if est.config.finetune != "full":
        return None
    changes = {"finetune": "lora"}
    return changes, "LoRA instead of full fine-tuning", est.with_changes(changes)


def _fix_qlora(est: MemoryEstimate, budget: int) -> tuple[dict[str, Any], str, MemoryEstimate] | None:
    if est.config.finetune != "lora":
        return None
    changes = {"finetune": "qlora"}
    return changes, "QLoRA: the base model in 4-bit", est.with_changes(changes)


def _fix_length(est: MemoryEstimate, budget: int) -> tuple[dict[str, Any], str, MemoryEstimate] | None:
    current = est.config.train.max_length
    lengths = [n for n in range(current - current % 64 or current - 64, 63, -64) if n < current]
    return _mildest(
        est, budget, [({"train.max_length": n}, f"max_length {n} (longer examples are truncated)") for n in lengths]
    )


def _mildest(
    est: MemoryEstimate, budget: int, options: Iterable[tuple[dict[str, Any], str]]
) -> tuple[dict[str, Any], str, MemoryEstimate] | None:
    """The first option (mildest first) that fits, else the last, strongest one."""
    best = None
    for changes, description in options:
        best = changes, description, est.with_changes(changes)
        if best[2].total <= budget:
            break
    return best
