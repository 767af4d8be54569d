"""Human ratings: journal replay, last word wins, clearing, torn lines, pair order, blind order."""

from __future__ import annotations

import pytest

from workbench.errors import WorkbenchError
from workbench.eval.ratings import Ratings, blind_label, blind_order


def test_ratings_survive_a_reopen_and_the_last_word_wins(tmp_path):
    path = tmp_path / "ratings.jsonl"
    r = Ratings(path)
    r.score("7", "base", 2)
    r.score("7", "adapter", 4)
    r.score("7", "base", 3)
    r.choose("7", "base", "adapter", "b")
    r.note("7", "  adapter got the date right ")
    again = Ratings(path)
    assert again.score_of("7", "base") == 3
    assert again.score_of("7", "adapter") == 4
    assert again.choice_of("7", "base", "adapter") == "b"
    assert again.get("7").note == "adapter got the date right"
    assert again.rated_count() == 1


def test_clearing_and_pairs_rated_in_the_other_order(tmp_path):
    r = Ratings(tmp_path / "ratings.jsonl")
    r.score("1", "base", 5)
    r.score("1", "base", None)
    r.choose("1", "adapter", "base", "a")
    assert r.score_of("1", "base") is None
    assert r.choice_of("1", "base", "adapter") == "b"  # adapter won, seen from base's side
    r.choose("1", "adapter", "base", "tie")
    assert r.choice_of("1", "base", "adapter") == "tie"
    r.choose("1", "adapter", "base", None)
    assert Ratings(r.path).choice_of("1", "base", "adapter") is None


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path):
    path = tmp_path / "ratings.jsonl"
    Ratings(path).score("1", "base", 4)
    with open(path, "a") as fh:
        fh.write('{"kind": "score", "id": "2", "mo')
    r = Ratings(path)
    assert r.score_of("1", "base") == 4 and r.skipped == 1


def test_bad_values_are_refused(tmp_path):
    r = Ratings(tmp_path / "ratings.jsonl")
    with pytest.raises(WorkbenchError, match="1 to 5"):
        r.score("1", "base", 6)
    with pytest.raises(WorkbenchError, match="a, b, tie"):
        r.choose("1", "base", "x", "left")
    assert not (tmp_path / "ratings.jsonl").exists()


def test_records_have_the_shape_agreement_reads(tmp_path):
    r = Ratings(tmp_path / "ratings.jsonl")
    r.score("1", "base", 4)
    r.choose("1", "base", "adapter", "tie")
    records = sorted(r.records(), key=lambda x: x["model"] or "")
    assert records[0]["choice"] == "tie" and records[0]["pair"] == ["base", "adapter"]
    assert records[1] == {"id": "1", "model": "base", "score": 4, "items": {}, "choice": None, "pair": None, "note": ""}


def test_blind_order_is_stable_per_example_and_varies_across_examples():
    models = ["base", "run/adapter", "run/ckpt-24"]
    assert blind_order(models, "3", "s") == blind_order(models, "3", "s")
    orders = {tuple(blind_order(models, str(i), "s")) for i in range(40)}
    assert len(orders) >= 4  # shuffled per example, not one fixed permutation
    assert sorted(blind_order(models, "3", "s")) == sorted(models)
    assert blind_label(0) == "Model A" and blind_label(2) == "Model C"


def test_rubric_items_are_rated_apart_and_reach_the_agreement_records(tmp_path):
    r = Ratings(tmp_path / "ratings.jsonl")
    r.score_item("1", "base", "format", 2)
    r.score_item("1", "base", "correctness", 5)
    r.score_item("1", "base", "format", 3)
    r.score_item("1", "adapter", "format", None)
    again = Ratings(r.path)
    assert again.item_of("1", "base", "format") == 3 and again.item_of("1", "base", "correctness") == 5
    records = again.records()
    assert records == [
        {
            "id": "1",
            "model": "base",
            "score": None,
            "items": {"format": 3, "correctness": 5},
            "choice": None,
            "pair": None,
            "note": "",
        }
    ]
