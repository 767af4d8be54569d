"""``workbench sweep start|list|show|stop|resume``: Optuna sweeps whose trials are ordinary runs.

Thin shells over :mod:`workbench.sweep.control`: ``start`` checks the spec (fields, bounds
against the config's rules) and returns once the driver is started; the driver and its
trials go on after the terminal closes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from workbench.fmt import age, duration


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _param(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def cmd_sweep_start(args: argparse.Namespace) -> int:
    from workbench.sweep import control

    check = control.preview(args.spec)
    if args.check:
        if args.json:
            _print_json({"errors": check.errors, "warnings": check.warnings})
        else:
            for line in check.errors + check.warnings:
                print(line)
            print("ok: the spec can start" if not check.errors else f"{len(check.errors)} error(s)")
        return 1 if check.errors else 0
    sweep = control.start(check.spec, args.workspace)
    if args.json:
        _print_json({"id": sweep.id, "path": str(sweep.path), "warnings": check.warnings})
        return 0
    spec = check.spec
    print(sweep.id)
    for line in check.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(
        f"{spec.trials} trial(s) of {spec.base_config}, {spec.parallel} at a time, {spec.sampler} sampler, "
        f"{spec.objective.direction} {spec.objective.metric}, pruner {spec.pruner.kind}"
    )
    for name, p in spec.space.items():
        print(f"  {name}: {p.describe()}")
    print(f"watch: workbench sweep show {sweep.id}   (or the Train pane, key w)")
    print(f"stop:  workbench sweep stop {sweep.id}")
    return 0


def cmd_sweep_list(args: argparse.Namespace) -> int:
    from workbench.sweep.control import list_sweeps
    from workbench.workspace import Workspace

    sweeps = list_sweeps(args.workspace)
    if args.json:
        _print_json([s.to_dict() for s in sweeps])
        return 0
    if not sweeps:
        print(f"no sweeps in {Workspace(args.workspace).sweeps_dir} (start one: workbench sweep start SPEC)")
        return 0
    w = max(5, *(len(s.id) for s in sweeps))
    print(f"{'SWEEP':<{w}} {'STATE':<9} {'TRIALS':>9} {'PRUNED':>6} {'FAILED':>6} {'BEST':>16} {'AGE':>5}")
    for s in sweeps:
        best = f"{s.metric} {_value(s.best_value)}" if s.best_value is not None else "-"
        print(
            f"{s.id:<{w}} {s.state:<9} {f'{s.done}/{s.trials}':>9} {s.pruned:>6} {s.failed:>6} {best:>16} "
            f"{age(time.time() - s.created):>5}"
        )
    return 0


def cmd_sweep_show(args: argparse.Namespace) -> int:
    from workbench.sweep.control import find_sweep, summarize, trial_state
    from workbench.sweep.store import param_importances

    sweep = find_sweep(args.workspace, args.sweep)
    trials = sweep.trials()
    summary = summarize(sweep, trials)
    importances = param_importances(sweep) if summary.done >= 2 else {}
    if args.json:
        _print_json({**summary.to_dict(), "trials": [t.to_dict() for t in trials], "importances": importances})
        return 0
    paused = f", {summary.paused} paused (sweep resume goes on with them)" if summary.paused else ""
    print(
        f"{summary.id}  {summary.state}  {summary.done}/{summary.trials} trials done, {summary.running} running{paused}"
    )
    print(f"objective: {summary.direction} {summary.metric}   study {summary.study_name!r} in {summary.storage}")
    if summary.error:
        print(f"error: {summary.error}")
    if summary.best_trial is not None:
        print(
            f"best: trial {summary.best_trial}  {summary.metric} {_value(summary.best_value)}  run {summary.best_run}"
        )
    if not trials:
        print("no trials yet")
        return 0
    names = list(trials[0].params) or sorted({k for t in trials for k in t.params})
    heads = [n.split(".")[-1] for n in names]
    widths = [max(len(h), *(len(_param(t.params.get(n, "-"))) for t in trials)) for h, n in zip(heads, names)]
    print()
    print(
        f"{'#':>3} {'STATE':<9} "
        + " ".join(f"{h:>{w}}" for h, w in zip(heads, widths))
        + f" {'OBJECTIVE':>9} {'PRUNED@':>7} {'TIME':>6}  RUN / WHY"
    )
    for t in trials:
        params = " ".join(f"{_param(t.params.get(n, '-')):>{w}}" for n, w in zip(names, widths))
        pruned = "-" if t.pruned_at is None else str(t.pruned_at)
        note = t.run_id or ""
        if t.error:
            note += f"  {t.error}"
        print(
            f"{t.number:>3} {trial_state(t, summary):<9} {params} {_value(t.value):>9} {pruned:>7} {duration(t.duration_s):>6}  {note}"
        )
    if importances:
        print()
        print("parameter importances (optuna):")
        for name, share in sorted(importances.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<28} {share:5.2f} {'█' * round(share * 30)}")
    return 0


def cmd_sweep_stop(args: argparse.Namespace) -> int:
    from workbench.sweep.control import find_sweep, stop

    sweep = find_sweep(args.workspace, args.sweep)
    state = stop(sweep, timeout=args.wait)
    print(f"{sweep.id}: {state}")
    if state != "stopped":
        print("the driver is stopping its trials (each saves a checkpoint); `workbench sweep show` follows it")
    else:
        print(f"resume: workbench sweep resume {sweep.id}")
    return 0


def cmd_sweep_resume(args: argparse.Namespace) -> int:
    from workbench.sweep.control import find_sweep, resume

    sweep = resume(find_sweep(args.workspace, args.sweep))
    print(f"{sweep.id}: resumed; its stopped trials go on from their last checkpoint")
    return 0


def add_sweep_commands(sub: Any) -> None:
    """Hang ``sweep`` and its commands on the main parser's subparsers."""
    sweep = sub.add_parser("sweep", help="hyperparameter sweeps with Optuna (start, list, show, stop, resume)")
    cmds = sweep.add_subparsers(dest="sweep_command", required=True)

    p = cmds.add_parser("start", help="check a sweep spec and start its driver in the background")
    p.add_argument("spec", help="a sweep spec YAML (base_config, space, sampler, trials, objective, pruner)")
    p.add_argument("--check", action="store_true", help="only check the spec; start nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep_start)

    p = cmds.add_parser("list", help="the workspace's sweeps: state, trials done, best objective, age")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep_list)

    p = cmds.add_parser("show", help="a sweep's trials (parameters, state, objective, pruned at), best, importances")
    p.add_argument("sweep", nargs="?", default="last", help="a sweep id, unique prefix or 'last' (default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep_show)

    p = cmds.add_parser("stop", help="stop the driver and its running trials gracefully (each saves a checkpoint)")
    p.add_argument("sweep", help="a sweep id, unique prefix or 'last'")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for it to stop")
    p.set_defaults(func=cmd_sweep_stop)

    p = cmds.add_parser("resume", help="start a stopped, failed or lost sweep's driver again")
    p.add_argument("sweep", help="a sweep id, unique prefix or 'last'")
    p.set_defaults(func=cmd_sweep_resume)


__all__ = ["add_sweep_commands"]
