"""`workbench check`: a config's findings with the facts gathered from disk.

The trainer calls the same function before it starts, so a config that
`check` passes is a config the trainer accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config.schema import RunConfig
from workbench.config.validate import Context, Finding, Hardware, validate
from workbench.errors import WorkbenchError


@dataclass
class CheckReport:
    """The findings of a config, and the context they were judged in."""

    findings: list[Finding]
    context: Context

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def gather_context(config: RunConfig, hardware: Hardware | None = None) -> Context:
    """What rules need to know beyond the config: files, dataset size and shape, hardware."""
    from workbench.data import load_rows

    ctx = Context(hardware=hardware or Hardware.detect())
    for name in ("train", "val", "test"):
        value = getattr(config.data, name)
        path = config.resolve(value)
        if value and path is not None and not path.exists():
            ctx.missing_files.append(name)
    if "train" not in ctx.missing_files:
        try:
            result = load_rows(config.resolve(config.data.train), shape=config.data.shape, skip_bad=True)
        except WorkbenchError:
            return ctx  # the trainer reports the data error itself, with lines
        ctx.data_shape = getattr(result.shape, "value", str(result.shape))
        n = len(result.rows)
        if config.data.val is None and config.data.val_ratio > 0:
            n -= max(1, round(n * config.data.val_ratio))
        if config.data.max_train_examples:
            n = min(n, config.data.max_train_examples)
        ctx.n_train = n
    return ctx


def check_config(config: RunConfig, hardware: Hardware | None = None) -> CheckReport:
    ctx = gather_context(config, hardware)
    return CheckReport(validate(config, ctx), ctx)
