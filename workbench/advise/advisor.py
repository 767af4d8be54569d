"""The question to settle before fine-tuning: prompting, RAG, SFT (LoRA, QLoRA, full) or DPO?

:func:`advise` turns the answers to the questionnaire
(:data:`workbench.advise.questions.QUESTIONS`) into an :class:`Advice`: a
recommendation with the reason behind each answer, the data it needs and the
published results that estimate rests on (:mod:`workbench.advise.evidence`),
the alternatives and why not, a starter run config
(:mod:`workbench.advise.starter`), and caveats. It is rule-based and works
without any LLM; :func:`deeper_advice` asks the user's LLM for a second
opinion on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.advise.evidence import (
    ALPACA,
    BIDERMAN,
    DPO_PAPER,
    FEW_SHOT,
    GEKHMAN,
    LIMA,
    LORA,
    OVADIA,
    PREFERENCE_SIZES,
    QLORA,
    QLORA_DATA,
    RAG_LEWIS,
    S1,
    ZERO,
    Citation,
)
from workbench.advise.options import NAMES, RECOMMENDATIONS, TITLES, Recommendation
from workbench.advise.questions import QUESTIONS_BY_ID, Answers, describe_answers
from workbench.advise.starter import config_note, config_text, starter_config

if TYPE_CHECKING:
    from workbench.llm import LLM


# --- the advice -------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """Why the recommendation follows from one answer."""

    question: str  # a question id
    answer: str  # the option id answered
    text: str


@dataclass(frozen=True)
class Alternative:
    """An option that was considered, and why it was not recommended."""

    option: Recommendation
    why_not: str


@dataclass(frozen=True)
class DataNeeded:
    """How much data the recommendation needs, and the published results the estimate rests on."""

    summary: str
    evidence: tuple[Citation, ...]


@dataclass(frozen=True)
class Advice:
    """What to do, why, with how much data, and a config to start from."""

    recommendation: Recommendation
    title: str
    reasons: tuple[Reason, ...]
    data_needed: DataNeeded
    alternatives: tuple[Alternative, ...]
    starter_config: str | None  # run config YAML; None for prompting and RAG
    config_note: str  # what the starter config chose, or why there is none
    caveats: tuple[str, ...]

    def text(self) -> str:
        """The advice as a readable block of plain text."""
        out = [f"Recommendation: {self.title}", "", "Why:"]
        for r in self.reasons:
            q = QUESTIONS_BY_ID[r.question]
            out.append(f"  - {q.label}: {q.option_label(r.answer)}. {r.text}")
        out += ["", f"Data needed: {self.data_needed.summary}", "  Evidence:"]
        out += [f"  - {c}" for c in self.data_needed.evidence]
        out += ["", "Alternatives considered:"]
        out += [f"  - {NAMES[a.option]}: {a.why_not}" for a in self.alternatives]
        out += ["", "Caveats:"]
        out += [f"  - {c}" for c in self.caveats]
        out += ["", f"Starter config: {self.config_note}"]
        if self.starter_config:
            out += ["", self.starter_config.rstrip()]
        return "\n".join(out) + "\n"


def advise(answers: Mapping[str, str]) -> Advice:
    """The recommendation for a set of answers (question id -> option id); unanswered questions take defaults."""
    a = Answers.parse(answers)
    rec, reasons = _decide(a)
    config = starter_config(rec, a)
    return Advice(
        recommendation=rec,
        title=TITLES[rec],
        reasons=tuple(reasons),
        data_needed=_data_needed(rec, a),
        alternatives=tuple(Alternative(o, _why_not(o, rec, a)) for o in RECOMMENDATIONS if o != rec),
        starter_config=config_text(config, rec) if config is not None else None,
        config_note=config_note(rec, a, config),
        caveats=tuple(_caveats(rec, a)),
    )


# --- the decision -----------------------------------------------------------


def _sft_kind(a: Answers) -> Recommendation:
    """Which supervised fine-tune the hardware and data allow."""
    if a.hardware == "gpu_small":
        return "sft_qlora"
    if a.hardware == "gpu_large" and a.data == "over_10k":
        return "sft_full"
    return "sft_lora"


def _hardware_reason(rec: Recommendation, a: Answers) -> Reason:
    text = {
        "cpu": "Without a CUDA GPU, QLoRA is out and only small models train in reasonable time: LoRA on a small model.",
        "gpu_small": "Under 16 GB a 7-8B model does not fit in 16 bits (about 15 GB of weights alone); in 4 bits it does.",
        "gpu_medium": "16-48 GB holds a 7-8B model in 16 bits with LoRA adapters; full fine-tuning of it would not fit.",
        "gpu_large": (
            "Enough memory for full fine-tuning of a small model, and more than 10,000 examples to use its capacity."
            if rec == "sft_full"
            else "Plenty of memory, but with fewer than 10,000 examples LoRA is the cheaper, safer choice."
        ),
    }[a.hardware]
    return Reason("hardware", a.hardware, text)


def _decide(a: Answers) -> tuple[Recommendation, list[Reason]]:
    """The recommendation and the answers that led to it, in the order they mattered."""
    reasons: list[Reason] = []
    if a.change == "knowledge" or (a.change == "both" and (a.little_data or a.task == "knowledge")):
        if a.task == "knowledge":
            reasons.append(Reason("task", a.task, "New facts are better served by retrieval than by training them in."))
        if a.change == "knowledge":
            reasons.append(Reason("change", a.change, "Only knowledge must change: put it in the prompt by retrieval."))
            return "rag", reasons
        reasons.append(
            Reason("change", a.change, "Knowledge comes first, and retrieval handles it; behaviour can follow.")
        )
        if a.little_data:
            reasons.append(Reason("data", a.data, "Too few examples to fine-tune the behaviour part yet."))
        return "rag", reasons
    if a.prompting == "good" and a.deployment == "hosted":
        reasons.append(Reason("prompting", a.prompting, "A prompted model already does the job."))
        reasons.append(Reason("deployment", a.deployment, "And serving a big hosted model per request is acceptable."))
        return "prompting", reasons
    if a.preferences == "yes":
        reasons.append(Reason("preferences", a.preferences, "Better/worse pairs are exactly what DPO learns from."))
        if a.change == "both":
            reasons.append(Reason("change", a.change, "DPO shapes how it answers; keep the facts in retrieval."))
        return "dpo", reasons
    if a.change == "both":
        reasons.append(Reason("change", a.change, "The behaviour part needs training; the facts belong in retrieval."))
    if a.prompting == "good":
        reasons.append(
            Reason("prompting", a.prompting, "The big model's outputs can be the training data (distillation).")
        )
        reasons.append(
            Reason("deployment", a.deployment, "A small model has to do it at serving time, so fine-tune one.")
        )
    elif a.little_data:
        reasons.append(
            Reason("data", a.data, "Too few examples to fine-tune reliably; use them as in-prompt examples.")
        )
        return "prompting", reasons
    elif a.prompting == "not_tried" and a.deployment == "hosted":
        reasons.append(
            Reason("prompting", a.prompting, "Try it first: it is cheap and sets the bar a fine-tune must beat.")
        )
        reasons.append(Reason("deployment", a.deployment, "A big hosted model per request is acceptable."))
        return "prompting", reasons
    else:
        if a.prompting == "not_enough":
            reasons.append(Reason("prompting", a.prompting, "Prompting falls short: the model has to be trained."))
        if a.deployment != "hosted":
            reasons.append(
                Reason("deployment", a.deployment, "A small model must do it: fine-tuning makes one good at one job.")
            )
        reasons.append(Reason("data", a.data, "Enough labelled examples for supervised fine-tuning."))
    rec = _sft_kind(a)
    reasons.append(_hardware_reason(rec, a))
    return rec, reasons


# --- data needed and alternatives -------------------------------------------


def _distilling(a: Answers) -> bool:
    """Whether an SFT recommendation trains on a big model's outputs (prompting works, but not deployable)."""
    return a.prompting == "good" and a.deployment != "hosted"


def _data_needed(rec: Recommendation, a: Answers) -> DataNeeded:
    if rec == "prompting":
        return DataNeeded(
            "no training data. Write a few dozen test inputs with the outputs you expect to compare prompts on, and "
            "put a handful of them in the prompt as examples. A fine-tune would want on the order of 1,000 curated "
            "examples.",
            (FEW_SHOT, LIMA),
        )
    if rec == "rag":
        return DataNeeded(
            "no training set: the documents to retrieve from, and a few dozen to a few hundred questions with known "
            "answers to measure retrieval and answers.",
            (OVADIA, GEKHMAN, RAG_LEWIS),
        )
    if rec == "dpo":
        kind = QLORA if a.hardware == "gpu_small" else LORA
        return DataNeeded(
            "hundreds to tens of thousands of preference pairs (prompt, chosen, rejected): start with what you have, "
            "hold out a tenth, and add pairs while the held-out reward accuracy keeps rising.",
            (DPO_PAPER, PREFERENCE_SIZES, kind),
        )
    evidence: list[Citation] = [LIMA, QLORA_DATA]
    if a.task == "reasoning":
        summary = (
            "thousands of examples or more, with the reasoning written out; about 1,000 curated traces "
            "have worked on top of a strong base model."
        )
        evidence.append(S1)
    else:
        summary = (
            "hundreds to a few thousand high-quality examples; about 1,000 curated ones is a well-documented "
            "starting point for format, style and tone. Quality beats quantity."
        )
    if _distilling(a):
        summary += " Generate them by running the big model on real inputs, and review a sample by hand."
        evidence.append(ALPACA)
    if a.change == "both":
        evidence.append(OVADIA)
    evidence += {"sft_lora": [LORA], "sft_qlora": [QLORA, LORA], "sft_full": [ZERO, BIDERMAN]}[rec]
    return DataNeeded(summary, tuple(evidence))


def _why_not(option: Recommendation, rec: Recommendation, a: Answers) -> str:
    """Why ``option`` was not recommended when ``rec`` was."""
    if option == "prompting":
        return _why_not_prompting(rec, a)
    if option == "rag":
        if a.change == "behaviour":
            return "retrieval adds facts to the prompt; it does not change how the model answers (format, tone, procedure)."
        return "still use it for the facts; the recommendation is about the rest."
    if option == "dpo":
        return _why_not_dpo(a)
    if not rec.startswith("sft"):
        return _why_not_sft(a)
    return _why_not_sft_kind(option, a)


def _why_not_prompting(rec: Recommendation, a: Answers) -> str:
    if rec == "rag":
        return "the model does not know your facts; RAG is prompting with the retrieved passages added."
    if a.deployment != "hosted":
        return (
            "serving limits rule out a big hosted model per request, and a prompt alone rarely makes a small "
            "local model good enough; keep it as the baseline to beat."
        )
    if a.prompting == "not_enough":
        return "you tried it and it falls short; keep it as the baseline the fine-tune must beat."
    return "keep it as the baseline: whatever you train must beat it on the same held-out set."


def _why_not_sft(a: Answers) -> str:
    """Why supervised fine-tuning as such was not recommended."""
    if a.change == "knowledge" or a.task == "knowledge":
        return (
            "training facts in is unreliable and can increase hallucination (Ovadia et al. 2023; Gekhman et al. 2024)."
        )
    if a.prompting == "good" and a.deployment == "hosted":
        return "not needed while prompting does the job: a fine-tune is one more model to train, serve and maintain."
    if a.preferences == "yes":
        return (
            "SFT learns only from good answers, while your pairs also show what to avoid; run SFT first only if "
            "the model does not yet answer in the right form."
        )
    if a.little_data:
        have = a.label("data").lower()
        have = "no" if have == "none" else have
        return f"you have {have} labelled examples; supervised fine-tuning wants hundreds to thousands."
    return "possible with your data, but try prompting first: if it is good enough, there is nothing to train."


def _why_not_sft_kind(option: Recommendation, a: Answers) -> str:
    """Why one kind of supervised fine-tune was not picked when another was."""
    if option == "sft_lora":
        if a.hardware == "gpu_small":
            return "a 7-8B model in 16 bits does not fit under 16 GB; QLoRA is LoRA on a 4-bit base that does."
        return "a fine, cheaper choice too; with this much data full fine-tuning can learn more (Biderman et al. 2024)."
    if option == "sft_qlora":
        if a.hardware == "cpu":
            return "4-bit quantization (bitsandbytes) needs a CUDA GPU."
        return "only worth it when the 16-bit model does not fit: quantization costs speed, and your GPU has room."
    if a.hardware != "gpu_large":
        return (
            "needs about 16 bytes per parameter for weights, gradients and Adam states (ZeRO): over 100 GB for a "
            "7B model, more than this hardware has."
        )
    return (
        "with under 10,000 examples LoRA is on par with full fine-tuning on many tasks (Hu et al. 2021) and "
        "forgets less of the base model (Biderman et al. 2024)."
    )


def _why_not_dpo(a: Answers) -> str:
    if a.preferences == "no":
        return "needs preference pairs (prompt, chosen, rejected), which you do not have."
    if a.change == "knowledge" or a.task == "knowledge":
        return "preferences shape how the model answers, not what it knows."
    if a.prompting == "good" and a.deployment == "hosted":
        return "not needed while prompting does the job; your pairs make a good test set for prompts."
    return "your pairs can come later: DPO after SFT, once the basic behaviour is there."


def _caveats(rec: Recommendation, a: Answers) -> list[str]:
    out = ["Hold out a test set before anything else, and judge every option on it against the prompting baseline."]
    if a.task == "knowledge" and a.change == "behaviour":
        out.append("You picked a knowledge task but said only behaviour must change: the advice follows the latter.")
    if rec in ("rag", "prompting") and a.deployment != "hosted":
        out.append("With a small local model, check the prompt fits its context window and that it follows it.")
    if rec == "rag" and a.change == "both":
        out.append("For the behaviour part, fine-tune later on examples that include the retrieved context.")
    if rec == "prompting" and a.little_data:
        out.append(
            "Collect real examples as you go (or generate and review synthetic ones): at a few hundred, "
            "run the advisor again."
        )
    if rec == "dpo":
        out.append(
            "DPO starts from a model that already answers in the right form (an instruct model or your SFT "
            "model); from a raw base model, run SFT first."
        )
        out.append("Watch the held-out reward accuracy and margins; many epochs over few pairs over-optimize.")
    if rec.startswith("sft") and a.change == "both":
        out.append(
            "Facts trained in are unreliable: keep them in retrieval, and train on examples that include the "
            "retrieved context."
        )
    if rec.startswith("sft") and _distilling(a):
        out.append("Check the big model's terms of use allow training on its outputs.")
    if a.task == "reasoning" and rec != "rag":
        out.append("Reasoning gains depend mostly on the base model: use the strongest base you can run.")
    if rec != "prompting" and rec != "rag" and a.hardware == "cpu":
        out.append("CPU training is practical only for small models (the bundled 135M one); expect minutes to hours.")
    if rec == "sft_full":
        out.append(
            "The starter uses a 1.5B model that fits one large GPU; bigger models need sharding over several "
            "GPUs (FSDP or DeepSpeed), which the starter config does not set up."
        )
    if rec == "sft_qlora":
        out.append("QLoRA needs CUDA and the bitsandbytes package; steps are slower than LoRA in 16 bits.")
    if a.data == "100_1k" and rec.startswith("sft"):
        out.append(
            "With a few hundred examples the eval split is small and noisy: the starter stops on overfitting "
            "and keeps the best checkpoint."
        )
    if a.unanswered:
        names = ", ".join(f"{QUESTIONS_BY_ID[q].label} ({a.label(q)})" for q in a.unanswered)
        out.append(f"Not answered, so assumed: {names}.")
    return out


# --- a second opinion -------------------------------------------------------

_SECOND_OPINION = (
    "You are an experienced machine-learning engineer advising on whether and how to fine-tune a language model. "
    "Give a second opinion on the advice below: say whether you agree with the recommendation, the biggest risk you "
    "see, and what to measure first. Be concrete and brief (under 250 words). Do not invent citations or numbers; "
    "say so when the answers leave something open."
)


def deeper_advice(answers: Mapping[str, str], advice: Advice, llm: LLM) -> str:
    """The user's LLM's second opinion on our advice, given the answers; returns its text."""
    parsed = Answers.parse(answers)
    body = "The user's answers:\n" + "\n".join(f"- {line}" for line in describe_answers(parsed))
    body += "\n\nOur rule-based advice:\n" + advice.text()
    reply = llm.complete(
        [
            {"role": "system", "content": _SECOND_OPINION},
            {"role": "user", "content": body},
        ]
    )
    return reply.text.strip()
