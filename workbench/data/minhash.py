"""MinHash and locality-sensitive hashing for near duplicates: shingles, signatures, bands, candidates.

The numerical half of :mod:`workbench.data.dedup`: word shingles hashed to
64-bit integers, MinHash signatures (datasketch's permutations), the choice of
bands and rows for a Jaccard threshold, and the candidate pairs that share a
band. Every candidate is re-checked with its exact Jaccard by the caller.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from workbench.errors import WorkbenchError

FALSE_POSITIVE_WEIGHT = 0.02
FALSE_NEGATIVE_WEIGHT = 0.98
"""Default weights of :func:`optimal_bands`. Every LSH candidate is re-checked with its
exact Jaccard, so a false positive costs one set intersection while a false negative
is a duplicate never seen: missing pairs is weighted far higher than the literature's 0.5/0.5.
With 128 permutations this puts the chance that a pair at the threshold becomes a candidate
at 0.96-0.99 for thresholds 0.5-0.9 (0.8: 17 bands x 7 rows; recall 0.99 in bench/dedup_speed.py)."""

MAX_BUCKET = 1000
"""An LSH bucket with more members than this is checked as a star and a chain (each member
against the bucket's first and its neighbour) instead of all of its pairs."""

_FOLD = re.compile(r"[^\w\s]|_")


def fold_words(text: str) -> list[str]:
    """The words of ``text`` with case, whitespace and punctuation folded (``"Hi, Bob!"`` -> ``hi bob``)."""
    return _FOLD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split()


def shingle_sets(texts: Iterable[str], shingle_size: int = 3) -> list[frozenset[int]]:
    """Each text's set of hashed word shingles: what near-duplicate Jaccard is measured on.

    A text with fewer words than ``shingle_size`` is one shingle of all its words.
    """
    return [frozenset(s.tolist()) for s in shingle_arrays([fold_words(t) for t in texts], shingle_size, {})]


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """|a & b| / |a | b| (0.0 for two empty sets)."""
    inter, union = overlap(a, b)
    return inter / union if union else 0.0


def overlap(a: frozenset[int], b: frozenset[int]) -> tuple[int, int]:
    """The sizes of ``a & b`` and ``a | b``."""
    inter = len(a & b)
    return inter, len(a) + len(b) - inter


_MIX = np.uint64(0x100000001B3)
_FMIX1, _FMIX2, _SHIFT = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: spreads structured values over all bits."""
    h = h ^ (h >> _SHIFT)
    h = h * _FMIX1
    h = h ^ (h >> _SHIFT)
    h = h * _FMIX2
    return h ^ (h >> _SHIFT)


def _roll(h: np.ndarray, k: int) -> np.ndarray:
    """A hash of every run of ``k`` consecutive values of ``h`` (order matters)."""
    n = len(h) - k + 1
    out = h[:n].copy()
    for j in range(1, k):
        out = out * _MIX + h[j : j + n]  # wraps modulo 2**64
    return _fmix64(out)


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def shingle_arrays(words: Sequence[list[str]], k: int, cache: dict[str, int]) -> list[np.ndarray]:
    """Each word list's shingle hashes (uint64, repeats kept), computed for all lists at once.

    ``cache`` maps words to their hash across calls; the hashes are stable across runs.
    """
    if k < 1:
        raise WorkbenchError(f"shingle size must be at least 1, not {k}")
    for ws in words:
        for w in ws:
            if w not in cache:
                cache[w] = _word_hash(w)
    lengths = [len(ws) for ws in words]
    flat = np.fromiter((cache[w] for ws in words for w in ws), dtype=np.uint64, count=sum(lengths))
    rolled = _roll(flat, k) if len(flat) >= k else flat[:0]
    out, start = [], 0
    for n in lengths:
        if n >= k:
            out.append(rolled[start : start + n - k + 1])
        else:  # shorter than a shingle: the whole text is its one shingle
            out.append(_roll(flat[start : start + n], n) if n else flat[:0])
        start += n
    return out


# -- LSH parameters ------------------------------------------------------------------


def detection_probability(similarity: Any, bands: Any, rows: Any) -> Any:
    """The chance that two sets of this Jaccard share at least one LSH bucket: ``1 - (1 - s^r)^b``.

    Scalars or numpy arrays (broadcast), for one (b, r) or a grid of them.
    """
    return 1.0 - (1.0 - np.power(similarity, rows)) ** bands


def s_curve_midpoint(bands: int, rows: int) -> float:
    """Where the S-curve is steepest, about where detection is 50/50: ``(1/b)^(1/r)``."""
    return float((1.0 / bands) ** (1.0 / rows))


@lru_cache(maxsize=64)
def optimal_bands(
    threshold: float,
    num_perm: int = 128,
    false_positive_weight: float = FALSE_POSITIVE_WEIGHT,
    false_negative_weight: float = FALSE_NEGATIVE_WEIGHT,
) -> tuple[int, int]:
    """The bands ``b`` and rows ``r`` (``b * r <= num_perm``) that minimise the weighted error.

    As in the MinHash LSH literature (Leskovec et al., *Mining of Massive
    Datasets* ch. 3; datasketch's ``MinHashLSH``): the false-positive area is
    the detection probability integrated over similarities below the threshold,
    the false-negative area is the miss probability integrated above it, and
    ``b, r`` minimise ``fp_weight * fp + fn_weight * fn``. With weights 0.5/0.5
    this gives datasketch's choice; the defaults weigh misses higher (see
    :data:`FALSE_NEGATIVE_WEIGHT`).
    """
    check_threshold(threshold)
    if num_perm < 1:
        raise WorkbenchError(f"num_perm must be at least 1, not {num_perm}")
    combos = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=float)
    b, r = combos[:, :1], combos[:, 1:]
    below = np.linspace(0.0, threshold, 1025)
    above = np.linspace(threshold, 1.0, 1025)
    fp = _trapezoid(detection_probability(below, b, r), below)
    fn = _trapezoid(1.0 - detection_probability(above, b, r), above)
    best = int(np.argmin(false_positive_weight * fp + false_negative_weight * fn))
    return int(combos[best, 0]), int(combos[best, 1])


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The integral of each row of ``y`` over ``x`` (an evenly spaced grid)."""
    if len(x) < 2:
        return np.zeros(len(y))
    return (y[:, 1:] + y[:, :-1]).sum(axis=1) * (x[1] - x[0]) / 2


def check_threshold(threshold: float) -> None:
    """Refuse a similarity threshold outside (0, 1], in words the user can act on."""
    if not 0.0 < threshold <= 1.0:
        raise WorkbenchError(f"a similarity threshold is a number above 0 and at most 1, not {threshold}")


# -- MinHash and LSH -----------------------------------------------------------------


def _low32(value: int) -> int:
    return value & 0xFFFFFFFF


def minhash_signatures(shingles: Sequence[np.ndarray], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """datasketch MinHash signatures of hashed shingles, one row each: ``uint32 [n, num_perm]``."""
    from datasketch import MinHash

    out = np.empty((len(shingles), num_perm), dtype=np.uint32)
    sketches = MinHash.generator((s.tolist() for s in shingles), num_perm=num_perm, seed=seed, hashfunc=_low32)
    for i, sketch in enumerate(sketches):
        out[i] = sketch.hashvalues
    return out


def lsh_candidates(signatures: np.ndarray, bands: int, rows: int, max_bucket: int = MAX_BUCKET) -> np.ndarray:
    """Pairs of rows that share a bucket in at least one band: ``int64 [m, 2]``, ``a < b``, sorted, unique.

    Banding is done here with numpy (each band's ``rows`` values hashed to one
    key, rows sorted by key) rather than with datasketch's ``MinHashLSH``: the
    same buckets, without a Python call per row and band.
    """
    n = len(signatures)
    if bands * rows > signatures.shape[1]:
        raise WorkbenchError(
            f"{bands} bands of {rows} rows need {bands * rows} permutations, not {signatures.shape[1]}"
        )
    codes: list[np.ndarray] = []
    for band in range(bands):
        key = signatures[:, band * rows].astype(np.uint64)
        for col in range(band * rows + 1, (band + 1) * rows):
            key = key * _MIX + signatures[:, col]
        codes.extend(_bucket_pairs(_fmix64(key), n, max_bucket))
    if not codes:
        return np.empty((0, 2), dtype=np.int64)
    unique = np.unique(np.concatenate(codes))
    return np.stack([unique // n, unique % n], axis=1)


def _bucket_pairs(keys: np.ndarray, n: int, max_bucket: int) -> Iterator[np.ndarray]:
    """For each run of equal keys, its pairs coded as ``a * n + b`` (all pairs, or star and chain when big)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    edges = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(keys)]))
    for s, e in zip(starts[ends - starts > 1].tolist(), ends[ends - starts > 1].tolist()):
        members = np.sort(order[s:e])
        if e - s <= max_bucket:
            a, b = np.triu_indices(e - s, 1)
        else:
            a = np.concatenate((np.zeros(e - s - 1, dtype=np.int64), np.arange(1, e - s - 1)))
            b = np.concatenate((np.arange(1, e - s), np.arange(2, e - s)))
        yield members[a] * n + members[b]
