"""Dataset critic speed: every check over 100k examples, with and without a tokenizer.

The examples are the sample train set and its messy copy repeated and
perturbed (names, words and reference numbers changed), so no two prompts are
the same and the planted defects recur. The floor is a plain loop that only
calls ``view()`` on every row: the critic cannot be faster than seeing the
rows. Prints the time, rows/s and the ratio to the floor for each run.

    python bench/critique_speed.py [--rows 100000] [--no-tokenizer] [--max-length 1024]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUPPORT = ROOT / "sample_data" / "support"
NAMES = ["Ana", "Kenji", "Olga", "Liam", "Fatima", "Jonas", "Chloé", "Ravi"]
FILLERS = ["really", "honestly", "again", "today", "please", "kindly", "still", "now"]


def source_rows() -> list[dict[str, Any]]:
    from workbench.data.load import load_rows

    rows = load_rows(SUPPORT / "train.jsonl").rows
    rows += load_rows(SUPPORT / "messy.jsonl", skip_bad=True).rows
    return rows


def perturb(row: dict[str, Any], n: int, rng: random.Random) -> dict[str, Any]:
    """A copy of ``row`` whose user turn differs: a name swapped, a word added, a reference number."""
    row = copy.deepcopy(row)
    for message in row["messages"]:
        if message["role"] != "user":
            continue
        words = message["content"].split(" ")
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
        text = " ".join(words) + f" (ref {n})"
        if rng.random() < 0.3:
            text = text.replace(text.split()[0], rng.choice(NAMES), 1)
        message["content"] = text
    return row


def build(count: int) -> list[dict[str, Any]]:
    rng = random.Random(0)
    base = source_rows()
    return [perturb(base[i % len(base)], i, rng) for i in range(count)]


def baseline(rows: list[dict[str, Any]], shape: Any) -> float:
    from workbench.data.view import view

    start = time.perf_counter()
    for row in rows:
        view(row, shape)
    return time.perf_counter() - start


def timed(rows: list[dict[str, Any]], shape: Any, **kwargs: Any) -> tuple[float, Any]:
    from workbench.data.checks import critique

    start = time.perf_counter()
    report = critique(rows, shape, **kwargs)
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--no-tokenizer", action="store_true", help="skip the run with the bundled tokenizer")
    a = parser.parse_args()

    from workbench.data.formats import Shape

    shape = Shape.LANGUAGE_MODELING
    t0 = time.perf_counter()
    rows = build(a.rows)
    print(f"built {len(rows):,} examples in {time.perf_counter() - t0:.1f} s")

    floor = baseline(rows, shape)
    print(f"floor   view() only          {floor:7.2f} s  {len(rows) / floor:>10,.0f} rows/s")

    runs: list[tuple[str, dict[str, Any]]] = [("no tokenizer", {"max_length": a.max_length})]
    if not a.no_tokenizer:
        from transformers import AutoTokenizer

        from workbench.models import bundled_model_dir

        tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
        runs.append(("tokenizer (SmolLM2)", {"max_length": a.max_length, "tokenizer": tokenizer}))
    results = {}
    for name, kwargs in runs:
        seconds, report = timed(rows, shape, **kwargs)
        results[name] = {
            "seconds": round(seconds, 2),
            "rows_per_s": round(len(rows) / seconds),
            "ratio_to_floor": round(seconds / floor, 1),
            "findings": len(report.findings),
            "by_check": report.summary.by_check,
        }
        print(
            f"critique {name:20s} {seconds:7.2f} s  {len(rows) / seconds:>10,.0f} rows/s  "
            f"{seconds / floor:5.1f}× the floor  {len(report.findings):,} findings"
        )
    print(json.dumps({"rows": len(rows), "floor_s": round(floor, 2), "runs": results}, indent=1))


if __name__ == "__main__":
    main()
