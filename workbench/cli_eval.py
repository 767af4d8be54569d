"""``workbench eval ...``: create, run, list, stop and resume evals without the app.

Each command is a thin shell over :mod:`workbench.eval`; :func:`add_eval_commands` hangs
them under ``eval`` in the main parser (see :mod:`workbench.cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.fmt import age


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _model_names(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


class _Progress:
    """One progress line on stderr (rewritten in place on a terminal, a line per model otherwise)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.width = 0
        self.last_model = ""

    def __call__(self, p: Any) -> None:
        if p.phase == "loading":
            text = f"{p.model}: loading…"
        elif p.phase == "generating":
            speed = f", {p.examples_per_s:.2f}/s" if p.examples_per_s else ""
            text = f"{p.model}: {p.model_done}/{p.model_total}{speed}  ({p.done}/{p.total} in all)"
        else:
            text = f"{p.done}/{p.total} done"
        if self.live:
            sys.stderr.write("\r" + text[:100].ljust(self.width))
            self.width = len(text[:100])
        elif p.phase != "generating" or p.model_done == p.model_total:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.live and self.width:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _run_foreground(ev: Any) -> int:
    from workbench.eval.worker import append_to_log, run_eval

    print(
        f"generating {ev.id} in the foreground (Ctrl-C stops after the batch in hand; "
        f"`workbench eval resume {ev.id}` goes on)",
        file=sys.stderr,
    )
    bar = _Progress()
    try:
        state = run_eval(ev, progress=bar, log=append_to_log(ev))
    finally:
        bar.done()
    status = ev.status()
    print(f"{ev.id}: {state}" + (f" ({status.error})" if status.error else ""), file=sys.stderr)
    return 0 if state in ("completed", "stopped") else 1


# --- commands -----------------------------------------------------------------------


def cmd_eval_new(args: argparse.Namespace) -> int:
    from workbench.eval.candidates import default_dataset, default_models, list_candidates, resolve_models
    from workbench.eval.plan import create_from_plan, parse_selection, plan_eval
    from workbench.eval.runner import launch
    from workbench.eval.store import GenerationSettings

    workspace = args.workspace
    names = _model_names(args.models)
    models = (
        resolve_models(workspace, names, api_key_env=args.api_key_env)
        if names
        else default_models(list_candidates(workspace))
    )
    for ref in models:  # a server that is down or refuses the key: said here, not in a background process
        if ref.is_endpoint:
            from workbench.eval.remote import check_endpoint

            check_endpoint(ref)
    data = Path(args.data).resolve() if args.data else None
    if data is None and not args.suite:
        data = default_dataset(workspace)
        if data is None:
            raise WorkbenchError(
                f"no test split found in the configs or runs of {Path(workspace).resolve()}; "
                "pass --data FILE (or --suite FILE)"
            )
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
    )
    plan = plan_eval(
        models,
        data=data,
        suites=args.suite or (),
        limit=args.limit,
        selection=parse_selection(args.select),
        settings=settings,
        name=args.name,
        schema=args.schema,
        regex=args.regex,
    )
    for problem in plan.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    ev = create_from_plan(workspace, plan)
    print(ev.id)
    print(f"{plan.describe()}: " + ", ".join(m.key for m in models), file=sys.stderr)
    if args.wait:
        return _run_foreground(ev)
    launch(ev)
    print(
        f"generating in the background in {ev.path}; see `workbench eval list`, stop with "
        f"`workbench eval stop {ev.id}`",
        file=sys.stderr,
    )
    return 0


def cmd_eval_candidates(args: argparse.Namespace) -> int:
    from workbench.eval.candidates import list_candidates

    candidates = list_candidates(args.workspace)
    if args.json:
        _print_json([c.model_dump(mode="json") for c in candidates])
        return 0
    width = max(len(c.key) for c in candidates)
    for c in candidates:
        where = f"  {c.path}#{c.endpoint_model}" if c.is_endpoint and c.path else ""
        print(f"{c.key:<{width}}  {c.kind:<10}  {c.label}{where}")
    return 0


def cmd_eval_list(args: argparse.Namespace) -> int:
    from workbench.eval.store import evals_dir, list_evals

    evals = list_evals(args.workspace)
    if args.json:
        _print_json([e.to_dict() for e in evals])
        return 0
    if not evals:
        print(f"no evals in {evals_dir(args.workspace)}")
        return 0
    print(f"{'EVAL':<34} {'STATE':<10} {'DONE':>11} {'AGE':>5}  MODELS")
    for e in evals:
        note = f"  ({e.error.splitlines()[0][:60]})" if e.error else ""
        print(
            f"{e.id:<34} {e.state:<10} {f'{e.done}/{e.total}':>11} {age(time.time() - e.created):>5}  "
            f"{', '.join(e.models)}{note}"
        )
    return 0


def cmd_eval_stop(args: argparse.Namespace) -> int:
    from workbench.eval.runner import stop
    from workbench.eval.store import find_eval

    ev = find_eval(args.workspace, args.eval)
    state = stop(ev, timeout=args.wait)
    print(f"{ev.id}: {state}" + ("" if args.wait else " (stop requested; it stops after the batch in hand)"))
    return 0


def cmd_eval_resume(args: argparse.Namespace) -> int:
    from workbench.eval.runner import check_resumable, resume
    from workbench.eval.store import find_eval

    ev = find_eval(args.workspace, args.eval)
    if args.wait:
        check_resumable(ev)
        return _run_foreground(ev)
    resume(ev)
    done = sum(ev.progress().values())
    print(f"{ev.id}: resuming with {done} prediction(s) kept")
    return 0


def _results(args: argparse.Namespace) -> Any:
    from workbench.eval.results import Results
    from workbench.eval.store import find_eval

    return Results(find_eval(args.workspace, args.eval))


def cmd_eval_show(args: argparse.Namespace) -> int:
    from workbench.eval.report import report_data

    res = _results(args)
    data = report_data(res)
    if args.json:
        _print_json(data)
        return 0
    metrics = [
        m
        for m in (
            "case",
            "schema_valid",
            "json_valid",
            "exact_match",
            "token_f1",
            "rouge_l",
            "similarity",
            "refusal",
            "judge",
            "human",
        )
        if any(m in model["metrics"] for model in data["models"])
    ]
    print(f"{res.ev.id}: {data['examples']} examples from {data['dataset']}; main metric {res.primary}")
    against = "the baseline, " + res.base if res.spec.baseline else "the base"
    versus = "vs release" if res.spec.baseline and res.spec.baseline.startswith("release:") else "vs base"
    print(f"means with 95% bootstrap intervals; delta against {against} is paired ('~': within noise)")
    for model in data["models"]:
        print(
            f"\n{model['label']} ({model['key']}): {model['done']}/{data['examples']} answered"
            + (f", cases {model['cases_passed']}/{model['cases']} pass" if model["cases"] else "")
        )
        for m in metrics:
            summary = model["metrics"].get(m)
            if not summary or summary["mean"] is None:
                continue
            line = f"  {m:<13} {summary['mean']:.3f} [{summary['lo']:.3f}, {summary['hi']:.3f}] n={summary['n']}"
            delta = model["against_base"].get(m)
            if delta and delta["mean"] is not None:
                line += f"   {versus} {delta['mean']:+.3f} [{delta['lo']:+.3f}, {delta['hi']:+.3f}]" + (
                    "" if delta["significant"] else " ~"
                )
            print(line)
    for curve in data["checkpoints"]:
        print(f"\ncheckpoints of {curve['run']} ({curve['metric']}): {curve['verdict']}")
    print(f"\ngate: {'PASS' if data['gate']['ok'] else 'FAIL'}: {data['gate']['summary']}")
    for item, agreement in res.agreement().items() if res.verdicts.single else ():
        print(f"judge vs your ratings, {item}: {agreement.describe()}")
    return 0


def cmd_eval_judge(args: argparse.Namespace) -> int:
    from workbench.eval.judge import Rubric
    from workbench.eval.judging import judge_eval, judge_pairs, load_rubric, pair_tally, save_rubric
    from workbench.llm import LLM
    from workbench.models import cache_dir

    res = _results(args)
    ev = res.ev
    rubric = load_rubric(ev)
    if args.rubric:
        rubric = Rubric.parse(Path(args.rubric).read_text(encoding="utf-8"), args.scale or rubric.scale)
        save_rubric(ev, rubric)
    elif args.scale:
        rubric = Rubric.parse(rubric.text, args.scale)
        save_rubric(ev, rubric)
    llm = LLM(args.model, cache_dir=cache_dir() / "llm")
    bar = _Counter("judging")
    try:
        if args.pairwise:
            a, b = args.pairwise
            verdicts: list[Any] = judge_pairs(ev, llm, model_a=a, model_b=b, rubric=rubric, progress=bar)
            bar.done()
            print(pair_tally(verdicts, a, b))
        else:
            models = _model_names(args.models) or res.keys
            verdicts = judge_eval(ev, llm, models=models, rubric=rubric, progress=bar)
            bar.done()
            print(f"{len(verdicts)} answers graded, {sum(v.unparsed for v in verdicts)} unparsed")
    finally:
        bar.done()
    print(f"usage: {llm.usage.describe()}")
    return 0


class _Counter:
    """'judging 12/40' on stderr, rewritten in place on a terminal."""

    def __init__(self, what: str) -> None:
        self.what, self.live, self.shown = what, sys.stderr.isatty(), False

    def __call__(self, done: int, total: int) -> None:
        if self.live:
            sys.stderr.write(f"\r{self.what} {done}/{total}")
            sys.stderr.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False


def cmd_eval_report(args: argparse.Namespace) -> int:
    from workbench.eval.report import write_report

    res = _results(args)
    for path in write_report(res, Path(args.out) if args.out else None):
        print(path)
    return 0


def cmd_eval_gate(args: argparse.Namespace) -> int:
    """Exit 1 when a regression or red-team case fails, or (an eval with a baseline: a revalidation) a model
    does significantly worse than the baseline on a metric (for CI, before exporting a model; for cron)."""
    from workbench.eval.suites import gate

    res = _results(args)
    models = _model_names(args.models) or [k for k in res.keys if k != res.base] or res.keys
    cases = [res.cases[(m, row.id)] for row in res.rows for m in models if (m, row.id) in res.cases]
    missing = [
        (m, row.id) for row in res.rows for m in models if row.example.get("expect") and (m, row.id) not in res.cases
    ]
    ok, text = gate(cases)
    regressions = res.regressions(models)
    passed = ok and not missing and not regressions
    print(("PASS: " if passed else "FAIL: ") + text)
    for regression in regressions:
        print(f"  regression: {regression.describe()}")
    if res.spec.baseline and not regressions:
        print(f"  no significant drop against {res.spec.baseline}")
    if missing:
        print(f"  {len(missing)} case answer(s) not generated yet")
    if not cases and not missing:
        print(f"  (no regression or red-team cases in {res.ev.id})")
    return 0 if passed else 1


# --- parser -----------------------------------------------------------------------


def _workspace(p: argparse.ArgumentParser) -> None:
    # Also accepted after the command (`workbench eval list -w W`); the global -w is the default.
    p.add_argument(
        "-w", "--workspace", default=argparse.SUPPRESS, help="workspace directory (evals go in WORKSPACE/evals)"
    )


def add_eval_commands(subparsers: Any) -> None:
    """Add the ``eval`` commands to the main parser's subcommands."""
    from workbench.eval.store import GenerationSettings

    evals = subparsers.add_parser(
        "eval", help="compare models by their answers: new, list, show, judge, report, gate, stop, resume"
    )
    sub = evals.add_subparsers(dest="eval_command", required=True)

    p = sub.add_parser("new", help="create an eval and generate its predictions (in the background; --wait: here)")
    _workspace(p)
    p.add_argument(
        "--models",
        action="append",
        metavar="M[,M...]",
        help="base, RUN/adapter, RUN/ckpt-N, a path, a running server's serve:ID/MODEL (see `eval candidates`), "
        "any OpenAI-compatible endpoint as http://HOST:PORT/v1#MODEL, or a provider as litellm:PROVIDER/MODEL; "
        "default: base and the newest run's final adapter",
    )
    p.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="the environment variable holding the endpoints' API key (its name: the key is never written down)",
    )
    p.add_argument(
        "--data",
        metavar="FILE",
        help="the dataset to ask (default: the workspace's test split, unless only suites are given)",
    )
    p.add_argument(
        "--suite",
        metavar="FILE",
        action="append",
        help="a regression / red-team suite (JSONL cases with 'expect'); repeat for more",
    )
    p.add_argument("--select", metavar="ROWS", help="only these dataset rows (0-based), e.g. 3,5,10-12")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N examples")
    p.add_argument("--max-new-tokens", type=int, default=GenerationSettings().max_new_tokens)
    p.add_argument("--batch-size", type=int, default=GenerationSettings().batch_size)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); above 0: sampling")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="the eval's name (default: the dataset's file name)")
    p.add_argument(
        "--schema",
        metavar="FILE",
        help="a JSON Schema file the outputs should fit (default: schema.json beside the dataset, when there is one)",
    )
    p.add_argument("--regex", help="a regex the outputs should match (task check)")
    p.add_argument("--wait", action="store_true", help="generate in the foreground with a progress line")
    p.set_defaults(func=cmd_eval_new)

    p = sub.add_parser(
        "candidates",
        help="the models an eval can compare: base, final adapters, checkpoints, running servers' models",
    )
    _workspace(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_candidates)

    p = sub.add_parser("list", help="evals with state, progress and models")
    _workspace(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_list)

    p = sub.add_parser("stop", help="stop an eval's generator after the batch in hand")
    _workspace(p)
    p.add_argument("eval", help="eval id, unique prefix, path, or 'last'")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for it to stop")
    p.set_defaults(func=cmd_eval_stop)

    p = sub.add_parser("resume", help="go on with a stopped, failed or lost eval (what is done is kept)")
    _workspace(p)
    p.add_argument("eval", help="eval id, unique prefix, path, or 'last'")
    p.add_argument("--wait", action="store_true", help="generate in the foreground with a progress line")
    p.set_defaults(func=cmd_eval_resume)

    p = sub.add_parser("show", help="per-model metrics with intervals, deltas against the base, gate and judge trust")
    _workspace(p)
    p.add_argument("eval", nargs="?", default="last", help="eval id, unique prefix, path, or 'last' (default)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_show)

    p = sub.add_parser("judge", help="LLM judge through litellm: grade every answer, or --pairwise A B")
    _workspace(p)
    p.add_argument("eval", nargs="?", default="last", help="eval id, unique prefix, path, or 'last' (default)")
    p.add_argument("--model", required=True, help="the judge, a litellm model name (key from the environment)")
    p.add_argument("--models", action="append", metavar="M[,M...]", help="only these models' answers")
    p.add_argument("--pairwise", nargs=2, metavar=("A", "B"), help="compare two models, asking in both orders")
    p.add_argument("--rubric", metavar="FILE", help="a rubric text ('- item: description' lines); kept with the eval")
    p.add_argument("--scale", choices=("1-5", "pass/fail"), help="the grade scale (default: the eval's rubric's)")
    p.set_defaults(func=cmd_eval_judge)

    p = sub.add_parser("report", help="write report.md, report.json and report.html")
    _workspace(p)
    p.add_argument("eval", nargs="?", default="last", help="eval id, unique prefix, path, or 'last' (default)")
    p.add_argument("--out", metavar="DIR", help="write them here instead of the eval directory")
    p.set_defaults(func=cmd_eval_report)

    p = sub.add_parser("gate", help="exit 1 when a regression or red-team case fails (run before exporting)")
    _workspace(p)
    p.add_argument("eval", nargs="?", default="last", help="eval id, unique prefix, path, or 'last' (default)")
    p.add_argument("--models", action="append", metavar="M[,M...]", help="models to gate (default: all but the base)")
    p.set_defaults(func=cmd_eval_gate)
