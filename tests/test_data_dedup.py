"""Exact, near and semantic duplicates, leakage between splits, and splits that keep clusters whole."""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from workbench.data.dedup import (
    Cancelled,
    cosine_pairs,
    find_duplicates,
    find_leakage,
    leakage_findings,
    semantic_duplicates,
    texts_for,
)
from workbench.data.load import load_rows
from workbench.data.minhash import (
    detection_probability,
    fold_words,
    jaccard,
    optimal_bands,
    s_curve_midpoint,
    shingle_sets,
)
from workbench.data.split import groups_from_clusters, split_rows
from workbench.errors import DataError, WorkbenchError

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"


def words(n: int, start: int = 0, prefix: str = "w") -> str:
    """``n`` distinct words ``w{start} w{start+1} ...``: shingles are easy to count by hand."""
    return " ".join(f"{prefix}{i}" for i in range(start, start + n))


def flagged(result) -> dict[int, str]:
    return {f.index: f.check for f in result.findings()}


# -- exact duplicates ----------------------------------------------------------------


def test_exact_duplicates_fold_case_whitespace_and_punctuation() -> None:
    texts = ["Hello, World!", "something else entirely here", "hello   world", "HELLO\n\nworld...", "Hello, Word!"]
    result = find_duplicates(texts)
    assert len(result.clusters) == 1
    cluster = result.clusters[0]
    assert (cluster.kind, cluster.members, cluster.representative) == ("exact", (0, 2, 3), 0)
    assert cluster.min_similarity == cluster.max_similarity == 1.0
    findings = result.findings(field="prompt")
    assert [(f.index, f.check, f.group, f.score, f.field) for f in findings] == [
        (2, "exact_duplicate", 0, 1.0, "prompt"),
        (3, "exact_duplicate", 0, 1.0, "prompt"),
    ]
    assert all("#0" in f.message and "kept" in f.message for f in findings)
    assert result.drop == [2, 3]
    assert fold_words("Don't  STOP—now!") == ["don", "t", "stop", "now"]


def test_texts_without_words_are_never_duplicates() -> None:
    result = find_duplicates(["", "   ", "!!!", "", "?"])
    assert result.clusters == [] and result.stats["unique"] == 0


# -- near duplicates: exact Jaccard at and around the threshold ----------------------


def test_near_duplicate_jaccard_by_hand() -> None:
    # 20 words -> 18 three-word shingles; changing the last word changes 1 shingle: J = 17 / 19
    base = words(20)
    changed_end = words(19) + " other"
    (a, b) = shingle_sets([base, changed_end])
    assert jaccard(a, b) == pytest.approx(17 / 19)
    # 10 words, last changed: 8 shingles each, 7 shared: J = 7 / 9 = 0.778, under 0.8
    short, short_changed = words(10, prefix="s"), words(9, prefix="s") + " other"
    result = find_duplicates([base, changed_end, short, short_changed])
    assert [c.members for c in result.clusters] == [(0, 1)]
    assert result.clusters[0].kind == "near"
    assert result.clusters[0].min_similarity == pytest.approx(17 / 19)
    assert flagged(result) == {1: "near_duplicate"}
    assert "Jaccard 0.89" in result.findings()[0].message
    assert len(find_duplicates([short, short_changed], threshold=0.75).clusters) == 1


def test_pairs_exactly_at_the_threshold_are_kept_and_just_under_it_are_not() -> None:
    # 6 words -> 4 shingles, 7 words -> 5 shingles, all 4 shared: J = 4 / 5 = 0.8 exactly
    pairs = [text for k in range(40) for text in (words(6, 10 * k), words(7, 10 * k))]
    assert jaccard(*shingle_sets(pairs[:2])) == 0.8
    at = find_duplicates(pairs, threshold=0.8)
    # LSH sees a pair at the threshold with probability P(0.8) = 0.87; each one seen is kept
    assert len(at.pairs) >= 0.7 * 40
    assert all(p.similarity == 0.8 and p.b == p.a + 1 for p in at.pairs)
    assert find_duplicates(pairs, threshold=0.81).clusters == []


def test_unrelated_examples_are_not_flagged() -> None:
    rows = load_rows(SUPPORT / "train.jsonl").rows
    result = find_duplicates(texts_for(rows))
    assert result.clusters == [] and result.findings() == []
    assert result.stats["texts"] == len(rows) == result.stats["unique"]


def test_clusters_are_transitive() -> None:
    # word sets (shingle size 1) of 40 words shifted by 3: J(a,b) = J(b,c) = 37/43 = 0.86, J(a,c) = 34/46 = 0.74
    a, b, c = words(40), words(40, 3), words(40, 6)
    result = find_duplicates([a, "unrelated text entirely", b, c], shingle_size=1)
    assert len(result.clusters) == 1
    cluster = result.clusters[0]
    assert cluster.members == (0, 2, 3) and cluster.representative == 0
    sims = {m.index: m.similarity for m in cluster.matches}
    assert sims[2] == pytest.approx(37 / 43) and sims[3] == pytest.approx(34 / 46)
    assert cluster.min_similarity == pytest.approx(34 / 46)  # under 0.8: C joined through B, not directly
    assert {(p.a, p.b) for p in result.pairs} == {(0, 2), (2, 3)}


def test_exact_and_near_copies_join_one_cluster() -> None:
    text = words(30)
    result = find_duplicates([text, text.upper(), words(29) + " changed"])
    (cluster,) = result.clusters
    assert cluster.kind == "near" and cluster.members == (0, 1, 2)
    assert flagged(result) == {1: "exact_duplicate", 2: "near_duplicate"}


def test_short_texts_still_work() -> None:
    texts = ["hi", "Hi!", "hi there", "hello", "ok", "thanks a lot", "Thanks, a LOT."]
    result = find_duplicates(texts, shingle_size=3)
    assert [c.members for c in result.clusters] == [(0, 1), (5, 6)]
    one_word, two_words = shingle_sets(["hi", "hi there"])
    assert len(one_word) == len(two_words) == 1 and one_word != two_words
    assert find_duplicates(["a b", "a b c d e f"], shingle_size=5).clusters == []


def test_recall_on_many_near_copies_and_no_false_pairs() -> None:
    rng = random.Random(3)
    vocab = [f"v{i}" for i in range(5000)]
    bases = [[rng.choice(vocab) for _ in range(60)] for _ in range(100)]
    texts = [" ".join(b) for b in bases]
    for b in bases:  # two words changed: about 0.82..0.9 Jaccard
        copy = list(b)
        for j in rng.sample(range(60), 2):
            copy[j] = "changed"
        texts.append(" ".join(copy))
    sets = shingle_sets(texts)
    truth = {(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if jaccard(sets[i], sets[j]) >= 0.8}
    result = find_duplicates(texts)
    found = {(p.a, p.b) for p in result.pairs}
    assert found <= truth  # every reported pair is verified
    assert len(found) >= 0.9 * len(truth) and len(truth) >= 90


def test_result_is_json_ready_and_reports_the_lsh_parameters() -> None:
    result = find_duplicates([words(30), words(30).lower(), words(29) + " x"], threshold=0.7, num_perm=64)
    data = json.loads(json.dumps(result.to_dict()))
    assert (data["params"]["bands"], data["params"]["rows"]) == optimal_bands(0.7, 64)
    assert data["params"]["threshold"] == 0.7 and data["clusters"][0]["members"] == [0, 1, 2]
    assert data["stats"] == {"texts": 3, "unique": 2, "candidates": 1, "pairs": 2}


def test_bad_options_are_refused() -> None:
    with pytest.raises(WorkbenchError, match="threshold"):
        find_duplicates(["a"], threshold=0)
    with pytest.raises(WorkbenchError, match="field"):
        texts_for([{"text": "a"}], field="system")


# -- the planted defects in messy.jsonl ----------------------------------------------


def planted() -> dict[int, tuple[str, str]]:
    """DEFECTS.md's by-line table: line -> (kind, note)."""
    text = (SUPPORT / "DEFECTS.md").read_text(encoding="utf-8")
    table = text.split("## By line", 1)[1]
    return {int(m[1]): (m[2], m[3]) for m in re.finditer(r"^\| (\d+) \| (\w+) \| (.*) \|$", table, re.M)}


@pytest.fixture(scope="module")
def messy():
    return load_rows(SUPPORT / "messy.jsonl", skip_bad=True)


def test_planted_exact_and_near_duplicates_are_all_found(messy) -> None:
    result = find_duplicates(texts_for(messy.rows, messy.shape))
    line = messy.row_lines
    found = {line[f.index]: f for f in result.findings()}
    clusters = {line[m]: c for c in result.clusters for m in c.members}
    expected = {
        n: kind_note for n, kind_note in planted().items() if kind_note[0] in ("exact_duplicate", "near_duplicate")
    }
    recall = {
        k: sum(n in found for n, (kind, _) in expected.items() if kind == k)
        for k in ("exact_duplicate", "near_duplicate")
    }
    assert recall == {"exact_duplicate": 6, "near_duplicate": 8}
    assert set(found) == set(expected)  # nothing else flagged
    for n, (kind, note) in expected.items():
        original = int(note.rsplit(" ", 1)[1])
        assert line[clusters[n].representative] == original, n
        if kind == "exact_duplicate" or "lower-cased" in note or "whitespace" in note:
            assert found[n].check == "exact_duplicate", n  # case and whitespace are folded away
        else:
            assert found[n].check in ("near_duplicate", "exact_duplicate"), n
    assert sum(f.check == "near_duplicate" for f in found.values()) >= 2


def test_planted_test_leakage_is_found(messy) -> None:
    test = load_rows(SUPPORT / "test.jsonl")
    clusters = find_leakage({"train": texts_for(messy.rows, messy.shape), "test": texts_for(test.rows, test.shape)})
    findings = leakage_findings(clusters)
    got = {messy.row_lines[f.index]: f for f in findings}
    expected = {n: int(note.rsplit(" ", 1)[1]) for n, (kind, note) in planted().items() if kind == "test_leakage"}
    assert set(got) == set(expected)
    for n, test_line in expected.items():
        f = got[n]
        assert (f.check, f.severity, f.score) == ("leakage", "error", 1.0)
        assert f"test example #{test.row_lines.index(test_line)}" in f.message
    assert all(c.splits == ("train", "test") and c.representative_split == "test" for c in clusters)


def test_leakage_twins_name_the_nearest_copy_and_skip_clusters_within_one_split() -> None:
    base = words(40)
    splits = {
        "train": [base, words(30, 100), words(30, 100)],  # 1 and 2: duplicates inside train only
        "val": [words(30, 500)],
        "test": [words(39) + " changed"],
    }
    (cluster,) = find_leakage(splits)
    assert cluster.kind == "near" and cluster.representative == 0 and cluster.representative_split == "test"
    (finding,) = cluster.findings()
    assert finding.index == 0 and finding.score == pytest.approx(37 / 39)
    assert "train example #0 is a near copy (Jaccard 0.95) of test example #0" in finding.message
    # no train member: the first split the cluster spans is the side flagged
    (between,) = find_leakage({"train": ["x y z"], "val": [base], "test": [base.upper()]})
    assert [(f.index, f.message) for f in between.findings()] == [
        (0, "val example #0 is an exact copy of test example #0")
    ]


# -- LSH parameters ------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_bands_and_rows_put_the_s_curve_at_the_threshold(threshold: float) -> None:
    b, r = optimal_bands(threshold, 128)
    assert b * r <= 128
    # Misses weigh far more than candidates (each is re-checked exactly): the S-curve's midpoint
    # sits below the threshold, so pairs at the threshold are nearly always candidates...
    assert threshold - 0.2 <= s_curve_midpoint(b, r) <= threshold
    assert detection_probability(threshold, b, r) >= 0.95
    # ...while clearly different pairs mostly are not, so the exact re-check stays cheap.
    assert detection_probability(threshold - 0.3, b, r) <= 0.25


def test_equal_weights_give_the_literature_choice() -> None:
    from datasketch.lsh import _optimal_param

    for threshold in (0.5, 0.7, 0.8, 0.9):
        assert optimal_bands(threshold, 128, 0.5, 0.5) == _optimal_param(threshold, 128, 0.5, 0.5)
    b, r = optimal_bands(0.8, 128, 0.5, 0.5)
    assert s_curve_midpoint(b, r) > s_curve_midpoint(*optimal_bands(0.8, 128))  # recall-weighted turns earlier


# -- splits that keep clusters whole -------------------------------------------------


def test_split_with_groups_keeps_every_duplicate_cluster_in_one_split(messy) -> None:
    result = find_duplicates(texts_for(messy.rows, messy.shape))
    groups = groups_from_clusters(len(messy.rows), result.clusters)
    for seed in range(5):
        split = split_rows(messy.rows, (0.8, 0.1, 0.1), seed=seed, groups=groups)
        where = {i: name for name in ("train", "val", "test") for i in getattr(split, f"{name}_indices")}
        assert sorted(where) == list(range(len(messy.rows)))
        for cluster in result.clusters:
            assert len({where[m] for m in cluster.members}) == 1
        n = len(messy.rows)
        assert all(abs(size - ratio * n) <= 2 for size, ratio in zip(split.sizes, (0.8, 0.1, 0.1)))
        assert split == split_rows(messy.rows, (0.8, 0.1, 0.1), seed=seed, groups=groups)
        leaks = find_leakage(
            {
                "train": [t for i, t in enumerate(texts_for(messy.rows)) if where[i] == "train"],
                "test": [t for i, t in enumerate(texts_for(messy.rows)) if where[i] == "test"],
            }
        )
        assert leaks == []


def test_split_with_groups_stays_near_the_ratios() -> None:
    rng = random.Random(0)
    groups: list[int | None] = []
    gid = 0
    while len(groups) < 1000:
        size = rng.choice([1, 1, 1, 2, 3, 5, 8])
        groups += [gid] * size if size > 1 else [None]
        gid += 1
    groups = groups[:1000]
    rows = list(range(1000))
    split = split_rows(rows, (0.7, 0.2, 0.1), seed=4, groups=groups)
    assert split.sizes == (700, 200, 100)
    by_group: dict[int, set[str]] = {}
    for name in ("train", "val", "test"):
        for i in getattr(split, f"{name}_indices"):
            if groups[i] is not None:
                by_group.setdefault(groups[i], set()).add(name)
    assert all(len(names) == 1 for names in by_group.values())
    assert len({next(iter(n)) for g, n in by_group.items()}) == 3  # groups spread over every split
    assert split_rows(rows, (0.7, 0.2, 0.1), seed=5, groups=groups).val_indices != split.val_indices


def test_split_groups_edge_cases() -> None:
    rows = list(range(10))
    assert split_rows(rows, seed=3, groups=None) == split_rows(rows, seed=3)
    assert split_rows(rows, groups=["a"] * 10).sizes == (10, 0, 0)  # one group cannot be cut
    assert sum(split_rows(rows, (0.5, 0.5), groups=[i // 4 for i in range(10)]).sizes) == 10
    assert split_rows([], groups=[]).sizes == (0, 0, 0)
    with pytest.raises(DataError, match="one per row"):
        split_rows(rows, groups=[None] * 9)


def test_groups_from_clusters_joins_overlapping_clusters() -> None:
    near = find_duplicates([words(20), words(20).upper(), "other", words(19) + " x", "z y x w"]).clusters
    semantic = semantic_duplicates(["a", "b", "c", "d", "z y x w"], 0.9, embeddings=np.eye(5)[[0, 1, 2, 4, 4]]).clusters
    assert [c.members for c in near] == [(0, 1, 3)] and [c.members for c in semantic] == [(3, 4)]
    assert groups_from_clusters(5, near + semantic) == [0, 0, None, 0, 0]
    with pytest.raises(DataError, match="names row"):
        groups_from_clusters(2, near)


# -- cancel and progress -------------------------------------------------------------


def test_cancel_stops_the_search_and_progress_reaches_the_end() -> None:
    texts = [words(30, i) for i in range(5000)]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        find_duplicates(texts, cancel=stop)
    calls: list[tuple[int, int]] = []
    late = threading.Event()

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done >= total // 4:
            late.set()  # cancelled while running: the next check stops it

    with pytest.raises(Cancelled):
        find_duplicates(texts, progress=progress, cancel=late)
    assert calls and calls[-1][0] < calls[-1][1]
    calls.clear()
    find_duplicates(texts[:3000], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)


# -- semantic duplicates (embeddings given; the real model is in test_embed.py) ------


def test_cosine_pairs_in_small_blocks_match_the_full_matrix() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 16)).astype(np.float32)
    emb[150:170] = emb[:20] + 0.05 * rng.normal(size=(20, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    full = emb @ emb.T
    truth = {(i, j) for i in range(300) for j in range(i + 1, 300) if full[i, j] >= 0.95}
    blocked = cosine_pairs(emb, 0.95, block_bytes=4 * 300 * 7)  # 7 rows per block
    assert {(p.a, p.b) for p in blocked} == truth and len(truth) >= 20


def test_semantic_duplicates_cluster_by_cosine() -> None:
    emb = np.array([[1, 0, 0], [0.96, 0.28, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32)
    texts = ["cat on a mat", "a cat sitting on a mat", "stock prices", "", "Cat on a mat!"]
    result = semantic_duplicates(texts, 0.92, embeddings=emb)
    (cluster,) = result.clusters
    assert cluster.kind == "semantic" and cluster.members == (0, 1, 4)
    assert {f.index: (f.check, f.severity) for f in result.findings()} == {
        1: ("semantic_duplicate", "info"),
        4: ("semantic_duplicate", "info"),
    }
    assert cluster.min_similarity == pytest.approx(0.96, abs=1e-6)
    assert result.params.to_dict()["method"] == "embedding"


def test_texts_for_picks_the_field() -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Question?"},
            {"role": "assistant", "content": "Answer."},
        ]
    }
    pref = {"prompt": "Q", "chosen": "good", "rejected": "bad"}
    assert texts_for([row], field="prompt") == ["Question?"]
    assert texts_for([row], field="response") == ["Answer."]
    assert texts_for([row]) == ["Question?\n\nAnswer."]  # the system prompt is left out
    assert texts_for([pref], "preference") == ["Q\n\ngood\n\nbad"]
