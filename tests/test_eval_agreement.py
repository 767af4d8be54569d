"""Judge against human: agreement, kappa and rho, checked against values worked out by hand."""

from __future__ import annotations

import pytest

from workbench.eval.agreement import (
    MIN_PAIRS,
    Agreement,
    agreement_by_item,
    choice_agreement,
    cohen_kappa,
    landis_koch,
    pairwise_agreement,
    score_agreement,
    spearman_rho,
)
from workbench.eval.judge import PairVerdict, SingleVerdict

# Worked example, 1-5 scores of five answers:
#   judge x = 1 2 3 4 5     human y = 1 3 3 5 4
# Exact: 2 of 5 = 40%. Within one point: 5 of 5.
# Quadratic-weighted kappa. With weights (i-j)^2 and the chance table the outer product of the two
# raters' marginals, kappa = 1 - n * sum_i (x_i - y_i)^2 / sum_i sum_j (x_i - y_j)^2.
#   sum_i (x_i - y_i)^2 = 0 + 1 + 0 + 1 + 1 = 3
#   sum_i sum_j (x_i - y_j)^2 = n*sum(x^2) - 2*sum(x)*sum(y) + n*sum(y^2) = 5*55 - 2*15*16 + 5*60 = 95
#   kappa = 1 - 5*3/95 = 80/95 = 0.842105...
# Spearman: ranks of x = 1 2 3 4 5; y has a tie (the two 3s share ranks 2 and 3): 1 2.5 2.5 5 4.
#   deviations from the mean rank 3: dx = -2 -1 0 1 2, dy = -2 -.5 -.5 2 1
#   rho = sum(dx*dy) / sqrt(sum(dx^2) * sum(dy^2)) = 8.5 / sqrt(10 * 9.5) = 0.872082...
JUDGE = [1, 2, 3, 4, 5]
HUMAN = [1, 3, 3, 5, 4]

# Pass/fail of ten answers: they agree on 8, so p_o = 0.8; each passes 6 of 10, so chance agreement
# p_e = 0.6*0.6 + 0.4*0.4 = 0.52 and kappa = (0.8 - 0.52) / (1 - 0.52) = 0.28/0.48 = 0.583333 (moderate).
JUDGE_PF = [1, 1, 1, 0, 0, 1, 0, 1, 1, 0]
HUMAN_PF = [1, 1, 0, 0, 0, 1, 1, 1, 1, 0]

# Pairwise, six pairs: they agree on 5, p_o = 5/6. Judge a/b/tie = 3/2/1, human 2/3/1, so
# p_e = (3*2 + 2*3 + 1*1) / 36 = 13/36 and kappa = (30/36 - 13/36) / (23/36) = 17/23 = 0.739130 (substantial).
JUDGE_AB = ["a", "a", "b", "tie", "b", "a"]
HUMAN_AB = ["a", "b", "b", "tie", "b", "a"]


def test_scores_against_the_worked_example():
    agreement = score_agreement(JUDGE, HUMAN)
    assert agreement.n == 5 and agreement.exact == pytest.approx(0.4) and agreement.within_one == 1.0
    assert agreement.kappa == pytest.approx(80 / 95)
    assert agreement.spearman == pytest.approx(8.5 / 95**0.5)
    assert agreement.label == "almost perfect"
    assert agreement.describe() == "trust: almost perfect (κ=0.84, n=5); 40% exact, 100% within 1, ρ=0.87"


def test_pass_fail_against_the_worked_example():
    agreement = score_agreement(JUDGE_PF, HUMAN_PF, scale="pass/fail")
    assert agreement.exact == pytest.approx(0.8) and agreement.kappa == pytest.approx(0.28 / 0.48)
    assert agreement.within_one is None and agreement.spearman is None
    assert agreement.describe() == "trust: moderate (κ=0.58, n=10); 80% exact"


def test_pairwise_choices_against_the_worked_example():
    agreement = choice_agreement(JUDGE_AB, HUMAN_AB)
    assert agreement.kappa == pytest.approx(17 / 23) and agreement.exact == pytest.approx(5 / 6)
    assert agreement.label == "substantial"


def test_kappa_and_rho_edge_cases():
    assert cohen_kappa([3, 3, 3], [3, 3, 3], (1, 2, 3, 4, 5)) is None  # chance alone agrees: undefined
    assert cohen_kappa([5, 5, 5], [4, 4, 4], (1, 2, 3, 4, 5), weights="quadratic") == pytest.approx(0.0)
    assert cohen_kappa([1, 2, 1, 2], [2, 1, 2, 1]) == pytest.approx(-1.0)
    assert cohen_kappa([], []) is None
    assert spearman_rho([1, 2, 3], [3, 3, 3]) is None
    assert spearman_rho([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("kappa", "label"),
    [
        (-0.1, "poor"),
        (0.0, "slight"),
        (0.2, "slight"),
        (0.35, "fair"),
        (0.52, "moderate"),
        (0.7, "substantial"),
        (0.81, "almost perfect"),
        (1.0, "almost perfect"),
    ],
)
def test_landis_koch_labels(kappa, label):
    assert landis_koch(kappa) == label


def test_too_few_or_no_variation_is_said_not_scored():
    few = score_agreement([4, 5], [4, 4])
    assert few.label == "too few" and few.describe() == f"trust: too few ratings to tell (n=2, need {MIN_PAIRS})"
    flat = score_agreement([4] * 6, [4] * 6)
    assert flat.kappa is None and flat.label == "undefined" and "κ undefined" in flat.describe()
    assert Agreement("1-5").describe().startswith("trust: too few")


def single(example_id, model, score, **items) -> SingleVerdict:
    return SingleVerdict(example_id=example_id, model=model, score=score, item_scores=items)


def test_agreement_by_item_matches_verdicts_to_ratings():
    verdicts = [single(i, "base", x, correctness=x, format=5) for i, x in enumerate(JUDGE)]
    verdicts += [single(9, "base", None), single(0, "lora", 1)]  # unparsed, and a model nobody rated
    ratings = [
        {"id": i, "model": "base", "score": y, "items": {"Correctness": y}, "note": ""} for i, y in enumerate(HUMAN)
    ]
    ratings += [
        {"id": 9, "model": "base", "score": 2, "items": {}},  # its verdict is unparsed: left out
        {"id": "5", "model": "base", "score": None, "items": {}},  # no verdict, no score
        {"id": 3, "model": None, "pair": ["base", "lora"], "choice": "a"},  # a pairwise rating
    ]
    by_item = agreement_by_item(verdicts, ratings)
    assert list(by_item) == ["overall", "correctness"]
    for item in by_item.values():
        assert item.n == 5 and item.kappa == pytest.approx(80 / 95)
    assert by_item["correctness"].item == "correctness"


def test_agreement_by_item_with_overall_ratings_only_and_pass_fail():
    verdicts = [
        SingleVerdict(example_id=f"e{i}", model="m", score=x, item_scores={"correctness": x}, scale="pass/fail")
        for i, x in enumerate(JUDGE_PF)
    ]
    ratings = [{"id": f"e{i}", "model": "m", "score": ["fail", "pass"][y]} for i, y in enumerate(HUMAN_PF)]
    by_item = agreement_by_item(verdicts, ratings)
    assert list(by_item) == ["overall"] and by_item["overall"].kappa == pytest.approx(0.28 / 0.48)


def test_out_of_scale_human_scores_are_left_out():
    verdicts = [single(i, "m", 3) for i in range(3)]
    ratings = [
        {"id": 0, "model": "m", "score": 7},
        {"id": 1, "model": "m", "score": 3.5},
        {"id": 2, "model": "m", "score": 3},
    ]
    assert agreement_by_item(verdicts, ratings)["overall"].n == 1


def test_pairwise_agreement_compares_by_model_not_place():
    verdicts, ratings = [], []
    for i, (judge, human) in enumerate(zip(JUDGE_AB, HUMAN_AB, strict=True)):
        verdicts.append(
            PairVerdict(example_id=i, model_a="base", model_b="lora", winner=judge, first=judge, second=judge)
        )
        if i % 2:  # this person saw the pair the other way round: their "a" is lora
            human = {"a": "b", "b": "a"}.get(human, human)
            ratings.append({"id": i, "pair": ["lora", "base"], "choice": human, "note": ""})
        else:
            ratings.append({"id": i, "pair": ["base", "lora"], "choice": human})
    verdicts.append(
        PairVerdict(example_id=6, model_a="base", model_b="lora", winner=None, first=None, second="a")
    )  # unparsed: left out
    ratings.append({"id": 6, "pair": ["base", "lora"], "choice": "a"})
    ratings.append({"id": 7, "pair": ["base", "lora"], "choice": None})  # not rated yet
    agreement = pairwise_agreement(verdicts, ratings)
    assert agreement.kind == "pairwise" and agreement.n == 6
    assert agreement.kappa == pytest.approx(17 / 23)


def test_ratings_may_be_objects():
    class Rating:
        def __init__(self, example_id, score):
            self.example_id, self.model, self.score, self.items, self.pair = example_id, "m", score, {}, None

    verdicts = [single(i, "m", x) for i, x in enumerate(JUDGE)]
    agreement = agreement_by_item(verdicts, [Rating(i, y) for i, y in enumerate(HUMAN)])["overall"]
    assert agreement.kappa == pytest.approx(80 / 95)


def test_mismatched_lengths_are_a_programming_error():
    with pytest.raises(ValueError):
        score_agreement([1, 2], [1])
