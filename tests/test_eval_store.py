"""The eval directory and what goes into it: spec, frozen examples, predictions, status, candidates."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml
from appkit import fake_run

from workbench.cli import main
from workbench.errors import DataError
from workbench.eval import generate as gen
from workbench.eval import runner
from workbench.eval.candidates import (
    config_test_file,
    default_dataset,
    default_models,
    examples_from_dataset,
    examples_from_suite,
    list_candidates,
    resolve_models,
)
from workbench.eval.store import (
    EvalDir,
    EvalError,
    EvalSpec,
    GenerationSettings,
    ModelRef,
    create_eval,
    find_eval,
    list_evals,
)

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_data" / "support"


def refs(*keys: str) -> list[ModelRef]:
    return [
        ModelRef(
            key=k, label=k.upper(), kind="base" if k == "base" else "adapter", path=f"/m/{k}", base_model="bundled"
        )
        for k in keys
    ]


def examples(n: int) -> list[dict]:
    return [
        {
            "id": str(i),
            "index": i,
            "messages": [{"role": "user", "content": f"question {i} " + "x " * i}],
            "reference": f"answer {i}",
        }
        for i in range(n)
    ]


def new_eval(workspace: Path, n: int = 5, keys: tuple[str, ...] = ("base", "a"), **generation) -> EvalDir:
    spec = EvalSpec(
        name="t",
        dataset="/data/test.jsonl",
        models=refs(*keys),
        generation=GenerationSettings(**generation),
        schema="/data/schema.json",
    )
    return create_eval(workspace, spec, examples(n))


# --- the directory -------------------------------------------------------------------


def test_create_round_trips_spec_examples_and_status(tmp_path):
    ev = new_eval(tmp_path, n=3, max_new_tokens=32)
    assert ev.path.parent == tmp_path / "evals" and ev.id.startswith("t-")
    again = EvalDir(ev.path)
    spec = again.spec()
    assert [m.key for m in spec.models] == ["base", "a"] and spec.models[1].label == "A"
    assert spec.generation.max_new_tokens == 32 and spec.generation.batch_size == 16 and spec.generation.greedy
    assert spec.schema_path == "/data/schema.json"
    assert "schema: /data/schema.json" in ev.spec_path.read_text()  # the file says "schema", as documented
    assert again.examples() == examples(3)
    status = again.status()
    assert status.state == "created" and status.done == 0 and status.total == 6
    assert again.predictions() == {} and again.progress() == {"base": 0, "a": 0}


def test_unknown_spec_keys_survive_a_round_trip(tmp_path):
    ev = new_eval(tmp_path)
    data = yaml.safe_load(ev.spec_path.read_text())
    data["judge"] = {"model": "openai/gpt-4o-mini"}
    ev.spec_path.write_text(yaml.safe_dump(data))
    from workbench.eval.store import dump_spec

    assert "judge" in yaml.safe_load(dump_spec(EvalDir(ev.path).spec()))


def test_create_refuses_duplicate_keys_ids_and_empty_prompts(tmp_path):
    with pytest.raises(EvalError, match="unique"):
        create_eval(tmp_path, EvalSpec(models=refs("a", "a")), examples(2))
    with pytest.raises(EvalError, match="unique"):
        create_eval(tmp_path, EvalSpec(models=refs("a")), examples(2) + examples(1))
    with pytest.raises(EvalError, match="no prompt"):
        create_eval(tmp_path, EvalSpec(models=refs("a")), [{"id": "0", "messages": []}])
    with pytest.raises(EvalError, match="at least one model"):
        create_eval(tmp_path, EvalSpec(), examples(1))


def test_predictions_last_line_wins_and_a_torn_line_is_skipped_then_sealed(tmp_path):
    ev = new_eval(tmp_path, n=3)
    ev.append_predictions([{"model": "base", "id": "0", "output": "old"}, {"model": "base", "id": "1", "output": "b1"}])
    ev.append_predictions([{"model": "base", "id": "0", "output": "new"}])
    with open(ev.predictions_path, "a") as fh:
        fh.write('{"model": "a", "id": "0", "outp')  # a worker killed mid-write
    preds = ev.predictions()
    assert preds[("base", "0")]["output"] == "new" and ("a", "0") not in preds
    assert ev.progress() == {"base": 2, "a": 0}
    ev.append_predictions([{"model": "a", "id": "0", "output": "a0"}])  # the resumed worker goes on
    preds = ev.predictions()
    assert preds[("a", "0")]["output"] == "a0" and len(preds) == 3
    lines = ev.predictions_path.read_text().splitlines()
    assert lines[-2].startswith('{"model": "a", "id": "0", "outp') and json.loads(lines[-1])["output"] == "a0"


def test_progress_ignores_predictions_of_unknown_examples(tmp_path):
    ev = new_eval(tmp_path, n=2)
    ev.append_predictions([{"model": "base", "id": "9", "output": "?"}, {"model": "a", "id": "1", "output": "x"}])
    assert ev.progress() == {"base": 0, "a": 1}


def test_list_and_find(tmp_path):
    first = new_eval(tmp_path)
    spec = EvalSpec(name="other", created=time.time() + 10, models=refs("base"))
    second = create_eval(tmp_path, spec, examples(4))
    second.append_predictions([{"model": "base", "id": "0", "output": "o"}])
    listed = list_evals(tmp_path)
    assert [e.id for e in listed] == [second.id, first.id]
    assert listed[0].done == 1 and listed[0].total == 4 and listed[0].examples == 4 and listed[0].models == ["base"]
    assert listed[1].labels == ["BASE", "A"] and listed[1].state == "created"
    assert find_eval(tmp_path, second.id).path == second.path
    assert find_eval(tmp_path, "oth").path == second.path
    assert find_eval(tmp_path, "last").path == second.path
    assert find_eval(tmp_path, str(first.path)).path == first.path
    with pytest.raises(EvalError, match="no eval"):
        find_eval(tmp_path, "nope")
    assert list_evals(tmp_path / "elsewhere") == []


def test_a_live_state_whose_worker_is_gone_reads_as_lost(tmp_path):
    ev = new_eval(tmp_path)
    raw = ev.read_status_raw()
    raw.update(state="running", pid=2**22 + 12345, heartbeat=time.time())
    ev.write_status(raw)
    assert ev.status().state == "lost"
    raw.update(pid=os.getpid())
    ev.write_status(raw)
    assert ev.status().state == "running"
    assert ev.status(now=time.time() + 3600).state == "lost"


def test_runner_refuses_what_cannot_be_done(tmp_path):
    ev = new_eval(tmp_path, n=1, keys=("base",))
    with pytest.raises(EvalError, match="not running"):
        runner.stop(ev)
    ev.append_predictions([{"model": "base", "id": "0", "output": "o"}])
    with pytest.raises(EvalError, match="every prediction"):
        runner.resume(ev)
    raw = ev.read_status_raw()
    raw.update(state="running", pid=os.getpid(), heartbeat=time.time())
    ev.write_status(raw)
    with pytest.raises(EvalError, match="already running"):
        runner.launch(ev)


# --- generation bookkeeping, with a fake model --------------------------------------------


class FakeModels:
    """Stands in for load_model / generate_batch: answers 'KEY:question', counts loads and batches."""

    def __init__(self, monkeypatch) -> None:
        self.loads: list[str] = []
        self.batches: list[int] = []
        self.live = 0
        monkeypatch.setattr(gen, "load_model", self.load)
        monkeypatch.setattr(gen, "generate_batch", self.generate)
        monkeypatch.setattr(gen, "prompt_ids", lambda tokenizer, messages: [1] * len(messages[-1]["content"]))

    def load(self, ref, merge=True):
        assert self.live == 0, "one model at a time"
        self.loads.append(ref.key)
        self.live += 1
        return _Freed(self, ref.key), None

    def generate(self, model, tokenizer, prompts, settings, seed=None):
        self.batches.append(len(prompts))
        return [gen.Generated(f"{model.key}:{len(p)}", len(p), 3, "stop") for p in prompts]


class _Freed:
    def __init__(self, owner: FakeModels, key: str) -> None:
        self.owner, self.key = owner, key

    def __del__(self) -> None:
        self.owner.live -= 1


def test_generate_cancels_between_batches_and_resumes_without_duplicates(tmp_path, monkeypatch):
    fake = FakeModels(monkeypatch)
    ev = new_eval(tmp_path, n=5, batch_size=2)
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append((p.phase, p.model, p.done, p.total))
        if p.phase == "generating" and p.model == "a":
            cancel.set()

    assert gen.generate(ev, cancel=cancel, progress=progress) == "stopped"
    assert ev.progress() == {"base": 5, "a": 2}
    assert fake.loads == ["base", "a"] and fake.batches == [2, 2, 1, 2]
    assert seen[0] == ("loading", "base", 0, 10) and ("generating", "a", 7, 10) in seen
    # Resume: only the missing pairs, and a model with nothing left is not even loaded.
    assert gen.generate(ev, cancel=threading.Event()) == "completed"
    assert fake.loads == ["base", "a", "a"] and fake.batches[4:] == [2, 1]
    lines = [json.loads(line) for line in ev.predictions_path.read_text().splitlines()]
    assert len(lines) == 10 and len({(r["model"], r["id"]) for r in lines}) == 10
    record = ev.predictions()[("a", "4")]
    assert record["output"] == "a:" + str(len("question 4 " + "x " * 4)) and record["finish"] == "stop"
    assert set(record) == {"model", "id", "output", "prompt_tokens", "output_tokens", "finish", "seconds"}
    assert gen.generate(ev) == "completed" and fake.loads == ["base", "a", "a"]


def test_batches_group_similar_lengths_longest_first():
    assert gen.batches([5, 50, 7, 48, 6], 2) == [[1, 3], [2, 4], [0]]


# --- candidates and examples ---------------------------------------------------------------


def _adapter(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text('{"peft_type": "LORA", "base_model_name_or_path": "bundled"}')


def _checkpoint(run_path: Path, step: int, *, complete: bool = True, full: bool = False) -> None:
    path = run_path / f"checkpoint-{step}"
    if full:
        path.mkdir(parents=True)
        (path / "config.json").write_text("{}")
    else:
        _adapter(path)
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def test_candidates_from_runs(tmp_path):
    old = fake_run(tmp_path, "demo-20261120-094500", age_s=5 * 86400)
    _adapter(old.adapter_path)
    _checkpoint(old.path, 24)
    _checkpoint(old.path, 48)
    _checkpoint(old.path, 64, complete=False)  # killed while saving: not offered
    raw = old.read_status_raw()
    raw["best_checkpoint"] = str(old.path / "checkpoint-24")
    old.write_status(raw)
    new = fake_run(tmp_path, "full-20261125-114013", age_s=60)
    config = yaml.safe_load(new.config_path.read_text())
    model_dir = tmp_path / "models" / "tiny-llama"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text("{}")
    config["model"], config["finetune"] = str(model_dir), "full"
    new.config_path.write_text(yaml.safe_dump(config))
    _checkpoint(new.path, 10, full=True)
    fake_run(tmp_path, "same-20261124-080000", age_s=86400)  # bundled again, nothing saved yet

    found = list_candidates(tmp_path)
    assert [c.key for c in found] == [
        "base",
        "base:bundled",
        "full-20261125-114013/ckpt-10",
        "demo-20261120-094500/adapter",
        "demo-20261120-094500/ckpt-48",
        "demo-20261120-094500/ckpt-24",
    ]
    by_key = {c.key: c for c in found}
    assert by_key["base"].base_model == str(model_dir) and by_key["base"].kind == "base"
    assert by_key["base"].label == "base · tiny-llama"
    assert by_key["base:bundled"].label == "base · SmolLM2-135M-Instruct"
    ckpt = by_key["full-20261125-114013/ckpt-10"]
    assert ckpt.kind == "checkpoint" and ckpt.step == 10 and ckpt.base_model == str(model_dir)
    assert ckpt.label == "full 11:40 · step 10" and Path(ckpt.path) == new.path / "checkpoint-10"
    final = by_key["demo-20261120-094500/adapter"]
    assert final.kind == "adapter" and final.run_id == "demo-20261120-094500" and final.step == 24
    assert final.label == "demo 09:45 · final (best, step 24)" and final.base_model == "bundled"
    assert [c.key for c in default_models(found)] == ["base", "demo-20261120-094500/adapter"]

    picked = resolve_models(
        tmp_path,
        ["base", "demo/final", "demo-20261120-094500/checkpoint-48", "last/10", str(old.path / "checkpoint-24")],
    )
    assert [c.key for c in picked] == [
        "base",
        "demo-20261120-094500/adapter",
        "demo-20261120-094500/ckpt-48",
        "full-20261125-114013/ckpt-10",
        "demo-20261120-094500/ckpt-24",
    ]
    with pytest.raises(EvalError, match="no model 'demo/ckpt-64'"):
        resolve_models(tmp_path, ["demo/ckpt-64"])


def test_an_empty_workspace_offers_the_bundled_model(tmp_path):
    assert [(c.key, c.path) for c in list_candidates(tmp_path)] == [("base", "bundled")]


def test_examples_freeze_prompt_and_reference():
    found = examples_from_dataset(SUPPORT / "test.jsonl", limit=3)
    assert [e["id"] for e in found] == ["0", "1", "2"] and [e["index"] for e in found] == [0, 1, 2]
    rows = [json.loads(line) for line in (SUPPORT / "test.jsonl").read_text().splitlines()[:3]]
    assert found[1]["messages"] == rows[1]["messages"][:-1]
    assert found[1]["reference"] == rows[1]["messages"][-1]["content"]
    chosen = examples_from_dataset(SUPPORT / "test.jsonl", selection=[7, 2, 30], limit=2)
    assert [e["id"] for e in chosen] == ["2", "7"]
    with pytest.raises(DataError, match="999"):
        examples_from_dataset(SUPPORT / "test.jsonl", selection=[999])


def test_examples_of_every_shape(tmp_path):
    pref = examples_from_dataset(SUPPORT / "preferences.jsonl", limit=1)[0]
    row = json.loads((SUPPORT / "preferences.jsonl").read_text().splitlines()[0])
    chosen = row["chosen"] if isinstance(row["chosen"], str) else row["chosen"][-1]["content"]
    assert pref["reference"] == chosen and pref["messages"][-1]["role"] == "user"
    alpaca = examples_from_dataset(SUPPORT / "alpaca_sample.json", limit=1)[0]
    assert alpaca["messages"][0]["role"] == "user" and alpaca["reference"]
    sharegpt = examples_from_dataset(SUPPORT / "sharegpt_sample.jsonl", limit=1)[0]
    assert sharegpt["messages"][-1]["role"] == "user" and sharegpt["reference"]
    shapes = {
        "prompt_only.jsonl": ('{"prompt": "Hi?"}', None),
        "unpaired.jsonl": ('{"prompt": "Hi?", "completion": "bad", "label": false}', None),
        "pc.jsonl": ('{"prompt": "Hi?", "completion": "Hello."}', "Hello."),
        "implicit.jsonl": ('{"chosen": "Q: hi? A: hello there", "rejected": "Q: hi? A: go away"}', " hello there"),
    }
    for name, (line, reference) in shapes.items():
        (tmp_path / name).write_text(line + "\n")
        example = examples_from_dataset(tmp_path / name)[0]
        assert example["reference"] == reference, name
        assert example["messages"][-1]["role"] == "user", name
    (tmp_path / "text.jsonl").write_text('{"text": "just text"}\n')
    with pytest.raises(DataError, match="no prompt and answer"):
        examples_from_dataset(tmp_path / "text.jsonl")


def test_suite_cases_become_examples_with_expectations():
    found, problems = examples_from_suite(SUPPORT / "regression.jsonl")
    assert found and problems == []
    assert found[0]["id"] == "refund-return-delivered" and found[0]["index"] == 0
    assert found[0]["reference"] is None and "json_schema" in found[0]["expect"]
    assert found[0]["messages"][-1]["role"] == "user"


def test_the_test_split_of_a_workspace(tmp_path):
    assert config_test_file(ROOT / "sample_data" / "configs" / "demo.yaml") == SUPPORT / "test.jsonl"
    assert default_dataset(tmp_path) is None
    shutil.copytree(SUPPORT, tmp_path / "support")
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "sample_data" / "configs" / "demo.yaml", tmp_path / "configs" / "demo.yaml")
    assert default_dataset(tmp_path) == (tmp_path / "support" / "test.jsonl").resolve()


# --- the command line ------------------------------------------------------------------------


def test_cli_candidates_list_and_errors(tmp_path, capsys):
    run = fake_run(tmp_path, "demo-20261120-094500")
    _adapter(run.adapter_path)
    assert main(["-w", str(tmp_path), "eval", "candidates", "--json"]) == 0
    keys = [c["key"] for c in json.loads(capsys.readouterr().out)]
    assert keys == ["base", "demo-20261120-094500/adapter"]
    assert main(["eval", "list", "-w", str(tmp_path)]) == 0
    assert "no evals" in capsys.readouterr().out
    ev = new_eval(tmp_path)
    assert main(["eval", "list", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ev.id in out and "0/10" in out and "created" in out
    assert (
        main(
            ["eval", "new", "-w", str(tmp_path), "--models", "base,nope/adapter", "--data", str(SUPPORT / "test.jsonl")]
        )
        == 2
    )
    assert "no model 'nope/adapter'" in capsys.readouterr().err
    assert main(["eval", "stop", "-w", str(tmp_path), ev.id]) == 2
    assert "not running" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", "new", "-w", str(empty)]) == 2
    assert "--data" in capsys.readouterr().err
