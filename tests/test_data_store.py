"""The editable dataset: journal, recovery after kill -9, undo/redo, lock, atomic saves, formats."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.data.store import ReadOnlyError, open_dataset
from workbench.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_data" / "support"


def rows(n: int) -> list[dict]:
    return [{"prompt": f"question {i}?", "completion": f"Answer {i}."} for i in range(n)]


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    path = tmp_path / "messy.jsonl"
    shutil.copy(SUPPORT / "messy.jsonl", path)
    return path


def test_unreadable_lines_are_kept_byte_for_byte_and_unchanged_rows_too(messy: Path):
    original = messy.read_bytes()
    with open_dataset(messy) as ds:
        assert ds.kept, "messy.jsonl has lines that cannot be read"
        lines = [k.line for k in ds.kept]
        assert any(str(n) in " ".join(ds.notes) for n in lines)
        ds.set_status([0, 1], "accepted")
        ds.save()
    assert messy.read_bytes() == original  # review state lives beside the file, not in it
    assert (messy.parent / "messy.jsonl.orig").read_bytes() == original
    review = json.loads((messy.parent / "messy.jsonl.review.json").read_text())
    assert [r["status"] for r in review["rows"][:3]] == ["accepted", "accepted", "pending"]


def test_edit_save_reopen_keeps_rows_status_and_notes(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(5))
    with open_dataset(path) as ds:
        ds.set_row(2, {"prompt": "question 2?", "completion": "A better answer."})
        ds.flag(3, "wrong date format")
        ds.set_status([4], "rejected")
        ds.delete([0])
        new = ds.add([{"prompt": "new?", "completion": "New."}])
        assert ds.get(new[0]).status == "pending"
        ds.save()
        assert ds.unsaved() == 0
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["prompt"] for r in saved] == ["question 1?", "question 2?", "question 3?", "question 4?", "new?"]
    assert saved[1]["completion"] == "A better answer."
    with open_dataset(path) as again:
        by_prompt = {e.row["prompt"]: e for e in again.visible()}
        assert by_prompt["question 3?"].status == "flagged" and by_prompt["question 3?"].note == "wrong date format"
        assert by_prompt["question 4?"].status == "rejected"
        assert by_prompt["new?"].source == "added"
        assert again.recovered == 0


def test_undo_redo_of_every_kind_of_change(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(3))
    with open_dataset(path) as ds:
        ds.set_status([0, 1], "accepted")
        ds.set_row(2, {"prompt": "q", "completion": "edited"})
        [new] = ds.add([{"prompt": "n", "completion": "N."}])
        ds.delete([0])
        assert len(ds) == 3
        ds.undo()  # delete
        assert len(ds) == 4
        ds.undo()  # add
        assert len(ds) == 3 and ds.get(new).deleted
        ds.undo()  # edit
        assert ds.get(2).row["completion"] == "Answer 2."
        ds.redo()
        assert ds.get(2).row["completion"] == "edited"
        ds.undo()
        ds.undo()  # statuses
        assert ds.counts()["accepted"] == 0
        assert ds.undo() is None
        ds.redo()
        assert ds.counts()["accepted"] == 2
        ds.set_note(1, "new action clears redo")
        assert not ds.can_redo


def test_bad_edits_are_refused_with_the_field(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(2))
    with open_dataset(path) as ds:
        with pytest.raises(DataError, match="completion"):
            ds.set_row(0, {"prompt": "only a prompt"})
        with pytest.raises(DataError, match="status"):
            ds.set_status([0], "maybe")
        with pytest.raises(DataError, match="regular expression"):
            ds.query(pattern="(unclosed")
        assert ds.unsaved() == 0


KILLER = textwrap.dedent("""
    import os, signal, sys
    from workbench.data.store import open_dataset
    ds = open_dataset(sys.argv[1])
    ds.set_status([0, 2], "accepted")
    ds.flag(1, "check the date")
    ds.set_row(3, {"prompt": "question 3?", "completion": "Edited before the crash."})
    ds.undo()
    ds.redo()
    ds.add([{"prompt": "added?", "completion": "Added."}])
    print("acknowledged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(5))
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILLER, str(path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL and "acknowledged" in proc.stdout, proc.stderr
    assert path.read_bytes() == before  # nothing was saved...
    with open_dataset(path) as ds:  # ...and nothing is lost; the dead process's lock is free
        assert not ds.readonly
        assert ds.recovered == 6 and any("Recovered 6" in n for n in ds.notes)
        assert [ds.get(i).status for i in range(5)] == ["accepted", "flagged", "accepted", "pending", "pending"]
        assert ds.get(1).note == "check the date"
        assert ds.get(3).row["completion"] == "Edited before the crash."
        assert [e.row["prompt"] for e in ds.visible()][-1] == "added?"
        ds.undo()  # the undo history came back too: this undoes the add
        assert len(ds) == 5
        ds.save()
    with open_dataset(path) as ds:
        assert ds.recovered == 0 and len(ds) == 5


def test_a_torn_last_journal_line_is_ignored(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(3))
    ds = open_dataset(path)
    ds.set_status([0], "accepted")
    ds.set_status([1], "rejected")
    ds._journal_fh.close()  # simulate a crash mid-write of a third change
    with open(ds.journal_path, "ab") as fh:
        fh.write(b'{"seq": 3, "kind": "do", "label": "acc')
    ds._lock_fh.close()
    with open_dataset(path) as again:
        assert again.recovered == 2
        assert [again.get(i).status for i in range(3)] == ["accepted", "rejected", "pending"]


def test_file_changed_outside_keeps_the_journal_aside(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(3))
    ds = open_dataset(path)
    ds.set_status([0], "accepted")
    ds.close()
    write_jsonl(path, rows(4))  # someone rewrote the file meanwhile
    with open_dataset(path) as again:
        assert again.recovered == 0 and again.counts()["accepted"] == 0
        assert any("changed outside" in n for n in again.notes)
    assert list(tmp_path.glob(".d.jsonl.journal.orphan-*"))


def test_second_session_is_read_only_and_says_who_holds_it(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(3))
    with open_dataset(path) as first:
        with open_dataset(path) as second:
            assert second.readonly and f"pid {os.getpid()}" in second.readonly_reason
            with pytest.raises(ReadOnlyError):
                second.set_status([0], "accepted")
            with pytest.raises(ReadOnlyError):
                second.save()
        first.set_status([0], "accepted")
    with open_dataset(path) as third:
        assert not third.readonly


def test_export_accepted_only_in_any_type(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.jsonl", rows(6))
    with open_dataset(path) as ds:
        ds.set_status([1, 3, 5], "accepted")
        ds.set_status([0], "rejected")
        assert ds.export(tmp_path / "accepted.jsonl") == 3
        assert ds.export(tmp_path / "accepted.parquet") == 3
    exported = open_dataset(tmp_path / "accepted.jsonl")
    assert [e.row["prompt"] for e in exported.visible()] == ["question 1?", "question 3?", "question 5?"]
    exported.close()
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "accepted.parquet").column("prompt").to_pylist()[0] == "question 1?"


@pytest.mark.parametrize("name", ["alpaca_sample.json", "sharegpt_sample.jsonl"])
def test_save_keeps_shape_and_type(tmp_path: Path, name: str):
    path = tmp_path / name
    shutil.copy(SUPPORT / name, path)
    with open_dataset(path) as ds:
        shape, n = ds.shape, len(ds)
        first = ds.get(0).row
        edited = json.loads(json.dumps(first))
        key = "output" if "output" in edited else "conversations"
        if key == "output":
            edited["output"] = "edited"
        else:
            edited["conversations"][-1]["value"] = "edited"
        ds.set_row(0, edited)
        ds.save()
    with open_dataset(path) as again:
        assert again.shape == shape and len(again) == n
        assert "edited" in json.dumps(again.get(0).row)


def test_csv_and_parquet_round_trip(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = rows(4)
    pq.write_table(pa.Table.from_pylist(data), tmp_path / "d.parquet")
    csv_path = tmp_path / "d.csv"
    csv_path.write_text(
        "prompt,completion\n"
        + "".join(f'"{r["prompt"]}","{r["completion"]}"\n' for r in data)
        + "one,two,three columns\n"
    )
    for path in (tmp_path / "d.parquet", csv_path):
        with open_dataset(path) as ds:
            ds.set_row(1, {"prompt": "question 1?", "completion": "Changed, with a comma."})
            ds.save()
        with open_dataset(path) as again:
            assert again.get(1).row["completion"] == "Changed, with a comma."
            assert len(again) == 4
    assert csv_path.read_text().endswith("one,two,three columns\n")  # the unreadable row is kept as it was


def test_rows_of_the_wrong_shape_load_flagged_to_fix(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps(rows(1)[0]) + "\n" + json.dumps({"prompt": "no answer"}) + "\n" + json.dumps(rows(2)[1]) + "\n"
    )
    with open_dataset(path) as ds:
        assert len(ds) == 3 and not ds.kept
        bad = ds.get(1)
        assert bad.status == "flagged" and bad.problems and "completion" in bad.problems[0]
        ds.set_row(1, {"prompt": "no answer", "completion": "Now it has one."})
        assert not ds.get(1).problems
        ds.save()
    assert json.loads(path.read_text().splitlines()[1])["completion"] == "Now it has one."


def test_query_filters_and_sorts(tmp_path: Path):
    items = rows(5)
    items[2]["completion"] = "A much longer answer than all the others, by far."
    path = write_jsonl(tmp_path / "d.jsonl", items)
    with open_dataset(path) as ds:
        ds.set_status([0, 1], "accepted")
        assert [e.id for e in ds.query(status="accepted")] == [0, 1]
        assert [e.id for e in ds.query(pattern=r"question [34]")] == [3, 4]
        assert ds.query(sort="-length")[0].id == 2
        from workbench.data.findings import DataFinding

        findings = {4: [DataFinding(4, "empty_output", "error", "x")], 1: [DataFinding(1, "pii", "warning", "y")]}
        assert [e.id for e in ds.query(check="any", findings=findings, sort="findings")] == [4, 1]
        assert [e.id for e in ds.query(check="pii", findings=findings)] == [1]


def test_csv_with_bytes_that_are_not_utf8_saves_and_keeps_them(tmp_path: Path):
    # Failed before the fix: saving raised UnicodeEncodeError (the kept lines held surrogateescape'd bytes).
    path = tmp_path / "d.csv"
    head = b"prompt,completion\n" + b"q0?,A0.\n"
    bad_columns = b"caf\xe9,one,two\n"  # wrong column count and Latin-1
    bad_bytes = b"q\xff?,A\xfe.\r\n"  # the right columns, but not UTF-8
    path.write_bytes(head + bad_columns + b"q1?,A1.\n" + bad_bytes + b"q2?,A2.\n")
    with open_dataset(path) as ds:
        assert [k.line for k in ds.kept] == [3, 5]
        ds.set_row(1, {"prompt": "q1?", "completion": "Edited."})
        ds.save()
    data = path.read_bytes()
    assert bad_columns in data and bad_bytes in data  # byte for byte, line ending included
    with open_dataset(path) as again:
        assert [e.row["completion"] for e in again.visible()] == ["A0.", "Edited.", "A2."]
        assert [k.line for k in again.kept] == [3, 5]


def test_lone_surrogates_save_as_json_escapes_and_are_refused_where_the_type_cannot_hold_them(tmp_path: Path):
    # A valid UTF-8 JSON file may spell a lone surrogate as an escape; it must save (it failed before).
    path = tmp_path / "d.json"
    path.write_text('[{"prompt": "a \\ud800 b", "completion": "x"}, {"prompt": "q", "completion": "\\udc80"}]')
    with open_dataset(path) as ds:
        assert len(ds) == 2 and not ds.kept  # an escape is not a byte that failed to decode
        ds.set_row(0, {"prompt": "a \ud800 b", "completion": "edited"})
        ds.save()
    with open_dataset(path) as again:
        assert [e.row for e in again.visible()] == [
            {"prompt": "a \ud800 b", "completion": "edited"},
            {"prompt": "q", "completion": "\udc80"},
        ]
    write_jsonl(tmp_path / "src.jsonl", rows(3))
    for name, where in (("d.csv", "d.csv:3"), ("d.parquet", "d.parquet: row 1")):
        target = tmp_path / name
        with open_dataset(tmp_path / "src.jsonl") as src:
            src.export(target, statuses=["pending"])
        with open_dataset(target) as ds:
            ds.set_row(1, {"prompt": "question 1?", "completion": "bad \udcff"})
            before = target.read_bytes()
            with pytest.raises(DataError, match=rf"{where}: field 'completion'.*surrogate"):
                ds.save()
            assert target.read_bytes() == before and not ds.original_path.exists()
        with open_dataset(target) as again:  # the journal kept the edit
            assert again.recovered == 1 and again.get(1).row["completion"] == "bad \udcff"
            again.set_row(1, {"prompt": "question 1?", "completion": "fixed"})
            again.save()


def test_json_syntax_error_keeps_the_unread_rest_of_the_file(tmp_path: Path):
    path = tmp_path / "d.json"
    tail = b' {"prompt": "q2", "completion": "c2"}\n  {"prompt": broken\n]\n'
    path.write_bytes(b'[\n  {"prompt": "q0", "completion": "c0"},\n  {"prompt": "q1", "completion": "c1"}' + tail)
    with open_dataset(path) as ds:
        assert len(ds) == 2 and len(ds.kept) == 1 and ds.kept[0].bad.tail
        ds.set_row(1, {"prompt": "q1", "completion": "edited"})
        ds.add([{"prompt": "new", "completion": "n"}])
        ds.save()
    assert path.read_bytes().endswith(tail)
    with open_dataset(path) as again:
        assert [e.row["completion"] for e in again.visible()] == ["c0", "edited", "n"]
        assert again.kept[0].bad.raw_bytes == tail


def test_json_rows_under_a_key_keep_the_rest_of_the_object(tmp_path: Path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"tags": ["a", "b"], "data": rows(2), "meta": {"v": 1}}, indent=2))
    with open_dataset(path) as ds:
        ds.set_row(0, {"prompt": "question 0?", "completion": "edited"})
        ds.save()
    saved = json.loads(path.read_text())
    assert saved["tags"] == ["a", "b"] and saved["meta"] == {"v": 1}
    assert saved["data"][0]["completion"] == "edited" and len(saved["data"]) == 2


def test_csv_cells_with_a_carriage_return_or_blank_text_survive_a_save(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text("prompt,completion\nq0,c0\n")
    with open_dataset(path) as ds:
        ds.set_row(0, {"prompt": "line\rbreak", "completion": 'a, "quoted"\nanswer'})
        ds.add([{"prompt": " ", "completion": "  "}])
        ds.save()
    with open_dataset(path) as again:
        assert [e.row for e in again.visible()] == [
            {"prompt": "line\rbreak", "completion": 'a, "quoted"\nanswer'},
            {"prompt": " ", "completion": "  "},
        ]
        assert not again.kept


def test_csv_error_keeps_the_unread_rest_and_odd_cells_are_refused(tmp_path: Path):
    path = tmp_path / "d.csv"
    rest = b"q1,c\r1\nq2,c2\n"  # a bare CR stops Python's csv reader
    path.write_bytes(b"prompt,completion\nq0,c0\n" + rest)
    with open_dataset(path) as ds:
        assert len(ds) == 1 and ds.kept[0].bad.tail
        ds.add([{"prompt": "new", "completion": "n"}])
        ds.save()
        assert path.read_bytes().endswith(rest)
        ds.set_row(0, {"prompt": '["not", "messages"]', "completion": "c0"})
        with pytest.raises(DataError, match=r"d.csv:2: field 'prompt'.*read back as list"):
            ds.save()
    with open_dataset(path) as again:
        assert [e.row["prompt"] for e in again.visible()] == ['["not", "messages"]', "new"]


def test_parquet_keeps_new_fields_and_rows_of_the_wrong_shape(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    data = [*rows(3), {"prompt": "no answer", "completion": None}]
    pq.write_table(pa.Table.from_pylist(data), path)
    with open_dataset(path) as ds:
        assert len(ds) == 4 and ds.get(3).status == "flagged"
        ds.set_row(1, {"prompt": "question 1?", "completion": "c", "source": "edited"})
        ds.save()
    with open_dataset(path) as again:
        assert len(again) == 4 and again.get(3).row["prompt"] == "no answer"  # it used to vanish on save
        assert again.get(1).row["source"] == "edited"  # from_pylist kept only the first row's keys


def test_a_datasets_directory_refuses_to_save_and_keeps_the_edits(tmp_path: Path):
    from datasets import Dataset

    path = tmp_path / "ds"
    Dataset.from_list(rows(3)).save_to_disk(str(path))
    with open_dataset(path) as ds:
        ds.set_row(1, {"prompt": "question 1?", "completion": "edited"})
        ds.set_status([1], "accepted")
        with pytest.raises(DataError, match="export"):
            ds.save()
    with open_dataset(path) as again:
        assert again.recovered == 2 and again.get(1).row["completion"] == "edited"
        assert again.export(tmp_path / "out.jsonl") == 1
    assert json.loads((tmp_path / "out.jsonl").read_text())["completion"] == "edited"


def test_identical_rows_keep_their_own_review_status_through_a_parquet_save(tmp_path):
    """One edited (saved without its empty column), one not: both read back alike, and keep their statuses in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    rows = [{"prompt": "p", "completion": "c", "extra": None}, {"prompt": "p", "completion": "c", "extra": None}]
    pq.write_table(pa.Table.from_pylist(rows), path)
    s = open_dataset(path)
    s.set_row(0, {"prompt": "p", "completion": "c"})
    s.set_status([0], "accepted")
    s.set_status([1], "rejected")
    s.save()
    s.close()
    again = open_dataset(path)
    assert [e.status for e in again.visible()] == ["accepted", "rejected"]
    again.close()
