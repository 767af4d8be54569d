"""`workbench check`: a config's findings with the facts gathered from disk.

The trainer calls the same function before it starts, so a config that
`check` passes is a config the trainer accepts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.config.schema import RunConfig
from workbench.config.validate import ConfigFinding, Context, Hardware, validate
from workbench.errors import WorkbenchError


@dataclass
class CheckReport:
    """The findings of a config, and the context they were judged in."""

    findings: list[ConfigFinding]
    context: Context

    @property
    def errors(self) -> list[ConfigFinding]:
        return [f for f in self.findings if f.severity == "error"]


LENGTH_SAMPLE = 2000
"""Training rows measured in tokens for the max_length rule (a seeded random sample beyond this)."""


def gather_context(config: RunConfig, hardware: Hardware | None = None) -> Context:
    """What rules need to know beyond the config: files, dataset size and shape, hardware, model, token lengths."""
    from workbench.data import load_rows

    ctx = Context(hardware=hardware or Hardware.detect())
    for name in ("train", "val", "test"):
        value = getattr(config.data, name)
        path = config.resolve(value)
        if value and path is not None and not path.exists():
            ctx.missing_files.append(name)
    _model_facts(config, ctx)
    if config.train.packing or config.train.padding_free is True:
        ctx.packing_isolated = _packing_isolated()
    if "train" not in ctx.missing_files:
        try:
            result = load_rows(config.resolve(config.data.train), shape=config.data.shape, skip_bad=True)
        except WorkbenchError:
            return ctx  # the trainer reports the data error itself, with lines
        ctx.data_shape = getattr(result.shape, "value", str(result.shape))
        ctx.n_train = training_examples(config, len(result.rows))
        if ctx.model is not None:
            ctx.token_lengths = _token_lengths(ctx.model.path, result.rows, result.shape)
            ctx.lengths_from = len(result.rows) if ctx.token_lengths is not None else None
    return ctx


def training_examples(config: RunConfig, rows: int) -> int:
    """The training examples a run uses of ``rows`` good rows in data.train: less the held-out share, capped."""
    n = rows
    if config.data.val is None and config.data.val_ratio > 0:
        n -= max(1, round(n * config.data.val_ratio))
    if config.data.max_train_examples:
        n = min(n, config.data.max_train_examples)
    return n


def count_training_examples(config: RunConfig) -> int | None:
    """:func:`training_examples` of data.train read from disk (no model needed); None when it cannot be read."""
    from workbench.data import load_rows

    path = config.resolve(config.data.train)
    if path is None or not path.exists():
        return None
    try:
        result = load_rows(path, shape=config.data.shape, skip_bad=True)
    except WorkbenchError:
        return None
    return training_examples(config, len(result.rows))


def _model_facts(config: RunConfig, ctx: Context) -> None:
    from workbench.config.modelinfo import model_facts

    try:
        ctx.model = model_facts(config.resolved_model(), trust_remote_code=config.trust_remote_code)
    except WorkbenchError as exc:
        ctx.model_error = str(exc)


def _token_lengths(model_dir: str, rows: Sequence[Any], shape: Any) -> list[tuple[int, int]] | None:
    """(prompt, answer) token counts of up to LENGTH_SAMPLE training rows, through the model's chat template.

    Measured the way the dataset critic measures them (the same renderer and
    counter), so the Data pane's max_length findings and this rule agree. The
    tokenizer comes from the directory the model's config was read from, so
    nothing is downloaded. None when it cannot be loaded or the rows cannot
    be rendered.
    """
    from workbench.data.analyze import load_tokenizer
    from workbench.data.checks.example import Example
    from workbench.data.checks.lengths import TokenMeter

    sample = list(rows) if len(rows) <= LENGTH_SAMPLE else random.Random(0).sample(list(rows), LENGTH_SAMPLE)
    try:
        tokenizer = load_tokenizer(model_dir)
        meter = TokenMeter(tokenizer, render_check=False)
        meter.measure([Example(i, row, shape) for i, row in enumerate(sample)])
    except Exception:  # a tokenizer or template that fails here fails in the trainer too, with its own message
        return None
    lengths = meter.lengths
    return [(p or 0, max(a or 0, r or 0)) for p, a, r in zip(lengths.prompt, lengths.response, lengths.rejected)]


def _packing_isolated() -> bool:
    """Whether this transformers masks packed examples apart from their position ids (no flash-attention needed)."""
    try:
        from transformers import masking_utils
    except ImportError:
        return False
    return hasattr(masking_utils, "find_packed_sequence_indices")


def check_config(config: RunConfig, hardware: Hardware | None = None) -> CheckReport:
    ctx = gather_context(config, hardware)
    return CheckReport(validate(config, ctx), ctx)
