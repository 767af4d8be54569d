"""Shape detection, row validation and normalization for SFT and DPO."""

from __future__ import annotations

import pytest

from workbench.data import (
    DataError,
    Shape,
    detect_shape,
    extract_prompt,
    normalization_notes,
    normalize,
    render_chat,
    to_hf_dataset,
    validate_row,
)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


Q, A, B = "What color is the sky?", "It is blue.", "It is green."

SAMPLES: dict[tuple[Shape, bool], dict] = {
    (Shape.LANGUAGE_MODELING, False): {"text": "The sky is blue."},
    (Shape.LANGUAGE_MODELING, True): {"messages": [user(Q), assistant(A)]},
    (Shape.PROMPT_ONLY, False): {"prompt": Q},
    (Shape.PROMPT_ONLY, True): {"prompt": [user(Q)]},
    (Shape.PROMPT_COMPLETION, False): {"prompt": Q, "completion": A},
    (Shape.PROMPT_COMPLETION, True): {"prompt": [user(Q)], "completion": [assistant(A)]},
    (Shape.PREFERENCE, False): {"prompt": Q, "chosen": A, "rejected": B},
    (Shape.PREFERENCE, True): {"prompt": [user(Q)], "chosen": [assistant(A)], "rejected": [assistant(B)]},
    (Shape.IMPLICIT_PREFERENCE, False): {"chosen": f"{Q} {A}", "rejected": f"{Q} {B}"},
    (Shape.IMPLICIT_PREFERENCE, True): {"chosen": [user(Q), assistant(A)], "rejected": [user(Q), assistant(B)]},
    (Shape.UNPAIRED_PREFERENCE, False): {"prompt": Q, "completion": A, "label": True},
    (Shape.UNPAIRED_PREFERENCE, True): {"prompt": [user(Q)], "completion": [assistant(A)], "label": True},
    (Shape.ALPACA, False): {"instruction": "Name the sky's color.", "input": "", "output": "Blue."},
    (Shape.SHAREGPT, True): {"conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}]},
}


@pytest.mark.parametrize(("shape", "conversational"), list(SAMPLES), ids=lambda v: str(getattr(v, "value", v)))
def test_detects_each_shape(shape: Shape, conversational: bool) -> None:
    rows = [SAMPLES[shape, conversational]] * 3
    assert detect_shape(rows) == (shape, conversational)
    assert validate_row(rows[0], shape, conversational) == []


def test_alpaca_without_input_and_with_extra_text_column() -> None:
    rows = [{"instruction": "Say hi.", "output": "Hi.", "text": "### Instruction: Say hi. ### Response: Hi."}]
    assert detect_shape(rows) == (Shape.ALPACA, False)
    assert validate_row(rows[0], Shape.ALPACA, False) == []


def test_detection_follows_most_rows_not_the_broken_ones() -> None:
    good = SAMPLES[Shape.PROMPT_COMPLETION, True]
    rows = [good] * 8 + [{"prompt": [user(Q)]}, {"completion": "orphan"}, "not a row"]
    assert detect_shape(rows) == (Shape.PROMPT_COMPLETION, True)
    field, message = validate_row(rows[8], Shape.PROMPT_COMPLETION, True)[0]
    assert field == "completion" and message.startswith("missing")
    assert "conversational prompt-completion shape: prompt, completion" in message


def test_unknown_shape_names_the_keys_found() -> None:
    with pytest.raises(DataError, match="keys answer, question"):
        detect_shape([{"question": "q", "answer": "a"}])


def test_shape_parse_accepts_user_spellings() -> None:
    assert Shape.parse("prompt-completion") is Shape.PROMPT_COMPLETION
    assert Shape.parse("Alpaca") is Shape.ALPACA
    with pytest.raises(DataError, match="sharegpt"):
        Shape.parse("chatml")


@pytest.mark.parametrize(
    ("row", "shape", "conversational", "field", "fragment"),
    [
        (
            {"prompt": "q", "completion": 3},
            Shape.PROMPT_COMPLETION,
            False,
            "completion",
            "expected a string or a list of messages (prompt-completion shape: prompt, completion), got int",
        ),
        ({"messages": "hello"}, Shape.LANGUAGE_MODELING, True, "messages", "expected a list of messages"),
        ({"messages": [{"content": "hi"}]}, Shape.LANGUAGE_MODELING, True, "messages", "message 1: missing 'role'"),
        (
            {"messages": [user("a"), {"role": "bot", "content": "b"}]},
            Shape.LANGUAGE_MODELING,
            True,
            "messages",
            "message 2: unknown role 'bot'",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            Shape.LANGUAGE_MODELING,
            True,
            "messages",
            "'content' expected a string",
        ),
        ({"messages": []}, Shape.LANGUAGE_MODELING, True, "messages", "at least one message"),
        (
            {"prompt": "q", "completion": "a", "label": "yes"},
            Shape.UNPAIRED_PREFERENCE,
            False,
            "label",
            "expected true or false",
        ),
        (
            {"conversations": [{"from": "robot", "value": "x"}]},
            Shape.SHAREGPT,
            True,
            "conversations",
            "unknown from 'robot'",
        ),
        (
            {"instruction": "i", "output": ["o"]},
            Shape.ALPACA,
            False,
            "output",
            "expected a string (alpaca shape: instruction, input (optional), output), got list",
        ),
        (
            {"prompt": "q", "completion": [assistant("a")]},
            Shape.PROMPT_COMPLETION,
            False,
            "completion",
            "expected a string like the other rows",
        ),
        (
            {"prompt": "q", "chosen": [assistant("a")], "rejected": [assistant("b")]},
            Shape.PREFERENCE,
            True,
            "prompt",
            "expected a list of messages like the other rows",
        ),
    ],
)
def test_validation_names_field_and_expectation(
    row: dict, shape: Shape, conversational: bool, field: str, fragment: str
) -> None:
    problems = validate_row(row, shape, conversational)
    assert problems and problems[0][0] == field
    assert fragment in problems[0][1]


def test_validation_reports_every_field_of_a_row() -> None:
    problems = validate_row({"prompt": 1}, Shape.PREFERENCE, False)
    assert [field for field, _ in problems] == ["prompt", "chosen", "rejected"]


# -- normalization for SFT ---------------------------------------------------------

PC_CONV = {"prompt": [user(Q)], "completion": [assistant(A)]}

SFT_EXPECTED: dict[tuple[Shape, bool], dict] = {
    (Shape.LANGUAGE_MODELING, False): {"text": "The sky is blue."},
    (Shape.LANGUAGE_MODELING, True): {"messages": [user(Q), assistant(A)]},
    (Shape.PROMPT_COMPLETION, False): PC_CONV,
    (Shape.PROMPT_COMPLETION, True): PC_CONV,
    (Shape.PREFERENCE, False): PC_CONV,
    (Shape.PREFERENCE, True): PC_CONV,
    (Shape.IMPLICIT_PREFERENCE, False): {"text": f"{Q} {A}"},
    (Shape.IMPLICIT_PREFERENCE, True): {"messages": [user(Q), assistant(A)]},
    (Shape.UNPAIRED_PREFERENCE, False): PC_CONV,
    (Shape.UNPAIRED_PREFERENCE, True): PC_CONV,
    (Shape.ALPACA, False): {"messages": [user("Name the sky's color."), assistant("Blue.")]},
    (Shape.SHAREGPT, True): {"messages": [user(Q), assistant(A)]},
}


@pytest.mark.parametrize(("shape", "conversational"), list(SFT_EXPECTED), ids=lambda v: str(getattr(v, "value", v)))
def test_normalize_for_sft(shape: Shape, conversational: bool) -> None:
    assert normalize([SAMPLES[shape, conversational]], shape, "sft") == [SFT_EXPECTED[shape, conversational]]


def test_alpaca_input_joins_the_instruction() -> None:
    row = {"instruction": "Translate.", "input": "bonjour", "output": "hello"}
    assert normalize([row], Shape.ALPACA)[0]["messages"][0] == user("Translate.\n\nbonjour")


def test_sharegpt_roles_are_mapped() -> None:
    turns = [("system", "Be brief."), ("human", "hi"), ("gpt", "hello"), ("function", "{}"), ("model", "done")]
    row = {"conversations": [{"from": f, "value": v} for f, v in turns]}
    roles = [m["role"] for m in normalize([row], Shape.SHAREGPT)[0]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]


def test_unpaired_preference_for_sft_keeps_only_true_labels() -> None:
    rows = [{"prompt": "q", "completion": "good", "label": True}, {"prompt": "q", "completion": "bad", "label": False}]
    out = normalize(rows, Shape.UNPAIRED_PREFERENCE, "sft")
    assert out == [{"prompt": [user("q")], "completion": [assistant("good")]}]
    assert "labelled true" in normalization_notes(Shape.UNPAIRED_PREFERENCE, "sft")[0]


def test_preference_for_sft_is_allowed_with_a_note() -> None:
    assert "rejected is ignored" in normalization_notes(Shape.PREFERENCE, "sft")[0]


def test_prompt_only_cannot_be_used_for_sft() -> None:
    with pytest.raises(DataError, match=r"SFT needs a response.*prompt-only"):
        normalize([{"prompt": "q"}], Shape.PROMPT_ONLY, "sft")


def test_system_prompt_is_prepended_only_when_missing() -> None:
    rows = [
        {"messages": [user("a"), assistant("b")]},
        {"messages": [{"role": "system", "content": "own"}, user("a"), assistant("b")]},
    ]
    out = normalize(rows, Shape.LANGUAGE_MODELING, system_prompt="Be kind.")
    assert out[0]["messages"][0] == {"role": "system", "content": "Be kind."}
    assert out[1]["messages"][0]["content"] == "own"
    pc = normalize([SAMPLES[Shape.PROMPT_COMPLETION, False]], Shape.PROMPT_COMPLETION, system_prompt="S")
    assert pc[0]["prompt"][0] == {"role": "system", "content": "S"}
    assert normalize([{"text": "t"}], Shape.LANGUAGE_MODELING, system_prompt="S") == [{"text": "t"}]


# -- normalization for DPO ---------------------------------------------------------

DPO_CONV = {"prompt": [user(Q)], "chosen": [assistant(A)], "rejected": [assistant(B)]}


@pytest.mark.parametrize("conversational", [False, True])
def test_normalize_explicit_preference_for_dpo(conversational: bool) -> None:
    assert normalize([SAMPLES[Shape.PREFERENCE, conversational]], Shape.PREFERENCE, "dpo") == [DPO_CONV]


def test_implicit_preference_for_dpo_extracts_shared_messages() -> None:
    row = {
        "chosen": [{"role": "system", "content": "S"}, user(Q), assistant(A)],
        "rejected": [{"role": "system", "content": "S"}, user(Q), assistant(B)],
    }
    out = normalize([row], Shape.IMPLICIT_PREFERENCE, "dpo")[0]
    assert out == {"prompt": row["chosen"][:2], "chosen": [assistant(A)], "rejected": [assistant(B)]}


def test_implicit_standard_preference_for_dpo_splits_at_a_word() -> None:
    out = normalize([{"chosen": "Sky? It is blue.", "rejected": "Sky? It is blunt."}], Shape.IMPLICIT_PREFERENCE, "dpo")
    assert out == [
        {"prompt": [user("Sky? It is")], "chosen": [assistant(" blue.")], "rejected": [assistant(" blunt.")]}
    ]


def test_implicit_preference_without_shared_prompt_is_an_error() -> None:
    rows = [SAMPLES[Shape.IMPLICIT_PREFERENCE, True], {"chosen": [assistant("a")], "rejected": [assistant("b")]}]
    with pytest.raises(DataError, match="rows 1: chosen and rejected share no leading messages"):
        normalize(rows, Shape.IMPLICIT_PREFERENCE, "dpo")


def test_extract_prompt_keeps_an_answer_on_each_side() -> None:
    same = [user(Q), assistant(A)]
    assert extract_prompt(same, same) == ([user(Q)], [assistant(A)], [assistant(A)])
    assert extract_prompt("Yes it is ", "No") == ("", "Yes it is ", "No")


@pytest.mark.parametrize(
    ("shape", "conversational"),
    [k for k in SAMPLES if k[0] not in (Shape.PREFERENCE, Shape.IMPLICIT_PREFERENCE)],
    ids=lambda v: str(getattr(v, "value", v)),
)
def test_dpo_on_non_preference_data_says_what_it_needs(shape: Shape, conversational: bool) -> None:
    with pytest.raises(DataError) as info:
        normalize([SAMPLES[shape, conversational]], shape, "dpo")
    message = str(info.value)
    assert "DPO needs preference pairs" in message and "prompt, chosen and rejected" in message
    assert f"the {shape.label} shape" in message


def test_unknown_method_is_an_error() -> None:
    with pytest.raises(DataError, match="unknown training method 'ppo'"):
        normalize([], Shape.PREFERENCE, "ppo")


# -- into datasets and through a chat template ------------------------------------


def test_to_hf_dataset_keeps_conversations() -> None:
    rows = normalize([SAMPLES[Shape.SHAREGPT, True]] * 2, Shape.SHAREGPT)
    dataset = to_hf_dataset(rows)
    assert len(dataset) == 2 and dataset.column_names == ["messages"]
    assert dataset[0]["messages"] == [user(Q), assistant(A)]


@pytest.fixture(scope="module")
def chat_tokenizer():
    """A word-level tokenizer with a chat template, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = Tokenizer(models.WordLevel({"[UNK]": 0, "</s>": 1}, unk_token="[UNK]"))
    model.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="[UNK]", eos_token="</s>")
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return tokenizer


def test_render_chat_shows_what_the_model_sees(chat_tokenizer) -> None:
    sft = normalize([SAMPLES[Shape.PROMPT_COMPLETION, False]], Shape.PROMPT_COMPLETION)
    assert render_chat(sft, chat_tokenizer) == [
        {"prompt": f"<|user|>{Q}</s>\n<|assistant|>", "completion": f"{A}</s>\n"}
    ]
    lm = normalize(
        [SAMPLES[Shape.LANGUAGE_MODELING, True], SAMPLES[Shape.LANGUAGE_MODELING, True]], Shape.LANGUAGE_MODELING
    )
    assert render_chat(lm, chat_tokenizer)[0] == {"text": f"<|user|>{Q}</s>\n<|assistant|>{A}</s>\n"}
    dpo = render_chat([DPO_CONV], chat_tokenizer)[0]
    assert dpo["chosen"] == f"{A}</s>\n" and dpo["rejected"] == f"{B}</s>\n"


def test_render_chat_needs_a_template(chat_tokenizer) -> None:
    plain = chat_tokenizer.__class__(tokenizer_object=chat_tokenizer.backend_tokenizer, unk_token="[UNK]")
    with pytest.raises(DataError, match="no chat template"):
        render_chat([{"messages": [user("hi")]}], plain)


def test_only_dataset_files_are_offered(tmp_path):
    from workbench.data.readers import looks_like_dataset

    files = {
        "rows.json": '[{"prompt": "a", "completion": "b"}]',
        "wrapped.json": '{"version": 1, "data": [{"text": "a"}]}',
        "lines.json": '{"text": "a"}\n{"text": "b"}\n',
        "state.json": '{"theme": null, "workspaces": {}}',
        "tokenizer_config.json": '{"model_max_length": 2048, "added_tokens_decoder": {}}',
        "train.jsonl": "",
        "notes.txt": "hello",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    offered = {name for name in files if looks_like_dataset(tmp_path / name)}
    assert offered == {"rows.json", "wrapped.json", "lines.json", "train.jsonl"}
