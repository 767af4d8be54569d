"""``workbench advise`` and ``workbench diagnose``: the Config pane's advisor and diagnosis without the app.

``advise`` takes the seven questions of :data:`workbench.advise.questions.QUESTIONS`
as flags (one per question, named by its id), asks for the missing ones when
stdin is a terminal, and prints what :func:`workbench.advise.advisor.advise`
says: the recommendation with its reasons, the data it needs and the evidence,
the alternatives, caveats and a starter config. ``diagnose`` reads a run
directory (:func:`workbench.advise.diagnose.diagnose_run`) or an error message
(:func:`workbench.advise.diagnose.diagnose_text`). :func:`add_advise_commands`
hangs both on the main parser (see :mod:`workbench.cli`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any, TextIO

from workbench.advise.questions import QUESTIONS, Question
from workbench.errors import WorkbenchError


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _flag(question: Question) -> str:
    return "--" + question.id


def _option_id(text: str) -> str:
    """An option as typed: ``gpu-small`` and ``GPU_SMALL`` both mean ``gpu_small``."""
    return text.strip().lower().replace("-", "_")


# --- advise -------------------------------------------------------------------------


def ask(question: Question, stdin: TextIO, stderr: TextIO) -> str | None:
    """One question on the terminal: a number or an option id; Enter leaves it unanswered (its default is assumed)."""
    stderr.write(f"\n{question.text}\n  {question.help}\n")
    for n, (oid, label) in enumerate(question.options, 1):
        stderr.write(f"  {n}. {label}  [{oid}]\n")
    default = question.option_label(question.default)
    while True:
        stderr.write(f"Answer 1-{len(question.options)} (Enter: assume '{default}'): ")
        stderr.flush()
        line = stdin.readline()
        if not line:
            raise WorkbenchError(f"no answer to {_flag(question)} (end of input)")
        text = _option_id(line)
        if not text:
            return None
        if text.isdigit() and 1 <= int(text) <= len(question.options):
            return question.options[int(text) - 1][0]
        if text in question.option_ids:
            return text
        stderr.write(f"  not an option: {line.strip()!r}\n")


def gather_answers(
    args: argparse.Namespace, stdin: TextIO | None = None, stderr: TextIO | None = None
) -> dict[str, str]:
    """The answers given as flags; the missing ones asked on a terminal, assumed with --defaults, else an error."""
    stdin = stdin if stdin is not None else sys.stdin
    stderr = stderr if stderr is not None else sys.stderr
    answers = {q.id: getattr(args, q.id) for q in QUESTIONS if getattr(args, q.id) is not None}
    missing = [q for q in QUESTIONS if q.id not in answers]
    if not missing or args.defaults:
        return answers
    if not stdin.isatty():
        flags = ", ".join(_flag(q) for q in missing)
        raise WorkbenchError(
            f"missing answers: {flags} (stdin is not a terminal, so they cannot be asked); "
            "give them as flags (see `workbench advise --help`), or --defaults to assume them"
        )
    for q in missing:
        value = ask(q, stdin, stderr)
        if value is not None:
            answers[q.id] = value
    stderr.write("\n")
    return answers


def cmd_advise(args: argparse.Namespace) -> int:
    from workbench.advise.advisor import advise
    from workbench.advise.questions import Answers

    answers = gather_answers(args)
    advice = advise(answers)
    if args.json:
        parsed = Answers.parse(answers)
        _print_json({"answers": parsed.as_dict(), "unanswered": list(parsed.unanswered), **dataclasses.asdict(advice)})
    else:
        print(advice.text(), end="")
    return 0


# --- diagnose -----------------------------------------------------------------------


def _error_text(value: str) -> str:
    text = sys.stdin.read() if value == "-" else value
    if not text.strip():
        raise WorkbenchError("--error: no text to diagnose" + (" on stdin" if value == "-" else ""))
    return text


def cmd_diagnose(args: argparse.Namespace) -> int:
    from workbench.advise.diagnose import diagnose_run, diagnose_text

    if (args.run is None) == (args.error is None):
        raise WorkbenchError("diagnose needs a RUN (id, prefix, path or 'last') or --error TEXT, not both")
    data: dict[str, Any]
    if args.error is not None:
        config = None
        if args.config:
            from workbench.config import load_config

            config = load_config(args.config)
        found = diagnose_text(_error_text(args.error), config=config)
        head, data = "From the error text", {"source": "text"}
    else:
        if args.config:
            raise WorkbenchError("--config goes with --error; a run is diagnosed with its own config.yaml")
        from workbench.train.runner import find_run

        run = find_run(args.workspace, args.run)
        status = run.status()
        found = diagnose_run(run)
        head = f"Run {run.id} ({status.state} at step {status.step}/{status.total_steps or '?'})"
        data = {"source": "run", "run": run.id, "path": str(run.path), "state": status.state, "step": status.step}
    if args.json:
        _print_json({**data, "diagnoses": [d.to_dict() for d in found]})
        return 0
    if not found:
        print(f"{head}: nothing known to be wrong (no error, and the metrics look healthy)")
        return 0
    print(f"{head}: {len(found)} likely cause{'s' if len(found) != 1 else ''}, most confident first\n")
    print("\n\n".join(d.text() for d in found))
    return 0


# --- parser -------------------------------------------------------------------------


def add_advise_commands(subparsers: Any) -> None:
    """Add ``advise`` and ``diagnose`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "advise",
        help="should you fine-tune? seven questions give prompting, RAG, SFT (LoRA, QLoRA, full) or DPO",
        description="Answer the seven questions by flags; on a terminal the missing ones are asked.",
    )
    for q in QUESTIONS:
        options = ", ".join(f"{oid} ({label})" for oid, label in q.options)
        p.add_argument(
            _flag(q),
            type=_option_id,
            choices=q.option_ids,
            metavar="OPTION",
            help=f"{q.text} {options}",
        )
    p.add_argument(
        "--defaults", action="store_true", help="assume the default answer of each question not given (never ask)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_advise)

    p = subparsers.add_parser(
        "diagnose",
        help="why a run failed or trains badly, or what an error message means: the likely cause and the fix",
    )
    p.add_argument("run", nargs="?", help="run id, unique prefix, path, or 'last'")
    p.add_argument("--error", metavar="TEXT", help="diagnose this error message or log instead ('-' reads stdin)")
    p.add_argument("--config", metavar="CONFIG", help="with --error: the run config, so fixes name its values")
    p.add_argument(
        "-w", "--workspace", default=argparse.SUPPRESS, help="workspace directory (runs go in WORKSPACE/runs)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diagnose)
