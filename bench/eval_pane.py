"""The Eval pane's review grid on a large eval: key press to the frame that shows its effect.

An eval of N examples x 2 models (the sample support tickets, answered in
JSON by one model and half in prose by the other) is written to a temporary
workspace, and the app (``screens.app.create_app``, headless 120x40) is driven
by keys sent the way the terminal driver sends them; frames are rendered in
full (bench/ui_latency.py's frame hook). Measured:

* rating keys (``1``-``5`` on an answer: fsynced to ratings.jsonl, the cell
  redrawn) and moving (``down``/``right``: the detail strip redrawn): the
  keys of blind review, against the 50 ms target of the other panes;
* ``f`` (filter) and ``B`` (blind): the grid rebuilt over every example,
  reported beside them.

    python bench/eval_pane.py [--examples 1000] [--presses 30] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from ui_latency import FrameHook, machine, print_key_table, send_key, stats  # noqa: E402

import screens  # noqa: E402,F401  first: it sets the app's frame rate before textual is imported

TARGET_P95_MS = 50.0
SIZE = (120, 40)


def build_eval(ws: Path, n: int) -> None:
    from evalkit import EXAMPLES, make_eval, ticket

    examples = [{**EXAMPLES[i % len(EXAMPLES)], "id": str(i), "index": i} for i in range(n)]
    outputs = {
        "base": [ticket("Aisha Nguyen", "refund") if i % 2 else "It sounds like a refund problem." for i in range(n)],
        "run/adapter": [ticket("Aisha Nguyen", "account") for _ in range(n)],
    }
    make_eval(ws, examples=examples, outputs=outputs)


async def drive(ws: Path, state: Path, presses: int) -> dict[str, Any]:
    from textual.widgets import DataTable

    from screens.app import create_app
    from screens.eval import EvalPane

    FrameHook.install_update_meter()
    started = time.perf_counter()
    app = create_app(ws, state_path=state)
    out: dict[str, Any] = {"rate": [], "move": [], "filter": [], "blind": []}
    async with app.run_test(size=SIZE) as pilot:
        hook = FrameHook(app)
        await pilot.pause()
        await pilot.press("4")
        pane = app.query_one(EvalPane)
        while (pane.results is None or not pane.summarized) and time.perf_counter() - started < 120:
            await pilot.pause(0.1)
        out["open_s"] = time.perf_counter() - started
        grid = app.query_one("#eval-grid", DataTable)
        await pilot.pause(0.5)
        await pilot.press("r")  # rating mode: digits rate only there
        await pilot.pause(0.1)

        async def press(kind: str, key: str, effect) -> None:
            sent = send_key(app, key)
            painted = await hook.until(effect, timeout=30)
            out[kind].append((painted - sent) * 1000)
            await asyncio.sleep(0.05)

        for i in range(presses):
            row = grid.cursor_row
            score = 1 + i % 5
            await press("rate", str(score), lambda r=pane.rows[row], s=score: r.cells[pane._current_model()].human == s)
            await press(
                "move",
                "right" if grid.cursor_column == 2 else "left",
                lambda c=grid.cursor_column: grid.cursor_column != c,
            )
            await press("move", "down", lambda r=row: grid.cursor_row == r + 1)
        for _ in range(5):
            current = pane.filter
            await press("filter", "f", lambda c=current: pane.filter != c)
        for _ in range(4):
            current = pane.blind
            await press("blind", "B", lambda c=current: pane.blind != c)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=30, help="rounds of a rating and two moves")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-eval-bench-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        build_eval(ws, a.examples)
        m = asyncio.run(drive(ws, Path(tmp) / "state.json", a.presses))
    review = m["rate"] + m["move"]
    result: dict[str, Any] = {
        "examples": a.examples,
        "open_s": round(m["open_s"], 2),
        "keys": {k: stats(m[k]) for k in ("rate", "move", "filter", "blind")},
        "review": stats(review),
        "target_p95_ms": TARGET_P95_MS,
        "machine": machine(),
    }
    result["review_p95_ratio"] = round(result["review"]["p95_ms"] / TARGET_P95_MS, 3)
    result["pass"] = result["review"]["p95_ms"] <= TARGET_P95_MS
    if a.json:
        print(json.dumps(result))
        return 0
    mc = result["machine"]
    print(f"Eval pane, {a.examples:,} examples x 2 models; headless {SIZE[0]}x{SIZE[1]}")
    print(f"machine: {mc['cpus']} CPUs, {mc['cpu_model']}; Python {mc['python']}, textual {mc['textual']}")
    print(f"start to the grid and its summary shown: {result['open_s']:.2f} s (read and scored in workers)")
    print()
    labels = {
        "rate": "1-5: rate (fsynced), cell redrawn",
        "move": "arrows: next answer, detail redrawn",
        "filter": "f: filter over every example",
        "blind": "B: blind, grid rebuilt and shuffled",
    }
    print_key_table([(label, result["keys"][key]) for key, label in labels.items()])
    r = result["review"]
    print()
    print(
        f"review keys (rate, move): p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms; target p95 <= "
        f"{TARGET_P95_MS:.0f} ms, ratio {result['review_p95_ratio']:.2f}: {'PASS' if result['pass'] else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
