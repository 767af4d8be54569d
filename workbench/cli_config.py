"""``workbench export | estimate | probe CONFIG``: the Config pane's exports, estimate and probe without the app.

Each command is a thin shell over the core the pane calls
(:mod:`workbench.config.export`, :func:`workbench.config.assess.assess`,
:func:`workbench.config.probe.probe_step`); :func:`add_config_commands` hangs
them on the main parser (see :mod:`workbench.cli`). A config that cannot be
read raises :class:`~workbench.errors.ConfigError`, which the CLI prints as
one line naming the file, line and field.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

EXPORTS = ("trl", "script", "yaml", "slurm")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def _load(path: str) -> Any:
    from workbench.config import load_config

    return load_config(path)


# --- export -------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.config.export import export_as

    config = _load(args.config)
    if args.to != "slurm" and (args.nodes or args.gpus_per_node):
        raise WorkbenchError("--nodes and --gpus-per-node are for --to slurm")
    text, command, n_train = export_as(
        config, args.to, workspace=args.workspace, nodes=args.nodes, gpus_per_node=args.gpus_per_node
    )
    path = None
    if args.output:
        path = Path(args.output)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise WorkbenchError(f"{path}: cannot write the export ({exc.strerror or exc})") from None
    run = command.replace("FILE", str(path) if path else "FILE") if command else None
    if args.json:
        _print_json(
            {"to": args.to, "path": str(path) if path else None, "command": run, "n_train": n_train, "text": text}
        )
    elif path:
        print(f"wrote {path}" + (f"; run it with: {run}" if run else ""))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


# --- estimate -----------------------------------------------------------------------


def estimate_data(assessment: Any) -> dict[str, Any]:
    """Every figure of an assessment's memory estimate and derived figures, as plain data."""
    import dataclasses

    m, d, ctx = assessment.memory, assessment.derived, assessment.context
    memory = None
    if m is not None:
        memory = {
            "items": [
                {
                    "name": i.name,
                    "bytes": i.bytes,
                    "phase": i.phase,
                    "at_peak": m.counted(i),
                    "explanation": i.explanation,
                }
                for i in m.items
            ],
            "allocated_bytes": m.allocated,
            "total_bytes": m.total,
            "peak_moment": m.peak_moment,
            "precision": dataclasses.asdict(m.precision),
            "rows": m.rows,
            "seq_len": m.seq_len,
            "device": m.device,
            "world_size": m.world_size,
            "sharding": m.sharding,
            "notes": list(m.notes),
        }
    hw = ctx.hardware
    return {
        "memory": memory,
        "model_error": ctx.model_error,
        "derived": dataclasses.asdict(d) if d is not None else None,
        "n_train": ctx.n_train,
        "hardware": dataclasses.asdict(hw) if hw is not None else None,
        "fits": m.fits(hw.gpu_free_bytes) if m is not None and hw is not None and hw.gpu_free_bytes else None,
        "findings": [f.to_dict() for f in assessment.findings],
    }


def cmd_estimate(args: argparse.Namespace) -> int:
    from workbench.config.assess import assess
    from workbench.config.memory import gib

    config = _load(args.config)
    a = assess(config)
    data = estimate_data(a)
    if args.json:
        _print_json({"config": args.config, **data})
        return 0 if a.memory is not None else 1
    m = a.memory
    if m is None:
        print(f"GPU memory estimate: unknown ({a.context.model_error or 'the model could not be read'})")
    else:
        print(
            f"GPU memory estimate for {config.name} ({config.method}, {config.finetune}, {m.precision.name}): "
            f"{m.rows} × {m.seq_len} tokens per micro-batch, no weights loaded"
        )
        width = max(len(i.name) for i in m.items)
        for item in m.items:
            mark = " " if m.counted(item) else "*"
            print(f"  {item.name:<{width}}  {gib(item.bytes):>10} {mark} {item.explanation}")
        print(f"  {'allocated at the peak':<{width}}  {gib(m.allocated):>10}   peak at the {m.peak_moment}")
        print(f"  {'total':<{width}}  {gib(m.total):>10}   what the GPU must have free")
        print("  * not alive at the peak")
        for note in m.notes:
            print(f"  note: {note}")
        hw = a.context.hardware
        if hw is not None and hw.gpu_free_bytes:
            verdict = "fits" if data["fits"] else "does not fit"
            print(f"  {verdict} in the {gib(hw.gpu_free_bytes)} free on {hw.gpu_name or 'this GPU'}")
    if a.derived is not None:
        print()
        print("Derived figures")
        rows = a.derived.lines()
        width = max(len(row.label) for row in rows)
        value_width = max(len(row.value) for row in rows)
        for row in rows:
            print(f"  {row.label:<{width}}  {row.value:>{value_width}}  {row.explanation}")
    errors = sum(f.severity == "error" for f in a.findings)
    if a.findings:
        print(f"\n{errors} errors, {len(a.findings) - errors} warnings/notes: workbench check {args.config}")
    return 0 if m is not None else 1


# --- probe --------------------------------------------------------------------------


def probe_data(result: Any) -> dict[str, Any]:
    """A probe result as plain data (NaN seconds, when no step was timed, as None)."""
    import dataclasses

    data = dataclasses.asdict(result)
    if isinstance(data["seconds_per_step"], float) and math.isnan(data["seconds_per_step"]):
        data["seconds_per_step"] = None
    data["batch_shape"] = list(result.batch_shape) if result.batch_shape else None
    return data


def cmd_probe(args: argparse.Namespace) -> int:
    from workbench.config.memory import gib
    from workbench.config.probe import probe_step

    config = _load(args.config)
    print(f"measuring {args.steps} training step(s) of {config.name} after a warm-up…", file=sys.stderr)
    try:
        result = probe_step(config, steps=args.steps)
    except MemoryError:
        raise WorkbenchError(f"{args.config}: out of memory in a training step (see workbench estimate)") from None
    except RuntimeError as exc:  # torch.OutOfMemoryError is one
        if "out of memory" not in str(exc).lower():
            raise
        raise WorkbenchError(f"{args.config}: out of memory in a training step: {str(exc).splitlines()[0]}") from None
    data = probe_data(result)
    if args.json:
        _print_json({"config": args.config, **data})
        return 0
    seconds = data["seconds_per_step"]
    print(f"one training step of {config.name} on {result.device}")
    print(f"  seconds per step  {seconds:.3f} s" if seconds is not None else "  seconds per step  ? (no step timed)")
    print(f"  peak memory       {gib(result.peak_bytes)} ({result.peak_kind})")
    if result.tensor_peak_bytes is not None and result.peak_kind != "cuda allocated":
        print(f"  live tensors      {gib(result.tensor_peak_bytes)} at the peak (compare: workbench estimate)")
    print(f"  {result.note}")
    return 0


# --- parser -------------------------------------------------------------------------


def add_config_commands(subparsers: Any) -> None:
    """Add ``export``, ``estimate`` and ``probe`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "export",
        help="a config as TRL's CLI config (trl), a standalone training script (script), resolved YAML, "
        "or a Slurm batch script that runs it on N nodes (slurm)",
    )
    p.add_argument("config")
    p.add_argument(
        "--to",
        choices=EXPORTS,
        required=True,
        help="trl, script, yaml (this workbench's, paths absolute) or slurm (sbatch, the workspace's runs/)",
    )
    p.add_argument("--nodes", type=_positive, help="slurm: nodes (default: the config's distributed.nnodes)")
    p.add_argument(
        "--gpus-per-node",
        type=_positive,
        help="slurm: GPUs and processes per node (default: distributed.nproc_per_node)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write it here (default: print it)")
    p.add_argument("--json", action="store_true", help="print {to, path, command, n_train, text}")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("estimate", help="a config's GPU memory estimate item by item, and its derived figures")
    p.add_argument("config")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)

    p = subparsers.add_parser("probe", help="run real training steps of a config: seconds per step and peak memory")
    p.add_argument("config")
    p.add_argument("--steps", type=_positive, default=1, help="timed steps after the warm-up (default 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_probe)
