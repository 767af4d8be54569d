"""The formats people download, parsed as they are meant (rows written by us in the shape of the public sets)."""

from __future__ import annotations

import json

from workbench.data import load_rows
from workbench.data.formats import Shape
from workbench.data.hh import is_hh, parse_hh, rows_are_hh
from workbench.data.normalize import normalization_notes, normalize

H1 = "How do I keep basil alive indoors?"
A1 = "Give it a sunny window, water when the top inch of soil is dry, and pinch off flower buds."
H2 = "What if the leaves turn yellow?"


def hh(*turns: tuple[str, str]) -> str:
    return "".join(f"\n\n{who}: {text}" for who, text in turns)


def pair(chosen_last: str, rejected_last: str) -> dict[str, str]:
    shared = [("Human", H1), ("Assistant", A1), ("Human", H2)]
    return {
        "chosen": hh(*shared, ("Assistant", chosen_last)),
        "rejected": hh(*shared, ("Assistant", rejected_last)),
    }


ROWS = [
    pair("Usually overwatering: let the soil dry out and check the pot drains.", "Throw it away."),
    pair("Check for root rot and cut back on water.", "Basil is hard, buy a new one."),
]


def test_turns_of_a_transcript():
    text = ROWS[0]["chosen"]
    assert is_hh(text)
    assert parse_hh(text) == [
        {"role": "user", "content": H1},
        {"role": "assistant", "content": A1},
        {"role": "user", "content": H2},
        {"role": "assistant", "content": "Usually overwatering: let the soil dry out and check the pot drains."},
    ]


def test_labels_count_only_at_the_start_of_a_turn():
    text = hh(("Human", 'My note says "Human: be kind". What does it mean?'), ("Assistant", "Be kind to people."))
    assert [t["content"] for t in parse_hh(text)] == [
        'My note says "Human: be kind". What does it mean?',
        "Be kind to people.",
    ]
    assert not is_hh("Human: only one speaker here")
    assert not is_hh(["not", "a", "string"])


def test_a_transcript_that_does_not_start_with_human():
    preface = "The following is a chat with a gardening assistant." + hh(("Human", H1), ("Assistant", A1))
    assert [t["role"] for t in parse_hh(preface)] == ["system", "user", "assistant"]
    assistant_first = hh(("Assistant", "Hello! Ask me about plants."), ("Human", H1), ("Assistant", A1))
    assert [t["role"] for t in parse_hh(assistant_first)] == ["assistant", "user", "assistant"]
    no_newlines = "Human: " + H1 + "\n\nAssistant: " + A1  # the first label at the very start, no blank line
    assert [t["role"] for t in parse_hh(no_newlines)] == ["user", "assistant"]


def test_an_empty_turn_is_kept_not_merged():
    text = hh(("Human", ""), ("Assistant", "Did you mean to ask something?"), ("Human", H1), ("Assistant", A1))
    turns = parse_hh(text)
    assert turns[0] == {"role": "user", "content": ""}
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]


def test_dpo_takes_the_shared_turns_as_the_prompt():
    [row, _] = normalize(ROWS, Shape.IMPLICIT_PREFERENCE, "dpo")
    assert [t["content"] for t in row["prompt"]] == [H1, A1, H2]
    assert row["chosen"] == [{"role": "assistant", "content": ROWS[0]["chosen"].rsplit("Assistant: ", 1)[1]}]
    assert row["rejected"] == [{"role": "assistant", "content": "Throw it away."}]


def test_chosen_and_rejected_that_diverge_before_the_last_turn():
    row = {
        "chosen": hh(("Human", H1), ("Assistant", A1), ("Human", H2), ("Assistant", "Less water.")),
        "rejected": hh(("Human", H1), ("Assistant", "No idea."), ("Human", "Please?"), ("Assistant", "Still no.")),
    }
    [out] = normalize([row], Shape.IMPLICIT_PREFERENCE, "dpo")
    assert out["prompt"] == [{"role": "user", "content": H1}]
    assert [t["content"] for t in out["chosen"]] == [A1, H2, "Less water."]
    assert [t["content"] for t in out["rejected"]] == ["No idea.", "Please?", "Still no."]


def test_sft_trains_on_the_chosen_conversation():
    [row, _] = normalize(ROWS, Shape.IMPLICIT_PREFERENCE, "sft")
    assert [t["role"] for t in row["messages"]] == ["user", "assistant", "user", "assistant"]
    assert "Human:" not in json.dumps(row)


def test_from_a_file_with_a_note_and_a_stray_plain_row(tmp_path):
    path = tmp_path / "hh.jsonl"
    stray = {"chosen": "Plain answer without labels.", "rejected": "Another plain one."}
    path.write_text("".join(json.dumps(r) + "\n" for r in [*ROWS, stray]))
    loaded = load_rows(path)
    assert loaded.shape is Shape.IMPLICIT_PREFERENCE and rows_are_hh(loaded.rows)
    rows = normalize(loaded.rows, loaded.shape, "sft")
    assert rows[2] == {"messages": [{"role": "user", "content": "Plain answer without labels."}]}
    assert "HH transcripts" in normalization_notes(loaded.shape, "dpo", loaded.rows)[0]
    plain = [{"chosen": "a b c", "rejected": "a b d"}]
    assert not rows_are_hh(plain) and "HH" not in " ".join(normalization_notes(Shape.IMPLICIT_PREFERENCE, "dpo", plain))


# --- Dolly (databricks-dolly-15k's layout: instruction, context, response, category) ----------------------


DOLLY = [
    {
        "instruction": "When did the tower open to visitors?",
        "context": "The tower was finished in 1889 and opened to the public that May, after two years of work.",
        "response": "In May 1889.",
        "category": "closed_qa",
    },
    {
        "instruction": "Name three herbs that grow well indoors.",
        "context": "",
        "response": "Basil, mint and chives.",
        "category": "brainstorming",
    },
]


def test_dolly_rows_are_detected_and_their_context_joins_the_question(tmp_path):
    from workbench.chat import conversation_row
    from workbench.data.view import view

    path = tmp_path / "dolly.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in DOLLY))
    loaded = load_rows(path)
    assert loaded.shape is Shape.DOLLY and not loaded.bad_rows
    first, second = normalize(loaded.rows, loaded.shape, "sft")
    assert first["messages"][0]["content"] == f"{DOLLY[0]['instruction']}\n\n{DOLLY[0]['context']}"
    assert first["messages"][1] == {"role": "assistant", "content": "In May 1889."}
    assert second["messages"][0]["content"] == DOLLY[1]["instruction"]  # an empty context adds nothing
    assert "category is not trained on" in normalization_notes(Shape.DOLLY, "sft")[0]
    shown = view(DOLLY[0], Shape.DOLLY)
    assert shown.response[0].content == "In May 1889." and "1889" in shown.prompt[-1].content
    turns = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    assert conversation_row(turns, Shape.DOLLY, False, path) == {"instruction": "Q?", "context": "", "response": "A."}


def test_a_dolly_row_without_a_response_is_a_bad_row_naming_the_field(tmp_path):
    path = tmp_path / "dolly.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*DOLLY, *DOLLY, {"instruction": "x", "context": "y"}]))
    loaded = load_rows(path, skip_bad=True)
    assert loaded.shape is Shape.DOLLY and len(loaded.rows) == 4
    [bad] = loaded.bad_rows
    assert "response" in str(bad)
