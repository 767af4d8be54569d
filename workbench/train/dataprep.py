"""Turn a run config's data section into the datasets a TRL trainer takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config.schema import RunConfig
from workbench.data import load_rows, normalize, split_rows, to_hf_dataset
from workbench.errors import DataError


@dataclass
class PreparedData:
    """Normalized rows per split, with what was skipped and why."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    test: list[dict[str, Any]]
    shape: str
    bad_rows: list[str] = field(default_factory=list)  # "file:line: message", for the log
    notes: list[str] = field(default_factory=list)

    def datasets(self) -> tuple[Any, Any | None]:
        """The train and eval splits as `datasets.Dataset` objects."""
        return to_hf_dataset(self.train), (to_hf_dataset(self.val) if self.val else None)


def completion_only(row: dict[str, Any]) -> dict[str, Any]:
    """A conversation ending in an assistant turn, as prompt + completion.

    TRL computes the loss on the completion only, so the model learns to
    answer rather than to reproduce system prompts and user messages.
    """
    messages = row.get("messages")
    if isinstance(messages, list) and len(messages) > 1 and messages[-1].get("role") == "assistant":
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    return row


def _load(config: RunConfig, path: Path, what: str) -> tuple[list[dict[str, Any]], str, list[str]]:
    result = load_rows(path, shape=config.data.shape, skip_bad=config.data.skip_bad_rows)
    rows = normalize(result.rows, result.shape, method=config.method, system_prompt=config.data.system_prompt)
    if config.method == "sft":
        rows = [completion_only(r) for r in rows]
    bad = [str(b) for b in result.bad_rows]
    shape = result.shape.value if hasattr(result.shape, "value") else str(result.shape)
    if not rows:
        raise DataError(f"{path}: no usable {what} examples")
    return rows, shape, bad


def prepare_data(config: RunConfig) -> PreparedData:
    """Load, normalize and split the config's data; raises DataError naming file and line."""
    train_path = config.resolve(config.data.train)
    assert train_path is not None
    train, shape, bad = _load(config, train_path, "training")
    notes: list[str] = []
    if config.data.val:
        val, _, bad_val = _load(config, config.resolve(config.data.val), "validation")
        bad += bad_val
    elif config.data.val_ratio > 0:
        split = split_rows(
            train, ratios=(1 - config.data.val_ratio, config.data.val_ratio, 0.0), seed=config.data.split_seed
        )
        train, val = split.train, split.val
        notes.append(
            f"held out {len(val)} of the training examples for eval (val_ratio {config.data.val_ratio}, seed {config.data.split_seed})"
        )
    else:
        val = []
    if config.data.max_train_examples and len(train) > config.data.max_train_examples:
        notes.append(
            f"training on the first {config.data.max_train_examples} of {len(train)} examples (max_train_examples)"
        )
        train = train[: config.data.max_train_examples]
    if config.data.max_eval_examples and len(val) > config.data.max_eval_examples:
        notes.append(
            f"evaluating on the first {config.data.max_eval_examples} of {len(val)} validation examples (max_eval_examples)"
        )
        val = val[: config.data.max_eval_examples]
    test: list[dict[str, Any]] = []
    if config.data.test:
        test, _, bad_test = _load(config, config.resolve(config.data.test), "test")
        bad += bad_test
    if bad:
        notes.append(f"skipped {len(bad)} bad rows (skip_bad_rows is on)")
    return PreparedData(train, val, test, shape, bad, notes)
