"""How far to trust the judge: agreement between the LLM judge and a person, per rubric item.

Where a person rated the same answers as the judge, the two are compared:
exact agreement, agreement within one point (1-5), Cohen's kappa (quadratic
weights on 1-5, where 4 against 5 is a smaller miss than 1 against 5) and
Spearman's rho on 1-5; agreement and kappa for pass/fail and for pairwise
A/B/tie choices. Kappa discounts the agreement two raters would reach by
chance, so it is the number the pane reads as trust, with Landis & Koch's
labels (poor, slight, fair, moderate, substantial, almost perfect).

Human ratings are plain mappings (or objects with the same attributes):
``{"id", "model", "score", "items": {item: score}, "choice": "a"|"b"|"tie",
"pair": [model_a, model_b], "note"}``. numpy only: no scipy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from workbench.eval.judge import PairVerdict, SingleVerdict, pass_fail_value

MIN_PAIRS = 5
"""Fewer answers rated by both than this, and the pane says so instead of showing a number."""

OVERALL = "overall"
"""The item name of the overall score."""

CHOICES = ("a", "b", "tie")

_LANDIS_KOCH = ((0.0, "poor"), (0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial"))


@dataclass(frozen=True)
class Agreement:
    """Judge against human on one rubric item (or the overall score, or pairwise choices)."""

    kind: str
    """``1-5``, ``pass/fail`` or ``pairwise``."""
    item: str = OVERALL
    n: int = 0
    """How many answers (or pairs) both the judge and a person graded."""
    exact: float | None = None
    """The share of those where they gave the same grade, 0 to 1."""
    within_one: float | None = None
    """1-5 only: the share where they were at most one point apart."""
    kappa: float | None = None
    """Cohen's kappa (quadratic weights on 1-5); None when undefined (no variation in the grades) or n is 0."""
    spearman: float | None = None
    """1-5 only: Spearman's rho; None when either side gave one grade throughout."""

    @property
    def enough(self) -> bool:
        return self.n >= MIN_PAIRS

    @property
    def label(self) -> str:
        """Landis & Koch's word for the kappa, ``too few`` below :data:`MIN_PAIRS`, or ``undefined``."""
        if not self.enough:
            return "too few"
        return "undefined" if self.kappa is None else landis_koch(self.kappa)

    def describe(self) -> str:
        """One line for the pane: ``trust: moderate (κ=0.52, n=18); 67% exact, 94% within 1, ρ=0.71``."""
        if not self.enough:
            return f"trust: too few ratings to tell (n={self.n}, need {MIN_PAIRS})"
        kappa = "κ undefined: the grades do not vary" if self.kappa is None else f"κ={self.kappa:.2f}"
        extra = [f"{self.exact:.0%} exact"] if self.exact is not None else []
        if self.within_one is not None:
            extra.append(f"{self.within_one:.0%} within 1")
        if self.spearman is not None:
            extra.append(f"ρ={self.spearman:.2f}")
        return f"trust: {self.label} ({kappa}, n={self.n}); {', '.join(extra)}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def landis_koch(kappa: float) -> str:
    """Landis & Koch (1977): <0 poor, to .20 slight, .40 fair, .60 moderate, .80 substantial, above almost perfect."""
    if kappa < 0:
        return "poor"
    return next((name for top, name in _LANDIS_KOCH[1:] if kappa <= top), "almost perfect")


# -- from grades -------------------------------------------------------------


def score_agreement(
    judge: Sequence[int], human: Sequence[int], *, scale: str = "1-5", item: str = OVERALL
) -> Agreement:
    """Agreement between two equally long lists of grades (1-5, or 1/0 for pass/fail)."""
    if len(judge) != len(human):
        raise ValueError(f"{len(judge)} judge grades against {len(human)} human grades")
    n = len(judge)
    if not n:
        return Agreement(scale, item)
    j, h = np.asarray(judge, dtype=float), np.asarray(human, dtype=float)
    exact = float(np.mean(j == h))
    if scale == "pass/fail":
        return Agreement(scale, item, n, exact, kappa=cohen_kappa(judge, human, (0, 1)))
    return Agreement(
        scale,
        item,
        n,
        exact,
        within_one=float(np.mean(np.abs(j - h) <= 1)),
        kappa=cohen_kappa(judge, human, (1, 2, 3, 4, 5), weights="quadratic"),
        spearman=spearman_rho(judge, human),
    )


def choice_agreement(judge: Sequence[str], human: Sequence[str]) -> Agreement:
    """Agreement between two lists of pairwise choices (``a``, ``b`` or ``tie``)."""
    if len(judge) != len(human):
        raise ValueError(f"{len(judge)} judge choices against {len(human)} human choices")
    if not judge:
        return Agreement("pairwise")
    exact = sum(a == b for a, b in zip(judge, human, strict=True)) / len(judge)
    return Agreement("pairwise", OVERALL, len(judge), exact, kappa=cohen_kappa(judge, human, CHOICES))


def cohen_kappa(
    a: Sequence[Any], b: Sequence[Any], categories: Sequence[Any] | None = None, *, weights: str | None = None
) -> float | None:
    """Cohen's kappa of two raters: 1 - observed disagreement / disagreement expected by chance.

    ``categories`` in their order (default: the values seen, sorted);
    ``weights`` None counts every disagreement alike, ``quadratic`` weighs it
    by the squared distance between the categories' places. None when chance
    alone would give perfect agreement (both raters used one category) or
    there is nothing to compare.
    """
    if not len(a) or len(a) != len(b):
        return None
    cats = list(categories) if categories is not None else sorted(set(a) | set(b))
    place = {c: i for i, c in enumerate(cats)}
    k = len(cats)
    observed = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        observed[place[x], place[y]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((k, k))
    weight = (i - j) ** 2 / max(1, (k - 1) ** 2) if weights == "quadratic" else (i != j).astype(float)
    chance = float((weight * expected).sum())
    if chance <= 1e-12:
        return None
    return 1.0 - float((weight * observed).sum()) / chance


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get their average rank); None when either side is constant."""
    if len(a) != len(b) or len(a) < 2:
        return None
    x, y = _ranks(a), _ranks(b)
    x, y = x - x.mean(), y - y.mean()
    scale = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / scale if scale > 1e-12 else None


# -- from verdicts and ratings -----------------------------------------------


def agreement_by_item(
    verdicts: Sequence[SingleVerdict], ratings: Iterable[Any], *, scale: str | None = None
) -> dict[str, Agreement]:
    """Agreement on the overall grade and on each rubric item a person graded, matched by (example, model).

    Unparsed verdicts and ungraded items are left out. ``scale`` defaults to
    the verdicts' scale. The overall entry comes first and is always there.
    """
    scale = scale or (verdicts[0].scale if verdicts else "1-5")
    human = {(str(_get(r, "id")), str(_get(r, "model"))): r for r in ratings if not _get(r, "pair")}
    pairs: dict[str, tuple[list[int], list[int]]] = {OVERALL: ([], [])}
    for verdict in verdicts:
        rating = human.get((str(verdict.example_id), verdict.model))
        if rating is None or verdict.unparsed:
            continue
        graded = {OVERALL: _grade(_get(rating, "score"), scale)}
        items = _get(rating, "items")
        if isinstance(items, Mapping):
            graded |= {_item(name): _grade(value, scale) for name, value in items.items() if _item(name) != OVERALL}
        judged = {OVERALL: verdict.score} | {_item(name): value for name, value in verdict.item_scores.items()}
        for name, value in graded.items():
            lists = pairs.setdefault(name, ([], []))
            if value is not None and (mine := _grade(judged.get(name), scale)) is not None:
                lists[0].append(mine)
                lists[1].append(value)
    return {name: score_agreement(j, h, scale=scale, item=name) for name, (j, h) in pairs.items()}


def pairwise_agreement(verdicts: Sequence[PairVerdict], ratings: Iterable[Any]) -> Agreement:
    """Agreement between the judge's winners and people's A/B/tie choices, matched by example and the two models.

    A person may have seen the pair in the other order: choices are compared
    by model, not by place. Unparsed verdicts and unrated pairs are left out.
    """
    human: dict[tuple[str, frozenset[str]], tuple[list[str], str]] = {}
    for rating in ratings:
        pair, choice = _get(rating, "pair"), _get(rating, "choice")
        if pair and len(pair) == 2 and choice in CHOICES:
            human[(str(_get(rating, "id")), frozenset(map(str, pair)))] = ([str(m) for m in pair], choice)
    judge: list[str] = []
    people: list[str] = []
    for verdict in verdicts:
        found = human.get((str(verdict.example_id), frozenset((verdict.model_a, verdict.model_b))))
        if found is None or verdict.winner is None:
            continue
        pair, choice = found
        chosen = "tie" if choice == "tie" else pair[CHOICES.index(choice)]
        judge.append(verdict.winner)
        people.append("tie" if chosen == "tie" else "a" if chosen == verdict.model_a else "b")
    return choice_agreement(judge, people)


# -- internals ---------------------------------------------------------------


def _ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing the average of the ranks they span."""
    x = np.asarray(values, dtype=float)
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(1, len(x) + 1)
    _, group = np.unique(x, return_inverse=True)
    return (np.bincount(group, weights=ranks) / np.bincount(group))[group]


def _get(rating: Any, name: str) -> Any:
    """A field of a rating given as a mapping or an object (``id`` also read as ``example_id``)."""
    names = (name, "example_id") if name == "id" else (name,)
    for key in names:
        value = rating.get(key) if isinstance(rating, Mapping) else getattr(rating, key, None)
        if value is not None:
            return value
    return None


def _grade(value: Any, scale: str) -> int | None:
    """A grade on the scale (pass/fail also as true/false, ``pass``/``fail``); None when off the scale."""
    if scale == "pass/fail":
        return pass_fail_value(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        return None
    return int(value) if 1 <= value <= 5 else None


def _item(name: Any) -> str:
    return str(name).strip().lower().replace(" ", "_")
