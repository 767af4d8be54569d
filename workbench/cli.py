"""The headless command line: `workbench COMMAND ...`; no command opens the app.

Every command is a thin shell over a core function; errors meant for the
user (:class:`WorkbenchError`) print as one clear message, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.fmt import age

def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# --- commands ---------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from workbench.data import inspect_file

    report = inspect_file(args.file, shape=args.shape, method=args.method, n_examples=args.examples)
    data = report.to_dict()
    if args.json:
        _print_json(data)
        return 0
    bad = data.get("bad_rows", [])
    print(f"{data['path']}  ({data['file_type']}, {data['row_count']} good rows, {len(bad)} bad)")
    print(f"shape: {data['shape_description']}")
    for note in data.get("notes", []):
        print(f"note: {note}")
    if data.get("normalize_error"):
        print(f"cannot normalize for {args.method}: {data['normalize_error']}")
    for row in bad[:50]:
        print(f"  bad: {row['text']}")
    if len(bad) > 50:
        print(f"  ... and {len(bad) - 50} more (--json lists all)")
    examples = data.get("examples", [])
    rendered = _render(examples, args.model, args.method) if args.model and examples else None
    for i, example in enumerate(examples, 1):
        if rendered:
            print(f"\n--- example {i} as {args.model} sees it (the loss is on the completion) ---")
            for part, text in rendered[i - 1].items():
                print(f"[{part}]\n{text}")
        else:
            print(f"\n--- example {i} (normalized for {args.method}) ---")
            print(json.dumps(example, indent=2, ensure_ascii=False)[:2000])
    return 0


def _render(examples: list[dict[str, Any]], model: str, method: str) -> list[dict[str, str]]:
    """Examples through the model's chat template, split as the trainer splits them."""
    from transformers import AutoTokenizer

    from workbench.data import render_chat
    from workbench.models import resolve_model
    from workbench.train.dataprep import completion_only

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model).path)
    rows = [completion_only(r) for r in examples] if method == "sft" else examples
    return render_chat(rows, tokenizer)


def cmd_split(args: argparse.Namespace) -> int:
    from workbench.data import load_rows, split_rows

    result = load_rows(args.file, skip_bad=args.skip_bad)
    parts = split_rows(result.rows, ratios=args.ratios, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", parts.train), ("val", parts.val), ("test", parts.test)):
        if rows:
            with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            print(f"{out / f'{name}.jsonl'}: {len(rows)} rows")
    if result.bad_rows:
        print(f"{len(result.bad_rows)} bad rows were left out:", *(f"  {b}" for b in result.bad_rows), sep="\n")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from workbench.config import load_config
    from workbench.config.check import check_config

    report = check_config(load_config(args.config))
    if args.json:
        _print_json({"findings": [f.to_dict() for f in report.findings], "n_train": report.context.n_train})
    else:
        for finding in report.findings:
            print(finding)
        n = len(report.findings)
        print(f"{args.config}: {len(report.errors)} errors, {n - len(report.errors)} warnings/notes"
              + (f", {report.context.n_train} training examples" if report.context.n_train is not None else ""))
    return 1 if report.errors else 0


def _follow(run: Any) -> int:
    from workbench.train.follow import print_follow

    print(f"following {run.id} (Ctrl-C detaches; the run goes on)")
    try:
        state = print_follow(run)
    except KeyboardInterrupt:
        print(f"\ndetached from {run.id}; it keeps running. Reattach: workbench logs -f {run.id}")
        return 0
    return 0 if state in ("completed", "stopped") else 1


def cmd_train(args: argparse.Namespace) -> int:
    from workbench.train.runner import launch

    run = launch(args.config, args.workspace)
    print(run.id)
    print(f"started in {run.path}; follow it with: workbench logs -f {run.id}", file=sys.stderr)
    return _follow(run) if args.attach else 0


def cmd_logs(args: argparse.Namespace) -> int:
    from workbench.train.follow import describe
    from workbench.train.runner import find_run

    run = find_run(args.workspace, args.run)
    if args.follow:
        return _follow(run)
    if args.log:
        print(run.log_path.read_text(errors="replace") if run.log_path.exists() else "(no train.log yet)")
        return 0
    for record in run.metrics():
        line = describe(record)
        if line:
            print(line)
    status = run.status()
    print(f"{run.id}: {status.state} at step {status.step}/{status.total_steps or '?'}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from workbench.train.runner import find_run, stop

    run = find_run(args.workspace, args.run)
    state = stop(run, timeout=args.wait)
    print(f"{run.id}: {state}" + ("" if args.wait else " (stop requested; it saves a checkpoint and the adapter)"))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from workbench.train.runner import find_run, resume

    run = resume(find_run(args.workspace, args.run))
    print(f"{run.id}: resuming from {run.checkpoints()[-1].name}")
    return _follow(run) if args.attach else 0


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.train.runner import list_runs

    runs = list_runs(args.workspace)
    if args.json:
        _print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print(f"no runs in {Path(args.workspace) / 'runs'}")
        return 0
    print(f"{'RUN':<34} {'STATE':<10} {'STEP':>11} {'BEST EVAL':>10} {'AGE':>5}  NOTE")
    for r in runs:
        step = f"{r.step}/{r.total_steps or '?'}"
        best = f"{r.best_eval_loss:.4f}" if r.best_eval_loss is not None else "-"
        note = ""
        if r.verdict and r.verdict.get("kind") != "ok":
            note = f"{r.verdict['kind']} since step {r.verdict.get('since_step')}"
        elif r.error:
            note = r.error.splitlines()[0][:60]
        print(f"{r.id:<34} {r.state:<10} {step:>11} {best:>10} {age(r.age_s):>5}  {note}")
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    """Open the app on the workspace (imported here: the core never imports the UI)."""
    workspace = Path(args.workspace)
    if not workspace.is_dir():
        raise WorkbenchError(f"workspace {workspace} is not a directory")
    from screens.app import run_app

    return run_app(workspace)


# --- parser -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Fine-tuning workbench. With no command, opens the app.")
    parser.add_argument("-w", "--workspace", default=os.environ.get("WORKBENCH_WORKSPACE", "."),
                        help="workspace directory (runs go in WORKSPACE/runs); default: current directory")
    sub = parser.add_subparsers(dest="command")

    data = sub.add_parser("data", help="dataset commands").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("inspect", help="detected shape, rows, bad rows and normalized examples of a dataset")
    p.add_argument("file")
    p.add_argument("--shape", help="force a shape instead of detecting it")
    p.add_argument("--method", choices=["sft", "dpo"], default="sft")
    p.add_argument("-n", "--examples", type=int, default=2, help="normalized examples to show")
    p.add_argument("--model", help="also render the examples through this model's chat template (e.g. bundled)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = data.add_parser("split", help="reproducible train/val/test split into OUT/{train,val,test}.jsonl")
    p.add_argument("file")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.8, 0.1, 0.1], metavar="R", help="train val [test]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--skip-bad", action="store_true", help="split the good rows when some rows are malformed")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("check", help="validate a run config")
    p.add_argument("config")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("train", help="start a detached training run; prints the run id")
    p.add_argument("config")
    p.add_argument("--attach", "-a", action="store_true", help="follow the run after starting it")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("logs", help="a run's metrics (-f to follow live, --log for train.log)")
    p.add_argument("run", nargs="?", default="last", help="run id, unique prefix, path, or 'last'")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--log", action="store_true", help="print train.log")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", help="stop a run gracefully (checkpoint + adapter saved)")
    p.add_argument("run")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for the run to end")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("resume", help="continue a stopped or failed run from its last checkpoint")
    p.add_argument("run")
    p.add_argument("--attach", "-a", action="store_true")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("runs", help="list runs with state, step, best eval loss and age")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    func = getattr(args, "func", cmd_open)
    try:
        return func(args)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
