"""Drift statistics: population stability index, the two-sample Kolmogorov-Smirnov test, failure-rate rises.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the baseline's and the window's shares of each
bin. Read as usual: below 0.1 stable, 0.1 to 0.25 watch, above 0.25 shifted. A bin empty on one side
would make it infinite; shares are floored at ``eps`` (1e-4) first, so an empty bin adds a large but
finite term (a value the baseline never had, now in 10% of answers, adds about 0.1 * ln(0.1/1e-4) =
0.69: shifted on its own, as it should be).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

EPS = 1e-4


def reading(psi: float, watch: float = 0.1, alert: float = 0.25) -> str:
    if psi > alert:
        return "shifted"
    if psi >= watch:
        return "watch"
    return "stable"


def bins_for(n: int, per_bin: int = 10, most: int = 10) -> int:
    """How many quantile bins ``n`` baseline values support: about ``per_bin`` in each, 3 to ``most``."""
    return max(3, min(most, n // per_bin))


def quantile_edges(values: Sequence[float], bins: int = 10) -> list[float]:
    """Inner bin edges at the baseline's quantiles, ties collapsed: [] when there are fewer than 2 distinct values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0 or len(np.unique(data)) < 2:
        return []
    qs = np.quantile(data, [i / bins for i in range(1, bins)])
    edges = sorted(set(float(q) for q in qs))
    lo = float(data.min())
    return [e for e in edges if e > lo]  # an edge at the minimum would leave the first bin empty by construction


def histogram(values: Iterable[float] | Iterable[tuple[float, int]], edges: Sequence[float]) -> list[int]:
    """Counts in ``len(edges) + 1`` bins: bin i holds edges[i-1] <= v < edges[i]. ``values`` may be
    plain values or (value, count) pairs (lengths grouped by SQL)."""
    counts = [0] * (len(edges) + 1)
    cuts = np.asarray(edges, dtype=float)
    for item in values:
        value, n = (item[0], item[1]) if isinstance(item, tuple) else (item, 1)
        counts[int(np.searchsorted(cuts, float(value), side="right"))] += int(n)
    return counts


def _shares(counts: Sequence[float], eps: float) -> list[float]:
    total = float(sum(counts))
    if total <= 0:
        return [eps] * len(counts)
    return [max(c / total, eps) for c in counts]


def psi(expected: Sequence[float], actual: Sequence[float], eps: float = EPS) -> float:
    """PSI of two binnings (counts or shares, each normalized)."""
    if len(expected) != len(actual):
        raise ValueError(f"psi: {len(expected)} baseline bins against {len(actual)}")
    e, a = _shares(expected, eps), _shares(actual, eps)
    return float(sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a)))


def categorical_psi(expected: Mapping[str, int], actual: Mapping[str, int], eps: float = EPS) -> float:
    """PSI over the union of categories (one never seen in the baseline counts, floored at eps there)."""
    keys = sorted(set(expected) | set(actual))
    return psi([expected.get(k, 0) for k in keys], [actual.get(k, 0) for k in keys], eps)


@dataclass(frozen=True)
class KS:
    statistic: float
    pvalue: float
    n_a: int
    n_b: int


def ks_two_sample(a: Sequence[float], b: Sequence[float]) -> KS:
    """scipy.stats.ks_2samp: the largest gap between the two empirical CDFs and its p-value."""
    from scipy.stats import ks_2samp

    result = ks_2samp(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    return KS(float(result.statistic), float(result.pvalue), len(a), len(b))


def _expand(counts: Mapping[float, int] | Mapping[int, int]) -> list[float]:
    """Each value repeated its count's times."""
    return [float(value) for value, count in counts.items() for _ in range(int(count))]


def weighted_ks(
    a_counts: Mapping[float, int] | Mapping[int, int], b_counts: Mapping[float, int] | Mapping[int, int]
) -> KS:
    """The same test from value counts (the monitor's lengths come as GROUP BY counts)."""
    return ks_two_sample(_expand(a_counts), _expand(b_counts))


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    pvalue: float
    dof: int


def chi_square(expected: Mapping[str, int], actual: Mapping[str, int]) -> ChiSquare:
    """Pearson's chi-square test of homogeneity on the 2 x k table of category counts (scipy's
    chi2_contingency, no continuity correction past 2 x 2); categories absent from both are dropped."""
    keys = [k for k in sorted(set(expected) | set(actual)) if expected.get(k, 0) + actual.get(k, 0) > 0]
    if len(keys) < 2 or not sum(expected.values()) or not sum(actual.values()):
        return ChiSquare(0.0, 1.0, 0)
    from scipy.stats import chi2_contingency

    table = np.asarray([[expected.get(k, 0) for k in keys], [actual.get(k, 0) for k in keys]], dtype=float)
    result = chi2_contingency(table)
    return ChiSquare(float(result.statistic), float(result.pvalue), int(result.dof))


@dataclass(frozen=True)
class Rise:
    base_rate: float | None
    now_rate: float | None
    pvalue: float | None
    alert: bool


def proportion_rise(base_k: int, base_n: int, now_k: int, now_n: int, *, margin: float, alpha: float = 0.01) -> Rise:
    """Whether a failure rate rose above its baseline by at least ``margin`` (absolute) AND significantly.

    Significance is Fisher's exact test, one-sided (the window's rate greater): exact at the small
    counts a release eval has (40 test examples), where a normal approximation is poor. The margin
    keeps a significant but tiny rise on a huge window from alerting; the test keeps a large-looking
    rise on a handful of requests from alerting.
    """
    if base_n <= 0 or now_n <= 0:
        return Rise(None if base_n <= 0 else base_k / base_n, None if now_n <= 0 else now_k / now_n, None, False)
    from scipy.stats import fisher_exact

    base_rate, now_rate = base_k / base_n, now_k / now_n
    _, p = fisher_exact([[now_k, now_n - now_k], [base_k, base_n - base_k]], alternative="greater")
    p = float(p)
    return Rise(base_rate, now_rate, p, now_rate - base_rate >= margin and p < alpha)


__all__ = [
    "EPS",
    "KS",
    "ChiSquare",
    "Rise",
    "bins_for",
    "categorical_psi",
    "chi_square",
    "histogram",
    "ks_two_sample",
    "proportion_rise",
    "psi",
    "quantile_edges",
    "reading",
    "weighted_ks",
]
