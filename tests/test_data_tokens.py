"""The mask viewer: an example token by token, with the tokens that carry loss, checked against the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.data.tokens import TokenView, mask_findings, token_view

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "support"

CHAT = [
    {"role": "system", "content": "Answer with one line of JSON."},
    {"role": "user", "content": "My order #88 never came."},
    {"role": "assistant", "content": '{"issue": "shipping", "urgency": "high"}'},
]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_only_the_answer_carries_loss(tok):
    view = token_view({"messages": CHAT}, tok, 512)
    answer = tok.decode([i for i, on in zip(view.ids, view.loss) if on])
    assert answer.startswith('{"issue": "shipping"') and "<|im_end|>" in answer
    prompt = tok.decode(view.ids[: view.prompt_tokens])
    assert "My order #88" in prompt and "Answer with one line" in prompt and "shipping" not in prompt
    assert view.cut is None and view.problems == [] and "".join(view.pieces) == tok.decode(view.ids)


def test_the_cut_at_max_length_is_marked_and_flagged(tok):
    full = token_view({"messages": CHAT}, tok, 512)
    view = token_view({"messages": CHAT}, tok, full.prompt_tokens + 3)
    assert view.cut == full.prompt_tokens + 3
    assert view.loss_tokens == 3 and view.dropped_loss_tokens == full.loss_tokens - 3
    assert view.problems == [
        f"max_length {view.max_length} cuts the answer: {full.loss_tokens - 3} of its "
        f"{full.loss_tokens} tokens are never trained on"
    ]
    gone = token_view({"messages": CHAT}, tok, full.prompt_tokens - 1)
    assert gone.loss_tokens == 0 and "cuts the whole answer" in gone.problems[0]


def test_a_conversation_without_a_final_answer_trains_on_the_prompt(tok):
    view = token_view({"messages": CHAT[:2]}, tok, 512)
    assert all(view.loss) and "trains on the prompt" in view.problems[0]


def test_a_template_that_drops_the_system_turn(tok):
    dropping = "{% for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    original = tok.chat_template
    tok.chat_template = dropping
    try:
        view = token_view({"messages": CHAT}, tok, 512)
    finally:
        tok.chat_template = original
    assert any("drops the system turn" in p for p in view.problems)


def test_text_rows_get_eos_and_full_loss(tok):
    view = token_view({"text": "plain text to continue"}, tok, 512)
    assert all(view.loss) and view.ids[-1] == tok.eos_token_id


def test_findings_across_a_set():
    def v(*problems: str) -> TokenView:
        return TokenView([1], ["x"], [True], 8, 0, list(problems))

    found = mask_findings(
        [
            v(),
            v("max_length 8 cuts the answer: 3 of 9"),
            v("max_length 8 cuts the answer: 1 of 4"),
            v("trains on the prompt: no final assistant turn"),
        ]
    )
    assert found == [("max_length 8 cuts the answer", [1, 2]), ("trains on the prompt", [3])]


@pytest.mark.slow  # loads the bundled model into a real TRL trainer
def test_the_loss_tokens_are_the_trainers_labels(tmp_path, bundled_dir):
    from transformers import TrainerCallback

    from workbench.config.schema import RunConfig
    from workbench.train.dataprep import prepare_data
    from workbench.train.rundir import RunDir
    from workbench.train.worker import build_trainer

    config = RunConfig.model_validate(
        {
            "model": str(bundled_dir),
            "data": {"train": str(SAMPLE / "train.jsonl"), "val": str(SAMPLE / "val.jsonl"), "max_train_examples": 8},
            "train": {"max_length": 168, "max_steps": 1, "batch_size": 2, "precision": "fp32"},
        }
    )
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    trainer, tokenizer = build_trainer(run, config, TrainerCallback())
    rows = prepare_data(config).train
    cut = 0
    for i in range(len(trainer.train_dataset)):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        view = token_view(rows[i], tokenizer, config.train.max_length)
        n = min(len(view.ids), config.train.max_length)
        assert ids == view.ids[:n], i
        assert [label != -100 for label in labels] == view.loss[:n], i
        cut += view.cut is not None
    assert 0 < cut < len(rows)  # some examples are cut at 168 tokens and some are not: both cases compared


def test_cli_marks_loss_tokens_and_the_cut(capsys, tiny_model_dir):
    import json

    from workbench.cli import main

    file = str(SAMPLE / "train.jsonl")
    assert main(["data", "tokens", file, "--model", str(tiny_model_dir), "-n", "1", "--max-length", "120"]) == 0
    out = capsys.readouterr().out
    assert "✂ max_length 120, never seen:" in out and "<|im_start|>assistant" in out
    assert "mask: max_length 120 cuts the whole answer" in out and "of 320 examples" in out
    assert main(["data", "tokens", file, "--model", str(tiny_model_dir), "-n", "1", "--max-length", "400"]) == 0
    assert "⟦{" in capsys.readouterr().out
    assert main(["data", "tokens", file, "--model", str(tiny_model_dir), "--row", "5", "-n", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [shown] = data["shown"]
    assert shown["index"] == 5 and shown["cut"] is None and shown["loss_tokens"] > 0
    assert sum(t["loss"] for t in shown["tokens"]) == shown["loss_tokens"] and data["findings"] == []
