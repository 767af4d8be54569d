"""Generation for evals: batched = one at a time, adapters applied, stop and resume, the detached worker."""

from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path

import pytest
from conftest import SAMPLE, tiny_tokenizer

from workbench.eval import runner
from workbench.eval.candidates import examples_from_dataset
from workbench.eval.generate import generate, generate_batch, load_model, prompt_ids
from workbench.eval.store import LIVE_STATES, EvalDir, EvalSpec, GenerationSettings, ModelRef, create_eval
from workbench.eval.worker import append_to_log, run_eval

TEST = SAMPLE / "support" / "test.jsonl"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, ModelRef]:
    """A tiny random Llama whose greedy answers depend on the prompt, and a LoRA adapter on it with non-zero B."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tiny-eval")
    tokenizer = tiny_tokenizer(TEST.read_text(encoding="utf-8").splitlines())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.2,  # the default 0.02 answers "\n" to everything
    )
    torch.manual_seed(0)
    base = root / "base"
    LlamaForCausalLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapter = root / "adapter"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(
            LlamaForCausalLM.from_pretrained(base),
            LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False),
        )
    peft_model.save_pretrained(adapter)
    return {
        "base": ModelRef(key="base", label="base", kind="base", path=str(base), base_model=str(base)),
        "adapter": ModelRef(
            key="run/adapter",
            label="run · final",
            kind="adapter",
            path=str(adapter),
            base_model=str(base),
            run_id="run",
        ),
    }


def short_examples(n: int) -> list[dict]:
    """Test-set examples, with a few very short prompts mixed in so batches need real padding."""
    found = examples_from_dataset(TEST, limit=n)
    for i in range(0, n, 3):
        found[i]["messages"] = [{"role": "user", "content": f"Hi {i}"}]
    return found


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, tokenizer = load_model(tiny["base"])
    prompts = [prompt_ids(tokenizer, e["messages"]) for e in short_examples(8)]
    assert max(map(len, prompts)) - min(map(len, prompts)) > 80  # lots of left padding
    settings = GenerationSettings(max_new_tokens=12)
    batched = generate_batch(model, tokenizer, prompts, settings)
    alone = [generate_batch(model, tokenizer, [p], settings)[0] for p in prompts]
    assert [g.output for g in batched] == [g.output for g in alone]
    assert [g.output_tokens for g in batched] == [g.output_tokens for g in alone]
    assert len({g.output for g in alone}) > 4  # the answers depend on the prompt, so the check has teeth
    assert [g.prompt_tokens for g in batched] == [len(p) for p in prompts]
    # The same batch attending to its padding answers differently: the mask is what makes it right.
    import torch

    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    with torch.inference_mode():
        unmasked = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = [tokenizer.decode(row, skip_special_tokens=True) for row in unmasked[:, width:].tolist()]
    assert texts != [g.output for g in alone]


def test_the_adapter_is_applied_and_merging_keeps_its_answers(tiny):
    prompts_of = lambda tok: [prompt_ids(tok, e["messages"]) for e in short_examples(6)]  # noqa: E731
    settings = GenerationSettings(max_new_tokens=10)
    base, tok = load_model(tiny["base"])
    base_out = [g.output for g in generate_batch(base, tok, prompts_of(tok), settings)]
    merged, tok = load_model(tiny["adapter"])
    assert not hasattr(merged, "peft_config")  # merged into a plain model
    merged_out = [g.output for g in generate_batch(merged, tok, prompts_of(tok), settings)]
    unmerged, tok = load_model(tiny["adapter"], merge=False)
    assert hasattr(unmerged, "peft_config")
    unmerged_out = [g.output for g in generate_batch(unmerged, tok, prompts_of(tok), settings)]
    assert sum(a != b for a, b in zip(base_out, merged_out)) >= 4
    assert merged_out == unmerged_out


def test_sampling_follows_its_seed(tiny):
    model, tokenizer = load_model(tiny["base"])
    prompts = [prompt_ids(tokenizer, e["messages"]) for e in short_examples(4)]
    sampled = GenerationSettings(max_new_tokens=10, temperature=1.5, top_p=0.95)
    first = [g.output for g in generate_batch(model, tokenizer, prompts, sampled, seed=7)]
    again = [g.output for g in generate_batch(model, tokenizer, prompts, sampled, seed=7)]
    greedy = [g.output for g in generate_batch(model, tokenizer, prompts, GenerationSettings(max_new_tokens=10))]
    assert first == again and first != greedy


def make_eval(workspace: Path, tiny, n: int, **generation) -> EvalDir:
    spec = EvalSpec(
        name="tiny",
        dataset=str(TEST),
        models=[tiny["base"], tiny["adapter"]],
        generation=GenerationSettings(**generation),
    )
    return create_eval(workspace, spec, short_examples(n))


def test_stop_between_batches_then_resume_gives_what_one_pass_gives(tiny, tmp_path):
    ev = make_eval(tmp_path, tiny, 7, max_new_tokens=8, batch_size=3)
    cancel = threading.Event()

    def stop_after_two_batches(p):
        if p.phase == "generating" and p.done >= 6:
            cancel.set()

    assert generate(ev, cancel=cancel, progress=stop_after_two_batches) == "stopped"
    assert ev.progress() == {"base": 6, "run/adapter": 0}
    assert generate(ev) == "completed"
    lines = [json.loads(line) for line in ev.predictions_path.read_text().splitlines()]
    assert len(lines) == 14 and len({(r["model"], r["id"]) for r in lines}) == 14
    whole = make_eval(tmp_path, tiny, 7, max_new_tokens=8, batch_size=4)
    assert generate(whole) == "completed"
    assert {k: v["output"] for k, v in ev.predictions().items()} == {
        k: v["output"] for k, v in whole.predictions().items()
    }
    record = ev.predictions()[("run/adapter", "3")]
    assert record["finish"] in ("stop", "length") and record["output_tokens"] <= 8 and record["seconds"] > 0


def wait_for(ev: EvalDir, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = ev.status().state
        if state not in LIVE_STATES:
            return state
        time.sleep(0.1)
    raise AssertionError(f"timed out in state {ev.status().state}; eval.log:\n{ev.log_path.read_text()[-3000:]}")


def test_the_detached_worker_stops_after_a_batch_and_resumes(tiny, tmp_path):
    ev = make_eval(tmp_path, tiny, 12, max_new_tokens=16, batch_size=1)
    runner.launch(ev)
    deadline = time.time() + 60
    while ev.status().done < 2 and ev.status().state in LIVE_STATES and time.time() < deadline:
        time.sleep(0.05)
    assert runner.stop(ev, timeout=60) == "stopped", ev.log_path.read_text()[-3000:]
    stopped_at = len(ev.predictions())
    assert 2 <= stopped_at < 24 and ev.status().done == stopped_at
    # Resuming is launching again (checked in test_eval_store); here in-process, to spare a second start-up.
    runner.check_resumable(ev)
    assert run_eval(ev, handle_signals=False, log=append_to_log(ev)) == "completed"
    status = ev.status()
    assert status.done == status.total == 24 and status.raw["pid"] and status.error is None
    lines = ev.predictions_path.read_text().splitlines()
    assert len(lines) == 24 and len(ev.predictions()) == 24  # nothing generated twice
    log = ev.log_path.read_text()
    assert "[workbench] eval stopped" in log and "[workbench] eval completed" in log


@pytest.mark.slow
def test_bundled_model_base_and_adapter_through_the_detached_worker(tmp_path, bundled_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(bundled_dir),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    model.save_pretrained(tmp_path / "adapter")
    models = [
        ModelRef(key="base", label="base", kind="base", path="bundled", base_model="bundled"),
        ModelRef(
            key="fresh/adapter", label="fresh", kind="adapter", path=str(tmp_path / "adapter"), base_model="bundled"
        ),
    ]
    spec = EvalSpec(
        name="real", dataset=str(TEST), models=models, generation=GenerationSettings(max_new_tokens=24, batch_size=2)
    )
    ev = create_eval(tmp_path, spec, examples_from_dataset(TEST, limit=3))
    runner.launch(ev)
    assert wait_for(ev, timeout=400) == "completed", ev.log_path.read_text()[-3000:]
    predictions = ev.predictions()
    assert len(predictions) == 6 and ev.status().done == 6
    for record in predictions.values():
        assert record["output"].strip() and 0 < record["output_tokens"] <= 24 and record["prompt_tokens"] > 50
    assert any(predictions[("base", i)]["output"] != predictions[("fresh/adapter", i)]["output"] for i in "012")
