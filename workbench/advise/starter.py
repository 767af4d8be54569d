"""The starter run config the advisor hands out with a fine-tuning recommendation.

Data paths are placeholders; the size of the model, batch, rank, length and
learning rate follow the answers (hardware, amount of data, task).
"""

from __future__ import annotations

from typing import Literal

from workbench.advise.options import NAMES, TITLES, Recommendation
from workbench.advise.questions import Answers
from workbench.config.schema import DataConfig, EvalConfig, LoraConfig, RunConfig, TrainConfig, dump_config

PLACEHOLDER_TRAIN = "data/train.jsonl"
PLACEHOLDER_VAL = "data/val.jsonl"


_GPU_MODEL = "Qwen/Qwen2.5-7B-Instruct"  # a 7B chat model: LoRA in 16 bits from ~24 GB, QLoRA under 16 GB
_FULL_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"  # ~16 bytes/parameter for full fine-tuning: fits one large GPU
_BATCH = {"cpu": (4, 4), "gpu_small": (2, 8), "gpu_medium": (2, 8), "gpu_large": (8, 4)}  # batch, accumulation
_MAX_LENGTH = {"format": 512, "knowledge": 1024, "behaviour": 1024, "reasoning": 2048}
_EPOCHS = {"100_1k": 3.0, "1k_10k": 2.0, "over_10k": 1.0}
_RANK = {"100_1k": 8, "1k_10k": 16, "over_10k": 32}


def starter_config(rec: Recommendation, a: Answers) -> RunConfig | None:
    """A run config for the recommendation, with placeholder data paths; None for prompting and RAG."""
    if rec in ("prompting", "rag"):
        return None
    cpu = a.hardware == "cpu"
    # Distilling with little data of one's own means generating 1k-10k examples with the big model.
    size = "1k_10k" if a.little_data else a.data
    finetune: Literal["lora", "qlora", "full"] = "lora"
    if rec == "sft_full":
        finetune = "full"
    elif rec == "sft_qlora" or a.hardware == "gpu_small":
        finetune = "qlora"
    rank = 16 if rec == "dpo" else max(_RANK[size], 16 if a.task == "reasoning" else 8)
    max_length = min(_MAX_LENGTH[a.task], 512) if cpu else _MAX_LENGTH[a.task]
    batch, accum = _BATCH[a.hardware]
    if rec == "dpo":
        learning_rate, epochs, warmup = 5e-6, 1.0, 0.1
    elif rec == "sft_full":
        learning_rate, epochs, warmup = 2e-5, _EPOCHS[size], 0.03
    else:
        learning_rate, epochs, warmup = 2e-4, _EPOCHS[size], 0.05
    return RunConfig(
        name=rec.replace("_", "-"),
        model="bundled" if cpu else _FULL_MODEL if rec == "sft_full" else _GPU_MODEL,
        method="dpo" if rec == "dpo" else "sft",
        finetune=finetune,
        data=DataConfig(train=PLACEHOLDER_TRAIN, val=PLACEHOLDER_VAL),
        lora=LoraConfig(r=rank, alpha=2 * rank, dropout=0.05, target_modules="all-linear"),
        train=TrainConfig(
            optimizer="paged_adamw_8bit" if finetune == "qlora" else "adamw_torch",
            learning_rate=learning_rate,
            lr_scheduler="cosine",
            warmup_ratio=warmup,
            batch_size=batch,
            grad_accum=accum,
            epochs=epochs,
            max_length=max_length,
            gradient_checkpointing=not cpu,
            precision="auto",
        ),
        eval=EvalConfig(stop_on_overfit=size == "100_1k", load_best=True),
    )


def config_text(config: RunConfig, rec: Recommendation) -> str:
    header = (
        f"# Starter config from the advisor: {TITLES[rec]}.\n"
        f"# Replace {PLACEHOLDER_TRAIN} and {PLACEHOLDER_VAL} with your data, then `workbench check` it.\n"
    )
    return header + dump_config(config)


def config_note(rec: Recommendation, a: Answers, config: RunConfig | None) -> str:
    if config is None:
        what = "a prompt" if rec == "prompting" else "a retriever and a prompt"
        return (
            f"none: {NAMES[rec]} trains nothing, so there is no run config; what you build is "
            f"{what}, measured on a held-out set."
        )
    t, lora = config.train, config.lora
    parts = [f"{config.method.upper()} with {config.finetune} on {config.model}"]
    if config.finetune != "full":
        parts.append(f"LoRA r={lora.r}, alpha={lora.alpha:g} on all linear layers")
    parts.append(f"learning rate {t.learning_rate:g}, {t.epochs:g} epoch(s), max_length {t.max_length}")
    parts.append(f"batch {t.batch_size} x {t.grad_accum} accumulation")
    note = "; ".join(parts) + "."
    if rec == "dpo":
        note += " DPO rows need prompt, chosen and rejected."
    if a.hardware != "cpu":
        note += " The model is a suggestion for this hardware: any chat model of that size will do."
    return note
