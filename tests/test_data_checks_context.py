"""Checks that understand context, on rows written by us in the shape of public instruction sets.

Each case is a false positive or a miss that real data showed (issue 16): the checks must stay quiet where
the example itself explains what looks odd, and speak where a defect hides in a common layout.
"""

from __future__ import annotations

from workbench.data.checks import critique
from workbench.data.formats import Shape


def findings(rows, shape=Shape.ALPACA, check=None):
    report = critique(rows, shape)
    return [(f.index, f.check, f.severity, f.message) for f in report.findings if check is None or f.check == check]


def alpaca(instruction: str, output: str, input_: str = "") -> dict[str, str]:
    return {"instruction": instruction, "input": input_, "output": output}


# -- lorem ipsum the example works on -----------------------------------------------


def test_lorem_ipsum_that_the_prompt_gives_as_data_is_not_a_placeholder_answer():
    rows = [
        alpaca(
            "Count the words in the following text.",
            "The text has 8 words: Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        ),
        alpaca(
            "Reverse the order of the words.",
            "elit adipiscing consectetur amet sit dolor ipsum Lorem",
            "Lorem ipsum dolor sit amet consectetur adipiscing elit",
        ),
    ]
    assert findings(rows, check="placeholder_output") == []


def test_lorem_ipsum_as_the_answer_to_a_real_question_is_still_an_error():
    rows = [alpaca("Describe the water cycle in two sentences.", "Lorem ipsum dolor sit amet, consectetur adipiscing.")]
    [(index, _, severity, message)] = findings(rows, check="placeholder_output")
    assert (index, severity) == (0, "error") and "lorem ipsum" in message


# -- an answer that runs on into the next numbered instruction ----------------------


def test_an_answer_running_on_into_the_next_numbered_instruction():
    output = (
        "Paris is the capital of France.\n##\n"
        "18. Instruction: Name the largest planet in the solar system.\n18. Input: <noinput>\n18. Output: Jupiter."
    )
    rows = [alpaca("What is the capital of France?", output)]
    [(index, _, _, message)] = findings(rows, check="merged_instructions")
    assert index == 0 and "18. Instruction:" in message


def test_a_numbered_list_answer_is_not_a_run_on():
    rows = [
        alpaca(
            "Give three tips for sleeping well.",
            "1. Keep a regular schedule.\n2. Avoid screens late.\n3. Keep the room cool.",
        )
    ]
    assert findings(rows, check="merged_instructions") == []


# -- a link given as the text itself ---------------------------------------------------


def test_an_input_that_is_only_a_url_which_the_instruction_calls_the_article():
    rows = [
        alpaca(
            "Summarize the given article in one sentence.",
            "The article argues that cities should plant more trees.",
            "https://www.example.com/news/2023/04/cities-and-trees",
        )
    ]
    [(index, _, severity, message)] = findings(rows, check="invisible_input")
    assert (index, severity) == (0, "warning") and "only a link" in message


def test_a_url_that_is_the_subject_not_the_text_is_fine():
    rows = [alpaca("Is this a valid URL? Answer yes or no.", "Yes.", "https://www.example.com/path?q=1")]
    assert findings(rows, check="invisible_input") == []


# -- a prompt that gives the model a tool ---------------------------------------------


TOOL_SYSTEM = (
    "You have access to the following tools:\n"
    '{"name": "fetch_page", "description": "Fetch a web page", "parameters": {"url": {"type": "string"}}}'
)


def test_a_model_given_a_fetch_tool_can_open_the_page():
    rows = [
        {
            "messages": [
                {"role": "system", "content": TOOL_SYSTEM},
                {"role": "user", "content": "Read https://example.com/release-notes and list the new features."},
                {"role": "assistant", "content": 'fetch_page(url="https://example.com/release-notes")'},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Read https://example.com/release-notes and list the new features."},
                {"role": "assistant", "content": "The notes list dark mode and faster sync."},
            ],
            "tools": [{"name": "browse", "parameters": {"url": "string"}}],
        },
    ]
    assert findings(rows, Shape.LANGUAGE_MODELING, check="invisible_input") == []


def test_without_a_tool_the_same_prompt_is_flagged():
    rows = [
        {
            "messages": [
                {"role": "user", "content": "Read https://example.com/release-notes and list the new features."},
                {"role": "assistant", "content": "The notes list dark mode and faster sync."},
            ]
        }
    ]
    assert [f[1] for f in findings(rows, Shape.LANGUAGE_MODELING, check="invisible_input")] == ["invisible_input"]


# -- a house style of answers that end in a call --------------------------------------


def test_answers_that_end_in_a_tool_call_keep_a_convention_of_their_own():
    rows = [
        alpaca(f"Find the weather in city {i}.", f'Let me look that up for you: get_weather(city="City {i}")')
        for i in range(8)
    ] + [
        alpaca(f"Say hello to person number {i}.", f"Hello there, person number {i}, nice to meet you.")
        for i in range(12)
    ]
    assert [f for f in findings(rows, check="consistency") if "final punctuation" in f[3]] == []
    rows[0] = alpaca("Find the weather in city 0.", "The weather in City 0 is sunny and warm today")
    [(index, *_)] = [f for f in findings(rows, check="consistency") if "final punctuation" in f[3]]
    assert index == 0  # prose without its full stop is still told
