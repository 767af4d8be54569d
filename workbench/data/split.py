"""Reproducible train/val/test splits.

The same rows and seed always give the same split, so an eval set stays
held out across runs, and each split lists the source indices it took.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from workbench.errors import DataError

T = TypeVar("T")
NAMES = ("train", "val", "test")


@dataclass
class SplitResult(Generic[T]):
    """The rows of each split and their indices in the input (ascending)."""

    train: list[T]
    val: list[T]
    test: list[T]
    train_indices: list[int]
    val_indices: list[int]
    test_indices: list[int]

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def split_rows(rows: Sequence[T], ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> SplitResult[T]:
    """Shuffle with ``seed`` and cut by ``ratios`` (train, val[, test]); they must add up to 1.

    Counts are rounded so they add up to the row count, then every split with
    a non-zero ratio gets at least one row while the rows last, taken from
    the largest split: a 10-row file with 0.9/0.05/0.05 still gets a val row.
    Each split keeps source order, so a reviewer reads rows as in the file.
    """
    ratios = check_ratios(ratios)
    counts = _counts(len(rows), ratios)
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    parts: list[list[int]] = []
    start = 0
    for count in counts:
        parts.append(sorted(order[start : start + count]))
        start += count
    train, val, test = parts
    return SplitResult([rows[i] for i in train], [rows[i] for i in val], [rows[i] for i in test], train, val, test)


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Ratios as (train, val, test), or a DataError saying what is wrong with them."""
    values = tuple(float(r) for r in ratios)
    if len(values) == 2:
        values += (0.0,)
    if len(values) != 3:
        raise DataError(f"split ratios are train, val and test (2 or 3 numbers), got {len(values)}")
    if any(not math.isfinite(r) or r < 0 for r in values):
        raise DataError(f"split ratios must be numbers from 0 to 1, got {', '.join(map(str, values))}")
    if values[0] <= 0:
        raise DataError("the train ratio must be above 0")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise DataError(f"split ratios must add up to 1, got {' + '.join(map(str, values))} = {sum(values):g}")
    return values  # type: ignore[return-value]


def _counts(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """Largest-remainder rounding, then at least one row for each non-zero ratio."""
    exact = [r * n for r in ratios]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):
        if ratios[i] > 0 and counts[i] == 0:
            donor = max(range(3), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return counts
