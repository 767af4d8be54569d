"""The advisor's questionnaire: seven questions, and the answers checked against them.

The Advisor pane shows one question at a time; ``workbench advise`` takes one
flag per question. :meth:`Answers.parse` fills the unanswered with defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields


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
