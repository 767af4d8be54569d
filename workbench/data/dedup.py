"""Exact, near and semantic duplicates, and examples shared between splits (leakage).

Three kinds of sameness, from strict to loose:

* **exact**: the same text once case, whitespace and punctuation are folded
  (``"Hi, Bob!"`` and ``"hi bob"``), found by hashing the folded text;
* **near**: word shingles (runs of ``shingle_size`` words) whose Jaccard
  similarity reaches ``threshold``. Candidates come from MinHash signatures
  (datasketch) banded for locality-sensitive hashing, with the bands ``b`` and
  rows ``r`` chosen for the threshold by :func:`optimal_bands`; every candidate
  pair is then checked with the exact Jaccard of its shingle sets, so a pair is
  reported only when it really reaches the threshold;
* **semantic**: sentence embeddings (MiniLM, :mod:`workbench.embed`) whose
  cosine similarity reaches a threshold: the same request in other words.

Pairs are joined into clusters with union-find, so a cluster is transitive: if
A is like B and B like C, all three are one cluster even when A and C differ
more. Each cluster keeps its first example (the lowest index) and every other
member gets a :class:`~workbench.data.findings.DataFinding` naming it.

:func:`find_leakage` runs the same search over the union of several splits and
keeps the clusters that span more than one: a training example that is also in
the test set inflates every eval score. :func:`~workbench.data.split.split_rows`
with ``groups`` (see :func:`~workbench.data.split.groups_from_clusters`) makes a
split in which that cannot happen.

Indexes are 0-based positions in the texts (or rows) passed in. Texts with no
word at all once folded (empty, whitespace or punctuation only) are never
reported here: they are not copies of anything, and the critique's
empty-output check reports them.

Long runs report through ``progress(done, total)`` and stop when ``cancel`` (a
:class:`threading.Event`) is set, raising :class:`Cancelled`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from workbench.data.findings import DataFinding
from workbench.data.minhash import (
    FALSE_NEGATIVE_WEIGHT,
    FALSE_POSITIVE_WEIGHT,
    check_threshold,
    fold_words,
    jaccard,
    lsh_candidates,
    minhash_signatures,
    optimal_bands,
    overlap,
    s_curve_midpoint,
    shingle_arrays,
)
from workbench.data.view import view
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.data.formats import Shape
    from workbench.embed import Embedder

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called on the caller's thread as work is done."""

FIELDS = ("all", "prompt", "response")
"""What :func:`texts_for` compares: the whole example but its system prompt, the prompt, or the answer."""

CHUNK = 2048
"""Texts hashed per step: progress and cancellation are checked between steps."""

BLOCK_BYTES = 64 << 20
"""Memory for one block of cosine similarities in :func:`cosine_pairs`."""


class CancelEvent(Protocol):
    """What ``cancel`` must be: a :class:`threading.Event` or anything with ``is_set()``."""

    def is_set(self) -> bool: ...


class Cancelled(WorkbenchError):
    """The search was cancelled (its ``cancel`` event was set) before it finished."""


# -- results -------------------------------------------------------------------------


class Pair(NamedTuple):
    """Two examples found alike: indexes ``a < b`` and their similarity (Jaccard or cosine)."""

    a: int
    b: int
    similarity: float


@dataclass(frozen=True)
class Match:
    """One member of a cluster and the example it was compared with."""

    index: int
    """The member's index (within its split, for leakage)."""
    similarity: float
    """Similarity to ``twin`` (Jaccard of shingles, or cosine for semantic clusters); 1.0 for the kept one,
    0.0 for a leakage member without a twin."""
    twin: int | None
    """The example it is a copy of: the cluster's representative; for leakage, its nearest
    member in another split, set only on the training side and only when that one reaches
    the threshold (members joined only through others have none)."""
    exact: bool
    """Whether its text equals the twin's once case, whitespace and punctuation are folded."""
    split: str | None = None
    """The member's split (leakage only)."""
    twin_split: str | None = None
    """The twin's split (leakage only)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "similarity": round(self.similarity, 4),
            "twin": self.twin,
            "exact": self.exact,
        }
        if self.split is not None:
            out.update(split=self.split, twin_split=self.twin_split)
        return out


@dataclass(frozen=True)
class Cluster:
    """Examples that are copies of each other, and the one to keep."""

    id: int
    kind: str
    """``exact`` (every member equals the kept one once folded), ``near`` or ``semantic``."""
    members: tuple[int, ...]
    """Member indexes, ascending (for leakage, in split order then index; see ``matches``)."""
    representative: int
    """The member to keep: the first one; for leakage, the first one outside the training side."""
    min_similarity: float
    max_similarity: float
    """The lowest and highest similarity of a member to its twin (the kept one itself left out)."""
    matches: tuple[Match, ...]
    """Per member, in the order of ``members``: what it was compared with and how alike they are."""
    representative_split: str | None = None
    """The kept member's split (leakage only)."""

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the cluster spans, in order of first appearance (leakage only; empty otherwise)."""
        return tuple(dict.fromkeys(m.split for m in self.matches if m.split is not None))

    def findings(self, field: str | None = None) -> list[DataFinding]:
        """A finding on every member but the kept one (on the training side only, for leakage)."""
        if self.representative_split is not None:
            return [self._leak(m, field) for m in self.matches if m.twin is not None]
        return [self._duplicate(m, field) for m in self.matches if m.index != self.representative]

    def _duplicate(self, m: Match, field: str | None) -> DataFinding:
        kept = f"example #{self.representative}"
        if self.kind == "semantic":
            check, severity = "semantic_duplicate", "info"
            what = f"says the same as {kept} ({'identical text' if m.exact else f'cosine {m.similarity:.2f}'})"
        elif m.exact:
            check, severity, what = "exact_duplicate", "warning", f"an exact duplicate of {kept}"
        else:
            check, severity, what = (
                "near_duplicate",
                "warning",
                f"a near duplicate (Jaccard {m.similarity:.2f}) of {kept}",
            )
        return DataFinding(
            index=m.index,
            check=check,
            severity=severity,
            message=f"{what}, which is kept (cluster {self.id}, {self.size} examples)",
            suggestion=f"Remove it, or change it so it teaches something {kept} does not.",
            field=field,
            group=self.id,
            score=m.similarity,
        )

    def _leak(self, m: Match, field: str | None) -> DataFinding:
        copy = "an exact copy" if m.exact else f"a near copy (Jaccard {m.similarity:.2f})"
        return DataFinding(
            index=m.index,
            check="leakage",
            severity="error",
            message=f"{m.split} example #{m.index} is {copy} of {m.twin_split} example #{m.twin}",
            suggestion=f"Remove it from {m.split}, or split with groups so that copies stay in one split.",
            field=field,
            group=self.id,
            score=m.similarity,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "members": list(self.members),
            "representative": self.representative,
            "min_similarity": round(self.min_similarity, 4),
            "max_similarity": round(self.max_similarity, 4),
            "matches": [m.to_dict() for m in self.matches],
        }
        if self.representative_split is not None:
            out["representative_split"] = self.representative_split
        return out


@dataclass(frozen=True)
class LshParams:
    """How near duplicates were searched for."""

    threshold: float
    num_perm: int
    bands: int
    rows: int
    shingle_size: int
    seed: int
    false_positive_weight: float = FALSE_POSITIVE_WEIGHT
    false_negative_weight: float = FALSE_NEGATIVE_WEIGHT

    @property
    def midpoint(self) -> float:
        """The similarity at which the S-curve turns, ``(1/b)^(1/r)``."""
        return s_curve_midpoint(self.bands, self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "minhash",
            "threshold": self.threshold,
            "num_perm": self.num_perm,
            "bands": self.bands,
            "rows": self.rows,
            "shingle_size": self.shingle_size,
            "seed": self.seed,
            "false_positive_weight": self.false_positive_weight,
            "false_negative_weight": self.false_negative_weight,
            "midpoint": round(self.midpoint, 4),
        }


@dataclass(frozen=True)
class SemanticParams:
    """How semantic duplicates were searched for."""

    threshold: float
    model: str
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return {"method": "embedding", "threshold": self.threshold, "model": self.model, "dim": self.dim}


@dataclass
class DedupResult:
    """Duplicate clusters, the pairs that built them, and how they were found."""

    clusters: list[Cluster]
    pairs: list[Pair]
    """The pairs that joined the clusters: each exact copy with the first of its kind (similarity 1.0),
    then every near (or semantic) pair that reached the threshold."""
    params: LshParams | SemanticParams
    stats: dict[str, int]
    """Counts: ``texts``, ``unique`` (distinct folded texts), ``candidates`` (pairs checked), ``pairs``."""

    @property
    def drop(self) -> list[int]:
        """Indexes of every member but the kept one: what removing the duplicates removes."""
        return sorted(m for c in self.clusters for m in c.members if m != c.representative)

    def findings(self, field: str | None = None) -> list[DataFinding]:
        """One finding per duplicate (every member but the kept one), by cluster."""
        return [f for c in self.clusters for f in c.findings(field)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params.to_dict(),
            "stats": dict(self.stats),
            "clusters": [c.to_dict() for c in self.clusters],
            "pairs": [[p.a, p.b, round(p.similarity, 4)] for p in self.pairs],
        }


# -- text ----------------------------------------------------------------------------


def texts_for(rows: Sequence[Any], shape: Shape | str | None = None, field: str = "all") -> list[str]:
    """The text of each row to compare, seen through :func:`~workbench.data.view.view`.

    ``prompt``: the user side (system prompt left out); ``response``: the answer
    (the chosen one for preference data); ``all``: prompt, answer and rejected
    answer. The system prompt is left out of ``all`` too: it is usually one text
    shared by every row, and would make unrelated examples look alike.
    """
    if field not in FIELDS:
        raise WorkbenchError(f"dedup field must be one of {', '.join(FIELDS)}, not {field!r}")
    out = []
    for row in rows:
        v = view(row, shape)
        if field == "prompt":
            out.append(v.prompt_text)
        elif field == "response":
            out.append(v.response_text)
        else:
            out.append("\n\n".join(part for part in (v.prompt_text, v.response_text, v.rejected_text) if part))
    return out


class UnionFind:
    """Disjoint sets over ``0..n-1``: :meth:`union` joins, :meth:`groups` lists the joined ones."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the root is the lowest index

    def groups(self) -> list[list[int]]:
        """Every set of two or more, each ascending, ordered by their lowest member."""
        by_root: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            by_root.setdefault(self.find(i), []).append(i)
        return [g for g in by_root.values() if len(g) > 1]


class _Steps:
    """Progress over equal-weight stages of ``size`` units each, checking ``cancel`` at each report."""

    def __init__(self, progress: Progress | None, cancel: CancelEvent | None, stages: int, size: int) -> None:
        self.progress, self.cancel, self.stages, self.size = progress, cancel, stages, max(size, 1)

    def __call__(self, stage: int, done: int, of: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("duplicate search cancelled")
        if self.progress is not None:
            part = self.size * done // of if of else self.size
            self.progress(stage * self.size + part, self.stages * self.size)


@dataclass
class _Index:
    """Everything one MinHash search learned about a list of texts."""

    params: LshParams
    first: list[int]
    """For each text, the first text with the same folded words (itself if none; -1 when it has no words)."""
    shingles: dict[int, np.ndarray]
    """Shingle hashes of each first-of-its-kind text."""
    pairs: list[Pair]
    uf: UnionFind
    candidates: int
    _sets: dict[int, frozenset[int]]

    def same(self, a: int, b: int) -> bool:
        return self.first[a] == self.first[b]

    def similarity(self, a: int, b: int) -> float:
        """Exact Jaccard of the two texts' shingle sets."""
        fa, fb = self.first[a], self.first[b]
        return 1.0 if fa == fb else jaccard(self.shingle_set(fa), self.shingle_set(fb))

    def shingle_set(self, i: int) -> frozenset[int]:
        found = self._sets.get(i)
        if found is None:
            found = self._sets[i] = frozenset(self.shingles[i].tolist())
        return found


def _search(
    texts: Sequence[str],
    threshold: float,
    num_perm: int,
    shingle_size: int,
    seed: int,
    progress: Progress | None,
    cancel: CancelEvent | None,
) -> _Index:
    """Exact groups by folded-text hash, then near pairs among the distinct texts by MinHash LSH."""
    bands, rows = optimal_bands(threshold, num_perm)
    params = LshParams(threshold, num_perm, bands, rows, shingle_size, seed)
    steps = _Steps(progress, cancel, 2, len(texts))
    first: list[int] = []
    seen: dict[bytes, int] = {}
    unique: list[int] = []
    shingles: dict[int, np.ndarray] = {}
    signatures: list[np.ndarray] = []
    cache: dict[str, int] = {}
    for start in range(0, len(texts), CHUNK):
        steps(0, start, len(texts))
        new: list[int] = []
        new_words: list[list[str]] = []
        for i in range(start, min(start + CHUNK, len(texts))):
            words = fold_words(texts[i])
            if not words:
                first.append(-1)
                continue
            key = hashlib.blake2b(" ".join(words).encode("utf-8", "surrogatepass"), digest_size=16).digest()
            first.append(seen.setdefault(key, i))
            if first[i] == i:
                new.append(i)
                new_words.append(words)
        arrays = shingle_arrays(new_words, shingle_size, cache)
        shingles.update(zip(new, arrays))
        unique.extend(new)
        signatures.append(minhash_signatures(arrays, num_perm, seed))
    steps(1, 0, 1)
    sig = np.concatenate(signatures) if signatures else np.empty((0, num_perm), dtype=np.uint32)
    candidates = lsh_candidates(sig, bands, rows).tolist()
    index = _Index(params, first, shingles, [], UnionFind(len(texts)), len(candidates), {})
    for i, f in enumerate(first):
        if f >= 0 and f != i:
            index.uf.union(f, i)
            index.pairs.append(Pair(f, i, 1.0))
    for done, (a, b) in enumerate(candidates):
        if done % 4096 == 0:
            steps(1, done, len(candidates))
        a, b = unique[a], unique[b]
        inter, union = overlap(index.shingle_set(a), index.shingle_set(b))
        if inter >= threshold * union - 1e-9:  # kept at the threshold itself, whatever the float rounding
            index.uf.union(a, b)
            index.pairs.append(Pair(a, b, inter / union))
    steps(2, 0, 1)
    return index


def _cluster(
    cid: int,
    kind: str,
    members: Sequence[int],
    similarity: Callable[[int, int], float],
    same: Callable[[int, int], bool],
) -> Cluster:
    """A duplicate cluster keeping its first member; a ``near`` one is ``exact`` when every member equals it."""
    rep = members[0]
    matches = tuple(Match(m, 1.0 if m == rep else similarity(m, rep), rep, m == rep or same(m, rep)) for m in members)
    sims = [m.similarity for m in matches[1:]]
    if kind == "near" and all(m.exact for m in matches):
        kind = "exact"
    return Cluster(cid, kind, tuple(members), rep, min(sims), max(sims), matches)


def find_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle_size: int = 3,
    seed: int = 1,
    progress: Progress | None = None,
    cancel: CancelEvent | None = None,
) -> DedupResult:
    """Exact and near duplicates among ``texts`` (Jaccard of word shingles >= ``threshold``).

    ``num_perm`` and ``seed`` set the MinHash; the LSH bands and rows come from
    :func:`optimal_bands` and are reported in ``params``. A cluster is ``exact``
    when all its members fold to the same text, ``near`` otherwise.
    """
    index = _search(texts, threshold, num_perm, shingle_size, seed, progress, cancel)
    clusters = [_cluster(cid, "near", g, index.similarity, index.same) for cid, g in enumerate(index.uf.groups())]
    stats = {
        "texts": len(texts),
        "unique": len(index.shingles),
        "candidates": index.candidates,
        "pairs": len(index.pairs),
    }
    return DedupResult(clusters, index.pairs, index.params, stats)


def find_leakage(
    splits: Mapping[str, Sequence[str]],
    threshold: float = 0.8,
    *,
    train_split: str = "train",
    num_perm: int = 128,
    shingle_size: int = 3,
    seed: int = 1,
    progress: Progress | None = None,
    cancel: CancelEvent | None = None,
) -> list[Cluster]:
    """Duplicate clusters (exact or near, as in :func:`find_duplicates`) that span more than one split.

    ``splits`` maps split names to their texts, e.g. ``{"train": ..., "test": ...}``.
    In each cluster the training side is ``train_split`` (else the first split,
    in the mapping's order, that the cluster spans); each of its members gets as
    twin its nearest member in another split, and a ``leakage`` finding when the
    two reach the threshold. The member kept is the first one outside the
    training side. Indexes are positions within each split.
    """
    names = list(splits)
    where = [(name, i) for name in names for i in range(len(splits[name]))]
    texts = [t for name in names for t in splits[name]]
    index = _search(texts, threshold, num_perm, shingle_size, seed, progress, cancel)
    clusters: list[Cluster] = []
    for group in index.uf.groups():
        spans = [where[g][0] for g in group]
        present = list(dict.fromkeys(spans))
        if len(present) < 2:
            continue
        side = train_split if train_split in present else present[0]
        rep = next(g for g, s in zip(group, spans) if s != side)
        matches = []
        for g, split in zip(group, spans):
            twin, sim = None, 0.0
            if split == side:
                twin, sim = max(
                    ((o, index.similarity(g, o)) for o, s in zip(group, spans) if s != side),
                    key=lambda pair: (pair[1], -pair[0]),
                )
                if sim < threshold - 1e-9:
                    twin = None
            matches.append(
                Match(
                    where[g][1],
                    sim,
                    where[twin][1] if twin is not None else None,
                    twin is not None and index.same(g, twin),
                    split,
                    where[twin][0] if twin is not None else None,
                )
            )
        linked = [m for m in matches if m.twin is not None]
        if not linked:
            continue
        kind = "exact" if all(m.exact for m in linked) else "near"
        sims = [m.similarity for m in linked]
        clusters.append(
            Cluster(
                len(clusters),
                kind,
                tuple(where[g][1] for g in group),
                where[rep][1],
                min(sims),
                max(sims),
                tuple(matches),
                where[rep][0],
            )
        )
    return clusters


def leakage_findings(clusters: Iterable[Cluster], field: str | None = None) -> list[DataFinding]:
    """The ``leakage`` findings of :func:`find_leakage`'s clusters, on the training side."""
    return [f for c in clusters for f in c.findings(field)]


# -- semantic ------------------------------------------------------------------------


def cosine_pairs(
    embeddings: np.ndarray,
    threshold: float,
    *,
    block_bytes: int = BLOCK_BYTES,
    step: Callable[[int, int], None] | None = None,
) -> list[Pair]:
    """Pairs of L2-normalised rows whose dot product (cosine) reaches ``threshold``.

    Rows are compared a block at a time against every later row, one matrix
    product per block, so memory stays under about ``block_bytes`` whatever
    the row count. ``step(done, total)`` is called between blocks.
    """
    n = len(embeddings)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    block = max(1, min(n, block_bytes // max(1, 4 * n)))
    pairs: list[Pair] = []
    for start in range(0, n, block):
        if step is not None:
            step(start, n)
        stop = min(start + block, n)
        sims = emb[start:stop] @ emb[start:].T
        rows, cols = np.nonzero(sims >= threshold - 1e-6)
        keep = cols > rows  # the block's own upper triangle, and every later row
        for r, c in zip(rows[keep].tolist(), cols[keep].tolist()):
            pairs.append(Pair(start + r, start + c, min(1.0, float(sims[r, c]))))
    if step is not None:
        step(n, n)
    return pairs


def semantic_duplicates(
    texts: Sequence[str],
    threshold: float = 0.92,
    *,
    embedder: Embedder | None = None,
    embeddings: np.ndarray | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    cancel: CancelEvent | None = None,
) -> DedupResult:
    """Clusters of texts whose sentence embeddings have cosine similarity >= ``threshold``.

    Embeddings come from ``embeddings`` (rows L2-normalised, one per text) or
    are computed with ``embedder`` (the bundled MiniLM by default), each
    distinct text once. Texts with no words are left out, as elsewhere here.
    """
    check_threshold(threshold)
    if embedder is None and embeddings is None:
        from workbench.embed import Embedder

        embedder = Embedder()
    words = [i for i, t in enumerate(texts) if fold_words(t)]
    steps = _Steps(progress, cancel, 2, len(texts))
    if embeddings is None:
        assert embedder is not None
        distinct = list(dict.fromkeys(texts[i] for i in words))
        vectors = embedder.encode(distinct, batch_size=batch_size, progress=lambda d, t: steps(0, d, t))
        row_of = {t: r for r, t in enumerate(distinct)}
        emb, model = vectors[[row_of[texts[i]] for i in words]], str(embedder.path)
    else:
        if len(embeddings) != len(texts):
            raise WorkbenchError(f"{len(embeddings)} embeddings for {len(texts)} texts")
        emb, model = np.asarray(embeddings, dtype=np.float32)[words], "precomputed"
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # cosine whatever the input's norm
    found = cosine_pairs(emb, threshold, step=lambda d, t: steps(1, d, t))
    pairs = [Pair(words[p.a], words[p.b], p.similarity) for p in found]
    uf = UnionFind(len(texts))
    for p in pairs:
        uf.union(p.a, p.b)
    position = {i: r for r, i in enumerate(words)}

    def cosine(a: int, b: int) -> float:
        return min(1.0, float(emb[position[a]] @ emb[position[b]]))

    def same(a: int, b: int) -> bool:
        return fold_words(texts[a]) == fold_words(texts[b])

    clusters = [_cluster(cid, "semantic", g, cosine, same) for cid, g in enumerate(uf.groups())]
    steps(2, 0, 1)
    stats = {
        "texts": len(texts),
        "unique": len({texts[i] for i in words}),
        "candidates": len(words) * (len(words) - 1) // 2,
        "pairs": len(pairs),
    }
    return DedupResult(clusters, pairs, SemanticParams(threshold, model, int(emb.shape[1])), stats)
