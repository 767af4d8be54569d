"""Reproducible train/val/test splits.

The same rows and seed always give the same split, so an eval set stays
held out across runs, and each split lists the source indices it took.

With ``groups`` (one id per row), rows sharing an id land in the same split:
pass :func:`groups_from_clusters` of a duplicate search so that no copy of a
test example is trained on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from workbench.errors import DataError

if TYPE_CHECKING:
    from workbench.data.dedup import Cluster

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


def split_rows(
    rows: Sequence[T],
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    groups: Sequence[Hashable | None] | None = None,
) -> SplitResult[T]:
    """Shuffle with ``seed`` and cut by ``ratios`` (train, val[, test]); they must add up to 1.

    Counts are rounded so they add up to the row count, then every split with
    a non-zero ratio gets at least one row while the rows last, taken from
    the largest split: a 10-row file with 0.9/0.05/0.05 still gets a val row.
    Each split keeps source order, so a reviewer reads rows as in the file.

    ``groups`` gives each row a group id (None: a group of its own); every
    group lands whole in one split, and the sizes come as close to the counts
    above as the groups allow (see :func:`_place_groups`).
    """
    ratios = check_ratios(ratios)
    counts = _counts(len(rows), ratios)
    if groups is None:
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        parts: list[list[int]] = []
        start = 0
        for count in counts:
            parts.append(sorted(order[start : start + count]))
            start += count
    else:
        parts = _place_groups(_group_rows(groups, len(rows)), counts, seed)
    train, val, test = parts
    return SplitResult([rows[i] for i in train], [rows[i] for i in val], [rows[i] for i in test], train, val, test)


def groups_from_clusters(n: int, clusters: Iterable[Cluster]) -> list[int | None]:
    """A group id per row for :func:`split_rows`: the rows of a cluster share one, other rows get None.

    Clusters that share a row (say from a near and a semantic search) become
    one group. Ids count from 0 in order of each group's first row.
    """
    from workbench.data.dedup import UnionFind  # imported here: it brings numpy, which splitting alone does not need

    joined = UnionFind(n)
    for cluster in clusters:
        bad = [m for m in cluster.members if not 0 <= m < n]
        if bad:
            raise DataError(f"duplicate cluster {cluster.id} names row {bad[0]}, but there are {n} rows")
        for member in cluster.members[1:]:
            joined.union(cluster.members[0], member)
    out: list[int | None] = [None] * n
    for gid, group in enumerate(joined.groups()):
        for row in group:
            out[row] = gid
    return out


def _group_rows(groups: Sequence[Hashable | None], n: int) -> list[list[int]]:
    """Row indices of each group, in order of first row; a None id is a group of its own."""
    if len(groups) != n:
        raise DataError(f"split groups: {len(groups)} group ids for {n} rows; give one per row (None for no group)")
    by_id: dict[Hashable, list[int]] = {}
    out: list[list[int]] = []
    for row, gid in enumerate(groups):
        if gid is None:
            out.append([row])
        elif gid in by_id:
            by_id[gid].append(row)
        else:
            by_id[gid] = [row]
            out.append(by_id[gid])
    return out


def _place_groups(groups: list[list[int]], counts: list[int], seed: int) -> list[list[int]]:
    """Put whole groups into splits so that each split's size comes close to its count.

    Groups are shuffled with ``seed``, then placed largest first (equal sizes
    in shuffled order). A group goes to the split, among those with room for
    all of it, whose count is least filled (as a share of the count), so
    groups spread over the splits in proportion; when none has room it goes
    where the most room is left. Single rows come last and fill the counts
    exactly when there are enough of them.
    """
    order = list(groups)
    random.Random(seed).shuffle(order)
    order.sort(key=len, reverse=True)
    open_splits = [i for i, count in enumerate(counts) if count > 0]
    filled = [0, 0, 0]
    parts: list[list[int]] = [[], [], []]
    for group in order:
        room = {i: counts[i] - filled[i] for i in open_splits}
        fits = [i for i in open_splits if room[i] >= len(group)]
        if fits:
            chosen = max(fits, key=lambda i: (room[i] / counts[i], -i))
        else:
            chosen = max(open_splits, key=lambda i: (room[i], -i))
        parts[chosen].extend(group)
        filled[chosen] += len(group)
    return [sorted(part) for part in parts]


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
    return values


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
