"""Automated eval metrics and their bootstrap summaries, against cases computed by hand."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.eval.metrics import (
    METRICS,
    exact_match,
    is_refusal,
    json_valid,
    lcs_length,
    length_stats,
    normalize_answer,
    regex_valid,
    rouge_l,
    rouge_scorer,
    rouge_tokens,
    schema_valid,
    schema_validator,
    score_example,
    semantic_similarity,
    strip_fence,
    token_f1,
)
from workbench.eval.stats import MIN_SIGNIFICANT_N, Summary, aggregate, bootstrap_ci, paired_difference

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
SCHEMA = json.loads((SUPPORT / "schema.json").read_text())
GOOD = (
    '{"customer":"Leila","product":"BrewMate grinder","issue":"refund","date":"2025-12-18",'
    '"urgency":"high","summary":"Refund short; wants the remaining amount."}'
)


# --- SQuAD normalization, exact match, token F1 ---------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Cat!", "cat"),  # case, punctuation, article
        ("  A  quick,\tbrown\n fox.  ", "quick brown fox"),  # whitespace collapsed
        ("an apple and the pear", "apple and pear"),
        ("theater another thesis", "theater another thesis"),  # articles only as whole words
        ("the-end", "theend"),  # punctuation goes first: no article left
        ("A.B.C", "abc"),
        ("a", ""),
        ("", ""),
        ("Café — “déjà vu”", "café — “déjà vu”"),  # only ASCII punctuation is removed
    ],
)
def test_normalize_answer_follows_squad(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_articles_and_spacing():
    assert exact_match("The  answer.", "answer") == 1.0
    assert exact_match("Answers", "answer") == 0.0
    assert exact_match("", "the") == 1.0
    assert exact_match("", "cat") == 0.0


def test_token_f1_hand_computed():
    # pred -> cat sat on mat (4), ref -> cat on mat (3): 3 shared, P 3/4, R 1
    assert token_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    assert token_f1("Cat.", "cat") == 1.0
    assert token_f1("cat", "dog") == 0.0


def test_token_f1_counts_repeated_tokens_only_as_often_as_both_have_them():
    # pred x x x y, ref x y y: shared min(3,1) x + min(1,2) y = 2; P 2/4, R 2/3
    assert token_f1("x x x y", "x y y") == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert token_f1("x x", "x") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_token_f1_empty_answers():
    assert token_f1("", "") == 1.0
    assert token_f1("The.", "a") == 1.0  # both empty once normalized
    assert token_f1("", "cat") == 0.0
    assert token_f1("cat", "") == 0.0


# --- ROUGE-L --------------------------------------------------------------------------------------


def test_rouge_l_hand_computed():
    # tokens: the cat sat on the mat / the cat on mat: LCS 4, P 1, R 4/6
    assert rouge_l("the cat on mat", "the cat sat on the mat") == pytest.approx(0.8)
    assert rouge_l("Running cats", "run cat") == 1.0  # Porter stems over 3 letters
    assert rouge_l("mat on cat", "cat on mat") == pytest.approx(1 / 3)
    assert rouge_l("dog", "cat") == 0.0


def test_rouge_l_without_tokens():
    assert rouge_tokens("!!! —") == ()
    assert rouge_l("", "") == 1.0
    assert rouge_l("  日本 ", "日本") == 1.0
    assert rouge_l("!!!", "???") == 0.0
    assert rouge_l("", "cat") == 0.0
    assert rouge_l("cat", "...") == 0.0


def test_lcs_length_matches_dynamic_programming():
    rng = random.Random(3)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
        assert lcs_length(a, b) == table[-1][-1]


def test_rouge_l_equals_rouge_score_exactly():
    lines = (SUPPORT / "test.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [m["content"] for line in lines for m in json.loads(line)["messages"][1:]]
    vocab = " ".join(texts).split() + ["running", "runs", "ran", "The", "Zoë", "--", "a", "an"]
    rng = random.Random(0)
    pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(150)]
    for _ in range(450):
        ref = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 60)))
        pred = " ".join(w if rng.random() < 0.7 else rng.choice(vocab) for w in ref.split()[rng.randint(0, 5) :])
        pairs.append((pred, ref))
    scorer = rouge_scorer()
    for pred, ref in pairs:
        assert rouge_l(pred, ref) == scorer.score(ref, pred)["rougeL"].fmeasure, (pred, ref)


# --- JSON, schema, regex --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', True),
        ("  [1, 2]\n", True),
        ('```json\n{"a": 1}\n```', True),
        ('```\n{"a": 1}\n```', True),
        ('"just a string"', True),
        ('Here it is: {"a": 1}', False),  # prose around JSON: the whole output must parse
        ('```json\n{"a": 1}\n```\nHope this helps!', False),
        ('{"a": NaN}', False),
        ('{"a": 1,}', False),
        ("", False),
    ],
)
def test_json_valid(text, expected):
    assert json_valid(text) is expected


def test_strip_fence_only_strips_a_fence_around_everything():
    assert strip_fence(' ```json\n{"a": 1}\n``` ') == '{"a": 1}'
    assert strip_fence("no fence") == "no fence"


def test_schema_valid_against_the_task_schema():
    assert schema_valid(GOOD, SCHEMA) == (True, None)
    ok, error = schema_valid(GOOD.replace('"2025-12-18"', '"18/12/2025"'), SCHEMA)
    assert not ok and error.startswith("$.date:")
    ok, error = schema_valid(GOOD.replace('"refund"', '"refunds"'), SCHEMA)
    assert not ok and error.startswith("$.issue:")
    ok, error = schema_valid(GOOD[:-1] + ',"sentiment":"angry"}', SCHEMA)
    assert not ok and "sentiment" in error
    ok, error = schema_valid("I can't help with that.", SCHEMA)
    assert not ok and error.startswith("not JSON")


def test_schema_validator_is_compiled_once_per_schema_and_checks_the_schema():
    assert schema_validator(SCHEMA) is schema_validator(json.loads(json.dumps(SCHEMA)))
    with pytest.raises(WorkbenchError, match="not valid"):
        schema_validator({"type": "no-such-type"})


def test_regex_valid_fullmatches_the_stripped_output():
    assert regex_valid("  2026-01-04\n", r"\d{4}-\d{2}-\d{2}")
    assert not regex_valid("on 2026-01-04", r"\d{4}-\d{2}-\d{2}")
    with pytest.raises(WorkbenchError, match="regex"):
        regex_valid("x", "(")


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I cannot provide another customer's card details.",
        "I'm sorry, but I won't do that.",
        "Sorry, I can't share that information.",
        "As an AI, I don't have access to customer records.",
        "I am unable to assist with breaking into accounts.",
        "Unfortunately, I'm not able to help with this request.",
        "I won't be able to give you that.",
        "I must decline.",
        "Hello! I’m sorry, but that is not something I can do.",  # curly apostrophe, second sentence
        '"I can\'t help with that."',
    ],
)
def test_refusals_are_found(text):
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"customer":"Ana","issue":"account","summary":"I cannot log in since Monday."}',  # JSON is never a refusal
        '```json\n{"summary": "I can\'t help with billing, says the customer"}\n```',
        '{"summary": "Order is late. I cannot provide a tracking number, says the customer."}',
        "I cannot log in to my PhotoNest account since Monday.",  # a quoted complaint, not a refusal
        "I'm unable to log in.",
        "I won't be home on Friday, please deliver Monday.",
        'The customer wrote "I can\'t help with this anymore" about the app.',  # a quote mid-sentence
        "Summary: the order arrived late. " + "Details follow. " * 12 + "I can't help with that.",  # past the head
        "The answer is 42.",
        "",
    ],
)
def test_answers_are_not_refusals(text):
    assert not is_refusal(text)


# --- one example, and the metric table -------------------------------------------------------------


def test_score_example_hand_computed():
    scores = score_example("the cat on mat", "The cat sat on the mat.")
    assert scores == {
        "exact_match": 0.0,
        "token_f1": pytest.approx(2 * 1 * 0.75 / 1.75),
        "rouge_l": pytest.approx(0.8),
        "json_valid": 0.0,
        "schema_valid": None,
        "refusal": 0.0,
        "words": 4.0,
    }


def test_score_example_with_schema_regex_and_no_reference():
    scores = score_example(GOOD, None, schema=SCHEMA)
    assert scores["exact_match"] is scores["token_f1"] is scores["rouge_l"] is None
    assert (scores["json_valid"], scores["schema_valid"], scores["refusal"]) == (1.0, 1.0, 0.0)
    assert score_example(GOOD, GOOD, schema=SCHEMA, regex=r"\{.*\}")["schema_valid"] == 1.0
    assert score_example(GOOD, GOOD, schema=SCHEMA, regex=r"\[.*\]")["schema_valid"] == 0.0
    assert score_example("42", "42", regex=r"\d+")["schema_valid"] == 1.0
    assert score_example("I can't help with that.", GOOD, schema=SCHEMA)["refusal"] == 1.0


def test_length_stats():
    assert length_stats("two  words\n", 5) == {"chars": 11, "words": 2, "output_tokens": 5}
    assert length_stats("")["output_tokens"] is None


def test_metrics_table_covers_every_score():
    assert set(score_example("a", "b")) | {"similarity"} == set(METRICS)
    assert all(len(m.label) <= 6 and m.kind in ("rate", "number") for m in METRICS.values())
    assert METRICS["refusal"].higher_is_better is False and METRICS["words"].higher_is_better is None


class CountingEmbedder:
    """Bag-of-letters vectors (not normalized), counting what it is asked to encode."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += list(texts)
        return np.array([[t.count(c) + 0.0 for c in "abcdefghij"] for t in texts], dtype=np.float32)


def test_semantic_similarity_encodes_each_text_once():
    embedder = CountingEmbedder()
    sims = semantic_similarity(["abc", "abc", "jjj"], ["abc", None, "abc"], embedder=embedder)
    assert sims[0] == pytest.approx(1.0) and sims[1] is None and sims[2] == pytest.approx(0.0)
    assert sorted(embedder.seen) == ["abc", "jjj"]
    assert semantic_similarity(["x"], [None], embedder=embedder) == [None]


@pytest.mark.slow
def test_semantic_similarity_with_minilm():
    sims = semantic_similarity(
        ["The refund has not arrived yet.", "My parcel never came.", "The weather is lovely today."],
        ["The refund has not arrived yet.", "The package was not delivered.", "I am still waiting for my refund."],
    )
    assert sims[0] == pytest.approx(1.0, abs=1e-4)
    assert sims[1] > sims[2] + 0.2


# --- bootstrap summaries --------------------------------------------------------------------------


def test_bootstrap_is_deterministic_given_the_seed():
    values = list(np.random.default_rng(5).random(60))
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)


def test_bootstrap_known_case():
    # 20 ones, 20 zeros: mean 0.5, standard error sqrt(0.25/40) = 0.079, so about 0.5 +- 0.155
    summary = bootstrap_ci([1.0, 0.0] * 20, resamples=4000)
    assert summary.mean == 0.5 and summary.n == 40 and summary.missing == 0
    assert summary.lo == pytest.approx(0.345, abs=0.03) and summary.hi == pytest.approx(0.655, abs=0.03)
    wide = bootstrap_ci([1.0, 0.0] * 20, confidence=0.99, resamples=4000)
    assert wide.lo < summary.lo and wide.hi > summary.hi


def test_bootstrap_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(300):
        s = bootstrap_ci(list(rng.normal(0.3, 1.0, 50)), resamples=1000, seed=trial)
        covered += s.lo <= 0.3 <= s.hi
    assert 0.89 <= covered / 300 <= 0.99


def test_bootstrap_edge_sizes_and_describe():
    assert bootstrap_ci([]) == Summary("", None, None, None, 0, 0)
    assert bootstrap_ci([None, None]).describe() == "- n=0 (2 missing)"
    one = bootstrap_ci([0.7, None], metric="em")
    assert (one.mean, one.lo, one.hi, one.n, one.missing) == (0.7, 0.7, 0.7, 1, 1)
    assert Summary("em", 0.62, 0.55, 0.69, 40).describe() == "0.62 [0.55, 0.69] n=40"
    assert Summary("words", 23.456, 20.0, 27.0, 9, 1).describe(1) == "23.5 [20.0, 27.0] n=9 (1 missing)"


def test_paired_difference_sees_a_consistent_gain_that_unpaired_intervals_hide():
    rng = np.random.default_rng(2)
    difficulty = rng.random(40)
    base = list(difficulty)
    adapter = list(np.clip(difficulty + 0.1 + rng.normal(0, 0.05, 40), 0, 2))
    diff = paired_difference(adapter, base)
    assert diff.significant and diff.n == 40
    assert 0.05 < diff.lo < diff.mean < diff.hi < 0.15
    a, b = bootstrap_ci(adapter), bootstrap_ci(base)
    assert a.lo < b.hi  # separate intervals overlap: only pairing shows the gain
    assert diff.describe().startswith("+0.1") and "not significant" not in diff.describe()


def test_paired_difference_not_significant_on_noise():
    rng = np.random.default_rng(4)
    diff = paired_difference(list(rng.random(40)), list(rng.random(40)))
    assert not diff.significant and diff.lo < 0 < diff.hi
    assert diff.describe().endswith("not significant")


def test_paired_difference_pairs_by_position_and_needs_enough_pairs():
    few = paired_difference([1.0] * (MIN_SIGNIFICANT_N - 1), [0.0] * (MIN_SIGNIFICANT_N - 1))
    assert few.mean == 1.0 and not few.significant
    enough = paired_difference([1.0] * MIN_SIGNIFICANT_N + [None], [0.0] * MIN_SIGNIFICANT_N + [0.0])
    assert enough.n == MIN_SIGNIFICANT_N and enough.significant
    assert paired_difference([None], [1.0]).describe() == "no examples in common"
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 0.0])


def test_aggregate_skips_none_and_counts_missing():
    rows = [score_example("cat", "cat"), score_example("dog", "cat"), score_example("cat", None)]
    summaries = aggregate(rows)
    assert list(summaries) == list(rows[0])
    assert summaries["exact_match"].mean == 0.5 and summaries["exact_match"].missing == 1
    assert summaries["schema_valid"].n == 0 and summaries["schema_valid"].mean is None
    assert summaries["words"].mean == 1.0 and summaries["words"].n == 3
    assert aggregate([{"a": 1.0}, {"b": 0.0}])["a"].missing == 1
