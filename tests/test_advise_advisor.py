"""The fine-tuning advisor: every questionnaire path, the evidence it cites, starter configs that parse."""

from __future__ import annotations

import itertools
import socket

import pytest

from workbench.advise.advisor import Advice, advise, deeper_advice
from workbench.advise.evidence import DPO_PAPER, LIMA, OVADIA, QLORA
from workbench.advise.options import RECOMMENDATIONS
from workbench.advise.questions import QUESTIONS, QUESTIONS_BY_ID, Answers, describe_answers
from workbench.config import Context, Hardware, has_errors, parse_config, validate
from workbench.llm import LLM

GPU = Context(hardware=Hardware(cuda=True, bf16=True, bitsandbytes=True))
CPU = Context(hardware=Hardware())


def answers(**overrides: str) -> dict[str, str]:
    """A full set of answers: a format task with enough data that prompting did not solve, on a mid-size GPU."""
    base = {
        "task": "format",
        "change": "behaviour",
        "data": "1k_10k",
        "preferences": "no",
        "prompting": "not_enough",
        "deployment": "local",
        "hardware": "gpu_medium",
    }
    return {**base, **overrides}


PATHS: list[tuple[str, dict[str, str]]] = [
    # prompting
    ("prompting", answers(prompting="good", deployment="hosted")),
    ("prompting", answers(data="under_100")),
    ("prompting", answers(data="none", task="behaviour")),
    ("prompting", answers(prompting="not_tried", deployment="hosted")),
    ("prompting", answers(prompting="good", deployment="hosted", preferences="yes")),
    # rag
    ("rag", answers(task="knowledge", change="knowledge", data="under_100")),
    ("rag", answers(task="knowledge", change="knowledge", data="over_10k", preferences="yes", hardware="gpu_large")),
    ("rag", answers(task="format", change="knowledge")),
    ("rag", answers(task="behaviour", change="both", data="none")),
    ("rag", answers(task="knowledge", change="both", data="1k_10k")),
    # SFT with LoRA
    ("sft_lora", answers()),
    ("sft_lora", answers(hardware="cpu", data="100_1k")),
    ("sft_lora", answers(hardware="gpu_large", data="1k_10k")),
    ("sft_lora", answers(task="behaviour", change="both", data="100_1k")),
    ("sft_lora", answers(prompting="good", deployment="volume", data="none", hardware="cpu")),  # distillation
    # SFT with QLoRA
    ("sft_qlora", answers(hardware="gpu_small")),
    ("sft_qlora", answers(hardware="gpu_small", task="reasoning", data="over_10k")),
    ("sft_qlora", answers(hardware="gpu_small", prompting="good", deployment="local", data="under_100")),
    # full fine-tuning
    ("sft_full", answers(hardware="gpu_large", data="over_10k")),
    ("sft_full", answers(hardware="gpu_large", data="over_10k", task="reasoning", prompting="not_tried")),
    # DPO
    ("dpo", answers(preferences="yes")),
    ("dpo", answers(preferences="yes", data="none", hardware="cpu")),
    ("dpo", answers(preferences="yes", change="both", hardware="gpu_small")),
    ("dpo", answers(preferences="yes", prompting="good", deployment="local")),
]


@pytest.mark.parametrize(("expected", "given"), PATHS, ids=[f"{e}-{i}" for i, (e, _) in enumerate(PATHS)])
def test_each_path_leads_to_its_recommendation(expected, given):
    advice = advise(given)
    assert advice.recommendation == expected
    assert advice.reasons, "every recommendation says why"
    for reason in advice.reasons:
        assert given[reason.question] == reason.answer, "each reason is tied to an answer given"


def test_every_recommendation_is_reachable():
    assert {expected for expected, _ in PATHS} == set(RECOMMENDATIONS)


def test_a_knowledge_question_with_little_data_leads_to_rag_citing_retrieval_results():
    advice = advise({"task": "knowledge", "change": "knowledge", "data": "under_100"})
    assert advice.recommendation == "rag"
    assert OVADIA in advice.data_needed.evidence
    assert {r.question for r in advice.reasons} >= {"task", "change"}
    assert advice.starter_config is None and advice.config_note.startswith("none")
    why_not_sft = next(a.why_not for a in advice.alternatives if a.option == "sft_lora")
    assert "Ovadia" in why_not_sft


def test_the_questionnaire_is_short_and_well_formed():
    assert 6 <= len(QUESTIONS) <= 7
    assert len(QUESTIONS_BY_ID) == len(QUESTIONS)
    assert {"task", "data", "preferences", "change", "deployment", "hardware"} <= set(QUESTIONS_BY_ID)
    for q in QUESTIONS:
        assert q.text.endswith("?") and q.help and q.label
        assert len(q.options) >= 2 and len(set(q.option_ids)) == len(q.options)
        assert q.default in q.option_ids
    assert QUESTIONS_BY_ID["data"].option_ids == ("none", "under_100", "100_1k", "1k_10k", "over_10k")
    assert QUESTIONS_BY_ID["hardware"].option_ids == ("cpu", "gpu_small", "gpu_medium", "gpu_large")


def all_answer_sets():
    for combo in itertools.product(*(q.option_ids for q in QUESTIONS)):
        yield dict(zip((q.id for q in QUESTIONS), combo))


def test_every_combination_of_answers_gives_complete_advice_and_a_config_that_parses():
    """All ~4,000 answer sets: a recommendation, reasons tied to answers, and a starter config that parses and validates."""
    configs: dict[str, str] = {}
    for given in all_answer_sets():
        advice = advise(given)
        rec = advice.recommendation
        assert rec in RECOMMENDATIONS
        assert advice.reasons and all(given[r.question] == r.answer for r in advice.reasons)
        assert advice.data_needed.summary and advice.data_needed.evidence
        assert {a.option for a in advice.alternatives} == set(RECOMMENDATIONS) - {rec}
        assert all(a.why_not for a in advice.alternatives)
        assert advice.caveats
        if rec in ("prompting", "rag"):
            assert advice.starter_config is None
        else:
            assert advice.starter_config is not None
            configs.setdefault(advice.starter_config, given["hardware"])
    assert len(configs) > 10
    for text, hardware in configs.items():
        config = parse_config(text)
        assert config.data.train == "data/train.jsonl" and config.data.val == "data/val.jsonl"
        context = CPU if hardware == "cpu" else GPU
        findings = validate(config, context)
        assert not has_errors(findings), [str(f) for f in findings]
        assert not [f for f in findings if f.field == "train.learning_rate"], "the learning rate suits the method"


def config_of(advice: Advice):
    assert advice.starter_config is not None
    return parse_config(advice.starter_config)


def test_starter_configs_follow_the_recommendation():
    lora = config_of(advise(answers()))
    assert (lora.method, lora.finetune) == ("sft", "lora")
    assert lora.train.learning_rate == 2e-4 and lora.lora.alpha == 2 * lora.lora.r
    assert lora.lora.target_modules == "all-linear" and lora.train.gradient_checkpointing

    qlora = config_of(advise(answers(hardware="gpu_small")))
    assert qlora.finetune == "qlora" and qlora.train.optimizer == "paged_adamw_8bit"

    full = config_of(advise(answers(hardware="gpu_large", data="over_10k")))
    assert full.finetune == "full" and full.train.learning_rate == 2e-5 and full.train.epochs == 1

    dpo = config_of(advise(answers(preferences="yes")))
    assert (dpo.method, dpo.finetune) == ("dpo", "lora") and dpo.train.learning_rate == 5e-6

    cpu = config_of(advise(answers(hardware="cpu", data="100_1k")))
    assert cpu.model == "bundled" and cpu.train.max_length <= 512 and not cpu.train.gradient_checkpointing
    assert cpu.train.epochs == 3 and cpu.lora.r == 8 and cpu.eval.stop_on_overfit


def test_more_data_means_fewer_epochs_and_a_larger_rank():
    small = config_of(advise(answers(data="100_1k")))
    large = config_of(advise(answers(data="over_10k")))
    assert small.train.epochs > large.train.epochs
    assert small.lora.r < large.lora.r


def test_data_needed_cites_the_published_results():
    assert LIMA in advise(answers()).data_needed.evidence
    assert QLORA in advise(answers(hardware="gpu_small")).data_needed.evidence
    assert "48 GB" in QLORA.finding
    dpo = advise(answers(preferences="yes")).data_needed
    assert DPO_PAPER in dpo.evidence and any("HH-RLHF" in c.finding for c in dpo.evidence)
    reasoning = advise(answers(task="reasoning")).data_needed
    assert any("s1" in c.source for c in reasoning.evidence)
    assert any("Alpaca" in c.source for c in advise(answers(prompting="good")).data_needed.evidence)


def test_advice_text_is_a_readable_block():
    text = advise(answers(hardware="gpu_small")).text()
    for heading in (
        "Recommendation: SFT with QLoRA",
        "Why:",
        "Data needed:",
        "Evidence:",
        "Alternatives considered:",
        "Caveats:",
        "Starter config:",
    ):
        assert heading in text
    assert "Hardware: A CUDA GPU under 16 GB." in text
    assert "QLoRA (Dettmers et al. 2023)" in text
    assert "finetune: qlora" in text
    rag = advise(answers(change="knowledge")).text()
    assert "Starter config: none" in rag and "finetune:" not in rag


def test_unanswered_questions_take_defaults_and_say_so():
    advice = advise({"task": "format", "change": "behaviour"})
    assert advice.recommendation == "prompting"  # no data by default
    assert any("Not answered, so assumed" in c and "Hardware" in c for c in advice.caveats)


def test_unknown_questions_and_options_are_refused():
    with pytest.raises(ValueError, match="unknown question"):
        advise({"budget": "high"})
    with pytest.raises(ValueError, match="no option 'tpu'"):
        advise({"hardware": "tpu"})


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_deeper_advice_asks_the_llm_with_the_answers_and_our_advice(offline):
    seen = []

    def reply(messages):
        seen.append(messages)
        return "I agree: start with QLoRA, but measure the prompting baseline first."

    given = answers(hardware="gpu_small")
    advice = advise(given)
    text = deeper_advice(given, advice, LLM("openai/gpt-4o-mini", mock=reply))
    assert text == "I agree: start with QLoRA, but measure the prompting baseline first."
    (messages,) = seen
    assert messages[0]["role"] == "system" and "second opinion" in messages[0]["content"]
    prompt = messages[1]["content"]
    for line in describe_answers(Answers.parse(given)):
        assert line in prompt
    assert "Recommendation: SFT with QLoRA" in prompt
