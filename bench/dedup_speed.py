"""Near-duplicate search: MinHash LSH against exact all-pairs Jaccard, in one process.

The data: N texts (default 4000) made from the sample train set (prompt and
answer, as ``find_duplicates`` compares them): each a copy of a train example
with a third of its words replaced at random, so copies of one example are
not duplicates of each other; then a tenth of them get a planted near copy
with 1 to 6 words changed (Jaccard about 0.6 to 0.95, so pairs fall on both
sides of the threshold).

Both sides use the same 3-word shingle sets. The baseline computes the exact
Jaccard of every pair, twice: with Python sets (the plain way) and with a
sparse matrix product (scipy: intersections of all pairs at once). LSH is
``find_duplicates`` end to end (folding, shingling, MinHash, banding, exact
check of candidates). Printed: the time of each, the speed ratio, and LSH's
recall and precision against the baseline's pairs; then a breakdown of the LSH
stages, with datasketch's MinHashLSH doing the banding for comparison.
``--big`` then times LSH alone on 100,000 texts.

    python bench/dedup_speed.py [--n 4000] [--threshold 0.8] [--big] [--big-n 100000] [--no-python]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from workbench.data.dedup import (  # noqa: E402
    DedupResult,
    find_duplicates,
)
from workbench.data.load import load_rows  # noqa: E402
from workbench.data.minhash import (  # noqa: E402
    detection_probability,
    fold_words,
    jaccard,
    lsh_candidates,
    minhash_signatures,
    optimal_bands,
    shingle_sets,
)

TRAIN = ROOT / "sample_data" / "support" / "train.jsonl"
T = TypeVar("T")


def make_texts(n: int, seed: int, replace: float = 1 / 3, planted: float = 0.1) -> list[str]:
    """``n`` distinct texts: perturbed copies of the train set, a share of them followed by a near copy."""
    from workbench.data.dedup import texts_for

    rng = random.Random(seed)
    base = [t.split() for t in texts_for(load_rows(TRAIN).rows)]
    vocab = sorted({w for words in base for w in words})
    out: list[str] = []
    seen: set[str] = set()

    def add(words: list[str]) -> None:
        text = " ".join(words)
        key = " ".join(fold_words(text))
        if key not in seen and len(out) < n:
            seen.add(key)
            out.append(text)

    while len(out) < n:
        words = [rng.choice(vocab) if rng.random() < replace else w for w in rng.choice(base)]
        add(words)
        if rng.random() < planted:
            copy = list(words)
            for j in rng.sample(range(len(copy)), min(len(copy), rng.randint(1, 6))):
                copy[j] = rng.choice(vocab)
            add(copy)
    return out


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def python_all_pairs(sets: list[frozenset[int]], threshold: float) -> set[tuple[int, int]]:
    """Exact Jaccard of every pair, with Python sets."""
    out = set()
    sizes = [len(s) for s in sets]
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            inter = len(a & sets[j])
            if inter and inter >= threshold * (sizes[i] + sizes[j] - inter) - 1e-9:
                out.add((i, j))
    return out


def sparse_all_pairs(sets: list[frozenset[int]], threshold: float) -> set[tuple[int, int]]:
    """Exact Jaccard of every pair at once: intersections from a sparse matrix product (scipy)."""
    from scipy import sparse

    ids: dict[int, int] = {}
    cols = [ids.setdefault(h, len(ids)) for s in sets for h in s]
    indptr = np.cumsum([0] + [len(s) for s in sets])
    x = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, indptr), shape=(len(sets), len(ids)))
    inter = sparse.triu(x @ x.T, k=1).tocoo()
    sizes = np.diff(indptr)
    union = sizes[inter.row] + sizes[inter.col] - inter.data
    keep = inter.data >= threshold * union - 1e-9
    return set(zip(inter.row[keep].tolist(), inter.col[keep].tolist()))


def datasketch_candidates(signatures: np.ndarray, bands: int, rows: int, seed: int) -> set[tuple[int, int]]:
    """The same banding with datasketch's MinHashLSH (insert every sketch, query every sketch)."""
    from datasketch import LeanMinHash, MinHashLSH

    lsh = MinHashLSH(num_perm=signatures.shape[1], params=(bands, rows))
    sketches = [LeanMinHash(seed=seed, hashvalues=s, scheme="affine32") for s in signatures]
    with lsh.insertion_session() as session:
        for i, sketch in enumerate(sketches):
            session.insert(i, sketch, check_duplication=False)
    return {(min(i, j), max(i, j)) for i, sketch in enumerate(sketches) for j in lsh.query(sketch) if i != j}


def row(name: str, seconds: float | None, note: str = "") -> None:
    print(f"  {name:<44} {'' if seconds is None else f'{seconds:8.2f} s':>10}  {note}")


def warm_up(threshold: float) -> None:
    """Imports (datasketch ~0.4 s, scipy) and the cached b/r choice, so neither side is timed with them."""
    import scipy.sparse  # noqa: F401

    find_duplicates(["warm up the imports", "warm up the imports too"], threshold=threshold)


def compare(n: int, threshold: float, seed: int, python: bool) -> None:
    texts = make_texts(n, seed)
    bands, rows = optimal_bands(threshold)
    warm_up(threshold)
    print(f"{n:,} texts, threshold {threshold}, 3-word shingles, 128 permutations -> {bands} bands x {rows} rows")
    result, lsh_s = timed(lambda: find_duplicates(texts, threshold=threshold))
    assert result.stats["unique"] == n, "bench texts must be distinct once folded"
    sets, shingle_s = timed(lambda: shingle_sets(texts))
    truth, sparse_s = timed(lambda: sparse_all_pairs(sets, threshold))
    py_s = None
    if python:
        py_truth, py_s = timed(lambda: python_all_pairs(sets, threshold))
        assert py_truth == truth, "the two exact baselines disagree"
    found = {(p.a, p.b) for p in result.pairs}
    hit = len(found & truth)
    recall = hit / len(truth) if truth else 1.0
    precision = hit / len(found) if found else 1.0
    cluster_of = {m: c.id for c in result.clusters for m in c.members}
    joined = sum(cluster_of.get(a, -1) == cluster_of.get(b, -2) for a, b in truth) / len(truth) if truth else 1.0
    print()
    print(f"  {'method':<44} {'time':>10}  notes")
    row(
        "MinHash LSH (find_duplicates, end to end)",
        lsh_s,
        f"{len(found)} pairs from {result.stats['candidates']} candidates",
    )
    if py_s is not None:
        row(
            "exact all-pairs, Python sets", shingle_s + py_s, f"{n * (n - 1) // 2:,} pairs; shingling {shingle_s:.2f} s"
        )
    row("exact all-pairs, sparse matrix product", shingle_s + sparse_s, f"{len(truth)} pairs >= {threshold}")
    print()
    if py_s is not None:
        row("speed-up vs Python all-pairs", None, f"{(shingle_s + py_s) / lsh_s:.1f}x")
    row("speed-up vs sparse all-pairs", None, f"{(shingle_s + sparse_s) / lsh_s:.1f}x")
    missed = sorted(jaccard(sets[a], sets[b]) for a, b in truth - found)
    row(
        "LSH recall (pairs >= threshold found)",
        None,
        f"{recall:.3f} ({hit}/{len(truth)})"
        + (f"; missed pairs' Jaccard {missed[0]:.2f}..{missed[-1]:.2f}" if missed else ""),
    )
    row("LSH precision (reported pairs that are true)", None, f"{precision:.3f}")
    row("candidate precision (candidates >= threshold)", None, f"{hit / max(1, result.stats['candidates']):.3f}")
    row("pairs whose two texts share an LSH cluster", None, f"{joined:.3f}")
    arrays = [np.fromiter(s, dtype=np.uint64, count=len(s)) for s in sets]
    recalls = seed_recalls(arrays, truth, bands, rows, range(1, 11))
    row(
        "LSH recall over MinHash seeds 1-10",
        None,
        f"mean {np.mean(recalls):.3f}, min {min(recalls):.3f}, max {max(recalls):.3f} "
        f"(S-curve predicts {predicted_recall(sets, truth, bands, rows):.3f})",
    )
    breakdown(arrays, bands, rows, seed=1)


def seed_recalls(
    arrays: list[np.ndarray], truth: set[tuple[int, int]], bands: int, rows: int, seeds: range
) -> list[float]:
    """Recall of LSH candidates for several MinHash seeds: one run's recall is a sample of a few dozen pairs."""
    out = []
    for seed in seeds:
        found = {tuple(p) for p in lsh_candidates(minhash_signatures(arrays, 128, seed), bands, rows).tolist()}
        out.append(len(truth & found) / len(truth) if truth else 1.0)
    return out


def predicted_recall(sets: list[frozenset[int]], truth: set[tuple[int, int]], bands: int, rows: int) -> float:
    """The mean detection probability of the true pairs, from their exact Jaccard."""
    sims = np.array([jaccard(sets[a], sets[b]) for a, b in truth])
    return float(np.mean(detection_probability(sims, bands, rows))) if len(sims) else 1.0


def breakdown(arrays: list[np.ndarray], bands: int, rows: int, seed: int) -> None:
    """MinHash and banding timed alone, banding also with datasketch's MinHashLSH."""
    signatures, minhash_s = timed(lambda: minhash_signatures(arrays, 128, seed))
    ours, band_s = timed(lambda: lsh_candidates(signatures, bands, rows))
    theirs, ds_s = timed(lambda: datasketch_candidates(signatures, bands, rows, seed))
    same = {tuple(p) for p in ours.tolist()} == theirs
    print()
    print("  LSH stages on the same shingles:")
    row("  MinHash signatures (datasketch MinHash)", minhash_s)
    row("  banding, numpy (what find_duplicates uses)", band_s, f"{len(ours)} candidate pairs")
    row("  banding, datasketch MinHashLSH insert + query", ds_s, "same candidates" if same else "DIFFERENT candidates")


def big(n: int, threshold: float, seed: int) -> None:
    texts, make_s = timed(lambda: make_texts(n, seed))
    print(f"\n(made {n:,} texts in {make_s:.1f} s)")
    stages: list[tuple[int, float]] = []
    start = time.perf_counter()
    result: DedupResult
    result, seconds = timed(
        lambda: find_duplicates(
            texts, threshold=threshold, progress=lambda d, t: stages.append((d, time.perf_counter() - start))
        )
    )
    hashed = next((t for d, t in stages if d >= len(texts)), seconds)
    print()
    print(f"{n:,} texts, LSH alone:")
    row(
        "MinHash LSH (find_duplicates, end to end)",
        seconds,
        f"hashing {hashed:.1f} s, banding + checks {seconds - hashed:.1f} s",
    )
    row(
        "",
        None,
        f"{result.stats['candidates']:,} candidates, {len(result.pairs):,} pairs, {len(result.clusters):,} clusters",
    )
    row("all-pairs would compare", None, f"{n * (n - 1) // 2:,} pairs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="texts in the side-by-side run (default 4000)")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated texts")
    parser.add_argument("--big", action="store_true", help="then time LSH alone on --big-n texts")
    parser.add_argument("--big-n", type=int, default=100_000)
    parser.add_argument("--no-python", action="store_true", help="skip the slow pure-Python all-pairs baseline")
    args = parser.parse_args(argv)
    compare(args.n, args.threshold, args.seed, python=not args.no_python)
    if args.big:
        big(args.big_n, args.threshold, args.seed)


if __name__ == "__main__":
    main()
