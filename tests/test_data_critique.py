"""The rule-based dataset critic: every check on hand-written cases, the planted defects of messy.jsonl, the API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest
from conftest import SAMPLE, tiny_tokenizer

from workbench.data.checks import CHECKS, CritiqueReport, critique
from workbench.data.checks.lang import detect
from workbench.data.checks.lengths import TokenCounter
from workbench.data.checks.pii import scan
from workbench.data.findings import DataFinding
from workbench.data.formats import Shape
from workbench.data.load import load_rows
from workbench.errors import DataError

SUPPORT = SAMPLE / "support"
LM = Shape.LANGUAGE_MODELING


def chat(user: str, answer: str | None = "Sure.", system: str | None = None) -> dict:
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": user})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def roles(*names: str) -> dict:
    """A conversation with these roles in order."""
    return {"messages": [{"role": r, "content": f"turn {i}"} for i, r in enumerate(names)]}


def roles_and(*pairs: str) -> dict:
    """A conversation from alternating role, content arguments."""
    return {"messages": [{"role": r, "content": c} for r, c in zip(pairs[::2], pairs[1::2])]}


def run(rows: list, check: str, shape: Shape | str = LM, **kwargs) -> list[DataFinding]:
    """The findings of one check."""
    return critique(rows, shape, checks={check}, **kwargs).findings


def flagged(rows: list, check: str, shape: Shape | str = LM, **kwargs) -> set[int]:
    return {f.index for f in run(rows, check, shape, **kwargs)}


def ok_rows(n: int, answer: str = "Your order ships on Monday.") -> list[dict]:
    """``n`` unremarkable examples, to give a majority something to vote with."""
    return [chat(f"Hello, when does order number {i} ship? It was placed last week.", answer) for i in range(n)]


@pytest.fixture(scope="module")
def tokenizer():
    """The conftest's tiny ChatML tokenizer (trained in well under a second)."""
    return tiny_tokenizer((SUPPORT / "train.jsonl").read_text(encoding="utf-8").splitlines())


# -- empty_output -------------------------------------------------------------------


def test_empty_output_finds_empty_and_whitespace_answers():
    rows = [chat("q", ""), chat("q", " \n\t"), chat("q", "0"), chat("q", "ok")]
    found = run(rows, "empty_output")
    assert {f.index for f in found} == {0, 1}
    assert all(f.severity == "error" and f.field == "response" for f in found)


def test_empty_output_on_preference_data_and_earlier_turns():
    rows = [
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "  "},
        {"prompt": "Say hi", "chosen": "", "rejected": "Go away."},
        {"prompt": "Say hi", "chosen": "Hi!", "rejected": "Go away."},
    ]
    found = run(rows, "empty_output", Shape.PREFERENCE)
    assert {(f.index, f.field) for f in found} == {(0, "rejected"), (1, "response")}
    found = run([roles_and("user", "first", "assistant", "", "user", "again", "assistant", "Hi")], "empty_output")
    assert [(f.severity, f.message) for f in found] == [("warning", "assistant turn 2 is empty")]


# -- placeholder_output -------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "N/A",
        "<No Output>",
        "<noinput>",
        "TODO",
        "...",
        "…",
        "TBD",
        "  n/a. ",
        "-",
        "TODO: write this",
        "Lorem ipsum dolor sit amet, consectetur.",
    ],
)
def test_placeholder_answers_are_errors(answer):
    found = run([chat("q", answer)], "placeholder_output")
    assert [(f.severity, f.field) for f in found] == [("error", "response")]
    assert "is a placeholder" in found[0].message or "lorem ipsum filler" in found[0].message


@pytest.mark.parametrize(
    "answer",
    [
        "null",
        "None",
        "As an AI language model, I cannot browse the internet.",
        "I'm sorry, but I can't help with that.",
        "Best regards, [Your Name]",
    ],
)
def test_maybe_placeholders_refusals_and_slots_are_warnings(answer):
    assert [f.severity for f in run([chat("q", answer)], "placeholder_output")] == ["warning"]


@pytest.mark.parametrize(
    "answer",
    [
        "None of the three options fit, because the invoice is from 2024.",
        "N/A values are dropped by pandas before the mean is taken.",
        "To do that, open Settings.",
        "42",
        "No.",
        "I cannot wait to try it!",
    ],
)
def test_real_answers_are_not_placeholders(answer):
    assert run([chat("q", answer)], "placeholder_output") == []


def test_placeholder_input_and_rejected_answer():
    rows = [
        {"instruction": "Name a colour.", "input": "<noinput>", "output": "Blue."},
        {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    ]
    found = run(rows, "placeholder_output", Shape.ALPACA)
    assert [(f.index, f.field, f.severity) for f in found] == [(0, "prompt", "warning")]
    pair = {"prompt": "p", "chosen": "A real answer.", "rejected": "N/A"}
    found = run([pair], "placeholder_output", Shape.PREFERENCE)
    assert [(f.field, f.severity) for f in found] == [("rejected", "warning")]


# -- invisible_input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    [
        "See the attached screenshot for the error.",
        "<Picture Attached> What breed is this dog?",
        "Summarize this article: https://example.com/news/42",
        "Describe the image above in two sentences.",
        "Please open data/sales_2025.csv and report the total.",
        "Check the attachment and tell me what you think.",
    ],
)
def test_invisible_input_finds_what_the_model_cannot_see(user):
    found = run([chat(user)], "invisible_input")
    assert [(f.severity, f.field) for f in found] == [("warning", "prompt")]


@pytest.mark.parametrize(
    "user",
    [
        "I bought it from https://shop.example.com last week and it broke.",
        "Here is the text I pasted, no attachment needed: the meeting moved to Friday.",
        "Write a caption for a photo of a sunset at the beach.",
        "What is a CSV file?",
    ],
)
def test_invisible_input_leaves_self_contained_prompts_alone(user):
    assert run([chat(user)], "invisible_input") == []


# -- merged_instructions ------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "Paris.\n\n### Instruction:\nName the capital of Spain.",
        "The total is 12.\nHuman: thanks! and what about 13?",
        "Done.\n\nInstruction 2: Translate it to French.",
    ],
)
def test_answers_running_on_into_a_new_instruction(answer):
    found = run([chat("What is the capital of France?", answer)], "merged_instructions")
    assert [f.field for f in found] == ["response"]


def test_prompts_holding_several_instructions_and_stray_chat_tokens():
    two = "### Instruction:\nAdd 2 and 2.\n\n### Instruction:\nNow multiply by 3."
    dialogue = "Human: hi\nAssistant: hello\nHuman: what time is it?"
    token = "Tell me a joke<|im_end|>"
    found = run([chat(two), chat(dialogue), chat(token)], "merged_instructions")
    assert [(f.index, f.field) for f in found] == [(0, "prompt"), (1, "prompt"), (2, "prompt")]
    assert "'<|im_end|>'" in found[2].message


@pytest.mark.parametrize(
    "answer",
    [
        "Q: Is it safe?\nA: Yes, when unplugged.",
        "Set the user: field to your login.",
        "Steps:\n1. Open the lid.\n2. Remove the filter.",
    ],
)
def test_ordinary_answers_are_not_merged(answer):
    assert run([chat("How do I clean it?", answer)], "merged_instructions") == []


# -- consistency --------------------------------------------------------------------


def test_dates_against_the_majority_convention():
    rows = ok_rows(9, "Ships on 2026-03-14.") + [
        chat("q", "Ships on 03/14/2026."),
        chat("q", "Ships on March 3, 2026."),
    ]
    found = run(rows, "consistency")
    assert [f.index for f in found] == [9, 10]
    assert found[0].message == (
        "date '03/14/2026' is MM/DD/YYYY; 82% of answers with a date use YYYY-MM-DD (e.g. '2026-03-14')"
    )
    assert found[0].suggestion == "Write it as 2026-03-14." and found[1].suggestion == "Write it as 2026-03-03."
    summary = critique(rows, LM, checks={"consistency"}).summary
    assert summary.conventions[0].text == "dates: YYYY-MM-DD in 82% of 11 answers with a date"


def test_no_report_without_a_clear_majority():
    rows = ok_rows(6, "Ships on 2026-03-14.") + [chat("q", "Ships on 03/14/2026.") for _ in range(4)]
    assert run(rows, "consistency") == []
    convention = critique(rows, LM, checks={"consistency"}).summary.conventions[0]
    assert convention.value == "mixed" and "no clear convention" in convention.text


def test_ambiguous_dates_follow_the_dataset_order():
    rows = [chat("q", f"On {d}/{m}/2026.") for d, m in ((25, 1), (14, 2), (30, 3), (13, 4), (20, 5), (3, 4))]
    assert run(rows, "consistency") == []  # 03/04 reads as DD/MM like the others


def test_json_validity_keys_and_order():
    good = '{"name":"Ann","issue":"billing","date":"2026-01-02"}'
    rows = [chat("q", good) for _ in range(10)] + [
        chat("q", '{"name":"Ann","issue":"billing","date":"2026-01-02"'),  # cut off
        chat("q", "{'name': 'Ann', 'issue': 'billing', 'date': '2026-01-02'}"),  # Python repr
        chat("q", '{"name":"Ann","date":"2026-01-02","mood":"sad"}'),  # missing issue, extra mood
        chat("q", '{"issue":"billing","name":"Ann","date":"2026-01-02"}'),  # other key order
        chat("q", "Sure! The name is Ann."),  # prose among JSON
    ]
    found = {f.index: f for f in run(rows, "consistency")}
    assert sorted(found) == [10, 11, 12, 13, 14]
    assert found[10].severity == "error" and "cut off" in found[10].message
    assert found[11].severity == "error" and "Python literal" in found[11].message
    assert found[12].severity == "warning" and "missing issue; extra mood" in found[12].message
    assert found[13].severity == "info" and "another order" in found[13].message
    assert found[14].severity == "error" and "prose, not JSON" in found[14].message


def test_casing_punctuation_and_list_style():
    rows = [chat("q", f"The parcel left the depot on day {i}.") for i in range(9)]
    rows += [chat("q", "the parcel left the depot."), chat("q", "The parcel left the depot")]
    found = run(rows, "consistency")
    assert [(f.index, f.severity) for f in found] == [(9, "info"), (10, "info")]
    assert "starts lower-case" in found[0].message and "has no final punctuation" in found[1].message
    lists = [chat("q", "- apples\n- pears\n- plums") for _ in range(8)] + [chat("q", "* apples\n* pears")]
    found = run(lists, "consistency")
    assert [f.index for f in found] == [8] and "'*' items" in found[0].message


def test_style_of_json_free_text_values():
    rows = [chat("q", json.dumps({"label": "a", "summary": f"Parcel arrived late on day {i}."})) for i in range(9)]
    rows.append(chat("q", json.dumps({"label": "a", "summary": "parcel arrived late, box crushed."})))
    found = run(rows, "consistency")
    assert [f.index for f in found] == [9] and found[0].message.startswith("'summary' starts lower-case")


def test_undesirable_completions_set_no_convention():
    rows = [{"prompt": "When?", "completion": "On 2026-03-14.", "label": True} for _ in range(8)]
    rows += [
        {"prompt": "When?", "completion": "On 03/14/2026.", "label": False},
        {"prompt": "When?", "completion": "On 03/14/2026.", "label": True},
    ]
    assert flagged(rows, "consistency", Shape.UNPAIRED_PREFERENCE) == {9}


# -- length_outlier -----------------------------------------------------------------


def test_length_outliers_long_and_short():
    rows = ok_rows(20)
    rows.append(chat("Please read this thread: " + "blah " * 600, "Your order ships on Monday."))
    rows.append(
        chat(
            "Hello, when does order number 7 ship? It was placed last week.",
            "Your order ships on Monday, " + "and then it travels for a while, " * 40,
        )
    )
    found = {f.index: f for f in run(rows, "length_outlier")}
    assert sorted(found) == [20, 21]
    assert found[20].field == "prompt" and found[20].severity == "warning" and "× the median" in found[20].message
    assert found[21].field == "response"


def test_no_outliers_in_uniform_data():
    assert run(ok_rows(30), "length_outlier") == []
    assert run(ok_rows(5) + [chat("x " * 500)], "length_outlier") == []  # too few to judge


# -- too_long -----------------------------------------------------------------------


def test_too_long_says_what_truncation_cuts(tokenizer):
    short = chat("Hi", "Hello!")
    long_prompt = chat("word " * 300, "Hello!")
    long_answer = chat("Hi", "word " * 300)
    rows = [short, long_prompt, long_answer]
    found = {f.index: f for f in run(rows, "too_long", tokenizer=tokenizer, max_length=100)}
    assert sorted(found) == [1, 2]
    assert found[1].severity == "error" and "the prompt alone is" in found[1].message
    assert "whole answer is cut" in found[1].message
    assert found[2].severity == "error" and "cuts the last" in found[2].message and found[2].field == "response"
    kept_end = {
        f.index: f for f in run([long_prompt], "too_long", tokenizer=tokenizer, max_length=100, truncation="keep_end")
    }
    assert kept_end[0].severity == "warning" and "cuts only the prompt" in kept_end[0].message


def test_too_long_without_a_tokenizer_estimates_and_needs_max_length():
    found = run([chat("word " * 2000)], "too_long", max_length=1024)
    assert len(found) == 1 and found[0].message.startswith("~") and "estimated from characters" in found[0].message
    assert run([chat("word " * 50)], "too_long", max_length=1024) == []
    summary = critique([chat("hi")], LM, checks={"too_long"}).summary
    assert summary.skipped == {"too_long": "no max_length given"}
    text = run([{"text": "word " * 400}], "too_long", max_length=100)
    assert text[0].severity == "warning"  # plain text: its end is cut, there is no answer to spoil


# -- role_order ---------------------------------------------------------------------


def test_role_order_problems():
    rows = [
        roles("system", "assistant", "user"),  # assistant first, ends on user
        roles("user", "user", "assistant"),  # two users in a row
        roles("user", "assistant", "system", "user", "assistant"),  # late system turn
        roles("user", "assistant", "user"),  # ends on the user
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "yo"}]},  # unknown role
    ]
    found = {f.index: f for f in run(rows[:4], "role_order")}
    assert found[0].severity == "error" and "assistant turn 2 comes before any user turn" in found[0].message
    assert found[1].severity == "warning" and "turns 1 and 2 are both user" in found[1].message
    assert found[2].severity == "warning" and "system turn 3 is not the first" in found[2].message
    assert found[3].severity == "error" and "ends on a user turn" in found[3].message
    unknown = run(rows[4:], "role_order", Shape.SHAREGPT)
    assert "unknown role 'bot'" in unknown[0].message


def test_good_role_orders():
    rows = [
        roles("system", "user", "assistant"),
        roles("user", "assistant", "user", "assistant"),
        roles("user", "assistant", "tool", "assistant"),
    ]
    assert run(rows, "role_order") == []
    assert run([{"prompt": [{"role": "user", "content": "hi"}]}], "role_order", Shape.PROMPT_ONLY) == []
    assert run([{"text": "plain text"}], "role_order") == []


# -- chat_template ------------------------------------------------------------------


def test_chat_template_renders_cleanly(tokenizer):
    report = critique([chat("hi", "hello", system="Be brief.")], LM, tokenizer=tokenizer, checks={"chat_template"})
    assert report.findings == [] and report.summary.skipped == {}


def test_chat_template_that_drops_or_refuses_a_turn(tokenizer):
    original = tokenizer.chat_template
    rows = [chat("hi", "hello", system="Be brief."), chat("hi", "hello")]
    try:
        tokenizer.chat_template = (
            "{% for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n"
            "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
        )
        found = run(rows, "chat_template", tokenizer=tokenizer)
        assert [f.index for f in found] == [0] and "drops the system turn 'Be brief.'" in found[0].message
        tokenizer.chat_template = (
            "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
            "supported') }}{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
        )
        found = run(rows, "chat_template", tokenizer=tokenizer)
        assert [f.index for f in found] == [0] and found[0].message.endswith("System role not supported")
        tokenizer.chat_template = None
        report = critique(rows, LM, tokenizer=tokenizer, checks={"chat_template"})
        assert report.findings == [] and "no chat template" in report.summary.skipped["chat_template"]
    finally:
        tokenizer.chat_template = original


def test_chat_template_needs_a_tokenizer():
    summary = critique([chat("hi")], LM, checks={"chat_template"}).summary
    assert summary.skipped == {"chat_template": "no tokenizer given"}
    assert "chat_template: skipped, no tokenizer given" in summary.notes


# -- pii ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "severity"),
    [
        ("Write to jordan.fake@example.com today", "email address", "warning"),
        ("Call me on 555-0147 after six", "phone number", "warning"),
        ("or +44 20 7946 0958", "phone number", "warning"),
        ("My card is 4111 1111 1111 1111", "card number", "error"),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN", "warning"),
        ("key sk-fake-fjbHqN9m87GS8VHJa2zhjdaoSWfq8bUT.", "API key", "error"),
        ("aws AKIAIOSFODNN7EXAMPLE", "AWS access key", "error"),
        ("token ghp_R8x2Kq9LmZ4vT7nW1yB5cH3jD6fG0sPaEuQi", "GitHub token", "error"),
        ("//registry.npmjs.org/:_authToken=npm_4hT9xQ2mZ7vK1pL8sW3nB6cR0yD5fG2jH9kM", "npm token", "error"),
        ("stripe rk_live_51HxQ2mZ7vK1pL8sW3nB6cR0y", "Stripe key", "error"),
        ("clone https://deploy:Xk29fLq7Tz@git.example.com/repo.git", "password in a URL", "error"),
        ("xoxb-1234567890-abcdefghij", "Slack token", "error"),
        ("-----BEGIN PRIVATE KEY-----\nMIIE", "private key", "error"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "JWT",
            "error",
        ),
        ("the password: hunter2024", "secret", "error"),
    ],
)
def test_pii_kinds_are_found_and_masked(text, kind, severity):
    found = run([chat(text)], "pii")
    assert len(found) == 1 and found[0].severity == severity and kind in found[0].message
    value = next(h.value for h in scan(text) if h.kind == kind)
    assert value not in found[0].message and f"{value[0]}…{value[-1]} ({len(value)} chars)" in found[0].message


@pytest.mark.parametrize(
    "text",
    [
        "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",  # sequential: a made-up stand-in
        "the password: ${DB_PASSWORD}",  # a reference to a secret, not one
        "api_key = $OPENAI_API_KEY",
        "token 123e4567-e89b-12d3-a456-426614174000",  # an id
    ],
)
def test_stand_ins_for_secrets_are_not_secrets(text):
    """detect-secrets' false-positive controls: sequential strings, templated and $VAR values, UUIDs."""
    assert [f for f in run([chat(text)], "pii") if f.severity == "error"] == []


@pytest.mark.parametrize(
    "text",
    [
        "Ordered on 2026-06-13, delivered 4/23/2026.",
        "It cost €1,299.00 and order #12345678 is late.",
        "My card 4111 1111 1111 1112 was refused",  # fails the Luhn check
        "The password reset email never arrives.",
        "Token expired yesterday.",
        "Call 911 or 112.",
    ],
)
def test_pii_leaves_ordinary_numbers_and_words_alone(text):
    assert run([chat(text)], "pii") == []


def test_pii_in_the_answer_and_the_system_prompt():
    found = run([chat("Who?", "Mail ann@example.org", system="Use key sk-live-abcdefghijklmnop1234")], "pii")
    assert {(f.field, f.severity) for f in found} == {("system", "error"), ("response", "warning")}


# -- language_mismatch --------------------------------------------------------------


def test_detector():
    assert detect("El cliente informa de un problema con su pedido y solicita que se lo resuelvan.") == "es"
    assert detect("Der Kunde hat ein Problem mit der Lieferung und bittet um eine schnelle Lösung.") == "de"
    assert detect("The customer reports a problem with the order and asks for a quick fix.") == "en"
    assert detect("Le client signale un problème avec sa commande et demande une solution.") == "fr"
    assert detect("Клиент сообщает о проблеме с заказом и просит решить её быстро.") == "Cyrillic"
    assert detect("客户报告订单有问题，并要求尽快解决。") == "Chinese"
    assert detect("Too short.") is None


def test_language_mismatch():
    prompt = "I ordered a speaker on 20 September but the parcel contained a tablet instead. Can you help me?"
    rows = [
        chat(prompt, "El cliente informa de un problema con su pedido y solicita que se lo resuelvan pronto."),
        chat(
            prompt,
            json.dumps(
                {"issue": "shipping", "summary": "Der Kunde hat das falsche Gerät erhalten und möchte es umtauschen."}
            ),
        ),
        chat(prompt, "The customer got the wrong item and wants it exchanged as soon as possible, please."),
        chat(
            "Translate to Spanish: the parcel contained a tablet instead of the speaker I ordered.",
            "El paquete contenía una tableta en lugar del altavoz que pedí, y no es lo que quería.",
        ),
        chat(prompt, "Lo siento."),  # too short to judge
        chat(prompt, '{"issue": "shipping"}'),  # JSON without prose
    ]
    found = run(rows, "language_mismatch")
    assert [f.index for f in found] == [0, 1]
    assert found[0].message.startswith("the answer is in Spanish but the prompt is in English")
    assert "German" in found[1].message


# -- coverage -----------------------------------------------------------------------


def test_coverage_topics_labels_and_rare_values():
    topics = {
        "billing": "I was charged twice for my subscription invoice, please refund the duplicate payment",
        "shipping": "My parcel is late, the courier tracking shows the delivery stuck at the depot",
        "login": "I cannot log in to my account, the password reset link never arrives by email",
    }
    rows = []
    for i in range(60):
        issue = list(topics)[i % 3]
        rows.append(chat(f"{topics[issue]} (case {i})", json.dumps({"issue": issue, "urgency": "low"})))
    rows.append(chat(topics["billing"], json.dumps({"issue": "biling", "urgency": "low"})))
    report = critique(rows, LM, checks={"coverage"})
    overview = report.summary.coverage
    assert sum(t.size for t in overview.topics) + overview.unclustered == len(rows)
    assert [t.size for t in overview.topics] == [21, 20, 20]  # the typo row joins its topic
    vocabularies = [set(text.lower().replace(",", "").split()) for text in topics.values()]
    assert all(any(set(t.terms) <= words for words in vocabularies) for t in overview.topics)
    issue = next(label for label in overview.labels if label.key == "issue")
    assert issue.counts["billing"] == 20 and issue.rare == ["biling"]
    assert [(f.index, f.severity) for f in report.findings] == [(60, "info")]
    assert "issue 'biling' appears in only 1 answer of 61" in report.findings[0].message
    assert overview.languages == {"English": 61}
    assert not any("one system prompt" in gap for gap in overview.gaps)  # these rows have none


def test_coverage_is_quiet_on_balanced_labels():
    rows = [chat(f"Question number {i} about topic {i % 4}", json.dumps({"kind": "abcd"[i % 4]})) for i in range(40)]
    report = critique(rows, LM, checks={"coverage"})
    assert report.findings == [] and report.summary.coverage.labels[0].rare == []


# -- preference_pair ----------------------------------------------------------------


def test_identical_chosen_and_rejected():
    rows = [{"prompt": "2+2?", "chosen": "4", "rejected": " 4 "}, {"prompt": "2+2?", "chosen": "4", "rejected": "5"}]
    assert flagged(rows, "preference_pair", Shape.PREFERENCE) == {0}


# -- the planted defects of messy.jsonl ---------------------------------------------

EXPECTED = {  # DEFECTS.md kind -> the check that must flag the line (and words its message must hold)
    "empty_output": ("empty_output", ""),
    "placeholder_output": ("placeholder_output", ""),
    "non_iso_date": ("consistency", "date"),
    "invalid_json_output": ("consistency", "JSON"),
    "wrong_keys": ("consistency", "keys"),
    "overlong": ("length_outlier", ""),
    "unseeable_reference": ("invisible_input", ""),
    "role_order": ("role_order", ""),
    "pii": ("pii", ""),
    "language_mismatch": ("language_mismatch", ""),
}
NOT_MINE = {"malformed_line", "exact_duplicate", "near_duplicate", "test_leakage"}
"""Kinds other modules find: the loader (bad JSON lines) and dedup (duplicates, leakage)."""


def planted() -> dict[int, str]:
    """DEFECTS.md's 'By line' table: line -> kind."""
    text = (SUPPORT / "DEFECTS.md").read_text(encoding="utf-8").split("## By line", 1)[1]
    return {int(line): kind for line, kind in re.findall(r"^\| (\d+) \| (\w+) \|", text, re.MULTILINE)}


@pytest.fixture(scope="module")
def messy() -> tuple[CritiqueReport, list[int]]:
    """The critique of messy.jsonl (no tokenizer, max_length 2048) and each row's line in the file."""
    result = load_rows(SUPPORT / "messy.jsonl", skip_bad=True)
    return critique(result.rows, result.shape, max_length=2048), result.row_lines


def test_every_planted_defect_is_found_at_its_line(messy):
    report, line_of = messy
    defects = planted()
    assert len(defects) == 51 and set(defects.values()) == set(EXPECTED) | NOT_MINE
    found: dict[int, list[DataFinding]] = {}
    for f in report.findings:
        found.setdefault(line_of[f.index], []).append(f)
    mine = {line: kind for line, kind in defects.items() if kind in EXPECTED}
    missed = [
        (line, kind)
        for line, kind in sorted(mine.items())
        if not any(f.check == EXPECTED[kind][0] and EXPECTED[kind][1] in f.message for f in found.get(line, []))
    ]
    assert len(mine) == 32 and missed == []  # recall: 32 of 32


def test_messy_has_no_finding_off_the_planted_lines(messy):
    report, line_of = messy
    defects = planted()
    stray = [
        (line_of[f.index], f.check, f.message) for f in report.findings if defects.get(line_of[f.index]) not in EXPECTED
    ]  # clean lines, duplicates, leaked rows
    assert stray == []
    overlong = next(line for line, kind in defects.items() if kind == "overlong")
    assert {f.check for f in report.findings if line_of[f.index] == overlong} == {"length_outlier", "too_long"}


def test_overlong_in_tokens_of_the_tokenizer(tokenizer):
    result = load_rows(SUPPORT / "messy.jsonl", skip_bad=True)
    report = critique(
        result.rows, result.shape, tokenizer=tokenizer, max_length=2048, checks={"too_long", "chat_template"}
    )
    assert [result.row_lines[f.index] for f in report.findings] == [223]
    assert report.findings[0].severity == "error" and "whole answer is cut" in report.findings[0].message


def test_clean_train_set_has_few_false_positives(tokenizer):
    result = load_rows(SUPPORT / "train.jsonl")
    report = critique(result.rows, result.shape, tokenizer=tokenizer, max_length=1024)
    # Measured: 0 findings on the 320 clean rows, with every check on.
    assert len(report.findings) <= 3, [(f.index, f.check, f.message) for f in report.findings]
    assert report.summary.length_unit == "tokens"


def test_other_sample_files_are_clean():
    for name in ("val.jsonl", "test.jsonl", "preferences.jsonl", "sharegpt_sample.jsonl", "alpaca_sample.json"):
        result = load_rows(SUPPORT / name)
        assert critique(result.rows, result.shape).findings == [], name


# -- the API ------------------------------------------------------------------------


def test_summary_of_the_train_set(tokenizer):
    result = load_rows(SUPPORT / "train.jsonl")
    summary = critique(result.rows, result.shape, tokenizer=tokenizer).summary
    assert summary.examples == summary.checked == 320 and summary.shape == "language_modeling"
    assert summary.by_check["pii"] == 0 and set(summary.by_check) == set(CHECKS) - {"too_long"}
    assert summary.by_severity == {"error": 0, "warning": 0, "info": 0}
    prompt = summary.prompt_lengths
    assert prompt.count == 320 and prompt.min <= prompt.median <= prompt.p95 <= prompt.max
    assert sum(prompt.counts) == 320 and len(prompt.edges) == len(prompt.counts) + 1
    assert summary.turns.turns == {"3": 320} and summary.turns.with_system == 320
    assert summary.turns.roles == {"system": 320, "user": 320, "assistant": 320}
    assert summary.output_formats == {"json object": 320}
    texts = [c.text for c in summary.conventions]
    assert "dates: YYYY-MM-DD in 100% of 320 answers with a date" in texts
    assert {label.key for label in summary.coverage.labels} == {"issue", "urgency"}
    assert 2 <= len(summary.coverage.topics) <= 8
    text = summary.text()
    assert "Conventions:" in text and "issue: " in text and "Prompt length (tokens)" in text


def test_words_without_a_tokenizer():
    summary = critique([chat("one two three", "four five")], LM).summary
    assert summary.length_unit == "words (no tokenizer)"
    assert summary.prompt_lengths.max == 3 and summary.response_lengths.max == 2


def test_token_counts_match_the_tokenizer(tokenizer):
    rows = load_rows(SUPPORT / "messy.jsonl", skip_bad=True).rows[:40]
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    want = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert TokenCounter(tokenizer).count(texts) == want


def test_checks_registry_and_selection():
    assert len(CHECKS) >= 12 and all(isinstance(v, str) and v for v in CHECKS.values())
    report = critique([chat("q", ""), chat("a@b.com")], LM, checks=["pii"])
    assert [f.check for f in report.findings] == ["pii"] and report.summary.checks_run == ["pii"]
    with pytest.raises(DataError, match="unknown check 'spelling'"):
        critique([], LM, checks={"spelling"})
    with pytest.raises(DataError, match="truncation"):
        critique([], LM, truncation="middle")


def test_report_is_json_ready_and_grouped_by_example(messy):
    report, _ = messy
    data = json.loads(json.dumps(report.to_dict()))
    assert data["cancelled"] is False and len(data["findings"]) == len(report.findings)
    assert data["summary"]["by_check"]["consistency"] == 14
    grouped = report.by_index()
    assert sum(len(v) for v in grouped.values()) == len(report.findings)
    assert all(f.index == i for i, items in grouped.items() for f in items)
    assert [f.index for f in report.findings] == sorted(f.index for f in report.findings)


def test_progress_and_cancel():
    rows = ok_rows(2500)
    calls: list[tuple[int, int]] = []
    report = critique(rows, LM, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (5000, 5000) and all(t == 5000 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and not report.cancelled

    cancel = threading.Event()
    calls.clear()

    def stop_after_first(done: int, total: int) -> None:
        calls.append((done, total))
        cancel.set()

    rows[1500] = chat("q", "")  # past the first chunk: never seen
    report = critique(rows, LM, progress=stop_after_first, cancel=cancel)
    assert report.cancelled and report.summary.checked == 1000 and len(calls) == 1
    assert report.summary.skipped["consistency"] == "cancelled"
    assert report.findings == [] and "cancelled after 1,000 of 2,500 examples" in report.summary.notes


def test_any_row_shape_never_crashes():
    odd = ["a string", None, 7, {"messages": "not a list"}, {"messages": [{"role": "user"}, "x"]}, {}]
    report = critique(odd, LM)
    assert report.summary.checked == len(odd)
    for shape in Shape:
        assert critique([{}], shape).summary.checked == 1


def test_empty_dataset():
    summary = critique([], LM).summary
    assert summary.checked == 0 and summary.prompt_lengths is None and summary.by_severity["error"] == 0


def test_same_report_whatever_the_hash_seed():
    code = (
        "import hashlib, json; from workbench.data.load import load_rows;"
        "from workbench.data.checks import critique;"
        "r = load_rows('sample_data/support/messy.jsonl', skip_bad=True);"
        "print(hashlib.sha1(json.dumps(critique(r.rows, r.shape).to_dict(), sort_keys=True).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=SAMPLE.parent,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1  # set order never leaks into topics or conventions
