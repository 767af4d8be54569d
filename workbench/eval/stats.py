"""Means with bootstrap confidence intervals, so that a small difference on 40 examples is not over-read.

Percentile bootstrap: resample the examples with replacement, take the mean
of each resample, and report the middle ``confidence`` share of those means.
Resampling is vectorized with numpy and seeded, so the same scores always
give the same interval. A comparison of two models resamples the same
examples for both (:func:`paired_difference`): the examples' difficulty
cancels, which makes the interval far narrower than two separate ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MIN_SIGNIFICANT_N = 6
"""Fewer paired examples than this are never called significant: a percentile bootstrap is too narrow
on tiny samples, and even 5 wins out of 5 is p = 0.06 by a two-sided sign test (6 of 6: p = 0.03)."""

_CHUNK = 1 << 21
"""Resampled values drawn at once (16 MiB of int64 indices), so 10,000 examples x 2,000 resamples stay small."""


@dataclass(frozen=True)
class Summary:
    """One metric over a set of examples: its mean and a confidence interval around it."""

    metric: str
    mean: float | None
    """None when no example has a value."""
    lo: float | None
    hi: float | None
    n: int
    """Examples with a value."""
    missing: int = 0
    """Examples without one (no reference, no schema): left out, not counted as 0."""

    def describe(self, digits: int = 2) -> str:
        """``0.62 [0.55, 0.69] n=40``, with ``(3 missing)`` when some examples have no value."""
        tail = f" ({self.missing} missing)" if self.missing else ""
        if self.mean is None or self.lo is None or self.hi is None:
            return f"- n=0{tail}"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}] n={self.n}{tail}"


@dataclass(frozen=True)
class Difference:
    """Mean of ``a - b`` over the examples both have, with its paired bootstrap interval."""

    mean: float | None
    lo: float | None
    hi: float | None
    n: int
    significant: bool
    """The interval excludes 0 and there are at least :data:`MIN_SIGNIFICANT_N` pairs."""

    def describe(self, digits: int = 2) -> str:
        """``+0.12 [0.05, 0.19] n=40`` or ``+0.02 [-0.04, 0.08] n=40, not significant``."""
        if self.mean is None or self.lo is None or self.hi is None:
            return "no examples in common"
        text = f"{self.mean:+.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}] n={self.n}"
        return text if self.significant else text + ", not significant"


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The mean of each of ``resamples`` resamples (with replacement) of ``values``."""
    rng = np.random.default_rng(seed)
    n = len(values)
    per_chunk = max(1, _CHUNK // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        index = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[index].mean(axis=1)
    return means


def _interval(
    values: np.ndarray, confidence: float, resamples: int, seed: int
) -> tuple[float | None, float | None, float | None]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if len(values) == 0:
        return None, None, None
    mean = float(values.mean())
    if len(values) == 1 or resamples < 1:
        return mean, mean, mean
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(_resampled_means(values, resamples, seed), [tail, 100 - tail])
    return mean, float(min(lo, mean)), float(max(hi, mean))  # rounding can put equal means a hair outside


def _present(values: Sequence[float | None]) -> np.ndarray:
    return np.array([float(v) for v in values if v is not None], dtype=np.float64)


def bootstrap_ci(
    values: Sequence[float | None], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0, metric: str = ""
) -> Summary:
    """The mean of the values (None skipped and counted as missing) and its percentile bootstrap interval.

    No value: mean None. One value: an interval of zero width at it (there is no spread to resample).
    """
    present = _present(values)
    mean, lo, hi = _interval(present, confidence, resamples, seed)
    return Summary(metric, mean, lo, hi, len(present), len(values) - len(present))


def paired_difference(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Difference:
    """How much ``a`` beats ``b`` on the same examples (aligned by position), with a paired bootstrap interval.

    Only examples where both have a value count; each resample draws the same examples for both.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores must be aligned: {len(a)} against {len(b)}")
    diffs = np.array([float(x) - float(y) for x, y in zip(a, b) if x is not None and y is not None], dtype=np.float64)
    mean, lo, hi = _interval(diffs, confidence, resamples, seed)
    significant = lo is not None and hi is not None and len(diffs) >= MIN_SIGNIFICANT_N and (lo > 0 or hi < 0)
    return Difference(mean, lo, hi, len(diffs), significant)


def aggregate(
    per_example: Sequence[Mapping[str, float | None]], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict[str, Summary]:
    """A :class:`Summary` per metric key found in any example (in first-seen order), skipping None.

    An example without the key, or with None, counts as missing for that metric.
    """
    keys = list(dict.fromkeys(k for scores in per_example for k in scores))
    return {
        k: bootstrap_ci(
            [scores.get(k) for scores in per_example], confidence=confidence, resamples=resamples, seed=seed, metric=k
        )
        for k in keys
    }
