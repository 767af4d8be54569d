"""Drift figures against cases worked out by hand: PSI of binned shares, PSI over categories with a value the
baseline never had, the two-sample KS test against an exhaustive permutation count, Fisher's exact rise."""

from __future__ import annotations

import itertools
import math

import pytest

from workbench.monitor import drift


def test_psi_of_two_bins_matches_the_formula():
    # shares (0.5, 0.5) -> (0.25, 0.75): (0.25-0.5)*ln(0.25/0.5) + (0.75-0.5)*ln(0.75/0.5)
    by_hand = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert by_hand == pytest.approx(0.274653, abs=1e-6)
    assert drift.psi([50, 50], [25, 75]) == pytest.approx(by_hand, rel=1e-12)
    assert drift.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(by_hand, rel=1e-12)  # shares work as counts
    assert drift.psi([30, 70], [300, 700]) == pytest.approx(0.0, abs=1e-12)  # same shape, any size


def test_psi_readings_follow_the_usual_cut_points():
    assert drift.reading(0.05) == "stable"
    assert drift.reading(0.1) == "watch" and drift.reading(0.25) == "watch"
    assert drift.reading(0.2747) == "shifted"


def test_a_category_the_baseline_never_had_is_floored_not_infinite():
    # e = (1, 1e-4), a = (0.9, 0.1): (0.9-1)*ln(0.9) + (0.1-1e-4)*ln(0.1/1e-4)
    by_hand = -0.1 * math.log(0.9) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert by_hand == pytest.approx(0.70062, abs=1e-5)
    assert drift.categorical_psi({"low": 100}, {"low": 90, "urgent": 10}) == pytest.approx(by_hand, rel=1e-9)
    assert drift.reading(by_hand) == "shifted"
    with pytest.raises(ValueError, match="3 baseline bins against 2"):
        drift.psi([1, 2, 3], [1, 2])


def test_histogram_bins_are_closed_on_the_left_and_take_grouped_counts():
    assert drift.histogram([5, 10, 15, 20, 25], [10, 20]) == [1, 2, 2]
    assert drift.histogram([(5, 3), (25, 2)], [10, 20]) == [3, 0, 2]
    assert drift.quantile_edges(list(range(1, 11)), bins=2) == [5.5]
    assert drift.quantile_edges([7, 7, 7]) == []  # no spread: nothing to bin


def test_ks_matches_an_exhaustive_permutation_count():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.5, 3.5, 5.0, 6.0]
    # the ECDF gap after each pooled value 1a 2a 2.5b 3a 3.5b 4a 5b 6b: .25 .5 .25 .5 .25 .5 .25 0
    result = drift.ks_two_sample(a, b)
    assert result.statistic == pytest.approx(0.5)
    pooled = a + b

    def gap(x: list[float], y: list[float]) -> float:
        return max(abs(sum(v <= t for v in x) / len(x) - sum(v <= t for v in y) / len(y)) for t in pooled)

    splits = list(itertools.combinations(range(8), 4))
    extreme = sum(
        gap([pooled[i] for i in s], [pooled[i] for i in range(8) if i not in s]) >= 0.5 - 1e-12 for s in splits
    )
    assert result.pvalue == pytest.approx(extreme / len(splits), rel=1e-9)  # 70 splits, exact under the null


def test_weighted_ks_is_the_test_on_the_expanded_values():
    counts_a, counts_b = {10: 3, 20: 1}, {20: 2, 30: 2}
    plain = drift.ks_two_sample([10, 10, 10, 20], [20, 20, 30, 30])
    weighted = drift.weighted_ks(counts_a, counts_b)
    assert (weighted.statistic, weighted.pvalue) == (plain.statistic, plain.pvalue)
    assert weighted.statistic == pytest.approx(0.75)  # at 10: 3/4 against 0


def _fisher_greater(now_k: int, now_n: int, base_k: int, base_n: int) -> float:
    """P(X >= now_k), X hypergeometric: now_n draws from now_n + base_n with now_k + base_k failures."""
    total, failures = now_n + base_n, now_k + base_k
    hi = min(failures, now_n)
    return sum(
        math.comb(failures, x) * math.comb(total - failures, now_n - x) for x in range(now_k, hi + 1)
    ) / math.comb(total, now_n)


def test_a_failure_rise_needs_both_the_margin_and_significance():
    big = drift.proportion_rise(2, 40, 30, 100, margin=0.1)
    assert big.alert and big.pvalue == pytest.approx(_fisher_greater(30, 100, 2, 40), rel=1e-9)
    assert big.base_rate == 0.05 and big.now_rate == 0.3
    noise = drift.proportion_rise(2, 40, 3, 50, margin=0.1)  # 5% -> 6%: within the margin
    assert not noise.alert
    few = drift.proportion_rise(0, 40, 1, 3, margin=0.1)  # 0% -> 33% on three requests: not significant
    assert few.now_rate == pytest.approx(1 / 3) and few.pvalue == pytest.approx(_fisher_greater(1, 3, 0, 40))
    assert not few.alert
    tiny = drift.proportion_rise(5_000, 100_000, 6_000, 100_000, margin=0.1)  # 5% -> 6%: significant, too small
    assert tiny.pvalue is not None and tiny.pvalue < 0.01 and not tiny.alert
    assert drift.proportion_rise(0, 0, 5, 10, margin=0.1).alert is False


def test_chi_square_of_three_categories_matches_the_formula():
    # rows 40 and 40, columns 30 20 30 of 80: every expected cell 15, 10, 15; four cells off by 5
    by_hand = 4 * 25 / 15
    result = drift.chi_square({"low": 20, "medium": 10, "high": 10}, {"low": 10, "medium": 10, "high": 20})
    assert result.statistic == pytest.approx(by_hand) and result.dof == 2
    assert result.pvalue == pytest.approx(math.exp(-by_hand / 2))  # chi-square with 2 degrees of freedom
    assert drift.chi_square({"low": 5}, {"low": 9}).pvalue == 1.0  # one category: nothing to test


def test_bins_follow_the_baseline_size():
    assert drift.bins_for(40) == 4 and drift.bins_for(1000) == 10 and drift.bins_for(5) == 3
