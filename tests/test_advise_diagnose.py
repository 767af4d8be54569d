"""Diagnosis of failed and unhealthy runs: real error messages, metric histories, run directories."""

from __future__ import annotations

import logging
import math
import socket
import time

import pytest

from workbench.advise.diagnose import diagnose_run, diagnose_text, llm_diagnosis, run_text
from workbench.advise.metric_checks import records_from_text
from workbench.advise.patterns import PATTERNS
from workbench.config import RunConfig, dump_config
from workbench.errors import RunError
from workbench.llm import LLM
from workbench.train.rundir import RunDir, append_jsonl

# --- error text, as the libraries print it ---------------------------------

# Copied from PyTorch, transformers, TRL, PEFT, bitsandbytes and huggingface_hub (the versions installed here where
# the text is in Python; CUDA and MPS allocator messages are from C++ sources, as users report them).
CUDA_OOM = """Traceback (most recent call last):
  File "/work/main/workbench/train/worker.py", line 185, in run_worker
    trainer.train(resume_from_checkpoint=checkpoint)
  File "/usr/lib/python3.11/site-packages/torch/nn/modules/linear.py", line 125, in forward
    return F.linear(input, self.weight, self.bias)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 22.00 MiB. GPU 0 has a total capacity of 23.65 GiB of \
which 11.06 MiB is free. Including non-PyTorch memory, this process has 23.60 GiB memory in use. Of the allocated memory \
22.90 GiB is allocated by PyTorch, and 194.87 MiB is reserved by PyTorch but unallocated. If reserved but unallocated \
memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation \
for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"""

MPS_OOM = (
    "RuntimeError: MPS backend out of memory (MPS allocated: 17.36 GB, other allocations: 613.56 MB, max allowed: "
    "18.13 GB). Tried to allocate 192.00 MB on private pool. Use PYTORCH_MPS_HIGH_WATERMARK_RATIO=0.0 to disable upper "
    "limit for memory allocations (may cause system failure)."
)

CPU_OOM = (
    "RuntimeError: [enforce fail at alloc_cpu.cpp:83] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
    "to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)"
)

TEXTS: list[tuple[str, str]] = [
    ("oom", CUDA_OOM),
    ("oom", MPS_OOM),
    ("oom", CPU_OOM),
    ("nan_loss", "{'loss': nan, 'grad_norm': nan, 'learning_rate': 0.0001, 'epoch': 0.42}"),
    ("nan_loss", "RuntimeError: Function 'LogSoftmaxBackward0' returned nan values in its 0th output."),
    ("flat_loss", "My loss is not decreasing at all after 300 steps, it stays around 2.3"),
    (
        "overfitting",
        "eval loss rose from 0.9000 at step 30 to 1.3000 at step 80 while train loss kept falling: "
        "the model is memorizing the training set",
    ),
    (
        "chat_template_missing",
        "ValueError: Cannot use chat template functions because tokenizer.chat_template is not set and no template "
        "argument was passed! For information about writing templates and setting the tokenizer.chat_template attribute, "
        "please see the documentation at https://huggingface.co/docs/transformers/main/en/chat_templating",
    ),
    (
        "chat_roles",
        "jinja2.exceptions.TemplateError: Conversation roles must alternate user/assistant/user/assistant/...",
    ),
    ("chat_roles", "jinja2.exceptions.TemplateError: System role not supported"),
    (
        "assistant_mask",
        "RuntimeError: You're using `assistant_only_loss=True`, but at least one example has no assistant tokens. This "
        "usually means the tokenizer's chat template doesn't generate assistant masks — it may be missing the "
        "`{% generation %}` keyword. Please check the template and ensure it's correctly configured to support "
        "assistant masking.",
    ),
    (
        "assistant_mask",
        "return_assistant_tokens_mask==True but chat template does not contain `{% generation %}` keyword.",
    ),
    (
        "labels_masked",
        "UserWarning: Could not find response key `### Answer:` in the following instance: <s> What is 2+2? This instance "
        "will be ignored in loss calculation. Note, if this happens often, consider increasing the `max_seq_length`.",
    ),
    (
        "bf16_unsupported",
        "ValueError: Your setup doesn't support bf16/gpu. You need to assign use_cpu if you want to train the model on "
        "CPU. You need Ampere+ GPU with cuda>=11.0.",
    ),
    (
        "bf16_unsupported",
        "RuntimeError: Current CUDA Device does not support bfloat16. Please switch dtype to float16.",
    ),
    (
        "qlora_unavailable",
        "ImportError: Using `bitsandbytes` 4-bit quantization requires bitsandbytes: `pip install -U bitsandbytes>=0.46.1`",
    ),
    (
        "qlora_unavailable",
        "RuntimeError: None of the available devices `available_devices = {'cpu'}` are supported by the bitsandbytes "
        "version you have installed: `bnb_supported_devices = {'cuda'}`. Please check the docs to see if the backend you "
        "intend to use is available and how to install it: https://huggingface.co/docs/bitsandbytes/main/en/installation",
    ),
    (
        "qlora_unavailable",
        "UserWarning: The installed version of bitsandbytes was compiled without GPU support. 8-bit optimizers, 8-bit "
        "multiplication, and GPU quantization are unavailable.",
    ),
    ("qlora_unavailable", "RuntimeError: No GPU found. A GPU is needed for quantization."),
    (
        "pad_token",
        "ValueError: Asking to pad but the tokenizer does not have a padding token. Please select a token to use as "
        "`pad_token` `(tokenizer.pad_token = tokenizer.eos_token e.g.)` or add a new pad token via "
        "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`.",
    ),
    (
        "target_modules",
        "ValueError: Target modules {'c_attn'} not found in the base model. Please check the target modules and try again.",
    ),
    (
        "sequence_too_long",
        "Token indices sequence length is longer than the specified maximum sequence length for this model (3000 > 2048). "
        "Running this sequence through the model will result in indexing errors",
    ),
    ("index_out_of_range", "IndexError: index out of range in self"),
    ("disk_full", "OSError: [Errno 28] No space left on device: '/runs/demo/checkpoint-40/optimizer.pt'"),
    (
        "disk_full",
        "safetensors_rust.SafetensorError: Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
        '"No space left on device" })',
    ),
    (
        "hub_unreachable",
        "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached "
        "files.\nCheck your internet connection or see how to run the library in offline mode at "
        "'https://huggingface.co/docs/transformers/installation#offline-mode'.",
    ),
    (
        "hub_unreachable",
        "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find the requested files in the disk cache and outgoing "
        "traffic has been disabled. To enable hf.co look-ups and downloads online, set 'local_files_only' to False.",
    ),
    (
        "hub_unreachable",
        "ModelError: model 'Qwen/Qwen2.5-7B-Instruct' could not be fetched from the Hugging Face hub (HF_HUB_OFFLINE is "
        "set and it is not in the local hub cache).",
    ),
    (
        "hub_access",
        "OSError: not-a-real/model is not a local folder and is not a valid model identifier listed on "
        "'https://huggingface.co/models'",
    ),
    (
        "trust_remote_code",
        "ValueError: The repository microsoft/phi-1_5 contains custom code which must be executed to correctly load the "
        "model. You can inspect the repository content at https://hf.co/microsoft/phi-1_5 .\n"
        "Please pass the argument `trust_remote_code=True` to allow custom code to be run.",
    ),
    ("fp16_grads", "ValueError: Attempting to unscale FP16 gradients."),
]


@pytest.mark.parametrize(("key", "text"), TEXTS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(TEXTS)])
def test_each_known_error_is_diagnosed(key, text):
    found = diagnose_text(text)
    assert found[0].key == key, [d.key for d in found]
    top = found[0]
    assert top.cause and top.fix and top.confidence in ("high", "medium", "low")
    assert top.evidence and top.evidence.strip("…")[:20] in text.replace("\\\n", "")


def test_every_pattern_is_exercised():
    assert {p.key for p in PATTERNS} <= {key for key, _ in TEXTS}


def test_fixes_name_the_config_fields():
    fixes = {d.key: " ".join(d.fix) for key, text in TEXTS for d in diagnose_text(text)[:1]}
    assert "train.batch_size" in fixes["oom"] and "train.gradient_checkpointing" in fixes["oom"]
    assert "finetune: qlora" in fixes["oom"]
    assert "train.learning_rate" in fixes["nan_loss"] and "train.precision" in fixes["nan_loss"]
    assert "train.learning_rate" in fixes["flat_loss"]
    assert "train.precision: auto" in fixes["bf16_unsupported"]
    assert "finetune: lora" in fixes["qlora_unavailable"]
    assert "lora.target_modules: all-linear" in fixes["target_modules"]
    assert "train.max_length at most 2048" in fixes["sequence_too_long"]
    assert "eval.save_total_limit" in fixes["disk_full"]
    assert "trust_remote_code: true" in fixes["trust_remote_code"]
    assert "eval.load_best" in fixes["overfitting"]


def test_fixes_use_the_config_when_given():
    config = RunConfig.model_validate({"data": {"train": "t.jsonl"}, "train": {"batch_size": 8, "grad_accum": 2}})
    (oom,) = diagnose_text(CUDA_OOM, config=config)
    assert "train.batch_size: 8 -> 4, and train.grad_accum: 2 -> 4" in oom.fix[0]
    assert any("finetune: qlora" in step for step in oom.fix)
    long = RunConfig.model_validate({"data": {"train": "t.jsonl"}, "train": {"max_length": 4096}})
    (length,) = diagnose_text(dict(TEXTS)["sequence_too_long"], config=long)
    assert "train.max_length: 4096 -> 2048" in length.fix[0]


def test_allocator_settings_are_offered_for_their_own_device():
    def settings(text):
        return [step for step in diagnose_text(text)[0].fix if "PYTORCH_" in step]

    assert "PYTORCH_CUDA_ALLOC_CONF" in " ".join(settings(CUDA_OOM))
    assert "PYTORCH_MPS_HIGH_WATERMARK_RATIO" in " ".join(settings(MPS_OOM))
    assert settings(CPU_OOM) == []


def test_unknown_text_is_an_honest_no_known_cause():
    text = "Traceback (most recent call last):\n  File \"x.py\", line 3, in <module>\nKeyError: 'frobnicate'"
    (found,) = diagnose_text(text)
    assert found.key == "unknown" and found.confidence == "low"
    assert "no known cause" in found.cause
    assert found.evidence == "KeyError: 'frobnicate'"
    assert any("workbench check" in step for step in found.fix)
    assert diagnose_text("")[0].key == "unknown"


def test_the_final_error_comes_first_among_equals():
    text = "OSError: [Errno 28] No space left on device\n...\n" + CUDA_OOM
    assert [d.key for d in diagnose_text(text)] == ["oom", "disk_full"]


# --- errors raised live by the installed libraries ---------------------------


@pytest.fixture
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "<unk>": 2}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", model_max_length=8)


def raised(fn) -> str:
    with pytest.raises(Exception) as info:
        fn()
    return f"{type(info.value).__name__}: {info.value}"


def test_live_tokenizer_errors(tokenizer):
    assert diagnose_text(raised(lambda: tokenizer(["a", "a b"], padding=True)))[0].key == "pad_token"
    no_template = raised(lambda: tokenizer.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False))
    assert diagnose_text(no_template)[0].key == "chat_template_missing"
    tokenizer.chat_template = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{% endif %}{{ m['content'] }}{% endfor %}"
    )
    twice = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert diagnose_text(raised(lambda: tokenizer.apply_chat_template(twice, tokenize=False)))[0].key == "chat_roles"


def test_live_sequence_length_warning(tokenizer):
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        tokenizer("a " * 20)
    finally:
        logger.removeHandler(handler)
    (warning,) = [r for r in records if "sequence length" in r]
    (found,) = diagnose_text(warning)
    assert found.key == "sequence_too_long" and "train.max_length at most 8" in found.fix[0]


def test_live_peft_and_trainer_errors(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    wrong = raised(lambda: get_peft_model(model, LoraConfig(target_modules=["c_attn"])))
    assert diagnose_text(wrong)[0].key == "target_modules"
    import torch

    if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        bf16 = raised(lambda: TrainingArguments(output_dir=str(tmp_path), bf16=True, report_to="none"))
        assert diagnose_text(bf16)[0].key == "bf16_unsupported"


def test_live_qlora_without_bitsandbytes(tmp_path):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    ).save_pretrained(tmp_path)
    quant = BitsAndBytesConfig(load_in_4bit=True)
    error = raised(lambda: LlamaForCausalLM.from_pretrained(tmp_path, quantization_config=quant))
    assert diagnose_text(error)[0].key == "qlora_unavailable"


# --- losses in text ---------------------------------------------------------


def trainer_log(losses, lr=2e-4) -> str:
    """What the Trainer prints on each log: one dict per line."""
    return "\n".join(
        f"{{'loss': {v!r}, 'grad_norm': 1.2, 'learning_rate': {lr}, 'epoch': {i / 10:.2f}}}"
        for i, v in enumerate(losses)
    )


def test_logged_losses_in_text_are_read_as_metrics():
    records = records_from_text("noise\n" + trainer_log([2.0, 1.9]) + "\n{'eval_loss': 1.95, 'eval_runtime': 1.2}")
    assert [r["type"] for r in records] == ["train", "train", "eval"]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[2]["eval_loss"] == 1.95
    assert math.isnan(records_from_text("{'loss': nan, 'epoch': 1.0}")[0]["loss"])
    assert records_from_text("{'train_runtime': 5.0, 'train_loss': 1.5}") == []


def test_a_flat_loss_in_a_pasted_log():
    log = trainer_log([2.3026 + 0.001 * (i % 3) for i in range(25)])
    (found,) = diagnose_text(log)
    assert found.key == "flat_loss" and "over the last 20 logged steps" in found.evidence


# --- run directories ----------------------------------------------------------


def make_run(tmp_path, records=(), *, state="completed", log="", config=None, **status) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_status({"state": state, "heartbeat": time.time(), "created": time.time(), **status})
    for record in records:
        append_jsonl(run.metrics_path, record)
    if log:
        run.log_path.write_text(log, encoding="utf-8")
    if config is not None:
        run.config_path.write_text(dump_config(config), encoding="utf-8")
    return run


def history(train, evals=(), every=10, lr=2e-4, grad_norm=1.0):
    """Train loss at steps 1..n, eval loss every `every` steps, as the callback writes them."""
    records = [
        {"type": "train", "step": i + 1, "loss": v, "learning_rate": lr, "grad_norm": grad_norm}
        for i, v in enumerate(train)
    ]
    records += [{"type": "eval", "step": (i + 1) * every, "eval_loss": v} for i, v in enumerate(evals)]
    return sorted(records, key=lambda r: (r["step"], r["type"] == "eval"))


def falling(n, start=2.0, end=0.2):
    return [start + (end - start) * i / (n - 1) for i in range(n)]


def keys(found):
    return [d.key for d in found]


def test_run_overfitting(tmp_path):
    run = make_run(tmp_path, history(falling(80), [1.5, 1.1, 0.9, 0.95, 1.0, 1.1, 1.2, 1.3]))
    found = diagnose_run(run.path)
    assert keys(found) == ["overfitting"]
    assert found[0].confidence == "high" and "step 30" in found[0].evidence


def test_run_nan_loss(tmp_path):
    train = falling(20)
    train[12] = math.nan
    run = make_run(tmp_path, history(train), state="diverged", error="loss became nan at step 13")
    found = diagnose_run(run)
    assert keys(found) == ["nan_loss"]
    assert "loss became nan at step 13" in found[0].evidence


def test_run_loss_that_blew_up(tmp_path):
    run = make_run(tmp_path, history([2.0, 2.0, 2.0, 3.0, 5.0, 8.0]), state="diverged")
    found = diagnose_run(run)
    assert keys(found) == ["loss_exploded"] and "train.learning_rate" in found[0].fix[0]


def test_run_flat_loss(tmp_path):
    flat = [2.30 + 0.002 * ((i * 7) % 5) for i in range(40)]
    config = RunConfig.model_validate({"data": {"train": "t.jsonl"}, "train": {"learning_rate": 1e-7}})
    found = diagnose_run(make_run(tmp_path, history(flat), config=config))
    assert keys(found) == ["flat_loss"]
    assert found[0].confidence == "medium"
    assert "train.learning_rate 1e-07" in found[0].evidence
    assert any("train.learning_rate" in step for step in found[0].fix)


def test_run_flat_loss_with_the_schedule_at_zero(tmp_path):
    found = diagnose_run(make_run(tmp_path, history([2.3] * 25, lr=0.0)))
    assert keys(found) == ["flat_loss"] and found[0].confidence == "high"
    assert "stuck at 0" in found[0].cause and "learning_rate 0" in found[0].evidence


def test_run_zero_loss_means_masked_labels(tmp_path):
    found = diagnose_run(make_run(tmp_path, history([0.0] * 25, grad_norm=0.0)))
    assert keys(found) == ["flat_loss"] and "masked" in found[0].cause


def test_a_loss_that_learned_then_levelled_off_is_not_flat(tmp_path):
    train = falling(30, 2.0, 0.5) + [0.5 + 0.001 * (i % 2) for i in range(30)]
    assert diagnose_run(make_run(tmp_path, history(train))) == []


def test_a_short_history_is_not_called_flat(tmp_path):
    assert diagnose_run(make_run(tmp_path, history([2.3] * 10))) == []


def test_run_eval_far_above_train_from_the_start(tmp_path):
    run = make_run(tmp_path, history(falling(40, 2.0, 1.2), [4.8, 4.7, 4.7, 4.6], every=10))
    found = diagnose_run(run)
    assert "split_mismatch" in keys(found)
    assert "first eval loss 4.8 at step 10" in next(d for d in found if d.key == "split_mismatch").evidence


def test_run_failed_with_an_oom_traceback(tmp_path):
    lines = CUDA_OOM.replace("\\\n", "").splitlines()
    config = RunConfig.model_validate({"data": {"train": "t.jsonl"}, "finetune": "full", "train": {"batch_size": 4}})
    run = make_run(
        tmp_path,
        history(falling(5)),
        state="failed",
        config=config,
        error=lines[-1][:2000],
        error_tail=lines[-15:],
        log="[workbench] starting\n" + CUDA_OOM + "\n",
    )
    found = diagnose_run(run)
    assert keys(found) == ["oom"]
    oom = found[0]
    assert oom.evidence.startswith("torch.OutOfMemoryError: CUDA out of memory")
    assert "train.batch_size: 4 -> 2" in oom.fix[0]
    assert any(step.startswith("finetune: lora") for step in oom.fix)


def test_run_with_the_cause_only_in_train_log(tmp_path):
    run = make_run(tmp_path, state="failed", log="saving checkpoint-40\nOSError: [Errno 28] No space left on device\n")
    assert keys(diagnose_run(run)) == ["disk_full"]


def test_run_failed_for_an_unknown_reason(tmp_path):
    run = make_run(tmp_path, state="failed", error="KeyError: 'frobnicate'")
    (found,) = diagnose_run(run)
    assert found.key == "unknown" and found.evidence == "KeyError: 'frobnicate'"


def test_a_healthy_run_has_nothing_to_diagnose(tmp_path):
    run = make_run(tmp_path, history(falling(60), [1.5, 1.2, 1.0, 0.9, 0.85, 0.84]), log="[workbench] run completed\n")
    assert diagnose_run(run) == []


def test_a_lost_worker(tmp_path):
    run = make_run(tmp_path, history(falling(5)), state="running", step=5)
    raw = run.read_status_raw()
    run.write_status({**raw, "heartbeat": time.time() - 3600})
    found = diagnose_run(run)
    assert keys(found) == ["worker_lost"] and "step 5" in found[0].evidence


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        diagnose_run(tmp_path)


def test_run_text_gathers_error_tail_and_log(tmp_path):
    run = make_run(
        tmp_path,
        state="failed",
        error="ValueError: boom",
        error_tail=["Traceback", "ValueError: boom"],
        log="line one\nline two\n",
    )
    text = run_text(run)
    assert text.index("ValueError: boom") < text.index("Traceback") < text.index("line two")


# --- the LLM's deeper look ---------------------------------------------------


def test_llm_diagnosis_sends_the_log_and_our_findings(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    seen = []

    def reply(messages):
        seen.append(messages)
        return "  Most likely the batch is too large for a 24 GB GPU: set train.batch_size: 2.  "

    text = llm_diagnosis(CUDA_OOM, LLM("openai/gpt-4o-mini", mock=reply))
    assert text == "Most likely the batch is too large for a 24 GB GPU: set train.batch_size: 2."
    (messages,) = seen
    system, user = messages[0]["content"], messages[1]["content"]
    assert "train.batch_size" in system and "train.gradient_checkpointing" in system
    assert "out of memory" in user and "torch.OutOfMemoryError" in user
