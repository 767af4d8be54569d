"""What the Data pane and `workbench data critique` run: findings by example id, siblings, split, generation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.data import analyze
from workbench.data.store import open_dataset
from workbench.errors import DataError
from workbench.llm import LLM

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_data" / "support"


def test_siblings_are_the_other_side_of_the_split(tmp_path: Path):
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "messy.jsonl", "notes.txt"):
        (tmp_path / name).write_text("")
    assert set(analyze.sibling_splits(tmp_path / "train.jsonl")) == {"val", "test"}
    assert set(analyze.sibling_splits(tmp_path / "messy.jsonl")) == {"val", "test"}  # a cleaned copy of train
    assert set(analyze.sibling_splits(tmp_path / "test.jsonl")) == {"train"}


def test_config_for_finds_the_config_that_trains_on_the_file(tmp_path: Path):
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "train.jsonl"
    data.write_text("")
    (tmp_path / "c.yaml").write_text("model: bundled\ndata:\n  train: data/train.jsonl\ntrain:\n  max_length: 384\n")
    assert analyze.config_for(data, tmp_path)[:2] == ("bundled", 384)
    assert analyze.config_for(tmp_path / "other.jsonl", tmp_path)[2] is None


def test_findings_are_keyed_by_example_id_after_deletions(tmp_path: Path):
    path = tmp_path / "messy.jsonl"
    shutil.copy(SUPPORT / "messy.jsonl", path)
    shutil.copy(SUPPORT / "test.jsonl", tmp_path / "test.jsonl")
    with open_dataset(path) as ds:
        ds.delete([0, 1, 2])
        result = analyze.analyze(ds, workspace=tmp_path, tokenizer=None)
        empties = [i for i, fs in result.findings.items() if any(f.check == "empty_output" for f in fs)]
        assert empties and all(not ds.get(i).view(ds.shape).response_text.strip() for i in empties)
        leaks = [i for i, fs in result.findings.items() if any(f.check == "leakage" for f in fs)]
        assert sorted(ds.get(i).line for i in leaks) == [79, 171, 201]  # the lines DEFECTS.md lists
        assert len(result.leakage) == 3 and "test example" in result.leakage[0]
        for cluster in result.clusters:
            assert all(not ds.get(m).deleted for m in cluster.members)
        assert "Duplicates" in result.summary_text() and result.headline().startswith(str(len(result.all_findings())))


def test_split_keeps_duplicate_clusters_whole_and_leaves_rejected_out(tmp_path: Path):
    path = tmp_path / "messy.jsonl"
    shutil.copy(SUPPORT / "messy.jsonl", path)
    with open_dataset(path) as ds:
        result = analyze.analyze(ds, workspace=tmp_path, tokenizer=None)
        ds.set_status([5, 6], "rejected")
        written = analyze.split_session(ds, "0.8 0.1 0.1 seed=3 -> out", workspace=tmp_path, analysis=result)
        assert sum(n for _, n in written.values()) == len(ds) - 2
        where = {}
        for name, (file, _) in written.items():
            for line in file.read_text().splitlines():
                where.setdefault(line, set()).add(name)
        for cluster in result.clusters:
            splits = {frozenset(where.get(json.dumps(ds.get(m).row, ensure_ascii=False), ())) for m in cluster.members}
            assert len(set().union(*splits)) <= 1, cluster
    with pytest.raises(DataError, match="ratios"):
        analyze.parse_split_spec("0.8", tmp_path)


def test_generated_variations_arrive_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"".join((SUPPORT / "train.jsonl").open("rb").readlines()[:3]))

    def teacher(messages: list[dict]) -> str:
        seed = json.loads(path.read_text().splitlines()[0])
        variants = []
        for i in range(3):
            row = json.loads(json.dumps(seed))
            row["messages"][1]["content"] += f" (variant {i})"
            variants.append(row)
        return json.dumps(variants + [{"messages": "broken"}])

    monkeypatch.setattr(analyze, "LLM_FACTORY", lambda model, cache: LLM(model, cache_dir=cache, mock=teacher))
    with open_dataset(path) as ds:
        ids, refused = analyze.generate(ds, "openai/gpt-4o-mini", [0], workspace=tmp_path)
        assert len(ids) == 3 and len(refused) == 1
        assert all(ds.get(i).status == "pending" and ds.get(i).source == "synthetic" for i in ids)
        ds.undo()
        assert len(ds) == 3


def test_semantic_duplicates_join_the_analysis(tmp_path: Path):
    rows = [
        {"prompt": "How do I reset my password?", "completion": "Use the reset link on the login page."},
        {"prompt": "How can I reset my password?", "completion": "Use the reset link on the login page."},
        {"prompt": "What is the capital of France?", "completion": "Paris."},
        {"prompt": "Which wine goes with fish?", "completion": "A dry white."},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open_dataset(path) as ds:
        result = analyze.semantic(ds, threshold=0.9)
        [cluster] = [c for c in result.clusters if c.kind == "semantic"]
        assert set(cluster.members) == {0, 1}
        assert any(f.check == "semantic_duplicate" for f in result.all_findings())
