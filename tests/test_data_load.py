"""Loading every file type, reporting every bad row, and the inspect report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from workbench.data import BadRow, DataError, Shape, inspect_file, load_rows

PC = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(4)]
CONV = [
    {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(4)
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def load_error(path: Path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        load_rows(path, **kwargs)
    return info.value


# -- file types ---------------------------------------------------------------------


def test_jsonl(tmp_path: Path) -> None:
    result = load_rows(write_jsonl(tmp_path / "train.jsonl", PC))
    assert (result.file_type, result.shape, result.conversational) == ("jsonl", Shape.PROMPT_COMPLETION, False)
    assert result.rows == PC and result.row_lines == [1, 2, 3, 4] and result.bad_rows == []


def test_json_array_keeps_item_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(CONV, indent=2))
    result = load_rows(path)
    assert (result.file_type, result.shape, result.conversational) == ("json", Shape.LANGUAGE_MODELING, True)
    assert result.rows == CONV and result.row_indexes == [0, 1, 2, 3]
    assert result.row_lines[0] == 2 and result.row_lines == sorted(result.row_lines)


def test_json_object_with_rows_under_a_key(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"version": 2, "data": PC}))
    result = load_rows(path)
    assert result.rows == PC and "'data'" in result.notes[0]


def test_jsonl_named_json(tmp_path: Path) -> None:
    result = load_rows(write_jsonl(tmp_path / "train.json", PC))
    assert result.file_type == "jsonl" and result.rows == PC and result.row_lines == [1, 2, 3, 4]
    assert "JSONL" in result.notes[0]


def test_csv_with_message_cells_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "completion", "label"])
        writer.writerow(
            [
                json.dumps([{"role": "user", "content": "multi\nline"}]),
                json.dumps([{"role": "assistant", "content": "ok"}]),
                "true",
            ]
        )
        writer.writerow(
            [
                json.dumps([{"role": "user", "content": "q"}]),
                json.dumps([{"role": "assistant", "content": "no"}]),
                "False",
            ]
        )
    result = load_rows(path)
    assert (result.shape, result.conversational) == (Shape.UNPAIRED_PREFERENCE, True)
    assert [r["label"] for r in result.rows] == [True, False]
    assert result.rows[0]["prompt"][0]["content"] == "multi\nline"
    assert result.row_lines == [2, 3]


def test_csv_alpaca_empty_input_is_absent(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.csv"
    path.write_text('instruction,input,output\n"Say hi\non two lines",,Hi\nTranslate,bonjour,hello\n')
    result = load_rows(path)
    assert result.shape is Shape.ALPACA
    assert result.rows == [
        {"instruction": "Say hi\non two lines", "output": "Hi"},
        {"instruction": "Translate", "input": "bonjour", "output": "hello"},
    ]
    assert result.row_lines == [2, 4]  # the first record spans lines 2-3


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(PC + [{"prompt": "q9", "completion": None}]), path)
    result = load_rows(path, skip_bad=True)
    assert result.file_type == "parquet" and result.rows == PC and result.row_lines == [None] * 4
    assert str(result.bad_rows[0]).startswith(f"{path}: row 4: field 'completion': missing")


def test_datasets_dir_single_dataset(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(CONV).save_to_disk(str(tmp_path / "ds"))
    result = load_rows(tmp_path / "ds")
    assert (result.file_type, result.shape, result.conversational) == ("datasets", Shape.LANGUAGE_MODELING, True)
    assert result.rows == CONV


def test_datasets_dir_picks_a_split_and_lists_the_others(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(PC), "test": Dataset.from_list(PC[:1])}).save_to_disk(str(tmp_path / "dd"))
    assert len(load_rows(tmp_path / "dd").rows) == 4
    assert len(load_rows(tmp_path / "dd", split="test").rows) == 1
    error = load_error(tmp_path / "dd", split="validation")
    assert "no split 'validation'" in str(error) and "train, test" in str(error)


def test_forced_shape(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "completion": "a"}])
    result = load_rows(path, shape="prompt_only")
    assert result.shape is Shape.PROMPT_ONLY and len(result.rows) == 1
    error = load_error(path, shape="alpaca")
    assert "p.jsonl:1: field 'instruction': missing" in str(error)


def test_unknown_shape_names_the_file_and_keys(tmp_path: Path) -> None:
    error = load_error(write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}]))
    assert str(error).startswith(
        f"{tmp_path / 'qa.jsonl'}: cannot tell the dataset's shape: rows have the keys answer, question"
    )


def test_missing_file_and_unknown_type(tmp_path: Path) -> None:
    assert "no such file" in str(load_error(tmp_path / "nope.jsonl"))
    (tmp_path / "notes.txt").write_text("hello")
    assert "unknown file type '.txt'" in str(load_error(tmp_path / "notes.txt"))
    (tmp_path / "plain").mkdir()
    assert "save_to_disk" in str(load_error(tmp_path / "plain"))


# -- bad input ----------------------------------------------------------------------


def test_every_kind_of_bad_jsonl_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    lines = [
        b'{"prompt": "q", "completion": "a"}\n',
        b'{"prompt": "q", "completion": 3}\n',  # 2: wrong type
        b"\n",
        b'{"prompt": "q", "completion": "a"\n',  # 4: malformed
        b'{"prompt": "q"}\n',  # 5: missing field
        b'{"prompt": "caf\xe9", "completion": "a"}\r\n',  # 6: latin-1, not UTF-8
        b'["a list"]\n',  # 7: not an object
        b'{"prompt": "q", "completion": "a"}',
    ]
    path.write_bytes(b"".join(lines))
    error = load_error(path)
    message = str(error)
    assert (
        f"{path}:2: field 'completion': expected a string or a list of messages (prompt-completion shape: prompt, completion), got int"
        in message
    )
    assert f"{path}:4: not valid JSON" in message
    assert f"{path}:5: field 'completion': missing" in message
    assert f"{path}:6: not valid UTF-8 (byte 0xe9" in message
    assert f"{path}:7: expected a JSON object" in message
    assert [(b.line, b.field) for b in error.bad_rows] == [
        (2, "completion"),
        (4, None),
        (5, "completion"),
        (6, None),
        (7, None),
    ]
    assert [b.raw_bytes for b in error.bad_rows] == [lines[1], lines[3], lines[4], lines[5], lines[6]]


def test_skip_bad_returns_good_rows_and_counts_the_rest(tmp_path: Path) -> None:
    rows = PC[:2] + [{"prompt": "q", "completion": 1}] + PC[2:]
    result = load_rows(write_jsonl(tmp_path / "t.jsonl", rows), skip_bad=True)
    assert result.rows == PC and result.row_count == 4 and result.bad_count == 1
    assert result.row_lines == [1, 2, 4, 5]
    bad = result.bad_rows[0]
    assert isinstance(bad, BadRow) and (bad.line, bad.field) == (3, "completion")
    assert json.loads(bad.raw) == rows[2]


def test_all_bad_rows_are_kept_but_the_message_is_capped(tmp_path: Path) -> None:
    rows = PC + [{"prompt": f"q{i}", "completion": i} for i in range(25)]
    error = load_error(write_jsonl(tmp_path / "t.jsonl", rows))
    assert len(error.bad_rows) == 25
    assert "25 bad rows of 29" in str(error) and "and 5 more" in str(error)
    assert "t.jsonl:29:" not in str(error) and error.bad_rows[-1].line == 29


def test_conversational_problems_name_the_message(tmp_path: Path) -> None:
    rows = CONV + [
        {"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]},
        {"messages": "hi"},
    ]
    error = load_error(write_jsonl(tmp_path / "c.jsonl", rows))
    assert "c.jsonl:5: field 'messages': message 2: unknown role 'bot'" in str(error)
    assert "c.jsonl:6: field 'messages': expected a list of messages" in str(error)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    assert f"{path}: the file is empty" in str(load_error(path))
    assert "empty" in str(load_error(path, skip_bad=True))


def test_empty_json_and_csv(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text("  \n")
    (tmp_path / "e.csv").write_text("prompt,completion\n")
    assert "the file is empty" in str(load_error(tmp_path / "e.json"))
    assert "the file is empty" in str(load_error(tmp_path / "e.csv"))


def test_nothing_readable_is_an_error_even_when_skipping(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("not json\nnor this\n")
    error = load_error(path, skip_bad=True)
    assert len(error.bad_rows) == 2 and "no row could be read" in str(error)


def test_json_array_bad_item_names_its_line_and_index(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('[\n  {"prompt": "q", "completion": "a"},\n  {"prompt": "q", "completion": false}\n]\n')
    result = load_rows(path, skip_bad=True)
    assert str(result.bad_rows[0]).startswith(f"{path}:3 (item 1): field 'completion': expected a string")


def test_json_syntax_error_keeps_the_items_before_it(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('[\n  {"prompt": "q", "completion": "a"},\n  {"prompt": "q" "completion": "b"}\n]\n')
    result = load_rows(path, skip_bad=True)
    assert len(result.rows) == 1
    assert result.bad_rows[0].line == 3 and "the rest of the file was not read" in result.bad_rows[0].message


def test_csv_bad_encoding_and_column_count(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"prompt,completion\nq,a\nq,caf\xe9\nq,a,extra\n")
    error = load_error(path)
    assert f"{path}:3: not valid UTF-8" in str(error)
    assert f"{path}:4: expected 2 columns (prompt, completion), got 3" in str(error)
    assert error.bad_rows[0].raw == "q,caf\ufffd"


# -- inspect ------------------------------------------------------------------------


def test_inspect_reports_bad_rows_and_examples(tmp_path: Path) -> None:
    rows = CONV + [{"messages": [{"content": "no role"}]}]
    report = inspect_file(write_jsonl(tmp_path / "c.jsonl", rows), n_examples=2)
    assert (report.shape, report.conversational, report.row_count, report.bad_count) == (
        Shape.LANGUAGE_MODELING,
        True,
        4,
        1,
    )
    assert report.examples == CONV[:2]
    assert report.field_counts == {"messages": 4} and report.field_types == {"messages": {"list": 4}}
    data = json.loads(json.dumps(report.to_dict()))
    assert data["shape"] == "language_modeling" and data["bad_rows"][0]["line"] == 5
    assert "c.jsonl:5: field 'messages': message 1: missing 'role'" in data["bad_rows"][0]["text"]


def test_inspect_for_dpo_on_sft_data_explains_instead_of_failing(tmp_path: Path) -> None:
    report = inspect_file(write_jsonl(tmp_path / "t.jsonl", PC), method="dpo")
    assert report.examples == [] and report.normalize_error is not None
    assert "DPO needs preference pairs" in report.normalize_error and "prompt-completion" in report.normalize_error


def test_inspect_normalizes_for_the_method(tmp_path: Path) -> None:
    rows = [{"prompt": "q", "chosen": "yes", "rejected": "no"}] * 2
    report = inspect_file(write_jsonl(tmp_path / "p.jsonl", rows), method="sft", n_examples=1)
    assert report.examples == [
        {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "yes"}]}
    ]
    assert any("rejected is ignored" in note for note in report.notes)
