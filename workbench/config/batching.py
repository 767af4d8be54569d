"""How a run's micro-batches are made, and how many of their tokens are padding.

Three ways to waste fewer padding tokens, in TRL and transformers' own terms:

* **grouped by length** (transformers' ``train_sampling_strategy:
  group_by_length``): examples of similar length share a micro-batch, so the
  rows are padded to a length close to their own. Nothing else changes: same
  examples per step, same loss.
* **padding-free** (TRL's ``padding_free``): each micro-batch is one row of
  its examples end to end, kept apart by their position ids. No padding at
  all, but only flash-attention runs such a row without a mask; SDPA and
  eager need a (rows × length)² mask, which measured slower here than the
  padding it saves (on the bundled model, 2-core CPU, batch 4: 114 tokens/s
  padding-free against 171 padded). ``auto`` turns it on with flash-attention.
* **packing** (TRL's best-fit decreasing): examples are packed into rows of
  ``max_length`` tokens, padding-free. A step then holds more examples than
  ``batch_size``, so it changes the schedule; it is never on by default.

Whether packed examples really attend only to themselves depends on the
model's attention code: the worker checks it on the loaded model before
training (:func:`workbench.train.packed.packed_rows_isolated`) and refuses
a leaking setup instead of training on it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from workbench.config.schema import RunConfig

#: Trials of a random order averaged for the padding share of shuffled batches.
ORDER_TRIALS = 16

#: transformers' LengthGroupedSampler sorts mega-batches of at most this many micro-batches.
MEGA_BATCH_MULT = 50


@dataclass(frozen=True)
class BatchingPlan:
    """What the worker does with a config's batching fields on one attention implementation."""

    packing: bool
    padding_free: bool
    group_by_length: bool
    why: str

    @property
    def label(self) -> str:
        if self.packing:
            return "packed (best-fit, padding-free)"
        if self.padding_free:
            return "padding-free"
        return "padded, grouped by length" if self.group_by_length else "padded, shuffled"

    @property
    def flattened(self) -> bool:
        """Whether a micro-batch is one row of several examples (packed or padding-free)."""
        return self.packing or self.padding_free


def varlen_attention(attention: str | None) -> bool:
    """Whether an attention implementation runs a packed row by sequence lengths, without a mask."""
    return bool(attention) and "flash" in str(attention)


def worker_attention(cuda: bool, sixteen_bit: bool) -> str | None:
    """The attention the worker asks for: flash-attention 2 where it runs (a CUDA GPU, 16-bit compute, the
    flash_attn package installed), else None (transformers' default, SDPA)."""
    import importlib.util

    if cuda and sixteen_bit and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def plan_batching(config: RunConfig, attention: str | None) -> BatchingPlan:
    """Resolve ``train.padding_free`` and ``train.group_by_length`` for ``attention`` (None: not known)."""
    t = config.train
    if config.method == "dpo":
        return BatchingPlan(False, False, False, "DPO pairs are padded as TRL batches them")
    if t.packing:
        return BatchingPlan(True, True, False, "train.packing")
    if t.padding_free is True:
        return BatchingPlan(False, True, False, "train.padding_free")
    if t.padding_free == "auto" and varlen_attention(attention):
        return BatchingPlan(False, True, False, f"auto: {attention} runs packed rows without a mask")
    why = (
        f"auto: {attention or 'sdpa'} attention would need a quadratic mask for padding-free rows"
        if t.padding_free == "auto"
        else "train.padding_free is off"
    )
    group = t.group_by_length is True or t.group_by_length == "auto"
    if t.group_by_length == "auto":
        why += "; grouped by length to pad less"
    return BatchingPlan(False, False, group, why)


def epoch_lengths(config: RunConfig, token_lengths: Sequence[tuple[int, int]] | None) -> list[int]:
    """Tokens per example as the trainer batches them: (prompt, answer) pairs cut at max_length, and only as
    many as ``data.max_train_examples`` lets train (grouping works within that many)."""
    lengths = [min(p + a, config.train.max_length) for p, a in token_lengths or []]
    return lengths[: config.data.max_train_examples] if config.data.max_train_examples else lengths


def padding_share(
    lengths: Sequence[int], batch_size: int, plan: BatchingPlan, *, seed: int = 0, trials: int = ORDER_TRIALS
) -> float:
    """The share of a micro-batch's tokens that are padding, over one epoch of ``lengths`` (tokens per example).

    Padded batches are padded to their longest example. Shuffled batches are
    averaged over ``trials`` seeded orders; grouped ones follow transformers'
    LengthGroupedSampler (shuffle, then sort mega-batches of up to 50
    micro-batches by length). Packed and padding-free rows hold no padding.
    """
    if plan.flattened or not lengths:
        return 0.0
    n = len(lengths)
    rng = random.Random(seed)
    padded = real = 0
    for _ in range(trials):
        order = list(range(n))
        rng.shuffle(order)
        if plan.group_by_length:
            order = grouped_order(order, lengths, batch_size)
        for i in range(0, n, batch_size):
            batch = [lengths[j] for j in order[i : i + batch_size]]
            padded += max(batch) * len(batch)
            real += sum(batch)
    return 1 - real / padded


def grouped_order(shuffled: list[int], lengths: Sequence[int], batch_size: int) -> list[int]:
    """transformers' length grouping of an already shuffled order: mega-batches sorted longest first."""
    mult = max(1, min(len(lengths) // (batch_size * 4), MEGA_BATCH_MULT))
    size = mult * batch_size
    out: list[int] = []
    for i in range(0, len(shuffled), size):
        out += sorted(shuffled[i : i + size], key=lambda j: lengths[j], reverse=True)
    return out
