"""The Data pane on a 100k-example dataset: opening, and key press to frame while triaging.

A JSONL file of N examples (perturbed copies of the sample support set, about
68 MB at 100k) is written to a temporary workspace. Measured, in one process:

* opening: ``open_dataset`` (read, check every row against the shape, hash the
  file, the lock and the journal) against its floor, a plain ``json.loads`` of
  every line; printed as a ratio;
* the app (``screens.app.create_app``, headless 120x40) on that workspace: key
  press to the first frame that shows its effect, for the keys of triage:
  ``a`` (accept, journaled with fsync, and move on), ``j``/``k`` (next and
  previous example, detail redrawn), ``u`` (undo: the list is re-filtered over
  every example) and ``s`` (status filter over every example).

Keys are sent the way the terminal driver sends them; frames are rendered in
full (see bench/ui_latency.py, whose frame hook this reuses).

    python bench/data_pane.py [--examples 100000] [--presses 40] [--json]

Target: p95 of the triage keys (a, j, k) at most 50 ms, as for the Train pane.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ui_latency import FrameHook, machine, print_key_table, send_key, stats  # noqa: E402

import screens  # noqa: E402,F401  first: it sets the app's frame rate before textual is imported

TARGET_P95_MS = 50.0
SIZE = (120, 40)


def build_dataset(path: Path, n: int, seed: int = 0) -> int:
    """n examples from the sample support set, each with a unique reference appended."""
    source = [json.loads(line) for line in (ROOT / "sample_data" / "support" / "train.jsonl").open()]
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            row = json.loads(json.dumps(source[i % len(source)]))
            row["messages"][1]["content"] += f" (ref {i}-{rng.randrange(10**6)})"
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path.stat().st_size


def time_open(path: Path) -> dict[str, float]:
    from workbench.data.store import open_dataset

    t = time.perf_counter()
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    floor = time.perf_counter() - t
    t = time.perf_counter()
    session = open_dataset(path)
    opened = time.perf_counter() - t
    assert len(session) == len(rows)
    session.close()
    return {"open_s": round(opened, 3), "json_floor_s": round(floor, 3), "ratio": round(opened / floor, 2)}


async def drive(ws: Path, state: Path, presses: int) -> dict[str, list[float]]:
    from screens.app import create_app
    from screens.data import DataPane
    from screens.widgets.example_list import ExampleList

    FrameHook.install_update_meter()
    started = time.perf_counter()
    app = create_app(ws, state_path=state)
    out: dict[str, list[float]] = {"a": [], "j": [], "k": [], "u": [], "s": []}
    async with app.run_test(size=SIZE) as pilot:
        hook = FrameHook(app)
        await pilot.pause()
        await pilot.press("1")
        pane = app.query_one(DataPane)
        while pane.session is None and time.perf_counter() - started < 120:
            await pilot.pause(0.1)
        out["app_open_s"] = [time.perf_counter() - started]
        lst = app.query_one(ExampleList)
        await pilot.pause(0.5)

        async def press(key: str, effect) -> None:
            sent = send_key(app, key)
            painted = await hook.until(effect, timeout=30)
            out[key].append((painted - sent) * 1000)
            await asyncio.sleep(0.05)

        for _i in range(presses):
            before = lst.cursor
            await press("a", lambda b=before: lst.cursor == b + 1)  # accepted and moved on
            await press("k", lambda b=before: lst.cursor == b)
            await press("j", lambda b=before: lst.cursor == b + 1)
        for _ in range(max(1, presses // 8)):
            accepted = pane.session.counts()["accepted"]
            await press("u", lambda n=accepted: pane.session.counts()["accepted"] == n - 1)
        for _ in range(4):  # all -> pending -> flagged -> accepted -> rejected
            current = pane.status_filter
            await press("s", lambda c=current: pane.status_filter != c and lst.items is not None)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=40, help="rounds of a, k, j")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-data-bench-") as tmp:
        ws = Path(tmp) / "ws"
        (ws / "data").mkdir(parents=True)
        path = ws / "data" / "train.jsonl"
        size = build_dataset(path, a.examples)
        opening = time_open(path)
        m = asyncio.run(drive(ws, Path(tmp) / "state.json", a.presses))
    triage = m["a"] + m["j"] + m["k"]
    result: dict[str, Any] = {
        "examples": a.examples,
        "file_mb": round(size / 1e6, 1),
        "open": opening,
        "app_open_s": round(m["app_open_s"][0], 2),
        "keys": {k: stats(m[k]) for k in ("a", "j", "k", "u", "s")},
        "triage": stats(triage),
        "target_p95_ms": TARGET_P95_MS,
        "machine": machine(),
    }
    result["triage_p95_ratio"] = round(result["triage"]["p95_ms"] / TARGET_P95_MS, 3)
    result["pass"] = result["triage"]["p95_ms"] <= TARGET_P95_MS
    if a.json:
        print(json.dumps(result))
        return 0
    mc = result["machine"]
    print(f"Data pane on {a.examples:,} examples ({result['file_mb']} MB JSONL); headless {SIZE[0]}x{SIZE[1]}")
    print(f"machine: {mc['cpus']} CPUs, {mc['cpu_model']}; Python {mc['python']}, textual {mc['textual']}")
    print()
    print(
        f"open_dataset {opening['open_s']:.2f} s vs json.loads of every line {opening['json_floor_s']:.2f} s: "
        f"ratio {opening['ratio']:.2f} (rows checked against the shape, file hashed, lock and journal)"
    )
    print(
        f"in the app, start to the dataset shown: {result['app_open_s']:.2f} s (opened in a worker; the UI stays live)"
    )
    print()
    labels = {
        "a": "a: accept (fsynced journal) and move on",
        "j": "j: next example, detail redrawn",
        "k": "k: previous example",
        "u": "u: undo (list re-filtered)",
        "s": "s: status filter over all",
    }
    print_key_table([(label, result["keys"][key]) for key, label in labels.items()])
    t = result["triage"]
    print()
    print(
        f"triage keys (a, j, k): p50 {t['p50_ms']:.1f} ms, p95 {t['p95_ms']:.1f} ms; target p95 <= {TARGET_P95_MS:.0f} ms, "
        f"ratio {result['triage_p95_ratio']:.2f}: {'PASS' if result['pass'] else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
