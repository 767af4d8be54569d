"""``workbench monitor SERVER`` and its commands: figures, drift and alerts; revalidate; to-dataset; report; schedule.

``workbench monitor SERVER [--since 24h] [--json]`` exits 1 while an alert is active, for cron.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUBCOMMANDS = ("show", "revalidate", "to-dataset", "report", "schedule")
TO_DATASET_FILTERS = ("failed", "invalid", "refusal", "empty", "truncated", "error", "drifted", "judge-below", "all")


def default_subcommand(argv: list[str]) -> list[str]:
    """``monitor SERVER ...`` -> ``monitor show SERVER ...`` (the figures are what ``monitor`` alone means).

    Only the global options come before the command: ``-w``/``--workspace`` takes the next word as its value.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "monitor":
            rest = argv[i + 1 :]
            if rest and rest[0] not in SUBCOMMANDS and rest[0] not in ("-h", "--help"):
                return [*argv[: i + 1], "show", *rest]
            return argv
        if arg in ("-w", "--workspace"):
            i += 2
            continue
        if not arg.startswith("-"):
            return argv  # another command
        i += 1
    return argv


def _report(args: argparse.Namespace) -> Any:
    from workbench.monitor.report import monitor, parse_since

    return monitor(args.workspace, args.server, since_s=parse_since(args.since))


def cmd_monitor_show(args: argparse.Namespace) -> int:
    from workbench.monitor.render import lines

    report = _report(args)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print("\n".join(lines(report)))
    return 1 if report.alerts else 0


def cmd_monitor_report(args: argparse.Namespace) -> int:
    from workbench.monitor.render import write
    from workbench.serve.servedir import find_server

    report = _report(args)
    directory = Path(args.out) if args.out else find_server(args.workspace, args.server).path / "reports"
    for path in write(report, directory):
        print(path)
    return 0


def cmd_monitor_schedule(args: argparse.Namespace) -> int:
    """Print the cron line (and a systemd timer) that revalidates the server every N days: we run no scheduler."""
    from workbench.monitor.report import parse_since
    from workbench.serve.servedir import find_server

    sd = find_server(args.workspace, args.server)
    every = parse_since(args.every)
    days = max(1, round(every / 86400))
    workspace = str(Path(args.workspace).resolve())
    exe = shlex.quote(sys.argv[0] if Path(sys.argv[0]).name == "workbench" else "workbench")
    command = (
        f"{exe} -w {shlex.quote(workspace)} monitor revalidate {sd.id} --wait "
        f">> {shlex.quote(str(sd.path / 'revalidate.log'))} 2>&1"
    )
    if days == 1:
        cron = f"17 3 * * * {command}"
    elif days < 28:
        cron = f"17 3 */{days} * * {command}"
    else:
        months = max(1, round(days / 30))
        cron = f"17 3 1 */{months} * {command}" if months > 1 else f"17 3 1 * * {command}"
    print("# install with `crontab -e` (the workbench runs no scheduler of its own):")
    print(cron)
    print()
    print(f"# or a systemd user timer: OnCalendar every {days} day(s), ExecStart running:")
    print(f"#   {command.split(' >>')[0]}")
    return 0


def cmd_monitor_to_dataset(args: argparse.Namespace) -> int:
    from workbench.errors import WorkbenchError
    from workbench.monitor.release import served_task
    from workbench.monitor.report import parse_since
    from workbench.monitor.samples import select_requests, to_dataset
    from workbench.serve.servedir import find_server

    kind, *rest = args.filter
    if kind not in TO_DATASET_FILTERS:
        raise WorkbenchError(f"--filter {kind!r}: expected one of {', '.join(TO_DATASET_FILTERS)}")
    if kind == "judge-below":
        try:
            (below,) = (float(v) for v in rest)
        except ValueError:
            raise WorkbenchError("--filter judge-below needs one grade: --filter judge-below 3") from None
    elif rest:
        raise WorkbenchError(f"--filter {kind} takes no value (only judge-below N does), not {' '.join(rest)!r}")
    sd = find_server(args.workspace, args.server)
    since = time.time() - parse_since(args.since)
    predicate = None
    if kind == "drifted":
        predicate, kind = _drifted(args, sd), "all"
    elif kind == "judge-below":
        predicate, kind = _judged_below(args, sd, below), "all"
    chosen = select_requests(
        sd.db_path,
        filter=kind,
        since=since,
        model=args.model,
        ids=args.id or None,
        limit=args.limit,
        predicate=predicate,
    )
    if not chosen:
        print(
            f"no logged request of {sd.id} matches --filter {' '.join(args.filter)} since {args.since}", file=sys.stderr
        )
        return 0
    task = served_task(args.workspace, sd.id)
    result = to_dataset(
        sd.db_path, Path(args.out), chosen, server_id=sd.id, system_prompt=task.system_prompt, schema=task.schema
    )
    print(f"{len(result.added)} example(s) added to {result.dataset}, pending, source production")
    for request_id, why in result.skipped:
        print(f"  skipped {request_id}: {why}", file=sys.stderr)
    print("review them in the Data pane (1): w shows the production examples only", file=sys.stderr)
    return 0


def _drifted(args: argparse.Namespace, sd: Any) -> Any:
    """Requests whose answers sit where the window's distribution moved away from the baseline: a categorical
    value over-represented against the release, or an answer length in a bin that gained the most."""
    from workbench.monitor.report import monitor, parse_since

    report = monitor(args.workspace, sd.id, since_s=parse_since(args.since))
    grown: dict[str, set[str]] = {}
    for mm in report.models:
        if mm.baseline is None:
            continue
        for name, counts in mm.window.fields.items():
            base: Mapping[str, int] = mm.baseline.fields.get(name, {})
            n_base, n_now = sum(base.values()) or 1, sum(counts.values()) or 1
            for value, count in counts.items():
                if count / n_now - base.get(value, 0) / n_base > 0.1:
                    grown.setdefault(name, set()).add(value)

    def drifted(request: Any) -> bool:
        return any((request.fields or {}).get(name) in values for name, values in grown.items())

    return drifted


def _judged_below(args: argparse.Namespace, sd: Any, below: float) -> Any:
    """Requests whose production prompt a revalidation eval's judge graded below ``below``."""
    from workbench.eval.results import Results
    from workbench.eval.store import list_evals

    grades: dict[str, float] = {}
    from workbench.eval.store import EvalDir

    for summary in list_evals(args.workspace):
        ev = EvalDir(summary.path)
        reval = ev.spec().model_extra or {}
        if (reval.get("revalidation") or {}).get("server") != sd.id:
            continue
        res = Results(ev)
        for row in res.rows:
            request_id = str(row.example.get("request_id") or "")
            if not request_id and row.id.startswith("prod-"):  # revalidation's production prompts: prod-<request id>
                request_id = row.id[len("prod-") :]
            for cell in row.cells.values():
                value = cell.value("judge")
                if request_id and value is not None:
                    grades[request_id] = min(value, grades.get(request_id, value))
    if not grades:
        from workbench.errors import WorkbenchError

        raise WorkbenchError(
            f"no judge grades of {sd.id}'s production prompts yet: run `workbench monitor revalidate {sd.id}`, "
            "then `workbench eval judge last --model JUDGE`"
        )
    return lambda request: request.id in grades and grades[request.id] < below


def cmd_monitor_revalidate(args: argparse.Namespace) -> int:
    from workbench.monitor.report import parse_since
    from workbench.monitor.revalidate import revalidate

    ev = revalidate(
        args.workspace,
        args.server,
        model=args.model,
        production=args.production,
        since_s=parse_since(args.since),
        suites=args.suite,
        judge=args.judge,
        wait=args.wait,
    )
    print(ev.id)
    for note in (ev.spec().model_extra or {}).get("revalidation", {}).get("notes") or []:
        print(f"note: {note}", file=sys.stderr)
    if not args.wait:
        print(
            f"generating in the background: `workbench eval list`; then `workbench eval gate {ev.id}`", file=sys.stderr
        )
        return 0
    from workbench.cli_eval import cmd_eval_gate

    print(f"see `workbench eval show {ev.id}`; the gate against the release:", file=sys.stderr)
    return cmd_eval_gate(argparse.Namespace(workspace=args.workspace, eval=ev.id, models=None))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", help="a server id, unique prefix, or 'last'")
    p.add_argument(
        "-w", "--workspace", default=argparse.SUPPRESS, help="the workspace (default: the current directory)"
    )


def add_monitor_commands(sub: Any) -> None:
    mon = sub.add_parser(
        "monitor",
        help="a server's traffic, answer health, drift and alerts (exit 1 on an alert); revalidate, to-dataset, report",
        description="workbench monitor SERVER [--since 24h] [--json]   (the same as `monitor show SERVER`)",
    )
    cmds = mon.add_subparsers(dest="monitor_command", required=True)

    p = cmds.add_parser("show", help="the figures, the drift table and the alerts (the default)")
    _common(p)
    p.add_argument("--since", default="24h", help="the window: 30m, 24h (default), 7d, 1w")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_monitor_show)

    p = cmds.add_parser("report", help="write the monitor as Markdown and HTML with charts")
    _common(p)
    p.add_argument("--since", default="24h")
    p.add_argument("--out", metavar="DIR", help="write here (default: the server's reports/)")
    p.set_defaults(func=cmd_monitor_report)

    p = cmds.add_parser("schedule", help="print the cron line that revalidates the server every N days")
    _common(p)
    p.add_argument("--every", default="30d", help="how often: 1d, 7d, 30d (default)")
    p.set_defaults(func=cmd_monitor_schedule)

    p = cmds.add_parser("to-dataset", help="send logged requests to a dataset as pending examples (source production)")
    _common(p)
    p.add_argument(
        "--filter",
        nargs="+",
        default=["failed"],
        metavar="KIND",
        help=f"which requests: {', '.join(TO_DATASET_FILTERS)} (judge-below takes the grade: judge-below 3)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the dataset to add them to")
    p.add_argument("--since", default="7d")
    p.add_argument("--model", help="only this served model's requests")
    p.add_argument("--id", action="append", metavar="REQUEST_ID", help="these requests (repeat)")
    p.add_argument("--limit", type=int, help="at most N (newest first)")
    p.set_defaults(func=cmd_monitor_to_dataset)

    p = cmds.add_parser(
        "revalidate", help="an eval against the served endpoint: test split, suites, recent production prompts"
    )
    _common(p)
    p.add_argument("--model", help="the served model to revalidate (default: the fine-tuned one)")
    p.add_argument("--production", type=int, default=50, help="recent production prompts to include (default 50)")
    p.add_argument("--since", default="7d", help="how far back production prompts are drawn from (default 7d)")
    p.add_argument(
        "--suite",
        action="append",
        metavar="FILE",
        help="a regression/red-team suite (repeat; default: the workspace's)",
    )
    p.add_argument("--judge", metavar="MODEL", help="grade the answers with this litellm model (default: monitor.yaml)")
    p.add_argument(
        "--wait", action="store_true", help="generate in the foreground, then gate: exit 1 on a regression (for cron)"
    )
    p.set_defaults(func=cmd_monitor_revalidate)


__all__ = ["add_monitor_commands", "default_subcommand"]
