"""Everything the Config pane shows about a config, computed in one call (off the UI thread).

:func:`assess` gathers the context (data files, dataset size and shape, token
lengths, hardware, the model's facts), runs every validation rule, and adds the
derived figures and the memory estimate. Gathering the context reads the
dataset and the model's config, so it is cached per data/model settings: a
change to the learning rate re-validates in milliseconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from workbench.config.check import gather_context
from workbench.config.schema import RunConfig
from workbench.config.validate import ConfigFinding, Context, Hardware, validate

_cache: dict[tuple, Context] = {}
_lock = threading.Lock()
_hardware: Hardware | None = None


@dataclass
class Assessment:
    findings: list[ConfigFinding]
    context: Context
    derived: Any = None  # derived.Derived
    memory: Any = None  # memory.MemoryEstimate
    facts: Any = None  # modelinfo.ModelFacts
    modules: str = ""  # the model's adaptable module names, for the target_modules field

    def derived_text(self) -> str:
        if self.derived is None:
            return ""
        rows = self.derived.lines()
        width = max((len(row.label) for row in rows), default=10)
        out = ["Derived figures"]
        for row in rows:
            line = f"  {row.label:<{width}}  {row.value}"
            if row.value == "?" and row.explanation:
                line += f"  ({row.explanation})"
            out.append(line)
        return "\n".join(out) + "\n"

    def memory_text(self) -> str:
        """The estimate item by item, compact for a side panel (the full explanations: memory_details)."""
        from workbench.config.memory import gib

        m = self.memory
        if m is None:
            return ""
        out = ["GPU memory estimate (no weights loaded)"]
        if m.world_size > 1:
            out.append(f"  per GPU of {m.world_size} processes: {m.sharding}")
        for item in m.items:
            mark = "" if m.counted(item) else " *"
            out.append(f"  {item.name:<27}{gib(item.bytes):>10}{mark}")
        out.append(f"  {'total at the peak':<27}{gib(m.total):>10}")
        out.append(
            f"  * not alive at the peak. {m.rows} × {m.seq_len} tokens per micro-batch, "
            f"{m.precision.name}; i shows how each item is worked out"
        )
        return "\n".join(out) + "\n"

    def memory_details(self) -> list[str]:
        return self.memory.lines() if self.memory is not None else []


def _context_key(config: RunConfig) -> tuple:
    d = config.data
    return (
        str(config.base_dir),
        config.resolved_model(),
        d.train,
        d.val,
        d.test,
        d.shape,
        d.val_ratio,
        d.max_train_examples,
        config.train.max_length,
        config.method,
    )


def hardware() -> Hardware:
    global _hardware
    if _hardware is None:
        _hardware = Hardware.detect()
    return _hardware


def context_for(config: RunConfig, hw: Hardware | None = None) -> Context:
    """The (cached) context of a config: only data and model settings change it."""
    key = _context_key(config)
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        cached = gather_context(config, hw or hardware())
        with _lock:
            _cache[key] = cached
    return cached


def assess(config: RunConfig, *, step_seconds: float | None = None, hw: Hardware | None = None) -> Assessment:
    ctx = context_for(config, hw)
    result = Assessment(validate(config, ctx), ctx)
    facts = ctx.model
    result.facts = facts
    if facts is not None:
        from workbench.config.memory import estimate_memory
        from workbench.config.modelinfo import lora_params

        result.modules = ", ".join(facts.module_groups().get("all-linear", []))
        result.memory = estimate_memory(config, facts)
        trainable = None if config.finetune == "full" else lora_params(facts, config.lora.target_modules, config.lora.r)
    else:
        trainable = None
    from workbench.config.batching import epoch_lengths, plan_batching, worker_attention
    from workbench.config.derived import derived
    from workbench.config.trl_args import precision_plan

    hw = ctx.hardware
    precision = precision_plan(config.train.precision, hw)
    attention = worker_attention(hw.cuda, precision.precision != "fp32") or (
        facts.attn_implementation if facts else None
    )
    result.derived = derived(
        config,
        n_train=ctx.n_train,
        trainable_params=trainable
        if config.finetune != "full"
        else (facts.total_params if facts is not None else None),
        total_params=facts.total_params if facts is not None else None,
        mean_tokens=_mean_tokens(config, ctx),
        step_seconds=step_seconds,
        n_val=ctx.n_val,
        lengths=epoch_lengths(config, ctx.token_lengths),
        precision=precision,
        batching=plan_batching(config, attention) if facts is not None else None,
    )
    return result


def _mean_tokens(config: RunConfig, ctx: Context) -> float | None:
    """Mean tokens per training example after truncation, from the sampled (prompt, answer) lengths."""
    if not ctx.token_lengths:
        return None
    return sum(min(p + a, config.train.max_length) for p, a in ctx.token_lengths) / len(ctx.token_lengths)
