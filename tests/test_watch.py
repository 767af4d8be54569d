"""Chart data for the Train pane, computed in the core."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

from workbench.train.follow import follow, print_follow
from workbench.train.rundir import JsonlTail, LogTail, RunDir, append_jsonl
from workbench.train.watch import RunWatcher, Series, chart_data, system_view


def test_thinned_keeps_peaks_and_bounds_points():
    s = Series()
    for i in range(10_000):
        s.add(i, 1.0 if i != 7_777 else 50.0)
    thin = s.thinned(200)
    assert len(thin.steps) <= 200 and 50.0 in thin.values
    assert thin.steps == sorted(thin.steps)
    short = Series([1, 2], [3.0, 4.0])
    assert short.thinned(200) is short


def test_chart_data_best_and_verdict():
    records = [{"type": "train", "step": i, "loss": 2.0 - i * 0.02, "learning_rate": 1e-4} for i in range(1, 81)]
    records += [
        {"type": "eval", "step": s, "eval_loss": v}
        for s, v in zip(range(10, 90, 10), [1.5, 1.1, 0.9, 0.95, 1.0, 1.1, 1.2, 1.3])
    ]
    data = chart_data(sorted(records, key=lambda r: r["step"]))
    assert data.best == (30, 0.9) and data.verdict.kind == "overfitting"
    assert len(data.train_loss.steps) == 80 and data.latest["step"] == 80


def test_watcher_reads_only_what_is_new_and_system_view(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.write_status({"state": "completed", "created": 1.0})
    append_jsonl(run.metrics_path, {"type": "train", "step": 1, "loss": 1.0})
    watcher = RunWatcher(run)
    first = watcher.poll()
    assert len(first.records) == 1 and first.status_changed
    assert not watcher.poll().changed
    append_jsonl(
        run.system_path,
        {
            "time": 10.0,
            "cpu_percent": 50.0,
            "ram_used_gb": 2.0,
            "ram_total_gb": 8.0,
            "gpus": [
                {
                    "index": 0,
                    "name": "H100",
                    "util_percent": 90,
                    "mem_used_gb": 30.0,
                    "mem_total_gb": 80.0,
                    "temp_c": 60,
                }
            ],
        },
    )
    update = watcher.poll()
    assert update.changed and len(update.samples) == 1
    view = system_view(watcher.samples)
    assert view.cpu.values == [50.0] and view.gpus[0].name == "H100" and view.gpus[0].mem_total_gb == 80.0
    assert view.gpus[0].power_w is None  # a figure the device did not report stays absent


# --- the one follower: LineTail, RunFollower, follow() and RunWatcher --------------------


def _lines(*steps: int) -> str:
    return "".join(json.dumps({"type": "train", "step": s, "loss": 1.0 / s}) + "\n" for s in steps)


def test_tail_rereads_a_replaced_file(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1, 2, 3))
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.read_new()] == [1, 2, 3] and not tail.restarted
    fresh = tmp_path / "new.jsonl"
    fresh.write_text(_lines(10, 20, 30, 40))  # longer than the old one: only the inode tells
    os.replace(fresh, path)
    assert [r["step"] for r in tail.read_new()] == [10, 20, 30, 40] and tail.restarted
    assert tail.read_new() == [] and not tail.restarted


def test_tail_rereads_a_truncated_file(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1, 2, 3))
    tail = JsonlTail(path)
    tail.read_new()
    with open(path, "r+") as fh:  # the same inode, shorter
        fh.truncate(0)
        fh.write(_lines(7))
    assert [r["step"] for r in tail.read_new()] == [7] and tail.restarted
    with open(path, "a") as fh:
        fh.write(_lines(8))
    assert [r["step"] for r in tail.read_new()] == [8] and not tail.restarted
    # Truncated and written again past the old end between two reads: the byte before the
    # old end is no longer the newline read there.
    size = path.stat().st_size
    with open(path, "r+") as fh:
        fh.truncate(0)
        fh.write(json.dumps({"type": "train", "step": 100, "note": "x" * size}) + "\n")
    assert [r["step"] for r in tail.read_new()] == [100] and tail.restarted


def test_tail_keeps_a_torn_line_for_later_and_reads_only_new_bytes(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1) + '{"type": "train", "st')
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.read_new()] == [1]
    assert tail.pending == b'{"type": "train", "st' and tail.offset == len(_lines(1))
    with open(path, "a") as fh:
        fh.write('ep": 2, "loss": 0.5}\n')
    assert tail.read_new() == [{"type": "train", "step": 2, "loss": 0.5}] and not tail.restarted
    assert tail.offset == path.stat().st_size and tail.pending == b""


def test_tail_skips_corrupt_lines_and_counts_them_again_after_a_restart(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(_lines(1) + "not json\n" + _lines(2) + "[1]\n")
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.read_new()] == [1, 2] and tail.bad_lines == [2, 4]
    path.write_text("garbage\n" + _lines(5))  # shorter: truncated and rewritten
    assert [r["step"] for r in tail.read_new()] == [5] and tail.restarted and tail.bad_lines == [1]


def test_tail_of_a_file_that_goes_away_reads_as_restarted(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == [] and not tail.restarted  # not written yet: nothing to drop
    path.write_text(_lines(1))
    assert len(tail.read_new()) == 1
    path.unlink()
    assert tail.read_new() == [] and tail.restarted


def test_log_tail_splits_progress_bars_keeps_the_line_being_written_and_windows(tmp_path: Path):
    path = tmp_path / "train.log"
    path.write_text("x" * 100 + "\nstarting\n\n 10%|#\r 20%|##")
    tail = LogTail(path, window=50)
    assert tail.read_new() == ["starting", " 10%|#"] and tail.partial() == " 20%|##"
    with open(path, "a") as fh:
        fh.write("\r\ndone\n")
    assert tail.read_new() == [" 20%|##", "done"] and tail.partial() == "" and not tail.restarted
    with open(path, "a") as fh:
        fh.write("y" * 200 + "\nlast\n")  # more than the window: only its end is read, from a line's start
    assert tail.read_new() == ["last"] and tail.restarted


def _live_run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.write_status({"state": "running", "created": time.time(), "heartbeat": time.time(), "step": 3})
    run.metrics_path.write_text(_lines(1, 2) + "{broken\n" + _lines(3) + '{"type": "eval", "st')
    return run


def test_follow_and_the_watcher_see_the_same_records(tmp_path: Path):
    run = _live_run(tmp_path)
    events = follow(run, interval=0)
    watcher = RunWatcher(run)
    first, polled = next(events), watcher.poll()
    assert [r["step"] for r in first.records] == [1, 2, 3] and first.records == polled.records
    assert first.bad_lines == polled.bad_lines == 1 and watcher.bad_lines == [3]
    with open(run.metrics_path, "a") as fh:
        fh.write('ep": 3, "eval_loss": 0.9}\n')
    second, polled = next(events), watcher.poll()
    assert second.records == polled.records == [{"type": "eval", "step": 3, "eval_loss": 0.9}]
    run.write_status({"state": "completed", "created": 1.0, "step": 3})
    last = list(events)
    assert last and last[-1].finished and not watcher.poll().records


def test_a_replaced_metrics_file_is_not_counted_twice(tmp_path: Path):
    run = _live_run(tmp_path)
    watcher = RunWatcher(run)
    events = follow(run, interval=0)
    next(events)
    watcher.poll()
    assert len(watcher.records) == 3
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text(_lines(1, 2))
    os.replace(fresh, run.metrics_path)
    update, event = watcher.poll(), next(events)
    assert update.restarted and update.changed and event.restarted
    assert [r["step"] for r in watcher.records] == [1, 2] and watcher.bad_lines == []
    assert len(chart_data(watcher.records).train_loss.steps) == 2
    run.write_status({"state": "completed", "created": 1.0, "step": 2})
    out = io.StringIO()
    assert print_follow(run, out, interval=0) == "completed"


def test_print_follow_says_when_metrics_start_over(tmp_path: Path, monkeypatch):
    run = _live_run(tmp_path)
    calls = {"n": 0}
    real_sleep = time.sleep

    def sleep(_s: float) -> None:  # the first pause: the file is replaced; the second: the run ends
        calls["n"] += 1
        if calls["n"] == 1:
            fresh = tmp_path / "fresh.jsonl"
            fresh.write_text(_lines(1) + json.dumps({"type": "eval", "step": 1, "eval_loss": 2.0}) + "\n")
            os.replace(fresh, run.metrics_path)
        else:
            run.write_status({"state": "completed", "created": 1.0, "step": 1})
        real_sleep(0)

    monkeypatch.setattr("workbench.train.follow.time.sleep", sleep)
    out = io.StringIO()
    assert print_follow(run, out, interval=0) == "completed"
    text = out.getvalue()
    assert "metrics.jsonl was replaced; reading it again" in text
    assert "eval_loss 2.0000  (best so far)" in text  # the best eval loss starts over too


def test_watcher_log_tail_reads_new_bytes_and_starts_over_with_the_file(tmp_path: Path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.log_path.write_text("a\nb\r 50%")
    watcher = RunWatcher(run)
    assert watcher.log_tail() == ["a", "b", " 50%"]
    with open(run.log_path, "a") as fh:
        fh.write("\r100%\nend\n")
    assert watcher.log_tail() == ["a", "b", " 50%", "100%", "end"]
    assert watcher.log_tail(2) == ["100%", "end"]
    run.log_path.write_text("fresh\n")  # truncated and written again (a resumed run's new log)
    assert watcher.log_tail() == ["fresh"]
