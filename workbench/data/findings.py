"""What a check says about one example: the currency of critique, dedup and the LLM critic."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SEVERITIES = ("error", "warning", "info")
"""error: the example would teach something wrong or break training; warning: probably a problem;
info: worth a look (a style outlier, a near-duplicate kept on purpose)."""


@dataclass(frozen=True)
class DataFinding:
    """One problem with one example."""

    index: int
    """The example's 0-based position in the dataset's rows."""
    check: str
    """The check's id: ``empty_output``, ``placeholder_output``, ``near_duplicate``, ``llm_critic``..."""
    severity: str
    """``error``, ``warning`` or ``info``."""
    message: str
    """What is wrong, with the evidence (the offending text, the majority convention)."""
    suggestion: str = ""
    """How to fix it, in words."""
    field: str | None = None
    """Which part: ``prompt``, ``response``, ``rejected``, ``system``, or a raw field name."""
    group: int | None = None
    """For duplicates, the cluster id shared by every member."""
    score: float | None = None
    """A number behind the finding (similarity, LLM critic score), when there is one."""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataFinding:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def severity_rank(severity: str) -> int:
    """0 for error, 1 for warning, 2 for info: sort by it to see the worst first."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
