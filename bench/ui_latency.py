"""UI latency and idle CPU of the Train pane, with a live run streaming and twenty runs listed.

A temporary workspace gets twenty runs (completed, stopped, failed...) with a
few hundred metric records each; the newest one is "running": a separate
writer process appends ten metric records a second (train records, an eval
every tenth), one system sample and one train.log line a second, and
refreshes status.json's heartbeat, as the real worker does. The writer is a
subprocess so that its CPU is not counted as the app's.

The app (``screens.app.create_app``) runs headless at 120x40. Key events are
sent the way a terminal driver sends them, and latency is the time from
sending the key to the first frame the app paints that shows its effect:

* ``down``/``up`` in the runs list: until a frame is painted with the new
  run's snapshot rendered (header, alert and loss chart; the pane draws the
  small charts and the system line one frame later). This includes the
  follow worker starting, its first read of the run's whole history, the
  chart data and verdict, the message to the UI thread and the frame.
* ``l``: until the frame that shows (or hides) the log, and, when showing,
  until the frame that shows train.log's lines (they are read by the worker).

Frames are rendered in full even headless: the hook on ``App._display`` also
turns each update into the escape sequences a terminal would receive.

Idle CPU: the process CPU time (user + system, all threads) of the app while
it only watches the live run for ``--watch`` seconds, as % of one core.

    python bench/ui_latency.py [--runs 20] [--rate 10] [--passes 2] [--watch 10] [--json]

Targets (from the issue): p95 latency <= 50 ms, idle CPU <= 5 % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import screens  # noqa: E402,F401  first: it sets the app's frame rate before textual is imported

TARGET_P95_MS = 50.0
TARGET_CPU_PCT = 5.0
SIZE = (120, 40)

# --- the fake workspace -------------------------------------------------------


def _train_record(step: int, total: int, t: float, t0: float, rng: random.Random, loss0: float) -> dict[str, Any]:
    progress = step / total
    lr = 2e-4 * 0.5 * (1 + math.cos(math.pi * progress))
    loss = loss0 * (0.35 + 0.65 * math.exp(-4 * progress)) + rng.gauss(0, 0.03)
    per_step = 0.8 + rng.random() * 0.1
    return {
        "type": "train",
        "step": step,
        "epoch": round(3 * progress, 4),
        "time": t,
        "elapsed_s": round(t - t0, 2),
        "loss": round(loss, 4),
        "learning_rate": lr,
        "grad_norm": round(0.5 + rng.random(), 4),
        "tokens_per_s": round(9000 + rng.gauss(0, 300), 1),
        "eta_s": round(per_step * (total - step), 1),
        "s_per_step": round(per_step, 3),
        "tokens_seen": step * 4096,
    }


def _eval_record(
    step: int, total: int, t: float, t0: float, rng: random.Random, loss0: float, overfit_from: int | None = None
) -> dict[str, Any]:
    progress = step / total
    loss = loss0 * (0.45 + 0.55 * math.exp(-4 * progress)) + rng.gauss(0, 0.01)
    if overfit_from is not None and step > overfit_from:
        loss += (step - overfit_from) * 0.004
    return {
        "type": "eval",
        "step": step,
        "epoch": round(3 * progress, 4),
        "time": t,
        "elapsed_s": round(t - t0, 2),
        "eval_loss": round(loss, 4),
        "eval_runtime": 3.1,
    }


def _history(steps: int, total: int, t0: float, rng: random.Random, overfit: bool = False) -> list[dict[str, Any]]:
    """Metric records of the first `steps` steps: a train record each step, an eval every 10."""
    loss0 = 2.0 + rng.random()
    out = []
    for step in range(1, steps + 1):
        t = t0 + step * 0.85
        out.append(_train_record(step, total, t, t0, rng, loss0))
        if step % 10 == 0:
            out.append(_eval_record(step, total, t, t0, rng, loss0, int(steps * 0.6) if overfit else None))
    return out


def build_workspace(ws: Path, n_runs: int, owner_pid: int, seed: int = 0) -> str:
    """Runs under ws/runs/; returns the id of the live one (the newest)."""
    from workbench.config.schema import RunConfig, dump_config
    from workbench.train.rundir import RunDir, append_jsonl, atomic_write_text, dumps

    rng = random.Random(seed)
    root = ws / "runs"
    root.mkdir(parents=True)
    data = ws / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    now = time.time()
    finals = ["completed", "completed", "stopped", "completed", "failed", "completed", "diverged", "stopped"]
    live_id = ""
    for i in range(n_runs):
        live = i == 0
        created = now - 120 if live else now - 3600 * (i + rng.random())
        run_id = f"bench-{i:02d}-" + time.strftime("%Y%m%d-%H%M%S", time.localtime(created))
        run = RunDir(root / run_id)
        run.path.mkdir()
        config = RunConfig.model_validate(
            {
                "name": f"bench-{i:02d}",
                "model": "bundled",
                "data": {"train": str(data), "val_ratio": 0.1},
                "train": {"max_steps": 1000, "batch_size": 4, "learning_rate": 2e-4},
                "eval": {"logging_steps": 1, "eval_steps": 10},
            }
        )
        atomic_write_text(run.config_path, dump_config(config))
        total = 1000
        state = "running" if live else finals[i % len(finals)]
        steps = 300 if live else rng.randint(200, 450)
        records = _history(steps, total, created, rng, overfit=(i % 5 == 3))
        run.metrics_path.write_text("".join(dumps(r) + "\n" for r in records))
        for k in range(min(steps, 300)):
            append_jsonl(
                run.system_path,
                {
                    "time": created + k,
                    "cpu_percent": 50 + rng.random() * 40,
                    "ram_used_gb": 12.0 + rng.random(),
                    "ram_total_gb": 62.7,
                },
            )
        run.log_path.write_text("".join(f"[workbench] step {s}/{total}\n" for s in range(1, steps + 1, 5)))
        status: dict[str, Any] = {
            "run_id": run_id,
            "name": f"bench-{i:02d}",
            "state": state,
            "created": created,
            "heartbeat": now if live else created + steps,
            "step": steps,
            "total_steps": total,
            "pid": owner_pid if live else 999_999,
            "host": socket.gethostname(),
        }
        if i % 5 == 3:
            status["verdict"] = {
                "kind": "overfitting",
                "step": steps,
                "since_step": int(steps * 0.6),
                "message": "eval loss rising",
            }
        if state in ("completed", "stopped"):
            evals = [r["eval_loss"] for r in records if r["type"] == "eval"]
            status.update(ended=created + steps, best_eval_loss=min(evals) if evals else None)
        elif state == "failed":
            status.update(
                error="RuntimeError: CUDA out of memory",
                error_tail=["Traceback...", "RuntimeError: CUDA out of memory"],
            )
        elif state == "diverged":
            status.update(error="train loss became nan")
        run.write_status(status)
        if live:
            live_id = run_id
    return live_id


# --- the writer process ---------------------------------------------------------


def writer_main(run_path: str, owner_pid: int, rate: float) -> int:
    """Stream into a live run like the worker: `rate` metric records/s, 1 system sample/s, heartbeats."""
    from workbench.train.rundir import RunDir, append_jsonl

    run = RunDir(run_path)
    raw = run.read_status_raw()
    step, total, t0 = int(raw["step"]), int(raw["total_steps"]), float(raw["created"])
    rng = random.Random(1)
    loss0 = 2.5
    period = 1.0 / rate
    n = 0
    next_t = time.monotonic()
    next_second = next_t
    while os.getppid() == owner_pid:
        now = time.time()
        if n % 10 == 9:
            append_jsonl(run.metrics_path, _eval_record(step, total, now, t0, rng, loss0))
        else:
            step = step + 1 if step < total - 1 else step
            append_jsonl(run.metrics_path, _train_record(step, total, now, t0, rng, loss0))
        n += 1
        if time.monotonic() >= next_second:
            next_second += 1.0
            append_jsonl(
                run.system_path,
                {
                    "time": now,
                    "cpu_percent": 60 + rng.random() * 30,
                    "ram_used_gb": 12.0 + rng.random(),
                    "ram_total_gb": 62.7,
                },
            )
            with open(run.log_path, "a") as fh:
                fh.write(f"[workbench] step {step}/{total} loss {loss0:.3f}\n")
            raw.update(state="running", heartbeat=now, step=step, pid=owner_pid, host=socket.gethostname())
            run.write_status(raw)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    return 0


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return fh.read().count(b"\n")


# --- measuring the app ------------------------------------------------------------


class FrameHook:
    """Wraps App._display: renders each update as a terminal would and resolves waiters on each frame.

    Also counts the UI-thread CPU of the screen updates (layout, widget renders, compositing,
    output), by wrapping Screen._on_timer_update; install it before the app is created.
    """

    update_cpu_s = 0.0  # all screen updates, this process
    updates = 0

    @classmethod
    def install_update_meter(cls) -> None:
        from textual.screen import Screen

        original = Screen._on_timer_update

        def on_timer_update(screen):
            t = time.thread_time()
            try:
                return original(screen)
            finally:
                cls.update_cpu_s += time.thread_time() - t
                cls.updates += 1

        Screen._on_timer_update = on_timer_update

    def __init__(self, app) -> None:
        from textual._compositor import CompositorUpdate

        self.app = app
        self.frames = 0
        self.output_s = 0.0
        self.waiters: list[tuple[Callable[[], bool], asyncio.Future]] = []
        original = app._display

        def display(screen, renderable) -> None:
            t = time.perf_counter()
            original(screen, renderable)
            if renderable is not None and isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)  # what a real terminal would be sent
            done = time.perf_counter()
            self.frames += 1
            self.output_s += done - t
            for predicate, future in list(self.waiters):
                if not future.done() and predicate():
                    future.set_result(done)
            self.waiters = [(p, f) for p, f in self.waiters if not f.done()]

        app._display = display

    def watch(self, predicate: Callable[[], bool]) -> asyncio.Future:
        """A future of the perf_counter time at the end of the first frame painted once predicate() holds."""
        future = asyncio.get_running_loop().create_future()
        self.waiters.append((predicate, future))
        return future

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> float:
        return await asyncio.wait_for(self.watch(predicate), timeout)


def send_key(app, key: str) -> float:
    """Send a key as the terminal driver does (from outside the message loop); returns the send time."""
    from textual import events

    char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    t = time.perf_counter()
    app._driver.send_message(event)
    return t


async def drive(ws: Path, state_path: Path, live_id: str, a: argparse.Namespace) -> dict[str, Any]:
    from textual.widgets import Log

    from screens.app import create_app
    from screens.train import TrainPane
    from screens.widgets.runs_table import RunsTable

    FrameHook.install_update_meter()
    app = create_app(ws, state_path=state_path)
    out: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        hook = FrameHook(app)
        pane = app.query_one(TrainPane)
        table = app.query_one(RunsTable)
        await hook.until(lambda: pane.last is not None and pane.last.run_id == live_id, timeout=20)
        await pilot.pause(0.5)
        ids = [str(k.value) for k in table.rows]
        assert ids and ids[0] == live_id, (ids[:3], live_id)
        assert app.focused is table, app.focused
        assert pane.last.status.state == "running", pane.last.status.state

        def shows(run_id: str) -> Callable[[], bool]:
            return lambda: pane.run_id == run_id and pane.last is not None and pane.last.run_id == run_id

        # Run switches: down to the bottom and back up, `passes` times.
        switches: list[float] = []
        first_frames: list[float] = []
        to_live: list[float] = []
        keys = (["down"] * (len(ids) - 1) + ["up"] * (len(ids) - 1)) * a.passes
        row = 0
        for key in keys:
            row += 1 if key == "down" else -1
            target = ids[row]
            moved = hook.watch(lambda r=row: table.cursor_row == r)  # the cursor moved in the runs list
            sent = send_key(app, key)
            painted = await hook.until(shows(target))
            first_frames.append((await asyncio.wait_for(moved, 10) - sent) * 1000)
            ms = (painted - sent) * 1000
            switches.append(ms)
            if target == live_id:
                to_live.append(ms)
            await asyncio.sleep(a.gap)
        assert pane.run_id == live_id

        # The log: frame that shows/hides it, and frame that shows its lines.
        log = app.query_one(Log)
        log_frame: list[float] = []
        log_lines: list[float] = []
        for _ in range(a.log_toggles * 2):
            showing = not pane.show_log
            sent = send_key(app, "l")
            painted = await hook.until(lambda s=showing: log.display == s)
            log_frame.append((painted - sent) * 1000)
            if showing:
                painted = await hook.until(
                    lambda: pane.last is not None and pane.last.log is not None and log.line_count > 0
                )
                log_lines.append((painted - sent) * 1000)
            await asyncio.sleep(a.gap)
        assert not pane.show_log

        # Only watching: no keys, the live run streaming.
        await asyncio.sleep(1.0)
        before_lines = count_lines(ws / "runs" / live_id / "metrics.jsonl")

        frames0, output0, update0 = hook.frames, hook.output_s, FrameHook.update_cpu_s
        ui0 = time.thread_time()  # this coroutine runs on the app's (UI) thread
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(a.watch)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        ui_s = time.thread_time() - ui0
        frames = hook.frames - frames0
        output_s = hook.output_s - output0
        update_s = FrameHook.update_cpu_s - update0
        after_lines = count_lines(ws / "runs" / live_id / "metrics.jsonl")
        assert pane.run_id == live_id and pane.last.status.state == "running"
        shown_step = pane.last.status.step

        out.update(
            switch_ms=switches,
            switch_first_frame_ms=first_frames,
            switch_to_live_ms=to_live,
            log_frame_ms=log_frame,
            log_lines_ms=log_lines,
            watch_s=wall1 - wall0,
            watch_cpu_s=cpu1 - cpu0,
            watch_frames=frames,
            watch_output_s=output_s,
            watch_ui_s=ui_s,
            watch_update_s=update_s,
            watch_metric_lines=after_lines - before_lines,
            shown_step=shown_step,
            live_records=len(pane.last.chart.train_loss.steps),
        )
    return out


# --- report ----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Percentile with linear interpolation (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50), 2),
        "p95_ms": round(pct(values, 95), 2),
        "max_ms": round(max(values), 2) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values), 2) if values else float("nan"),
    }


def print_key_table(rows: list[tuple[str, dict[str, float]]], width: int = 46) -> None:
    """The latency table of a pane bench: one line per key, with n, p50, p95 and max in ms."""
    print(f"{'key press -> frame showing its effect':<{width}}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, s in rows:
        print(f"{label:<{width}}{s['n']:>4}{s['p50_ms']:>9.1f}{s['p95_ms']:>9.1f}{s['max_ms']:>9.1f}")


def machine() -> dict[str, Any]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import textual

    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "textual": textual.__version__,
        "platform": platform.platform(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs in the list (one of them live)")
    parser.add_argument("--rate", type=float, default=10.0, help="metric records per second written to the live run")
    parser.add_argument("--passes", type=int, default=2, help="passes down the runs list and back up")
    parser.add_argument("--log-toggles", type=int, default=5, help="times the log is shown and hidden")
    parser.add_argument("--gap", type=float, default=0.15, help="seconds between a refresh and the next key")
    parser.add_argument("--watch", type=float, default=10.0, help="seconds of only watching for the CPU figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--writer", nargs=2, metavar=("RUN_DIR", "OWNER_PID"), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.writer:
        return writer_main(a.writer[0], int(a.writer[1]), a.rate)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wb-ui-bench-") as tmp:
        ws = Path(tmp) / "ws"
        live_id = build_workspace(ws, a.runs, os.getpid())
        writer = subprocess.Popen(
            [sys.executable, __file__, "--writer", str(ws / "runs" / live_id), str(os.getpid()), "--rate", str(a.rate)],
            cwd=ROOT,
        )
        try:
            time.sleep(0.3)
            if writer.poll() is not None:
                raise SystemExit(f"the writer process exited with {writer.returncode}")
            m = asyncio.run(drive(ws, Path(tmp) / "state.json", live_id, a))
        finally:
            writer.terminate()
            writer.wait(5)
    total_s = time.perf_counter() - started

    keypress = m["switch_ms"] + m["log_frame_ms"]  # each key press to the frame that shows its effect
    cpu_pct = 100 * m["watch_cpu_s"] / m["watch_s"]
    lat = stats(keypress)
    result = {
        "runs": a.runs,
        "rate_per_s": a.rate,
        "size": list(SIZE),
        "keypress": {**lat, "target_p95_ms": TARGET_P95_MS, "p95_ratio": round(lat["p95_ms"] / TARGET_P95_MS, 3)},
        "switch_run": stats(m["switch_ms"]),
        "switch_to_live_run": stats(m["switch_to_live_ms"]),
        "switch_first_frame": stats(m["switch_first_frame_ms"]),
        "log_toggle_frame": stats(m["log_frame_ms"]),
        "log_lines_shown": stats(m["log_lines_ms"]),
        "watch": {
            "seconds": round(m["watch_s"], 2),
            "cpu_s": round(m["watch_cpu_s"], 3),
            "cpu_pct_one_core": round(cpu_pct, 2),
            "target_cpu_pct": TARGET_CPU_PCT,
            "cpu_ratio": round(cpu_pct / TARGET_CPU_PCT, 3),
            "metric_lines_written": m["watch_metric_lines"],
            "frames": m["watch_frames"],
            "ui_thread_cpu_s": round(m["watch_ui_s"], 3),
            "screen_update_cpu_s": round(m["watch_update_s"], 3),
            "terminal_output_cpu_s": round(m["watch_output_s"], 3),
            "worker_threads_cpu_s": round(m["watch_cpu_s"] - m["watch_ui_s"], 3),
        },
        "live_train_points_shown": m["live_records"],
        "machine": machine(),
        "bench_s": round(total_s, 1),
    }
    result["pass"] = lat["p95_ms"] <= TARGET_P95_MS and cpu_pct <= TARGET_CPU_PCT
    if a.json:
        print(json.dumps(result))
        return 0

    mc = result["machine"]
    print(f"Train pane, {a.runs} runs listed, one streaming {a.rate:g} metric records/s; headless {SIZE[0]}x{SIZE[1]}")
    print(
        f"machine: {mc['cpus']} CPUs ({mc['cpus_usable']} usable), {mc['cpu_model']}; Python {mc['python']}, textual {mc['textual']}"
    )
    print()
    print(
        f"{'key press -> frame showing its effect':<42}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'p95/50ms':>10}"
    )
    for label, key in (
        ("switch run (down/up): new run's charts", "switch_run"),
        ("  of which: to the live run", "switch_to_live_run"),
        ("  first frame: cursor moved in the list *", "switch_first_frame"),
        ("toggle log (l): log shown/hidden", "log_toggle_frame"),
        ("toggle log (l): train.log lines shown *", "log_lines_shown"),
    ):
        s = result[key]
        print(
            f"{label:<42}{s['n']:>4}{s['p50_ms']:>9.1f}{s['p95_ms']:>9.1f}{s['max_ms']:>9.1f}{s['p95_ms'] / TARGET_P95_MS:>10.2f}"
        )
    print("* not in the figures below (all key presses = run switches to charts painted, and log shown/hidden)")
    print()
    w = result["watch"]
    print(f"{'figure':<42}{'value':>11}{'target':>11}{'ratio':>8}")
    print(f"{'latency p50, all key presses':<42}{lat['p50_ms']:>8.1f} ms{'':>11}")
    print(
        f"{'latency p95, all key presses':<42}{lat['p95_ms']:>8.1f} ms{'<= 50 ms':>11}{result['keypress']['p95_ratio']:>8.2f}"
    )
    print(f"{'latency max, all key presses':<42}{lat['max_ms']:>8.1f} ms")
    print(f"{'CPU while only watching, % of one core':<42}{cpu_pct:>9.1f} %{'<= 5 %':>11}{w['cpu_ratio']:>8.2f}")
    print()
    print(
        f"watch window: {w['seconds']:.1f} s, {w['metric_lines_written']} metric lines written, "
        f"{result['live_train_points_shown']} train points charted at the end, {w['frames']} frames painted"
    )
    print(
        f"  CPU {w['cpu_s'] * 1000:.0f} ms = UI thread {w['ui_thread_cpu_s'] * 1000:.0f} ms "
        f"(screen updates {w['screen_update_cpu_s'] * 1000:.0f} ms, of which terminal output {w['terminal_output_cpu_s'] * 1000:.0f} ms)"
        f" + worker threads {w['worker_threads_cpu_s'] * 1000:.0f} ms"
    )
    print(f"verdict: {'PASS' if result['pass'] else 'FAIL'}   ({total_s:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
