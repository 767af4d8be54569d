"""Sweep overhead: N tiny trials through the sweep driver against the same N configs run one after another.

Both sides start every run the same way (``runner.launch``: the config check, a detached
worker) and wait for it to end; the sweep adds its driver's start, Optuna's ask and tell, its
SQLite study, the driver's look at each run four times a second and its snapshot writes. The
configs are the same on both sides: the spec enqueues them as ``first_trials`` in the order
the baseline runs them.

Printed: wall time of each side and their ratio; the overhead per trial, the difference over
the trials (target <= 1 s a trial; it holds the driver's start of a few seconds, once a sweep,
which the ratio shows on trials of seconds and which vanishes on trials of minutes); the
driver's own CPU seconds (all of it, and the part spent watching the trials: the rest is
Python's imports and the config check of each trial, which the baseline pays too, in its own
process); and the mean gap between one trial's end and the next one's start.

    python bench/sweep_overhead.py [--trials 8] [--steps 6] [--model tiny|bundled|PATH] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

RATES = [2e-4, 3e-4, 5e-4, 8e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 4e-3, 6e-3, 8e-3, 1e-2]


def base_config(ws: Path, model: str, steps: int) -> Path:
    import yaml

    config = {
        "name": "bench",
        "model": model,
        "data": {
            "train": "support/train.jsonl",
            "val": "support/val.jsonl",
            "max_train_examples": 32,
            "max_eval_examples": 8,
        },
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "train": {"learning_rate": 1e-3, "batch_size": 4, "max_steps": steps, "max_length": 384, "precision": "fp32"},
        "eval": {"logging_steps": 1, "eval_steps": max(1, steps // 2)},
    }
    path = ws / "base.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait(state_of: Any, timeout: float = 3600) -> str:
    from workbench.train.rundir import LIVE_STATES

    deadline = time.time() + timeout
    while time.time() < deadline:
        state = state_of()
        if state not in LIVE_STATES:
            return str(state)
        time.sleep(0.1)
    raise TimeoutError("still running")


def sequential(ws: Path, base: Path, rates: list[float]) -> dict[str, Any]:
    from workbench.config.schema import load_config
    from workbench.sweep.spec import with_params
    from workbench.train import runner

    config = load_config(base)
    t0 = time.perf_counter()
    states = []
    for i, lr in enumerate(rates):
        run = runner.launch(with_params(config, {"train.learning_rate": lr}, name=f"seq-{i}"), ws)
        states.append(wait(lambda run=run: run.status().state))
    return {"wall_s": time.perf_counter() - t0, "states": states}


def swept(ws: Path, base: Path, rates: list[float]) -> dict[str, Any]:
    import yaml

    from workbench.sweep import control

    spec = {
        "name": "bench-sweep",
        "base_config": str(base),
        "space": {"train.learning_rate": {"choices": rates}},
        "sampler": "random",
        "trials": len(rates),
        "pruner": {"kind": "none"},
        "first_trials": [{"train.learning_rate": lr} for lr in rates],
    }
    path = ws / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    t0 = time.perf_counter()
    sweep = control.start(path, ws)
    final = wait(lambda: sweep.status().state)
    wall = time.perf_counter() - t0
    trials = sweep.trials()
    runs = [ws / "runs" / str(t.run_id) for t in trials]
    gaps = []
    for before, after in itertools.pairwise(runs):
        ended = json.loads((before / "status.json").read_text()).get("ended")
        created = json.loads((after / "status.json").read_text()).get("created")
        if ended and created:
            gaps.append(created - ended)
    return {
        "wall_s": wall,
        "state": final,
        "states": [t.state for t in trials],
        "driver_cpu_s": sweep.read_status_raw().get("cpu_s"),
        "driver_loop_cpu_s": sweep.read_status_raw().get("loop_cpu_s"),
        "driver_launch_cpu_s": sweep.read_status_raw().get("launch_cpu_s"),
        "mean_gap_s": sum(gaps) / len(gaps) if gaps else None,
    }


def measure(a: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    try:
        model = a.model
        if model == "tiny":
            from conftest import build_tiny_model

            model = str(build_tiny_model(root / "tiny-model"))
        rates = RATES[: a.trials]
        results: dict[str, Any] = {}
        order = ["sweep", "sequential"] if not a.baseline_first else ["sequential", "sweep"]
        for side in order:
            ws = root / side
            ws.mkdir()
            shutil.copytree(ROOT / "sample_data" / "support", ws / "support")
            base = base_config(ws, model, a.steps)
            log(f"{side}: {len(rates)} trial(s) of {a.steps} step(s)…")
            results[side] = (swept if side == "sweep" else sequential)(ws, base, rates)
            log(f"  {results[side]['wall_s']:.1f} s")
        s, q = results["sweep"], results["sequential"]
        cpu = s["driver_cpu_s"]
        return {
            "trials": len(rates),
            "steps": a.steps,
            "model": a.model,
            "order": order,
            "sweep_wall_s": round(s["wall_s"], 2),
            "sequential_wall_s": round(q["wall_s"], 2),
            "ratio": round(s["wall_s"] / q["wall_s"], 3),
            "overhead_per_trial_s": round((s["wall_s"] - q["wall_s"]) / len(rates), 2),
            "target_overhead_per_trial_s_max": 1.0,
            "driver_cpu_s": cpu,
            "driver_cpu_share": round(cpu / s["wall_s"], 4) if cpu is not None else None,
            "driver_loop_cpu_s": s["driver_loop_cpu_s"],
            "driver_watch_cpu_s": _minus(s["driver_loop_cpu_s"], s["driver_launch_cpu_s"]),
            "mean_gap_between_trials_s": round(s["mean_gap_s"], 2) if s["mean_gap_s"] is not None else None,
            "sweep_states": s["states"],
            "sequential_states": q["states"],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help=f"trials on each side (at most {len(RATES)})")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per trial")
    parser.add_argument("--model", default="tiny", help="tiny (a random 2-layer Llama, built here), bundled or a path")
    parser.add_argument("--baseline-first", action="store_true", help="run the sequential side first")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    a.trials = min(a.trials, len(RATES))
    result = measure(a, log=(lambda m: print(m, file=sys.stderr)) if a.json else print)
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    print()
    print(f"{a.trials} trials x {a.steps} steps on {a.model}")
    print(f"  sweep       {result['sweep_wall_s']:8.1f} s  ({', '.join(sorted(set(result['sweep_states'])))})")
    print(f"  sequential  {result['sequential_wall_s']:8.1f} s")
    print(f"  ratio       {result['ratio']:8.3f}")
    print(
        f"  overhead    {result['overhead_per_trial_s']:8.2f} s a trial "
        f"(target <= {result['target_overhead_per_trial_s_max']}; the driver's start is a few seconds once)"
    )
    if result["driver_cpu_s"] is not None:
        print(
            f"  driver CPU  {result['driver_cpu_s']:8.2f} s  ({100 * result['driver_cpu_share']:.1f}% of the sweep's "
            f"wall time); watching the trials: {result['driver_watch_cpu_s']} s, the rest is imports and each "
            "trial's config check"
        )
    if result["mean_gap_between_trials_s"] is not None:
        print(f"  gap between trials {result['mean_gap_between_trials_s']:.2f} s on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
