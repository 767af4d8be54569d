"""Chart data for the Train pane, computed in the core."""

from __future__ import annotations

from workbench.train.rundir import RunDir, append_jsonl
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
