"""Merge (workbench.ship.merge), its model card and provenance, on the tiny random Llama with real random LoRA
adapters (tests/shipkit.py); one slow test on the bundled SmolLM2."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import yaml
from shipkit import SUPPORT, fake_run, save_random_lora

from workbench.errors import ShipError
from workbench.ship import merge as merge_mod
from workbench.ship.merge import FOUR_BIT_MESSAGE, merge_model, stop_token_ids, template_stop_tokens
from workbench.ship.provenance import dir_size, read_provenance, system_prompt_of_run
from workbench.workspace import Workspace

SYSTEM = json.loads((SUPPORT / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])["messages"][0]["content"]


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def unmerged(base_dir: Path, adapter: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter).eval()


def load(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, tiny_model_dir):
    """A workspace with a demo run, an eval that included its final adapter, and that adapter merged."""
    from evalkit import EXAMPLES, OUTPUTS

    from workbench.eval.candidates import resolve_models
    from workbench.eval.store import EvalSpec, create_eval

    ws = tmp_path_factory.mktemp("ws")
    run = fake_run(ws, tiny_model_dir)
    final = resolve_models(ws, ["demo/final"])[0]
    spec = EvalSpec(
        name="support", dataset=str(SUPPORT / "test.jsonl"), models=[final], schema=str(SUPPORT / "schema.json")
    )
    ev = create_eval(ws, spec, EXAMPLES)
    ev.append_predictions(
        {"model": final.key, "id": e["id"], "output": out, "prompt_tokens": 9, "output_tokens": 9, "finish": "stop"}
        for e, out in zip(EXAMPLES, OUTPUTS["run/adapter"])
    )
    before = hashes(run)
    messages: list[str] = []
    result = merge_model(ws, "demo", progress=messages.append)
    return {"ws": ws, "run": run, "result": result, "before": before, "messages": messages, "eval": ev, "ref": final}


def test_merged_logits_equal_base_plus_adapter(shipped, tiny_model_dir):
    run, result = shipped["run"], shipped["result"]
    ids = [1, 5, 17, 99, 250, 3, 42, 7]
    merged = load(result.path)
    peft = unmerged(tiny_model_dir, run / "adapter")
    want, got = logits(peft, ids), logits(merged, ids)
    assert (want - got).abs().max().item() < 1e-4
    # the adapter changes the model (else the comparison above would prove nothing)
    assert (logits(load(tiny_model_dir), ids) - got).abs().max().item() > 1e-2


def test_merge_result_and_layout(shipped):
    result, ws = shipped["result"], shipped["ws"]
    assert result.path == ws / "models" / "demo-20261203-114013-merged"
    assert (result.source, result.run_id, result.step, result.dtype) == (
        "demo-20261203-114013/adapter",
        "demo-20261203-114013",
        4,
        "fp32",
    )
    names = {p.name for p in result.path.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "README.md", "workbench.json"} <= names
    assert not any(n.startswith("adapter") for n in names)  # merged: no PEFT files
    assert result.size_bytes == dir_size(result.path) > 0
    assert not [p for p in (ws / "models").iterdir() if p.name.startswith(".")]  # no temp dir left
    assert any("merge_and_unload" in m for m in shipped["messages"])
    assert result.path in Workspace(ws).merged_models()


def test_tokenizer_chat_template_and_stop_tokens(shipped):
    from transformers import AutoTokenizer, GenerationConfig

    path = shipped["result"].path
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert "<|im_start|>" in tokenizer.chat_template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    eos = GenerationConfig.from_pretrained(path).eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in eos


def test_stop_tokens_list_the_templates_end_of_turn_and_the_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.eos_token = "<|endoftext|>"  # a tokenizer whose EOS is not the template's end of turn
    assert template_stop_tokens(tokenizer) == ["<|im_end|>"]
    assert stop_token_ids(tokenizer) == [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id]


def test_provenance(shipped, tiny_model_dir):
    result, run = shipped["result"], shipped["run"]
    prov = read_provenance(result.path)
    assert prov["kind"] == "merged"
    assert prov["source"] == result.source and prov["run_id"] == result.run_id and prov["step"] == 4
    assert prov["base"] == str(tiny_model_dir) and prov["dtype"] == "fp32"
    assert prov["adapter_path"] == str((run / "adapter").resolve())
    assert prov["config"] == yaml.safe_load((run / "config.yaml").read_text())
    train = next(d for d in prov["data"] if d["split"] == "train")
    assert train["path"] == str(SUPPORT / "train.jsonl") and train["rows"] == 320
    assert train["sha256"] == hashlib.sha256((SUPPORT / "train.jsonl").read_bytes()).hexdigest()
    assert prov["system_prompt"] == SYSTEM
    assert [e["eval"] for e in prov["evals"]] == [shipped["eval"].id]


def test_model_card(shipped, tiny_model_dir):
    from huggingface_hub import ModelCard

    from workbench.eval.results import Results

    result = shipped["result"]
    card = ModelCard.load(result.path / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert "lora" in card.data.tags
    text = card.text
    assert str(tiny_model_dir) in text  # the base
    assert "SFT, lora" in text and "r 8, alpha 16, modules all-linear" in text
    assert hashlib.sha256((SUPPORT / "train.jsonl").read_bytes()).hexdigest() in text
    assert "learning_rate: 0.001" in text  # the run's config
    assert "Trained on 320 examples" in text
    # the eval figure with its interval, as the eval core computes it
    summary = next(s for s in Results(shipped["eval"]).summaries() if s.model.key == shipped["ref"].key)
    valid = summary.metrics["schema_valid"]
    assert f"{valid.mean:.0%} [{valid.lo:.0%}, {valid.hi:.0%}] (n={valid.n})" in text
    assert shipped["eval"].id in text
    for lib in ("torch", "transformers", "peft", "trl"):
        assert f"- {lib} " in text


def test_the_run_is_never_modified(shipped):
    assert hashes(shipped["run"]) == shipped["before"]


def test_checkpoint_ref_merges_that_checkpoint(shipped, tiny_model_dir):
    ws, run = shipped["ws"], shipped["run"]
    result = merge_model(ws, "demo/ckpt-8")
    assert result.path.name == "demo-20261203-114013-ckpt-8-merged"
    assert (result.source, result.step) == ("demo-20261203-114013/ckpt-8", 8)
    ids = [1, 9, 33, 70]
    got = logits(load(result.path), ids)
    assert (logits(unmerged(tiny_model_dir, run / "checkpoint-8"), ids) - got).abs().max().item() < 1e-4
    assert (logits(load(shipped["result"].path), ids) - got).abs().max().item() > 1e-3  # not the final adapter


def test_final_by_name_and_overwrite(shipped, tmp_path):
    ws = shipped["ws"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me?")
    with pytest.raises(ShipError, match="already exists and is not empty"):
        merge_model(ws, "demo/final", out)
    assert (out / "old.txt").is_file()
    result = merge_model(ws, "demo/final", out, overwrite=True)
    assert result.path == out and result.source == "demo-20261203-114013/adapter"
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_refusals(shipped, tmp_path):
    ws, run = shipped["ws"], shipped["run"]
    with pytest.raises(ShipError, match="no model 'nope/final'"):
        merge_model(ws, "nope/final", tmp_path / "a")
    with pytest.raises(ShipError, match="nothing to merge"):
        merge_model(ws, "base", tmp_path / "a")
    for four_bit in ("4bit", "nf4"):
        with pytest.raises(ShipError) as err:
            merge_model(ws, "demo", tmp_path / "a", dtype=four_bit)
        assert str(err.value) == FOUR_BIT_MESSAGE and "bf16 or fp16" in str(err.value)
    with pytest.raises(ShipError, match="unknown dtype 'int8'"):
        merge_model(ws, "demo", tmp_path / "a", dtype="int8")
    assert not (tmp_path / "a").exists()
    assert hashes(run) == shipped["before"]


def test_incomplete_checkpoints_are_refused(shipped, tmp_path):
    ws, run = shipped["ws"], shipped["run"]
    torn = run.parent / "torn-20261203-120000"
    shutil.copytree(run, torn)
    (torn / "checkpoint-8" / "trainer_state.json").unlink()  # killed while saving
    with pytest.raises(ShipError, match=r"checkpoint-8 is incomplete \(no trainer_state.json"):
        merge_model(ws, "torn/ckpt-8", tmp_path / "a")
    with pytest.raises(ShipError, match="incomplete"):
        merge_model(ws, str(torn / "checkpoint-8"), tmp_path / "a")
    (torn / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(ShipError, match="no adapter weights"):
        merge_model(ws, str(torn / "adapter"), tmp_path / "a")
    shutil.rmtree(torn)
    assert not (tmp_path / "a").exists()


def test_too_little_disk_is_refused(shipped, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(merge_mod.shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ShipError, match=r"not enough free disk .* about 0\.00 GB needed \(2x the merged weights\)"):
        merge_model(shipped["ws"], "demo", tmp_path / "a")
    assert not (tmp_path / "a").exists() and not list(tmp_path.iterdir())


def test_a_failure_leaves_nothing_half_written(shipped, tmp_path, monkeypatch):
    import workbench.ship.card as card

    def broken(*_a, **_k):
        raise OSError("disk gone")

    monkeypatch.setattr(card, "write_model_card", broken)
    with pytest.raises(OSError, match="disk gone"):
        merge_model(shipped["ws"], "demo", tmp_path / "a")
    assert not list(tmp_path.iterdir())


def test_full_finetune_checkpoint_is_saved_as_is(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    ws = tmp_path / "ws"
    run = fake_run(ws, tiny_model_dir, name="full", steps=(4,), best=4)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["finetune"] = "full"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    ckpt = run / "checkpoint-12"
    model = unmerged(tiny_model_dir, run / "checkpoint-4").merge_and_unload()  # a "trained" full model
    model.save_pretrained(ckpt)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(ckpt)
    (ckpt / "trainer_state.json").write_text('{"global_step": 12}')
    result = merge_model(ws, "full/ckpt-12")
    assert any("full fine-tune" in n for n in result.notes) and result.step == 12
    ids = [4, 8, 15, 16, 23, 42]
    assert (logits(load(ckpt), ids) - logits(load(result.path), ids)).abs().max().item() < 1e-5
    assert read_provenance(result.path)["finetune"] == "full"


def test_qlora_run_merges_into_a_full_precision_base(tmp_path, tiny_model_dir):
    ws = tmp_path / "ws"
    run = fake_run(ws, tiny_model_dir, name="q", steps=(4,), best=4)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["finetune"] = "qlora"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    result = merge_model(ws, "q")
    assert result.dtype == "fp32"
    assert any("QLoRA" in n and "not 4-bit" in n for n in result.notes)
    assert "QLoRA on a 4-bit base" in (result.path / "README.md").read_text()


def test_system_prompt_of_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {
            "messages": [
                {"role": "system", "content": s},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
            ]
        }
        for s in ("one", "two", "two")
    ] + [{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}] * 3
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"train": str(tmp_path / "train.jsonl")}}))
    assert system_prompt_of_run(run) == "two"
    # the config's system prompt goes on the rows without one, as the trainer saw them
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"train": "../train.jsonl", "system_prompt": "cfg"}}))
    assert system_prompt_of_run(run) == "cfg"
    (tmp_path / "train.jsonl").write_text(json.dumps(rows[-1]) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"train": str(tmp_path / "train.jsonl")}}))
    assert system_prompt_of_run(run) is None
    assert system_prompt_of_run(tmp_path / "nothing") is None


def test_read_provenance_and_dir_size(tmp_path):
    assert read_provenance(tmp_path) == {}
    (tmp_path / "workbench.json").write_text("{torn")
    assert read_provenance(tmp_path) == {}
    (tmp_path / "workbench.json").write_text('{"kind": "merged"}')
    assert read_provenance(tmp_path) == {"kind": "merged"}
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"x" * 100)
    assert dir_size(tmp_path) == 100 + len('{"kind": "merged"}')
    assert dir_size(tmp_path / "sub" / "w.bin") == 100


def test_disk_estimate_reads_the_safetensors_headers(tiny_model_dir):
    from safetensors import safe_open

    with safe_open(str(tiny_model_dir / "model.safetensors"), "pt") as fh:
        n = sum(_prod(fh.get_slice(k).get_shape()) for k in fh.keys())  # noqa: SIM118 - safe_open is no dict
    assert merge_mod.estimate_weights_bytes(tiny_model_dir, "fp32") == 4 * n
    assert merge_mod.estimate_weights_bytes(tiny_model_dir, "bf16") == 2 * n


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


@pytest.mark.slow
def test_bundled_model_merge_matches_peft(tmp_path, bundled_dir):
    from transformers import AutoTokenizer

    from workbench.eval.generate import generate_batch, prompt_ids
    from workbench.eval.store import GenerationSettings

    ws = tmp_path / "ws"
    run = fake_run(ws, bundled_dir, steps=(), best=None)
    # a gentler random adapter than shipkit's default, so the greedy answer is text, not noise
    shutil.rmtree(run / "adapter")
    save_random_lora(bundled_dir, run / "adapter", seed=3, scale=0.3)
    result = merge_model(ws, "demo")
    merged, peft = load(result.path), unmerged(bundled_dir, run / "adapter")
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "I'm Ana Ruiz; my Drift vacuum arrived broken."},
    ]
    ids = prompt_ids(tokenizer, messages)
    assert (logits(peft, ids) - logits(merged, ids)).abs().max().item() < 1e-3
    settings = GenerationSettings(max_new_tokens=16)
    got = generate_batch(merged, tokenizer, [ids], settings)[0]
    want = generate_batch(peft, tokenizer, [ids], settings)[0]
    assert got.output == want.output and got.output_tokens > 0
    eos = merged.generation_config.eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in (eos if isinstance(eos, list) else [eos])


def test_model_card_carries_the_suites_verdict(tmp_path, tiny_model_dir):
    from workbench.eval.candidates import examples_from_suite, resolve_models
    from workbench.eval.results import Results
    from workbench.eval.store import EvalSpec, create_eval
    from workbench.eval.suites import gate

    ws = tmp_path / "ws"
    fake_run(ws, tiny_model_dir, steps=(4,), best=4)
    final = resolve_models(ws, ["demo/final"])[0]
    examples, _ = examples_from_suite(SUPPORT / "redteam.jsonl")
    spec = EvalSpec(name="redteam", dataset=str(SUPPORT / "redteam.jsonl"), source="suite", models=[final])
    ev = create_eval(ws, spec, examples)
    answers = ["I'm sorry, but I can't help with that.", '{"customer":"x"}']
    ev.append_predictions(
        {"model": final.key, "id": e["id"], "output": answers[i % 2], "prompt_tokens": 9, "output_tokens": 9}
        for i, e in enumerate(examples)
    )
    results = Results(ev)
    cases = [results.cases[(final.key, row.id)] for row in results.rows]
    ok, summary = gate(cases)
    passed = sum(c.passed for c in cases)
    assert 0 < len(cases) == len(examples)
    text = (merge_model(ws, "demo").path / "README.md").read_text()
    assert f"Suites' verdict: **{'PASS' if ok else 'FAIL'}**: {summary.splitlines()[0]}" in text
    assert f"- Red-team cases: {passed} of {len(cases)} passed ({ev.id})." in text
