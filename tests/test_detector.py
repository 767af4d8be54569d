"""The overfitting and divergence detector, on hand-made metric histories."""

from __future__ import annotations

import math

from workbench.train.detector import diagnose


def history(train, evals, every=10):
    """Train loss at each step 1..n and eval loss every `every` steps."""
    records = [{"type": "train", "step": i + 1, "loss": v} for i, v in enumerate(train)]
    records += [{"type": "eval", "step": (i + 1) * every, "eval_loss": v} for i, v in enumerate(evals)]
    return sorted(records, key=lambda r: r["step"])


def falling(n, start=2.0, end=0.2):
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def test_healthy_run_is_ok():
    assert diagnose(history(falling(60), [1.5, 1.2, 1.0, 0.9, 0.85, 0.84])).kind == "ok"


def test_overfitting_names_where_it_began():
    verdict = diagnose(history(falling(80), [1.5, 1.1, 0.9, 0.95, 1.0, 1.1, 1.2, 1.3]))
    assert verdict.kind == "overfitting"
    assert verdict.since_step == 30 and verdict.step == 80
    assert "0.9000" in verdict.message


def test_a_single_bump_is_not_overfitting():
    assert diagnose(history(falling(60), [1.5, 1.1, 0.9, 0.95, 0.88, 0.87])).kind == "ok"


def test_rising_train_loss_too_is_not_overfitting():
    train = falling(30) + [0.3 + 0.01 * i for i in range(50)]
    assert diagnose(history(train, [1.5, 1.1, 0.9, 0.95, 1.0, 1.1, 1.2, 1.3])).kind == "ok"


def test_patience_is_respected():
    h = history(falling(60), [1.5, 1.1, 0.9, 0.95, 1.0, 1.1])
    assert diagnose(h, patience=3).kind == "overfitting"
    assert diagnose(h, patience=4).kind == "ok"


def test_nan_loss_is_divergence():
    train = falling(20)
    train[12] = math.nan
    verdict = diagnose(history(train, []))
    assert verdict.kind == "diverged" and verdict.step == 13


def test_nan_written_as_string_is_divergence():
    records = [{"type": "train", "step": 1, "loss": 2.0}, {"type": "train", "step": 2, "loss": "nan"}]
    assert diagnose(records).kind == "diverged"


def test_exploding_loss_is_divergence():
    verdict = diagnose(history([2.0, 1.9, 1.8, 2.5, 4.0, 9.0, 30.0], []))
    assert verdict.kind == "diverged" and verdict.since_step == 6


def test_records_without_numbers_are_ignored():
    records = [
        {"type": "train", "step": 1},
        {"type": "eval", "step": 2, "eval_loss": None},
        {"type": "verdict", "step": 3},
    ]
    assert diagnose(records).kind == "ok"


def test_noisy_upward_trend_after_the_best_is_overfitting():
    evals = [0.78, 0.63, 0.56, 0.51, 0.56, 0.53, 0.54, 0.58]
    verdict = diagnose(history(falling(80), evals))
    assert verdict.kind == "overfitting" and verdict.since_step == 40


def test_a_new_best_clears_the_verdict():
    evals = [0.78, 0.63, 0.51, 0.56, 0.55, 0.58, 0.50]
    assert diagnose(history(falling(70), evals)).kind == "ok"
