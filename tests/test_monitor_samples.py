"""Production requests back into a dataset: picking them from the log, adding them pending, the source kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.data.formats import Shape
from workbench.data.store import open_dataset
from workbench.errors import DataError, ServeError
from workbench.monitor.samples import FILTERS, example_row, select_requests, to_dataset, why
from workbench.serve.log import LoggedRequest, RequestLog

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "sample_data" / "support"
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
SYSTEM = "Answer with one line of JSON."
GOOD = '{"customer":"Ann","product":"Drift","issue":"refund","date":"2026-03-13","urgency":"high","summary":"x"}'


def request(rid: str, t: float, **kw) -> LoggedRequest:
    base = dict(
        id=rid,
        time=T0 + t,
        model="demo",
        endpoint="/v1/chat/completions",
        stream=False,
        status=200,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"ticket {rid}"}],
        response=GOOD,
        finish_reason="stop",
        server_id="demo-1",
        prompt_chars=9,
        answer_chars=len(GOOD),
        valid=True,
        refusal=False,
        empty=False,
        truncated=False,
    )
    base.update(kw)
    return LoggedRequest(**base)


PLANTED = {
    "ok-1": dict(t=0),
    "invalid-1": dict(t=10, valid=False, response='{"issue":"weather"}'),
    "refusal-1": dict(t=20, refusal=True, valid=False, response="I cannot help with that."),
    "empty-1": dict(t=30, empty=True, valid=False, response=""),
    "trunc-1": dict(t=40, truncated=True, valid=False, response='{"customer":"A', finish_reason="length"),
    "error-1": dict(t=50, status=500, error="engine crashed", response=None, valid=None, answer_chars=None),
    "ok-2": dict(t=60, model="other"),
    "nouser-1": dict(t=70, valid=False, messages=[{"role": "system", "content": SYSTEM}]),
}


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "serve" / "requests.sqlite"
    with RequestLog(path) as log:
        for rid, spec in PLANTED.items():
            spec = dict(spec)
            log.record(request(rid, spec.pop("t"), **spec))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "train.jsonl"
    path.parent.mkdir()
    shutil.copy(SUPPORT / "train.jsonl", path)
    return path


def ids(rows) -> list[str]:
    return [r.id for r in rows]


def test_filters_select_exactly_the_planted_rows_newest_first(log_path: Path):
    assert ids(select_requests(log_path)) == ["nouser-1", "error-1", "trunc-1", "empty-1", "refusal-1", "invalid-1"]
    assert ids(select_requests(log_path, filter="invalid")) == [
        "nouser-1",
        "trunc-1",
        "empty-1",
        "refusal-1",
        "invalid-1",
    ]
    assert ids(select_requests(log_path, filter="refusal")) == ["refusal-1"]
    assert ids(select_requests(log_path, filter="empty")) == ["empty-1"]
    assert ids(select_requests(log_path, filter="truncated")) == ["trunc-1"]
    assert ids(select_requests(log_path, filter="error")) == ["error-1"]
    assert len(select_requests(log_path, filter="all")) == len(PLANTED)
    assert set(FILTERS) == {"failed", "invalid", "refusal", "empty", "truncated", "error", "all"}


def test_window_model_ids_limit_and_predicate(log_path: Path):
    assert ids(select_requests(log_path, filter="all", since=T0 + 20, until=T0 + 50)) == [
        "trunc-1",
        "empty-1",
        "refusal-1",
    ]
    assert ids(select_requests(log_path, filter="all", model="other")) == ["ok-2"]
    assert ids(select_requests(log_path, filter="all", ids=["ok-1", "error-1", "nope"])) == ["error-1", "ok-1"]
    assert ids(select_requests(log_path, ids=["ok-1", "error-1"])) == ["error-1"]
    assert ids(select_requests(log_path, limit=2)) == ["nouser-1", "error-1"]
    # the predicate runs before the limit: two of those it keeps, not two rows then the test
    keep = select_requests(log_path, filter="all", predicate=lambda r: r.status == 200 and r.valid is True, limit=1)
    assert ids(keep) == ["ok-2"]


def test_bad_filter_and_missing_log(tmp_path: Path, log_path: Path):
    with pytest.raises(DataError, match=r"'weird'.*failed"):
        select_requests(log_path, filter="weird")
    with pytest.raises(ServeError, match=r"nothing\.sqlite"):
        select_requests(tmp_path / "nothing.sqlite")


def test_why_names_each_failure():
    assert why(request("a", 0)) == "ok"
    assert why(request("a", 0, status=500, error="boom")) == "error 500: boom"
    assert why(request("a", 0, valid=False, truncated=True)) == "invalid, truncated"


def test_example_row_restores_the_default_system_prompt_and_keeps_a_failed_answer_empty():
    req = request("x", 0, messages=[{"role": "user", "content": "hi"}], params={"default_system": True})
    row = example_row(req, Shape.LANGUAGE_MODELING, True, system_prompt="TRAINED PROMPT")
    assert row == {
        "messages": [
            {"role": "system", "content": "TRAINED PROMPT"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": GOOD},
        ]
    }
    # a request that brought its own system prompt keeps it; one sent without the default stays without
    assert (
        example_row(request("y", 0), Shape.LANGUAGE_MODELING, True, system_prompt="T")["messages"][0]["content"]
        == SYSTEM
    )
    bare = request("z", 0, messages=[{"role": "user", "content": "hi"}])
    assert [m["role"] for m in example_row(bare, Shape.LANGUAGE_MODELING, True, system_prompt="T")["messages"]] == [
        "user",
        "assistant",
    ]
    failed = request("e", 0, status=500, response=None, messages=[{"role": "user", "content": "hi"}])
    assert example_row(failed, Shape.PROMPT_COMPLETION, False) == {"prompt": "hi", "completion": ""}
    with pytest.raises(DataError, match="request n: has no user turn"):
        example_row(request("n", 0, messages=[]), Shape.LANGUAGE_MODELING, True)


def test_to_dataset_adds_pending_production_examples_with_details_and_skips_a_second_time(
    log_path: Path, dataset: Path
):
    before = len(dataset.read_text().splitlines())
    picked = select_requests(log_path)
    result = to_dataset(log_path, dataset, picked, server_id="srv-a")
    assert len(result.added) == 5
    assert result.skipped == [("nouser-1", "request nouser-1: has no user turn, so it cannot become an example")]
    lines = dataset.read_text().splitlines()
    assert len(lines) == before + 5
    assert all("request_id" not in line for line in lines)  # the data file holds rows only; details in the review
    with open_dataset(dataset) as s:
        new = [s.get(i) for i in result.added]
        assert [e.status for e in new] == ["pending"] * 5
        assert [e.source for e in new] == ["production"] * 5
        assert [e.source_info["request_id"] for e in new] == ["error-1", "trunc-1", "empty-1", "refusal-1", "invalid-1"]
        err = new[0].source_info
        assert err == {
            "request_id": "error-1",
            "time": "2026-09-21T14:14:10Z",
            "server_id": "srv-a",
            "model": "demo",
            "status": 500,
            "why": "error 500: engine crashed",
        }
        assert new[4].source_info["why"] == "invalid"
        assert all(s.row_problems(e.row) == [] for e in new)
        assert new[0].row["messages"][-1] == {"role": "assistant", "content": ""}  # failed: no draft
        assert new[4].row["messages"][-1]["content"] == '{"issue":"weather"}'  # the model's answer, to correct
    again = to_dataset(log_path, dataset, select_requests(log_path, filter="all"))
    assert len(again.added) == 2  # only ok-1 and ok-2 are new
    assert sorted(r for r, why_ in again.skipped if "already in train.jsonl" in why_) == sorted(
        ["error-1", "trunc-1", "empty-1", "refusal-1", "invalid-1"]
    )
    assert len(dataset.read_text().splitlines()) == before + 7


def test_source_details_survive_reopen_and_go_with_undo(dataset: Path):
    info = {"request_id": "r-1", "time": "2026-09-21T14:13:20Z", "server_id": "s", "model": "m"}
    with open_dataset(dataset) as s:
        row = {"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a"}]}
        (new,) = s.add([row], source="production", source_info=info)
        s.save()
    with open_dataset(dataset) as s:
        ex = s.get(new)
        assert (ex.source, ex.source_info, ex.status) == ("production", info, "pending")
        assert s.undo() is None  # a reopen starts a fresh undo history
    # unsaved: the journal keeps the details through a crash (no close, no save)
    s = open_dataset(dataset)
    (second,) = s.add(
        [{"messages": [{"role": "user", "content": "w"}, {"role": "assistant", "content": "b"}]}],
        source="production",
        source_info=[{"request_id": "r-2"}],
    )
    s._journal_fh.close()
    s._lock_fh.close()
    with open_dataset(dataset) as back:
        assert back.recovered == 1
        assert back.get(second).source_info == {"request_id": "r-2"}
        back.undo()
        assert back.get(second).deleted
        back.save()
    with open_dataset(dataset) as s:
        assert [e.source_info for e in s.visible() if e.source == "production"] == [info]
    with open_dataset(dataset) as s, pytest.raises(DataError, match=r"1 row.*2 source_info"):
        s.add([row], source_info=[{"a": 1}, {"b": 2}])


def test_bad_input_names_the_file(tmp_path: Path, log_path: Path, dataset: Path):
    picked = select_requests(log_path, ids=["invalid-1"])
    with pytest.raises(DataError, match=r"missing\.jsonl: no such dataset"):
        to_dataset(log_path, tmp_path / "missing.jsonl", picked)
    with pytest.raises(ServeError, match=r"gone\.sqlite: no request log"):
        to_dataset(tmp_path / "gone.sqlite", dataset, picked)
    holder = open_dataset(dataset)  # another session holds the lock: this one is read-only
    try:
        with pytest.raises(DataError, match=r"train\.jsonl: cannot add production requests.*read-only"):
            to_dataset(log_path, dataset, picked)
    finally:
        holder.close()
    assert json.loads(dataset.read_text().splitlines()[0])  # untouched
