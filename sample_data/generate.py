#!/usr/bin/env python3
"""Generate the sample workspace's data: support messages -> one-line JSON.

Run ``python sample_data/generate.py`` from anywhere. The script uses only the
standard library, is seeded, and rewrites every output file byte-for-byte
identically on each run. At the end it checks its own output (asserts) and,
if ``transformers`` and the bundled SmolLM2 GGUF are importable, prints the
token-length distribution of each file under the SmolLM2 chat template
(skip that part with ``--no-tokens``).

The task: a customer writes a short support message; the assistant answers
with one line of compact JSON with the keys of ``vocab.KEYS``. Messages are
assembled from slot values (names, products, dates written in many human
styles, amounts, carriers...) and several phrasing templates per scenario;
the free-text ``summary`` is drawn from several paraphrases, so part of
every answer is unpredictable and a model trained too long on train.jsonl
memorises it (its eval loss turns up), which is what the overfitting demo
needs.

Outputs, all under ``sample_data/support/``:

  train.jsonl, val.jsonl, test.jsonl   conversational SFT splits (no overlap)
  preferences.jsonl                    DPO pairs, explicit prompt
  messy.jsonl + DEFECTS.md             a train copy with planted defects
  alpaca_sample.json                   alpaca shape (instruction/input/output)
  sharegpt_sample.jsonl                ShareGPT shape (conversations/from/value)

This file keeps the main flow (split sizes, seed, writing, ``main``); the rest
lives beside it:

  vocab.py       answer format, system prompt, slot values, phrasing, dates
  scenarios.py   the scenario templates (issue, messages, summaries)
  tickets.py     one example, its conversational row, DPO rejected answers
  defects.py     messy.jsonl with planted defects, and DEFECTS.md
  selfcheck.py   asserts over the written files, optional token report
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# run as a script from any directory: make the sibling modules importable
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from defects import build_messy, defects_md  # noqa: E402
from selfcheck import self_check, token_report  # noqa: E402
from tickets import (  # noqa: E402
    REJECT_KINDS,
    compact,
    dumps_line,
    make_example,
    preference_row,
    rejected_answer,
    to_messages,
)
from vocab import SYSTEM_PROMPT  # noqa: E402

SEED = 20260314
OUT = HERE / "support"

N_TRAIN, N_VAL, N_TEST = 320, 40, 40
N_PREFS = 150
N_ALPACA, N_SHAREGPT = 20, 20

# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_jsonl(path: Path, rows: list) -> None:
    write(path, "".join((r if isinstance(r, str) else dumps_line(r)) + "\n" for r in rows))


def generate() -> dict:
    rng = random.Random(SEED)
    need = N_TRAIN + N_VAL + N_TEST + N_PREFS + N_ALPACA + N_SHAREGPT
    seen, pool = set(), []
    while len(pool) < need:
        ex = make_example(rng)
        if ex["user"] not in seen:
            seen.add(ex["user"])
            pool.append(ex)
    cuts = [N_TRAIN, N_VAL, N_TEST, N_PREFS, N_ALPACA, N_SHAREGPT]
    parts, start = [], 0
    for n in cuts:
        parts.append(pool[start : start + n])
        start += n
    train, val, test, prefs_src, alpaca_src, sharegpt_src = parts

    write_jsonl(OUT / "train.jsonl", [to_messages(e) for e in train])
    write_jsonl(OUT / "val.jsonl", [to_messages(e) for e in val])
    write_jsonl(OUT / "test.jsonl", [to_messages(e) for e in test])

    kinds = [REJECT_KINDS[i % len(REJECT_KINDS)] for i in range(N_PREFS)]
    rng.shuffle(kinds)
    write_jsonl(
        OUT / "preferences.jsonl",
        [preference_row(e, rejected_answer(rng, e["record"], k)) for e, k in zip(prefs_src, kinds)],
    )

    alpaca = [{"instruction": SYSTEM_PROMPT, "input": e["user"], "output": compact(e["record"])} for e in alpaca_src]
    write(OUT / "alpaca_sample.json", json.dumps(alpaca, ensure_ascii=False, indent=2) + "\n")
    write_jsonl(
        OUT / "sharegpt_sample.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": SYSTEM_PROMPT},
                    {"from": "human", "value": e["user"]},
                    {"from": "gpt", "value": compact(e["record"])},
                ]
            }
            for e in sharegpt_src
        ],
    )

    messy_lines, defects = build_messy(rng, train, test)
    write_jsonl(OUT / "messy.jsonl", messy_lines)
    write(OUT / "DEFECTS.md", defects_md(defects, len(messy_lines)))
    return {"defects": defects, "reject_kinds": kinds}


def main(argv: list[str]) -> int:
    info = generate()
    self_check(info, OUT)
    counts = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(OUT.glob("*.jsonl"))}
    counts["alpaca_sample.json"] = len(json.loads((OUT / "alpaca_sample.json").read_text(encoding="utf-8")))
    print("wrote " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    print(f"planted {len(info['defects'])} defects in messy.jsonl (see DEFECTS.md)")
    if "--no-tokens" not in argv:
        token_report(OUT)
    print("self-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
