"""Rows that hold several examples: whether the model keeps them apart, and truncation TRL leaves to us.

A packed or padding-free row carries its examples end to end, told apart
only by position ids that restart at 0. transformers' own mask code and
flash-attention's varlen path read them; a model whose attention code does
not (old remote code, some attention backends) lets each example attend to
the ones before it and trains on that without a word. So the worker asks the
loaded model itself: the logits of a short sequence alone must equal its
logits after another sequence in the same row.
"""

from __future__ import annotations

from typing import Any

#: Token counts of the two probe sequences packed into one row (the second is compared).
PROBE_LENGTHS = (6, 9)

#: Largest difference between the second sequence's logits packed and alone, relative to their scale,
#: that still counts as kept apart: 16-bit kernels differ by ~1e-3 between layouts, a leak by ~1e-1 and more.
ISOLATION_TOLERANCE = 2e-2


def packed_rows_isolated(model: Any) -> tuple[bool, float]:
    """Whether ``model`` keeps two examples in one row apart by their position ids, and the measured difference.

    Runs two forward passes of a few tokens on the model's device, without
    gradients, in eval mode (dropout off); the model's training mode is
    restored afterwards.
    """
    import torch

    first, second = PROBE_LENGTHS
    vocab = int(model.config.get_text_config().vocab_size)
    ids = [(1000 + 37 * i) % vocab for i in range(first + second)]
    device = next(model.parameters()).device
    packed = torch.tensor([ids], device=device)
    positions = torch.tensor([list(range(first)) + list(range(second))], device=device)
    alone = torch.tensor([ids[first:]], device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # no cache, as in training: transformers reads packed rows from position ids only without one
            together = model(input_ids=packed, position_ids=positions, use_cache=False).logits[0, first:].float()
            apart = model(input_ids=alone, position_ids=positions[:, first:], use_cache=False).logits[0].float()
    finally:
        model.train(was_training)
    difference = float((together - apart).abs().max() / apart.abs().max().clamp_min(1e-6))
    return difference <= ISOLATION_TOLERANCE, difference


def truncate(dataset: Any, max_length: int) -> Any:
    """A tokenized dataset cut to ``max_length`` tokens, dropping examples left with no trained token.

    What TRL's own preparation does when it truncates (keep the start, then
    drop rows whose labels are all masked); TRL skips it for padding-free
    rows, so the worker does it after the trainer has tokenized.
    """
    if dataset is None or "input_ids" not in dataset.column_names:
        return dataset

    def cut(row: dict[str, Any]) -> dict[str, Any]:
        out = {"input_ids": row["input_ids"][:max_length]}
        if "labels" in row:
            out["labels"] = row["labels"][:max_length]
        return out

    dataset = dataset.map(cut)
    if "labels" in dataset.column_names:
        dataset = dataset.filter(lambda row: any(label != -100 for label in row["labels"]))
    return dataset
