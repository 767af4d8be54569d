"""Does the fast precision train the same model? The demo in fp32 and in bf16 autocast, side by side.

Trains ``sample_data/configs/demo.yaml`` through the real worker twice in
this process, once with ``precision: fp32`` and once with ``bf16`` (what
``auto`` picks on a CPU with AMX or AVX512-BF16, or a GPU with bf16), and
compares what a user reads off the run: the train and eval loss at each
logged step, the best eval step, and the step the overfitting detector fires
at. Tolerances: the eval loss within 3% of fp32's at every evaluation; the
train loss within 5% of fp32's, or 0.01 where fp32's is under 0.2 (the demo
drives it to 0.003, where relative gaps mean nothing); the same best
checkpoint; the detector at the same evaluation or the next one. Wall times
are printed, but timing belongs to ``bench/train_overhead.py`` (run this on
a quiet machine to read them).

    python bench/precision_parity.py [--json] [--config sample_data/configs/demo.yaml]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EVAL_TOLERANCE = 0.03
TRAIN_TOLERANCE = 0.05
TRAIN_FLOOR = 0.2
"""Below this fp32 train loss, the gap is compared absolutely: TRAIN_TOLERANCE × TRAIN_FLOOR = 0.01."""


def train(config_path: Path, precision: str, out: Path) -> dict:
    """One run of the config in ``precision``: its curves, best step, detector step and wall time."""
    from workbench.config import dump_config, load_config
    from workbench.train.rundir import RunDir
    from workbench.train.worker import run_worker

    config = load_config(config_path)
    config.train.precision = precision  # type: ignore[assignment]
    for split in ("train", "val", "test"):  # the run directory is elsewhere: absolute paths
        value = getattr(config.data, split)
        if value:
            setattr(config.data, split, str(config.resolve(value).resolve()))
    run = RunDir(out)
    run.path.mkdir(parents=True)
    run.config_path.write_text(dump_config(config))
    run.write_status({"state": "starting", "created": time.time()})
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the worker's log lines; stdout is for --json
        state = run_worker(run)
    wall = time.perf_counter() - t0
    assert state == "completed", run.read_status_raw().get("error")
    records = run.metrics()
    evals = {r["step"]: r["eval_loss"] for r in records if r["type"] == "eval" and "eval_loss" in r}
    verdict = next((r for r in records if r["type"] == "verdict" and r.get("kind") == "overfitting"), None)
    return {
        "train": {r["step"]: r["loss"] for r in records if r["type"] == "train" and "loss" in r},
        "eval": evals,
        "best_step": min(evals, key=evals.__getitem__) if evals else None,
        "detector_step": verdict["step"] if verdict else None,
        "wall_s": wall,
    }


def largest_gap(a: dict[int, float], b: dict[int, float], floor: float = 0.0) -> tuple[float, int | None]:
    """The largest difference of b from a over their common steps, relative to a (or to ``floor`` where a is
    smaller), and its step."""
    gaps = [(abs(b[s] - a[s]) / max(abs(a[s]), floor), s) for s in a if s in b and max(abs(a[s]), floor)]
    return max(gaps) if gaps else (0.0, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "sample_data" / "configs" / "demo.yaml")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from workbench.config.precision import machine_plan

    hf_logging.set_verbosity_error()
    auto = machine_plan("auto")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = train(a.config, "fp32", Path(tmp) / "fp32")
        bf16 = train(a.config, "bf16", Path(tmp) / "bf16")
    eval_gap, eval_at = largest_gap(fp32["eval"], bf16["eval"])
    train_gap, train_at = largest_gap(fp32["train"], bf16["train"], TRAIN_FLOOR)
    steps = sorted(fp32["eval"])
    every = steps[1] - steps[0] if len(steps) > 1 else 1
    d32, d16 = fp32["detector_step"], bf16["detector_step"]
    detector_ok = (d32 is None) == (d16 is None) and (d32 is None or abs(d16 - d32) <= every)
    result = {
        "auto_is": auto.label,
        "auto_why": auto.why,
        "eval_max_rel_gap": round(eval_gap, 4),
        "eval_gap_step": eval_at,
        "train_max_rel_gap": round(train_gap, 4),
        "train_gap_step": train_at,
        "best_step_fp32": fp32["best_step"],
        "best_step_bf16": bf16["best_step"],
        "detector_step_fp32": d32,
        "detector_step_bf16": d16,
        "wall_s_fp32": round(fp32["wall_s"], 1),
        "wall_s_bf16": round(bf16["wall_s"], 1),
        "speedup": round(fp32["wall_s"] / bf16["wall_s"], 3),
        "within_tolerance": eval_gap <= EVAL_TOLERANCE
        and train_gap <= TRAIN_TOLERANCE
        and detector_ok
        and fp32["best_step"] == bf16["best_step"],
        "eval_fp32": fp32["eval"],
        "eval_bf16": bf16["eval"],
        "train_fp32": fp32["train"],
        "train_bf16": bf16["train"],
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"auto here: {auto.label} ({auto.why})")
        print(f"{'step':>5} {'eval fp32':>10} {'eval bf16':>10}")
        for s in steps:
            print(f"{s:>5} {fp32['eval'][s]:>10.4f} {bf16['eval'].get(s, float('nan')):>10.4f}")
        print(f"eval loss: largest gap {eval_gap:.2%} at step {eval_at} (tolerance {EVAL_TOLERANCE:.0%})")
        print(
            f"train loss: largest gap {train_gap:.2%} at step {train_at} (tolerance {TRAIN_TOLERANCE:.0%}, "
            f"absolute {TRAIN_TOLERANCE * TRAIN_FLOOR:g} under {TRAIN_FLOOR:g})"
        )
        print(f"best eval step: fp32 {fp32['best_step']}, bf16 {bf16['best_step']}")
        print(f"detector fires: fp32 step {d32}, bf16 step {d16} (one evaluation is {every} steps)")
        print(f"wall: fp32 {fp32['wall_s']:.0f} s, bf16 {bf16['wall_s']:.0f} s ({result['speedup']}x)")
        print("within tolerance" if result["within_tolerance"] else "OUTSIDE TOLERANCE")
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
