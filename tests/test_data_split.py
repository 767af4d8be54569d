"""Reproducible train/val/test splits."""

from __future__ import annotations

import pytest

from workbench.data import DataError, split_rows

ROWS = [{"id": i} for i in range(100)]


def test_same_seed_same_split_other_seed_other_split() -> None:
    first, again = split_rows(ROWS, seed=7), split_rows(ROWS, seed=7)
    assert first == again
    assert split_rows(ROWS, seed=8).val_indices != first.val_indices


def test_ratios_give_sizes_and_a_partition() -> None:
    result = split_rows(ROWS, ratios=(0.7, 0.2, 0.1))
    assert result.sizes == (70, 20, 10)
    indices = result.train_indices + result.val_indices + result.test_indices
    assert sorted(indices) == list(range(100))
    assert result.val == [ROWS[i] for i in result.val_indices]
    assert result.train_indices == sorted(result.train_indices)


def test_rounding_keeps_every_row() -> None:
    assert sum(split_rows(ROWS[:7], ratios=(0.5, 0.25, 0.25)).sizes) == 7


def test_tiny_datasets_still_fill_each_non_empty_split() -> None:
    assert split_rows(ROWS[:3]).sizes == (1, 1, 1)
    assert split_rows(ROWS[:10], ratios=(0.9, 0.05, 0.05)).sizes == (8, 1, 1)
    assert split_rows(ROWS[:1]).sizes == (1, 0, 0)
    assert split_rows([]).sizes == (0, 0, 0)


def test_two_ratios_mean_no_test_split() -> None:
    assert split_rows(ROWS, ratios=(0.9, 0.1)).sizes == (90, 10, 0)
    assert split_rows(ROWS[:5], ratios=(0.9, 0.1, 0.0)).sizes == (4, 1, 0)


@pytest.mark.parametrize(
    ("ratios", "fragment"),
    [
        ((0.8, 0.1, 0.2), "add up to 1"),
        ((0.0, 0.5, 0.5), "train ratio"),
        ((1.1, -0.1, 0.0), "from 0 to 1"),
        ((1.0,), "2 or 3 numbers"),
    ],
)
def test_bad_ratios_are_refused(ratios: tuple[float, ...], fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        split_rows(ROWS, ratios=ratios)
