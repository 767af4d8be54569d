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


def cmd_tokens(args: argparse.Namespace) -> int:
    from transformers import AutoTokenizer

    from workbench.data import load_rows, normalize
    from workbench.data.tokens import mask_findings, token_view
    from workbench.models import resolve_model

    result = load_rows(args.file, shape=args.shape, skip_bad=True)
    rows = normalize(result.rows, result.shape, "sft")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model).path)
    views = [token_view(r, tokenizer, args.max_length) for r in rows]
    shown = list(range(args.row, min(len(views), args.row + max(0, args.examples))))
    findings = mask_findings(views)
    if args.json:
        _print_json(
            {
                "path": str(args.file),
                "model": args.model,
                "max_length": args.max_length,
                "examples": len(views),
                "findings": [{"problem": p, "count": len(ix), "examples": ix[:50]} for p, ix in findings],
                "shown": [
                    {
                        "index": i,
                        "tokens": [
                            {"id": t, "text": piece, "loss": loss}
                            for t, piece, loss in zip(views[i].ids, views[i].pieces, views[i].loss)
                        ],
                        "cut": views[i].cut,
                        "loss_tokens": views[i].loss_tokens,
                        "dropped_loss_tokens": views[i].dropped_loss_tokens,
                        "problems": views[i].problems,
                    }
                    for i in shown
                ],
            }
        )
        return 0
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    on, off, dim, cut = ("\x1b[1;32m", "\x1b[0m", "\x1b[2m", "\x1b[1;31m") if color else ("", "", "", "")
    print(f"{args.file}: {len(views)} examples through {args.model}'s chat template, max_length {args.max_length}")
    if not color:
        print("the tokens that carry loss are between ⟦ ⟧; ✂ marks the cut at max_length")
    for i in shown:
        view = views[i]
        extra = f", cut at {view.cut}: {view.dropped_loss_tokens} answer tokens lost" if view.cut is not None else ""
        print(f"\n--- example {i}: {len(view.ids)} tokens, {view.loss_tokens} carry loss{extra} ---")
        out, inside = [dim] if color else [], False
        for piece, loss in zip(view.pieces[: view.cut], view.loss[: view.cut]):
            if loss != inside:
                out.append((off + on if loss else off + dim) if color else ("⟦" if loss else "⟧"))
                inside = loss
            out.append(piece)
        if inside and not color:
            out.append("⟧")
        if view.cut is not None:
            rest = "".join(view.pieces[view.cut :])
            out.append(
                f"{off}{cut}✂ max_length {args.max_length}, never seen:{off}{dim} {rest}"
                if color
                else f"✂ max_length {args.max_length}, never seen: {rest}"
            )
        out.append(off)
        print("".join(out))
        for problem in view.problems:
            print(f"  ! {problem}")
    print()
    if not findings:
        print(f"mask: no problems in {len(views)} examples")
    for problem, where in findings:
        print(f"mask: {problem}: {len(where)} of {len(views)} examples (e.g. {', '.join(map(str, where[:8]))})")
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
    groups = None
    if not args.no_groups:
        from workbench.data.dedup import find_duplicates, texts_for
        from workbench.data.split import groups_from_clusters

        clusters = find_duplicates(texts_for(result.rows, result.shape, "all")).clusters
        groups = groups_from_clusters(len(result.rows), clusters)
        if clusters:
            print(f"{len(clusters)} duplicate cluster(s) kept whole, each in one split")
    parts = split_rows(result.rows, ratios=args.ratios, seed=args.seed, groups=groups)
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


class _ProgressLine:
    """A one-line progress display on stderr (only on a terminal; scripts get clean output)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.width = 0

    def __call__(self, text: str) -> None:
        if self.live:
            line = text[:100]
            sys.stderr.write("\r" + line.ljust(self.width))
            sys.stderr.flush()
            self.width = len(line)

    def steps(self, name: str) -> Any:
        def step(done: int, total: int) -> None:
            filled = int(20 * done / total) if total else 20
            self(f"{name} [{'#' * filled}{'.' * (20 - filled)}] {done}/{total}")

        return step

    def done(self) -> None:
        if self.live and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _load_for_analysis(path: str) -> Any:
    from workbench.data import load_rows

    return load_rows(path, skip_bad=True)


def _where(loaded: Any, index: int) -> str:
    line = loaded.row_lines[index] if index < len(loaded.row_lines) else None
    return f"{Path(loaded.path).name}:{line}" if line else f"row {index}"


def cmd_critique(args: argparse.Namespace) -> int:
    from workbench.data.analyze import analyze_rows, load_tokenizer, sibling_splits

    loaded = _load_for_analysis(args.file)
    bar = _ProgressLine()
    tokenizer, unit_note = None, "lengths in words (--no-tokenizer)"
    if not args.no_tokenizer:
        bar(f"loading the tokenizer of {args.model}…")
        tokenizer = load_tokenizer(args.model)
        unit_note = f"lengths in tokens of {args.model}"
    siblings = {} if args.no_leakage else sibling_splits(Path(args.file))
    for extra in args.against or []:
        siblings[Path(extra).stem] = Path(extra)
    result = analyze_rows(
        loaded.rows,
        loaded.shape,
        path=Path(args.file),
        tokenizer=tokenizer,
        max_length=args.max_length,
        model=args.model,
        threshold=args.threshold,
        siblings=siblings,
        progress=bar,
    )
    bar.done()
    findings = sorted(result.all_findings(), key=lambda f: (f.index, f.check))
    if args.json:
        _print_json(
            {
                "file": str(args.file),
                "shape": loaded.shape.value,
                "rows": len(loaded.rows),
                "bad_rows": [b.to_dict() for b in loaded.bad_rows],
                "findings": [{**f.to_dict(), "line": loaded.row_lines[f.index]} for f in findings],
                "clusters": [
                    {"id": c.id, "kind": c.kind, "members": list(c.members), "keep": c.keep, "similarity": c.similarity}
                    for c in result.clusters
                ],
                "leakage": result.leakage,
                "summary": result.summary.to_dict() if hasattr(result.summary, "to_dict") else None,
                "counts": dict(result.counts()),
            }
        )
    else:
        print(
            f"{args.file}: {len(loaded.rows)} examples ({loaded.shape.label}), {len(loaded.bad_rows)} unreadable; "
            f"{unit_note}, max_length {args.max_length}"
        )
        for bad in loaded.bad_rows:
            print(f"  unreadable: {bad}")
        by_check: dict[str, list[Any]] = {}
        for f in findings:
            by_check.setdefault(f.check, []).append(f)
        order = sorted(by_check, key=lambda c: (min(_rank(f.severity) for f in by_check[c]), -len(by_check[c])))
        for check in order:
            items = by_check[check]
            print(f"\n{check} ({len(items)})")
            for f in items[: args.limit]:
                print(f"  {f.severity:<7} {_where(loaded, f.index)}  {f.message}")
                if f.suggestion and args.verbose:
                    print(f"          → {f.suggestion}")
            if len(items) > args.limit:
                print(f"  … and {len(items) - args.limit} more (--limit, or --json for all)")
        print("\n" + result.summary_text())
        print("\n" + result.headline())
    worst = min((_rank(f.severity) for f in findings), default=9)
    return 1 if args.fail_on and worst <= _rank(args.fail_on) else 0


def _rank(severity: str) -> int:
    from workbench.data.findings import severity_rank

    return severity_rank(severity)


def _params(params: Any) -> str:
    if hasattr(params, "bands"):
        return f"Jaccard >= {params.threshold} on {params.shingle_size}-word shingles, LSH {params.bands} bands x {params.rows} rows"
    return f"cosine >= {params.threshold}" if hasattr(params, "threshold") else str(params)


def cmd_dedup(args: argparse.Namespace) -> int:
    from workbench.data.dedup import find_duplicates, find_leakage, leakage_findings, semantic_duplicates, texts_for

    loaded = _load_for_analysis(args.file)
    bar = _ProgressLine()
    texts = texts_for(loaded.rows, loaded.shape, args.field)
    threshold = args.threshold or (0.95 if args.semantic else 0.8)
    if args.semantic:
        result = semantic_duplicates(texts, threshold=threshold, progress=bar.steps("embedding"))
    else:
        result = find_duplicates(texts, threshold=threshold, progress=bar.steps("hashing"))
    leaks = []
    if args.against:
        me = Path(args.file).stem
        splits = {me: texts}
        for other in args.against:
            other_rows = _load_for_analysis(other)
            splits[Path(other).stem] = texts_for(other_rows.rows, other_rows.shape, args.field)
        leaks = find_leakage(splits, threshold=0.8 if args.semantic else threshold, train_split=me)
    bar.done()
    if args.json:
        data = result.to_dict()
        data["lines"] = {str(i): loaded.row_lines[i] for c in result.clusters for i in c.members}
        data["leakage"] = [f.to_dict() for f in leakage_findings(leaks)]
        _print_json(data)
        return 0
    dupes = sum(len(c.members) - 1 for c in result.clusters)
    print(
        f"{args.file}: {len(texts)} examples compared on {args.field!r}; {len(result.clusters)} cluster(s), "
        f"{dupes} duplicate(s) beyond one per cluster; {_params(result.params)}"
    )
    for c in result.clusters[: args.limit]:
        where = ", ".join(_where(loaded, i) + (" (keep)" if i == c.representative else "") for i in c.members[:8])
        more = f" … +{len(c.members) - 8}" if len(c.members) > 8 else ""
        print(f"  #{c.id} {c.kind:<8} sim {c.min_similarity:.2f}-{c.max_similarity:.2f}: {where}{more}")
    if len(result.clusters) > args.limit:
        print(f"  … and {len(result.clusters) - args.limit} more clusters (--json for all)")
    for f in leakage_findings(leaks):
        print(f"  leakage {_where(loaded, f.index)}: {f.message}")
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
        print(
            f"{args.config}: {len(report.errors)} errors, {n - len(report.errors)} warnings/notes"
            + (f", {report.context.n_train} training examples" if report.context.n_train is not None else "")
        )
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
    from workbench.workspace import Workspace

    runs = list_runs(args.workspace)
    if args.json:
        _print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print(f"no runs in {Workspace(args.workspace).runs_dir}")
        return 0
    print(f"{'RUN':<34} {'STATE':<10} {'STEP':>11} {'BEST EVAL':>10} {'AGE':>5}  NOTE")
    for r in runs:
        step = f"{r.step}/{r.total_steps or '?'}"
        best = f"{r.best_eval_loss:.4f}" if r.best_eval_loss is not None else "-"
        notes = [f"×{r.world_size} processes"] if r.world_size > 1 else []
        if r.sweep:
            notes.append(f"sweep trial {r.sweep.get('trial')}")
        if r.verdict and r.verdict.get("kind") != "ok":
            notes.append(f"{r.verdict['kind']} since step {r.verdict.get('since_step')}")
        elif r.error:
            notes.append(r.error.splitlines()[0][:60])
        elif r.stop_reason:
            notes.append(r.stop_reason[:60])
        print(f"{r.id:<34} {r.state:<10} {step:>11} {best:>10} {age(r.age_s):>5}  {'; '.join(notes)}")
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    """Open the app on the workspace (imported here: the core never imports the UI)."""
    workspace = Path(args.workspace)
    if not workspace.is_dir():
        raise WorkbenchError(f"workspace {workspace} is not a directory")
    missing = [name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)) if not _is_terminal(stream)]
    if missing:
        # Without a terminal the app can neither draw nor read keys (Textual's input thread would
        # spin on end-of-file): refuse at once, before importing the UI, and point at the commands.
        print(
            f"error: the workbench app needs a terminal ({' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not one); for scripts, cron or pipes use the "
            "headless commands: workbench --help",
            file=sys.stderr,
        )
        return 2
    from screens.app import run_app

    return run_app(workspace)


def _is_terminal(stream: Any) -> bool:
    try:
        return stream is not None and os.isatty(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False


# --- parser -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description="Fine-tuning workbench. With no command, opens the app."
    )
    parser.add_argument(
        "-w",
        "--workspace",
        default=os.environ.get("WORKBENCH_WORKSPACE", "."),
        help="workspace directory (runs go in WORKSPACE/runs); default: current directory",
    )
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

    p = data.add_parser(
        "tokens",
        help="examples as the trainer sees them: token by token through the chat template, the loss tokens marked, "
        "the cut at max_length; and the mask problems of the whole set",
    )
    p.add_argument("file")
    p.add_argument("--model", default="bundled", help="whose tokenizer and chat template (default: bundled)")
    p.add_argument("-n", "--examples", type=int, default=2, help="examples to show (from --row on)")
    p.add_argument("--row", type=int, default=0, help="the first example to show (0-based)")
    p.add_argument("--max-length", type=int, default=512, help="the config's train.max_length")
    p.add_argument("--shape", help="force a shape instead of detecting it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tokens)

    p = data.add_parser("split", help="reproducible train/val/test split into OUT/{train,val,test}.jsonl")
    p.add_argument("file")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.8, 0.1, 0.1], metavar="R", help="train val [test]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--skip-bad", action="store_true", help="split the good rows when some rows are malformed")
    p.add_argument(
        "--no-groups",
        action="store_true",
        help="split row by row (by default near-duplicate clusters stay whole in one split)",
    )
    p.set_defaults(func=cmd_split)

    p = data.add_parser(
        "critique",
        help="every check on a dataset: format, consistency, lengths, PII, duplicates, leakage against sibling splits",
    )
    p.add_argument("file")
    p.add_argument("--model", default="bundled", help="whose tokenizer measures lengths (default: bundled)")
    p.add_argument("--max-length", type=int, default=512, help="flag examples longer than this many tokens")
    p.add_argument("--no-tokenizer", action="store_true", help="measure lengths in words; no model needed")
    p.add_argument("--threshold", type=float, default=0.8, help="near-duplicate Jaccard threshold")
    p.add_argument("--against", nargs="*", metavar="FILE", help="check leakage against these files too")
    p.add_argument("--no-leakage", action="store_true", help="skip the sibling val/test files")
    p.add_argument("--limit", type=int, default=10, help="examples listed per check")
    p.add_argument("--fail-on", choices=["error", "warning", "info"], help="exit 1 when a finding this bad exists")
    p.add_argument("-v", "--verbose", action="store_true", help="show the suggested fix of each finding")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_critique)

    p = data.add_parser("dedup", help="exact and near-duplicate clusters (MinHash LSH), or semantic ones (MiniLM)")
    p.add_argument("file")
    p.add_argument("--threshold", type=float, default=None, help="Jaccard (default 0.8) or cosine (--semantic, 0.95)")
    p.add_argument("--field", choices=["all", "prompt", "response"], default="all")
    p.add_argument("--semantic", action="store_true", help="embedding similarity with the bundled MiniLM")
    p.add_argument("--against", nargs="*", metavar="FILE", help="also report copies found in these files (leakage)")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dedup)

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
    from workbench.cli_advise import add_advise_commands
    from workbench.cli_chat import add_chat_commands
    from workbench.cli_config import add_config_commands
    from workbench.cli_eval import add_eval_commands
    from workbench.cli_monitor import add_monitor_commands
    from workbench.cli_serve import add_serve_commands
    from workbench.cli_ship import add_ship_commands
    from workbench.cli_sweep import add_sweep_commands

    add_config_commands(sub)
    add_advise_commands(sub)
    add_eval_commands(sub)
    add_ship_commands(sub)
    add_chat_commands(sub)
    add_serve_commands(sub)
    add_monitor_commands(sub)
    add_sweep_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from workbench.cli_monitor import default_subcommand

    args = build_parser().parse_args(default_subcommand(sys.argv[1:] if argv is None else list(argv)))
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
