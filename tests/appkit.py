"""Helpers shared by the app tests: the app factory, waiting on a condition, fake run directories."""

from __future__ import annotations

import time
from pathlib import Path

from screens.app import create_app
from workbench.config import RunConfig, dump_config
from workbench.train.rundir import RunDir, append_jsonl

CONFIG = RunConfig.model_validate(
    {
        "name": "demo",
        "model": "bundled",
        "data": {"train": "/data/support/train.jsonl", "val": "/data/support/val.jsonl"},
        "train": {"learning_rate": 1e-3, "batch_size": 4, "epochs": 8, "max_length": 256},
        "lora": {"r": 32, "alpha": 64},
    }
)


def make_app(ws: Path):
    """The app on workspace ws, remembering its state inside ws (never the user's own state file)."""
    return create_app(ws, state_path=ws / "state.json")


async def until(pilot, condition, timeout: float = 60.0, what: str = "condition") -> None:
    """Let the app run until condition() holds; fail the test naming what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def fake_run(
    workspace: Path,
    run_id: str,
    *,
    state: str = "completed",
    overfit: bool = True,
    steps: int = 64,
    age_s: float = 3 * 86400,
    error: str | None = None,
    corrupt: bool = False,
) -> RunDir:
    """A run directory as a finished worker leaves it: config, status, metrics, system samples."""
    run = RunDir(workspace / "runs" / run_id)
    run.path.mkdir(parents=True)
    run.config_path.write_text(dump_config(CONFIG))
    created = time.time() - age_s
    status = {
        "run_id": run_id,
        "name": run_id.split("-")[0],
        "state": state,
        "created": created,
        "heartbeat": created + 300,
        "step": steps,
        "total_steps": 64,
    }
    if error:
        status["error"] = error
        status["error_tail"] = ["Traceback (most recent call last):", '  File "worker.py", line 1', error]
    run.write_status(status)
    evals = [0.78, 0.60, 0.54, 0.52, 0.50, 0.47, 0.49, 0.51, 0.53, 0.55, 0.56, 0.56, 0.55, 0.54, 0.55, 0.52]
    if not overfit:
        evals = sorted(evals, reverse=True)
    for step in range(1, steps + 1):
        loss = 1.4 * (0.93**step)
        append_jsonl(
            run.metrics_path,
            {
                "type": "train",
                "step": step,
                "epoch": step / 8,
                "loss": loss,
                "learning_rate": 1e-3,
                "grad_norm": 0.5,
                "tokens_per_s": 250.0 + step % 7,
                "eta_s": (64 - step) * 2.3,
            },
        )
        if step % 4 == 0 and step // 4 - 1 < len(evals):
            append_jsonl(run.metrics_path, {"type": "eval", "step": step, "eval_loss": evals[step // 4 - 1]})
        if corrupt and step == 10:
            with open(run.metrics_path, "a") as fh:
                fh.write("{this is not json\n")
    if corrupt:
        with open(run.metrics_path, "a") as fh:
            fh.write('{"type": "train", "step": 65, "lo')  # a half-written last line
    for i in range(30):
        append_jsonl(
            run.system_path,
            {"time": 1000.0 + i, "cpu_percent": 90.0 + i % 10, "ram_used_gb": 4.0, "ram_total_gb": 23.5},
        )
    run.log_path.write_text("[workbench] model bundled\n" + (f"{error}\n" if error else "[workbench] run completed\n"))
    return run


async def settle_for_snapshot(pilot, seconds: float = 0.5) -> None:
    """The last step before a snapshot: steady cursors (a blinking one is caught on or off by chance), then settle."""
    from textual.widgets import Input, TextArea

    for screen in pilot.app.screen_stack:
        for widget in screen.query("TextArea, Input"):
            if isinstance(widget, (TextArea, Input)):
                widget.cursor_blink = False
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(seconds)


def snapshot_workspace(path: Path):
    """A fresh workspace at a fixed path (headers show it) with one config; removed afterwards. For fixtures."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    (path / "configs").mkdir(parents=True)
    (path / "configs" / "demo.yaml").write_text("data:\n  train: x.jsonl\n")
    yield path
    shutil.rmtree(path, ignore_errors=True)
