"""What the advisor can recommend: six options, each with a title and a short name."""

from __future__ import annotations

from typing import Literal, get_args

Recommendation = Literal["prompting", "rag", "sft_lora", "sft_qlora", "sft_full", "dpo"]
RECOMMENDATIONS: tuple[Recommendation, ...] = get_args(Recommendation)

TITLES: dict[Recommendation, str] = {
    "prompting": "Prompting: a strong model, a careful prompt and a few examples",
    "rag": "RAG: retrieve your documents into the prompt",
    "sft_lora": "SFT with LoRA adapters",
    "sft_qlora": "SFT with QLoRA (4-bit base model, LoRA adapters)",
    "sft_full": "Full supervised fine-tuning",
    "dpo": "DPO on your preference pairs",
}

NAMES: dict[Recommendation, str] = {
    "prompting": "Prompting",
    "rag": "RAG",
    "sft_lora": "SFT + LoRA",
    "sft_qlora": "SFT + QLoRA",
    "sft_full": "Full fine-tune",
    "dpo": "DPO",
}
