"""One set of rules for what a workspace holds: configs, datasets, suites, runs, evals."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.eval.candidates import default_dataset
from workbench.eval.store import find_eval, list_evals
from workbench.train.runner import find_run, list_runs
from workbench.workspace import Workspace, is_config, is_dataset, is_side_file, is_suite

CONFIG = "name: a\nmodel: bundled\ndata:\n  train: data/train.jsonl\n"
ROW = '{"prompt": "hi", "completion": "hello"}\n'


def put(root: Path, rel: str, text: str = ROW) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(root: Path, paths: list[Path]) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_configs_are_yaml_and_yml_that_look_like_run_configs(tmp_path: Path):
    put(tmp_path, "configs/b.yml", CONFIG)
    put(tmp_path, "configs/a.yaml", CONFIG)
    put(tmp_path, "top.YAML", "# a comment first\ndata:\n  train: x.jsonl\n")
    put(tmp_path, "broken.yaml", "model: bundled\ndata: [unclosed\n")  # listed: the Config pane shows its errors
    put(tmp_path, "exports/a.trl.yaml", "model_name_or_path: x\nlora_r: 8\n")  # TRL's config, not ours
    put(tmp_path, "compose.yml", "services:\n  web:\n    image: x\n    model: nested-key\n")
    put(tmp_path, "empty.yaml", "")
    put(tmp_path, "runs/r1/config.yaml", CONFIG)  # a run's copy
    put(tmp_path, "evals/e1/eval.yaml", "models: []\n")
    put(tmp_path, ".hidden/c.yaml", CONFIG)
    put(tmp_path, "deep/.git/c.yaml", CONFIG)
    found = Workspace(tmp_path).configs()
    assert names(tmp_path, found) == ["broken.yaml", "configs/a.yaml", "configs/b.yml", "top.YAML"]
    assert all(p.is_absolute() for p in found)
    assert is_config(tmp_path / "configs" / "b.yml") and not is_config(tmp_path / "compose.yml")


def test_datasets_are_every_supported_type_and_train_first(tmp_path: Path):
    put(tmp_path, "data/val.jsonl")
    put(tmp_path, "data/train.jsonl")
    put(tmp_path, "data/more.ndjson")
    put(tmp_path, "data/table.csv", "prompt,completion\nhi,hello\n")
    (tmp_path / "data" / "rows.parquet").write_bytes(b"PAR1")
    (tmp_path / "data" / "rows.pq").write_bytes(b"PAR1")
    put(tmp_path, "alpaca.json", '[{"instruction": "a", "output": "b"}]')
    put(tmp_path, "keyed.json", '{"data": [{"text": "a"}]}')
    put(tmp_path, "tokenizer_config.json", '{"model_max_length": 512}')  # one object: not a dataset
    put(tmp_path, "hf/dataset_dict.json", '{"splits": ["train"]}')
    put(tmp_path, "hf/train/state.json", "{}")
    put(tmp_path, "hf/train/dataset_info.json", "{}")
    put(tmp_path, "hf/train/data-00000-of-00001.arrow", "")
    put(tmp_path, "single/state.json", "{}")
    put(tmp_path, "single/dataset_info.json", "{}")
    put(tmp_path, "notes.txt", "hello")
    found = Workspace(tmp_path).datasets()
    assert names(tmp_path, found) == [
        "data/train.jsonl",
        "alpaca.json",
        "data/more.ndjson",
        "data/rows.parquet",
        "data/rows.pq",
        "data/table.csv",
        "data/val.jsonl",
        "hf",
        "keyed.json",
        "single",
    ]
    assert is_dataset(tmp_path / "hf") and is_dataset(tmp_path / "data" / "rows.parquet")


def test_the_workbenchs_side_files_are_skipped(tmp_path: Path):
    put(tmp_path, "data/train.jsonl")
    put(tmp_path, "data/.train.jsonl.journal", '{"base": "x"}\n')
    put(tmp_path, "data/.train.jsonl.lock", "")
    put(tmp_path, "data/.train.jsonl.journal.orphan-20260101-000000", '{"base": "x"}\n')
    put(tmp_path, "data/.train.jsonl.123.456.tmp", ROW)
    put(tmp_path, "data/train.jsonl.review.json", '{"version": 1, "rows": [{"status": "accepted"}]}')
    put(tmp_path, "data/train.jsonl.orig", ROW)
    put(tmp_path, "data/schema.json", '{"type": "object", "items": [{"type": "string"}]}')
    put(tmp_path, "state.json", '{"workspaces": {}, "data": []}')
    put(tmp_path, "data/regression.jsonl", '{"id": "c1", "messages": [], "expect": {"contains": "x"}}\n')
    put(tmp_path, "runs/r1/metrics.jsonl", '{"step": 1}\n')
    put(tmp_path, "evals/e1/predictions.jsonl", '{"id": 1}\n')
    put(tmp_path, "serves/s1/requests.jsonl", '{"id": 1}\n')
    put(tmp_path, ".workbench/llm-cache/x.jsonl")
    put(tmp_path, "__pycache__/x.jsonl")
    ws = Workspace(tmp_path)
    assert names(tmp_path, ws.datasets()) == ["data/train.jsonl"]
    assert names(tmp_path, ws.suites()) == ["data/regression.jsonl"]
    for name in (".train.jsonl.journal", ".train.jsonl.lock", "train.jsonl.review.json", "train.jsonl.orig"):
        assert is_side_file(name)
    assert not is_side_file("train.jsonl")


def test_hidden_directories_are_not_entered(tmp_path: Path):
    put(tmp_path, ".venv/lib/site.jsonl")
    put(tmp_path, "a/.cache/b.jsonl")
    put(tmp_path, "a/b/c/deep.jsonl")
    put(tmp_path, ".hidden.jsonl")
    assert names(tmp_path, Workspace(tmp_path).datasets()) == ["a/b/c/deep.jsonl"]


def test_suites_at_any_depth_sorted(tmp_path: Path):
    case = json.dumps({"id": "c", "messages": [{"role": "user", "content": "x"}], "expect": {}}) + "\n"
    put(tmp_path, "z.jsonl", case)
    put(tmp_path, "suites/red/team.jsonl", case)
    put(tmp_path, "suites/a.jsonl", case)
    put(tmp_path, "suites/not-a-suite.jsonl")
    put(tmp_path, "evals/e1/cases.jsonl", case)
    found = Workspace(tmp_path).suites()
    assert names(tmp_path, found) == ["suites/a.jsonl", "suites/red/team.jsonl", "z.jsonl"]
    assert is_suite(found[0]) and not is_suite(tmp_path / "suites" / "not-a-suite.jsonl")
    assert Workspace(tmp_path).datasets() == [tmp_path / "suites" / "not-a-suite.jsonl"]


def test_runs_and_evals_are_the_job_directories(tmp_path: Path):
    ws = Workspace(tmp_path)
    assert ws.runs() == [] and ws.evals() == [] and list_runs(tmp_path) == [] and list_evals(tmp_path) == []
    put(tmp_path, "runs/b-1/status.json", json.dumps({"state": "completed", "created": 2.0}))
    put(tmp_path, "runs/a-1/config.yaml", CONFIG)
    (tmp_path / "runs" / "stray").mkdir()
    put(tmp_path, "runs/notes.txt", "x")
    put(tmp_path, "evals/e-1/eval.yaml", "models: []\n")
    (tmp_path / "evals" / "junk").mkdir()
    assert ws.runs_dir == tmp_path.resolve() / "runs" and ws.evals_dir == tmp_path.resolve() / "evals"
    assert [p.name for p in ws.runs()] == ["a-1", "b-1"]
    assert [p.name for p in ws.evals()] == ["e-1"]
    assert {r.id for r in list_runs(tmp_path)} == {"a-1", "b-1"}
    assert find_run(tmp_path, "b").id == "b-1" and find_eval(tmp_path, "e").id == "e-1"


def test_default_dataset_looks_at_every_workspace_config(tmp_path: Path):
    put(tmp_path, "data/test.jsonl")
    put(tmp_path, "exp/one/c.yml", "data:\n  train: ../../data/test.jsonl\n  test: ../../data/test.jsonl\n")
    assert default_dataset(tmp_path) == (tmp_path / "data" / "test.jsonl").resolve()
