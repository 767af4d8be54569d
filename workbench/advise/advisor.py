"""The question to settle before fine-tuning: prompting, RAG, SFT (LoRA, QLoRA, full) or DPO?

:data:`QUESTIONS` is a short questionnaire (the Advisor pane shows one question
at a time); :func:`advise` turns the answers into an :class:`Advice`: a
recommendation with the reason behind each answer, the data it needs and the
published results that estimate rests on, the alternatives and why not, a
starter run config, and caveats. It is rule-based and works without any LLM;
:func:`deeper_advice` asks the user's LLM for a second opinion on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal, get_args

from workbench.config.schema import DataConfig, EvalConfig, LoraConfig, RunConfig, TrainConfig, dump_config

if TYPE_CHECKING:
    from workbench.llm import LLM

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

PLACEHOLDER_TRAIN = "data/train.jsonl"
PLACEHOLDER_VAL = "data/val.jsonl"


# --- the questionnaire ------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One question of the questionnaire, with its options as (id, label) pairs."""

    id: str
    label: str  # a short name for summaries ("Hardware")
    text: str
    help: str
    options: tuple[tuple[str, str], ...]
    default: str  # assumed when the question is left unanswered

    def option_label(self, option_id: str) -> str:
        """The label of one of this question's options."""
        for oid, label in self.options:
            if oid == option_id:
                return label
        raise ValueError(f"question {self.id!r} has no option {option_id!r}; options: {', '.join(self.option_ids)}")

    @property
    def option_ids(self) -> tuple[str, ...]:
        return tuple(oid for oid, _ in self.options)


QUESTIONS: list[Question] = [
    Question(
        "task",
        "Task",
        "What should the model get better at?",
        "Pick the closest one; it separates teaching facts from teaching behaviour.",
        (
            ("format", "Output format, style, extraction or classification"),
            ("knowledge", "Domain knowledge or facts"),
            ("behaviour", "Chat behaviour or tone"),
            ("reasoning", "Reasoning or a skill (maths, code, multi-step work)"),
        ),
        "format",
    ),
    Question(
        "change",
        "What must change",
        "What must change in the model's answers?",
        "Knowledge is what it knows; behaviour is how it answers (format, tone, procedure).",
        (
            ("knowledge", "What it knows: facts, documents, data that changes"),
            ("behaviour", "How it answers: format, tone, following a procedure"),
            ("both", "Both"),
        ),
        "behaviour",
    ),
    Question(
        "data",
        "Labelled data",
        "How many labelled examples (an input and a good output) do you have?",
        "Count only examples you would stand behind; a tenth or so is held out for evaluation.",
        (
            ("none", "None"),
            ("under_100", "Fewer than 100"),
            ("100_1k", "100 to 1,000"),
            ("1k_10k", "1,000 to 10,000"),
            ("over_10k", "More than 10,000"),
        ),
        "none",
    ),
    Question(
        "preferences",
        "Preference pairs",
        "Do you have preference pairs: for one prompt, a better and a worse answer?",
        "From ratings, A/B choices or corrected outputs; a few hundred pairs or more.",
        (("yes", "Yes"), ("no", "No")),
        "no",
    ),
    Question(
        "prompting",
        "Prompting so far",
        "Have you tried a strong model with a careful prompt and a few examples?",
        "Prompting is the baseline every fine-tune has to beat.",
        (
            ("good", "Yes, and it is good enough"),
            ("not_enough", "Yes, and it falls short"),
            ("not_tried", "Not yet"),
        ),
        "not_tried",
    ),
    Question(
        "deployment",
        "Latency and cost",
        "What are the latency and cost limits when it runs?",
        "How the model will be served decides whether a big hosted model is an option.",
        (
            ("hosted", "A big hosted model per request is fine"),
            ("local", "It must be small and run locally"),
            ("volume", "It must be cheap at high volume"),
        ),
        "hosted",
    ),
    Question(
        "hardware",
        "Hardware",
        "What hardware can you train on?",
        "The memory of your largest GPU, or several GPUs.",
        (
            ("cpu", "CPU only, or an Apple-silicon Mac"),
            ("gpu_small", "A CUDA GPU under 16 GB"),
            ("gpu_medium", "A CUDA GPU with 16 to 48 GB"),
            ("gpu_large", "More than 48 GB, or several GPUs"),
        ),
        "cpu",
    ),
]

QUESTIONS_BY_ID: dict[str, Question] = {q.id: q for q in QUESTIONS}


@dataclass(frozen=True)
class Answers:
    """The answers to :data:`QUESTIONS`, validated, with defaults for the unanswered."""

    task: str
    change: str
    data: str
    preferences: str
    prompting: str
    deployment: str
    hardware: str
    unanswered: tuple[str, ...] = ()

    @classmethod
    def parse(cls, answers: Mapping[str, str]) -> Answers:
        """Check every answer against its question; an unknown question or option is a ValueError."""
        unknown = sorted(set(answers) - set(QUESTIONS_BY_ID))
        if unknown:
            raise ValueError(f"unknown question(s) {', '.join(unknown)}; questions: {', '.join(QUESTIONS_BY_ID)}")
        values: dict[str, str] = {}
        for q in QUESTIONS:
            value = answers.get(q.id)
            if value is not None:
                q.option_label(value)  # raises on an unknown option
            values[q.id] = q.default if value is None else value
        missing = tuple(q.id for q in QUESTIONS if answers.get(q.id) is None)
        return cls(**values, unanswered=missing)

    def label(self, question_id: str) -> str:
        """The label of the answer given (or assumed) to a question."""
        return QUESTIONS_BY_ID[question_id].option_label(getattr(self, question_id))

    def as_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "unanswered"}

    @property
    def little_data(self) -> bool:
        return self.data in ("none", "under_100")


def describe_answers(answers: Answers) -> list[str]:
    """One line per question: the question and the answer, for people and for an LLM prompt."""
    lines = []
    for q in QUESTIONS:
        assumed = " (not answered; assumed)" if q.id in answers.unanswered else ""
        lines.append(f"{q.text} {answers.label(q.id)}{assumed}")
    return lines


# --- the evidence -----------------------------------------------------------


@dataclass(frozen=True)
class Citation:
    """A published result, and what it found that the advice rests on."""

    source: str
    finding: str

    def __str__(self) -> str:
        return f"{self.source}: {self.finding}"


FEW_SHOT = Citation(
    "GPT-3 (Brown et al. 2020)",
    "large models pick up a task from a handful of examples in the prompt (in-context learning), with no training.",
)
LIMA = Citation(
    "LIMA (Zhou et al. 2023)",
    "about 1,000 carefully curated prompt-response pairs taught LLaMa-65B the style and format of an assistant; "
    "quality and diversity of the examples mattered more than their number.",
)
OVADIA = Citation(
    "Fine-tuning or retrieval? (Ovadia et al. 2023)",
    "for knowledge injection, retrieval (RAG) consistently beat unsupervised fine-tuning, both for facts seen in "
    "pre-training and for new ones; fine-tuning struggled to learn new facts.",
)
GEKHMAN = Citation(
    "Gekhman et al. 2024",
    "fine-tuning examples that bring new knowledge are learned more slowly, and as they are learned the model "
    "hallucinates more.",
)
RAG_LEWIS = Citation(
    "RAG (Lewis et al. 2020)",
    "conditioning generation on retrieved passages did well on knowledge-intensive tasks, and the knowledge is "
    "updated by changing the index, without retraining.",
)
LORA = Citation(
    "LoRA (Hu et al. 2021)",
    "training low-rank updates on a frozen model matched full fine-tuning quality on the models tested, with up to "
    "10,000x fewer trainable parameters and 3x less GPU memory for GPT-3 175B.",
)
QLORA = Citation(
    "QLoRA (Dettmers et al. 2023)",
    "a 4-bit NF4 base with LoRA on all linear layers fine-tunes a 65B model on one 48 GB GPU while preserving "
    "16-bit fine-tuning performance.",
)
QLORA_DATA = Citation(
    "QLoRA (Dettmers et al. 2023), data",
    "a 9k-example high-quality set (OASST1) beat a 450k-example subset of FLAN v2 for chatbot quality: "
    "quality over quantity.",
)
ZERO = Citation(
    "ZeRO (Rajbhandari et al. 2020)",
    "mixed-precision training with Adam holds about 16 bytes per parameter (weights, gradients, optimizer states): "
    "over 100 GB for a 7B model before activations.",
)
BIDERMAN = Citation(
    "LoRA Learns Less and Forgets Less (Biderman et al. 2024)",
    "on code and maths with large training sets, full fine-tuning learned more than LoRA, while LoRA kept more of "
    "the base model's other abilities.",
)
S1 = Citation(
    "s1 (Muennighoff et al. 2025)",
    "1,000 curated questions with reasoning traces from a stronger model lifted a strong 32B instruct model on "
    "competition maths; reasoning data works on top of a capable base.",
)
ALPACA = Citation(
    "Alpaca (Taori et al. 2023)",
    "52k instruction-response pairs generated by a bigger model (text-davinci-003) fine-tuned LLaMA-7B into an "
    "instruction follower: distilling a big model into a small one.",
)
DPO_PAPER = Citation(
    "DPO (Rafailov et al. 2023)",
    "preferences are learned with a classification loss against a frozen reference model, with no reward model "
    "or RL loop; it matched or beat PPO-based RLHF on sentiment control, summarization and dialogue.",
)
PREFERENCE_SIZES = Citation(
    "Public preference sets",
    "UltraFeedback (about 64k prompts; used with DPO for Zephyr-7B, Tunstall et al. 2023) and Anthropic HH-RLHF "
    "(about 160k comparisons, Bai et al. 2022) are 10^4 to 10^5 pairs; there is no published minimum for a narrow "
    "change, so measure on held-out pairs.",
)


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
    config = _starter_config(rec, a)
    return Advice(
        recommendation=rec,
        title=TITLES[rec],
        reasons=tuple(reasons),
        data_needed=_data_needed(rec, a),
        alternatives=tuple(Alternative(o, _why_not(o, rec, a)) for o in RECOMMENDATIONS if o != rec),
        starter_config=_config_text(config, rec) if config is not None else None,
        config_note=_config_note(rec, a, config),
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
        return f"you have {a.label('data').lower()} examples; supervised fine-tuning wants hundreds to thousands."
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


# --- the starter config -----------------------------------------------------

_GPU_MODEL = "Qwen/Qwen2.5-7B-Instruct"  # a 7B chat model: LoRA in 16 bits from ~24 GB, QLoRA under 16 GB
_FULL_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"  # ~16 bytes/parameter for full fine-tuning: fits one large GPU
_BATCH = {"cpu": (4, 4), "gpu_small": (2, 8), "gpu_medium": (2, 8), "gpu_large": (8, 4)}  # batch, accumulation
_MAX_LENGTH = {"format": 512, "knowledge": 1024, "behaviour": 1024, "reasoning": 2048}
_EPOCHS = {"100_1k": 3.0, "1k_10k": 2.0, "over_10k": 1.0}
_RANK = {"100_1k": 8, "1k_10k": 16, "over_10k": 32}


def _starter_config(rec: Recommendation, a: Answers) -> RunConfig | None:
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


def _config_text(config: RunConfig, rec: Recommendation) -> str:
    header = (
        f"# Starter config from the advisor: {TITLES[rec]}.\n"
        f"# Replace {PLACEHOLDER_TRAIN} and {PLACEHOLDER_VAL} with your data, then `workbench check` it.\n"
    )
    return header + dump_config(config)


def _config_note(rec: Recommendation, a: Answers, config: RunConfig | None) -> str:
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
