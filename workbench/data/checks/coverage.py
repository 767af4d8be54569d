"""The ``coverage`` overview: what the prompts are about, how the answers' labels are spread, what is thin.

Topics come from TF-IDF vectors of the prompts' words clustered with
spherical k-means in plain numpy: fitted on a fixed sample with a fixed seed,
for the number of topics whose clusters separate best, then every prompt is
assigned. When answers are JSON objects, keys with few distinct
values are read as labels and their distribution is reported; rare values are
under-covered, and a value seen only once or twice may be a typo, so those
examples get an info finding.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from workbench.data.checks.example import Example
from workbench.data.checks.lang import STOPWORDS, name
from workbench.data.checks.text import RESPONSE, percent, plural
from workbench.data.findings import DataFinding

MIN_EXAMPLES = 20
"""Fewer examples than this get no topics or label distribution: too few to say what is missing."""
MAX_TOPICS = 8
MIN_TOPIC_SIZE = 5
"""Fewer fitted prompts per topic than this is not a topic: k stays at most a fifth of the sample."""
MAX_TERMS = 1000
"""Vocabulary size for the prompt vectors: the terms in the most prompts."""
FIT_SAMPLE = 3000
"""Prompts k-means is fitted on; the rest are only assigned."""
MAX_LABELS = 12
"""A JSON key with more distinct values than this is free text, not a label."""
TYPO_COUNT = 2
"""A label value seen this often or less gets an info finding on its examples."""
SEED = 0


@dataclass
class Topic:
    """A cluster of similar prompts."""

    terms: list[str]
    """Its most characteristic words."""
    size: int
    share: float
    examples: list[int]
    """Indexes of the prompts closest to its centre."""


@dataclass
class LabelField:
    """A JSON key whose values are labels, e.g. ``issue``: billing, shipping, defect..."""

    key: str
    counts: dict[str, int]
    """Value → answers with it, most common first."""
    rare: list[str]
    """Values well under their fair share: under-covered."""


@dataclass
class Coverage:
    """What the dataset covers and what it lacks."""

    topics: list[Topic] = field(default_factory=list)
    unclustered: int = 0
    """Prompts with no word to cluster on."""
    labels: list[LabelField] = field(default_factory=list)
    languages: dict[str, int] = field(default_factory=dict)
    """Prompt language → prompts (``unclear`` for short or mixed ones)."""
    gaps: list[str] = field(default_factory=list)
    """What is thin or missing, in words."""

    def text(self) -> str:
        """The overview as plain text."""
        lines = ["Coverage:"]
        if self.topics:
            lines.append("  topics: " + "; ".join(f"{', '.join(t.terms[:3])} {t.share:.0%}" for t in self.topics))
        for label in self.labels:
            total = sum(label.counts.values())
            lines.append(f"  {label.key}: " + ", ".join(f"{v} {percent(n, total)}" for v, n in label.counts.items()))
        if self.languages:
            lines.append("  prompt languages: " + ", ".join(f"{k} {n:,}" for k, n in self.languages.items()))
        lines += [f"  thin: {gap}" for gap in self.gaps]
        return "\n".join(lines)


def coverage(examples: Sequence[Example], cancelled: Callable[[], bool]) -> tuple[Coverage, list[DataFinding]]:
    """The overview, and info findings for label values so rare they may be typos."""
    result = Coverage()
    languages = Counter(name(ex.prompt_language) if ex.prompt_language else "unclear" for ex in examples)
    result.languages = dict(languages.most_common())
    findings = _labels(examples, result)
    if not cancelled():
        result.topics, result.unclustered = _topics(examples, cancelled)
    result.gaps += _gaps(examples, result)
    return result, findings


# -- labels in JSON answers ---------------------------------------------------------


def _label(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)) or value is None:
        return json.dumps(value)
    return None


def _labels(examples: Sequence[Example], result: Coverage) -> list[DataFinding]:
    objects = [ex for ex in examples if ex.format == "json object"]
    if len(objects) < MIN_EXAMPLES:
        return []
    present = Counter(k for ex in objects for k in ex.parsed)
    counts: dict[str, Counter[str]] = {k: Counter() for k, n in present.items() if n >= 0.5 * len(objects)}
    for ex in objects:
        for key, value in ex.parsed.items():
            if key in counts and (lab := _label(value)) is not None:
                counts[key][lab] += 1
    findings = []
    for key, values in counts.items():
        total = sum(values.values())
        if not 2 <= len(values) <= MAX_LABELS or len(values) > 0.2 * total:
            continue
        rare = [v for v, c in values.items() if c / total < min(0.05, 1 / len(values) / 4)]
        result.labels.append(LabelField(key, dict(values.most_common()), rare))
        usual = ", ".join(f"{v} {percent(c, total)}" for v, c in values.most_common(4))
        for value in rare:
            n = values[value]
            result.gaps.append(f"{key} {value!r} in only {plural(n, 'answer')} of {total:,} ({percent(n, total)})")
            if n > TYPO_COUNT:
                continue
            findings += [
                DataFinding(
                    ex.index,
                    "coverage",
                    "info",
                    f"{key} {value!r} appears in only {plural(n, 'answer')} of {total:,} (usual: {usual})",
                    "Check the label for a typo; if it is real, add examples of it or the model will rarely produce it.",
                    RESPONSE,
                )
                for ex in objects
                if key in ex.parsed and _label(ex.parsed[key]) == value
            ]
    return findings


# -- topics -------------------------------------------------------------------------


def _topics(examples: Sequence[Example], cancelled: Callable[[], bool]) -> tuple[list[Topic], int]:
    """Clusters of the prompts, biggest first, and the count of prompts with nothing to cluster on.

    The vocabulary, IDF and centres come from a fixed sample; every prompt is then assigned.
    """
    n = len(examples)
    if n < MIN_EXAMPLES:
        return [], 0
    import numpy as np

    sample = np.sort(np.random.default_rng(SEED).choice(n, size=min(n, FIT_SAMPLE), replace=False))
    df: Counter[str] = Counter()
    for i in sample:
        df.update({w for w in examples[i].prompt_words if len(w) > 2 and w not in STOPWORDS})
    kept = (w for w, c in df.items() if 2 <= c <= 0.5 * len(sample))
    vocab = sorted(kept, key=lambda w: (-df[w], w))[:MAX_TERMS]  # by name on ties: the same on every run
    if len(vocab) < 5:
        return [], n
    column = {w: j for j, w in enumerate(vocab)}
    idf = (np.log((1 + len(sample)) / (1 + np.array([df[w] for w in vocab], dtype=np.float64))) + 1).astype(np.float32)
    cols = [[c for w in ex.prompt_words if (c := column.get(w)) is not None] for ex in examples]
    filled = np.array([i for i, c in enumerate(cols) if c], dtype=np.int64)
    fit = [cols[i] for i in sample if cols[i]]
    if len(fit) < MIN_EXAMPLES:
        return [], n
    centres = _fit_topics(_Rows(fit, idf), cancelled)
    labels = np.full(n, -1, dtype=np.int64)
    score = np.zeros(n, dtype=np.float32)
    for start in range(0, len(filled), 20_000):
        if cancelled():
            return [], n
        part = filled[start : start + 20_000]
        sims = _Rows([cols[i] for i in part], idf).dot(centres)
        labels[part] = sims.argmax(axis=1)
        score[part] = sims.max(axis=1)
    topics = []
    for j in range(len(centres)):
        members = np.nonzero(labels == j)[0]
        if not len(members):
            continue
        closest = members[np.argsort(-score[members], kind="stable")[:3]]
        terms = [vocab[t] for t in np.argsort(-centres[j], kind="stable")[:5] if centres[j][t] > 0]
        topics.append(Topic(terms, len(members), round(len(members) / n, 4), [int(i) for i in closest]))
    topics.sort(key=lambda t: -t.size)
    return topics, n - len(filled)


class _Rows:
    """L2-normalised TF-IDF rows of documents, stored sparse (a prompt uses a few dozen of the terms).

    Products with the dense centres are gathers and bincounts: no BLAS, whose threads spin on a busy machine.
    """

    def __init__(self, cols: Sequence[list[int]], idf: Any) -> None:
        import numpy as np

        self.n, self.width = len(cols), len(idf)
        sizes = np.fromiter((len(doc) for doc in cols), dtype=np.int64, count=len(cols))
        flat = np.fromiter(chain.from_iterable(cols), dtype=np.int64, count=int(sizes.sum()))
        flat += np.repeat(np.arange(len(cols), dtype=np.int64) * self.width, sizes)
        cells, tf = np.unique(flat, return_counts=True)  # one entry per (row, term), with its count
        self.row, self.col = np.divmod(cells, self.width)
        weight = tf.astype(np.float32) * idf[self.col]
        norms = np.sqrt(np.bincount(self.row, weights=weight * weight, minlength=self.n)).astype(np.float32)
        self.val = weight / np.maximum(norms[self.row], 1e-9)

    def dot(self, centres: Any) -> Any:
        """Cosine similarity of every row with every centre: ``(rows, centres)``."""
        import numpy as np

        products = centres[:, self.col] * self.val  # (centres, entries)
        return np.stack([np.bincount(self.row, weights=p, minlength=self.n) for p in products], axis=1)

    def dense(self, i: int) -> Any:
        """Row ``i`` as a dense vector."""
        import numpy as np

        out = np.zeros(self.width, dtype=np.float32)
        at = self.row == i
        out[self.col[at]] = self.val[at]
        return out

    def centre_sums(self, labels: Any, k: int) -> Any:
        """The sum of the rows of each cluster: ``(k, terms)``."""
        import numpy as np

        cells = labels[self.row] * self.width + self.col
        return np.bincount(cells, weights=self.val, minlength=k * self.width).reshape(k, self.width)


def _fit_topics(x: _Rows, cancelled: Callable[[], bool]) -> Any:
    """Centres for the number of topics (2 to :data:`MAX_TOPICS`) whose clusters separate best.

    "Best" is the simplified silhouette: how much closer each prompt is to its own centre than to the next one.
    """
    import numpy as np

    best, best_score = None, -2.0
    for k in range(2, max(2, min(MAX_TOPICS, x.n // MIN_TOPIC_SIZE)) + 1):
        if cancelled():
            break
        centres = _kmeans(x, k, np.random.default_rng(SEED), cancelled)
        if len(centres) < 2:
            break  # every prompt is alike
        score = _silhouette(x.dot(centres))
        if score > best_score + 1e-6:
            best, best_score = centres, score
    return best if best is not None else x.dense(0)[None, :]


def _silhouette(sims: Any) -> float:
    """The simplified silhouette of rows given their similarities to the centres."""
    import numpy as np

    rows = np.arange(len(sims))
    own = sims.argmax(axis=1)
    a = 1 - sims[rows, own]
    sims = sims.copy()
    sims[rows, own] = -np.inf
    b = 1 - sims.max(axis=1)
    return float(np.mean((b - a) / np.maximum(np.maximum(a, b), 1e-9)))


def _kmeans(x: _Rows, k: int, rng: Any, cancelled: Callable[[], bool], iterations: int = 20) -> Any:
    """Spherical k-means (cosine) with k-means++ seeding; returns the unit-length centres ``(k, terms)``."""
    import numpy as np

    centres = [x.dense(int(rng.integers(x.n)))]
    distance = 1 - x.dot(centres[0][None, :])[:, 0]
    for _ in range(1, k):
        weights = np.clip(distance, 0, None) ** 2
        if weights.sum() <= 1e-9:
            break  # every prompt is already next to a centre
        pick = int(rng.choice(x.n, p=weights / weights.sum()))
        centres.append(x.dense(pick))
        distance = np.minimum(distance, 1 - x.dot(centres[-1][None, :])[:, 0])
    c = np.stack(centres)
    labels = None
    for _ in range(iterations):
        if cancelled():
            break
        new = x.dot(c).argmax(axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        sums = x.centre_sums(labels, len(c))
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        # an empty cluster keeps its centre
        c = np.where(norms > 0, sums / np.maximum(norms, 1e-9), c).astype(np.float32)
    return c


# -- gaps ---------------------------------------------------------------------------


def _gaps(examples: Sequence[Example], result: Coverage) -> list[str]:
    gaps = []
    n = len(examples)
    if result.topics:
        fair = n / len(result.topics)
        for topic in result.topics:
            if topic.size < fair / 4:
                terms = ", ".join(topic.terms[:3])
                gaps.append(f"topic '{terms}' has only {plural(topic.size, 'prompt')} ({percent(topic.size, n)})")
    known = {k: v for k, v in result.languages.items() if k != "unclear"}
    if known and n >= MIN_EXAMPLES:
        for language, count in known.items():
            if count < 0.02 * n:
                gaps.append(f"{language} prompts: only {count:,} of {n:,} ({percent(count, n)})")
    if n >= MIN_EXAMPLES:
        systems = Counter(ex.system for ex in examples)
        system, count = systems.most_common(1)[0]
        if system and count >= 0.95 * n:
            gaps.append(
                f"one system prompt in {percent(count, n)} of examples: the model may not follow a different one"
            )
    return gaps
