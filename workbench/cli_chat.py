"""``workbench chat MODEL [MODEL2]``: the chat playground in a plain terminal.

A read-answer loop over :class:`workbench.chat.ChatSession`: each line typed is sent to the
model(s); one model's answer streams straight to stdout; with two, the first one's streams live and
the second's is printed whole under its name when it is done (two streams interleaved word by word
read as noise). Lines starting with ``/`` are commands (``/help``). It reads stdin line by line, so
a pipe works too: it answers each line and exits at the end of the input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from workbench.chat import ChatSession, make_settings, parse_expect
from workbench.errors import WorkbenchError
from workbench.eval.store import GenerationSettings

HELP = """commands:
  /save DATASET [MODEL]        keep the conversation as a pending example of DATASET (review it in the Data pane)
  /case SUITE [MODEL] [JSON]   keep it as a regression case of SUITE (.jsonl); JSON is the expectation,
                               e.g. {"must_contain": "refund"}; without it the answer must be contained
  /system [TEXT]               set the system prompt (no text: none)
  /temp T   /max N   /top_p P   /seed S   generation settings for the next answers
  /reset                       start the conversation again
  /models   /settings          what is loaded, the settings in use
  /help   /quit                (ctrl-D quits too)
MODEL is a model's name or its number (1, 2); the first model when left out."""

SETTING_COMMANDS = {"/temp": "temperature", "/max": "max_new_tokens", "/top_p": "top_p", "/seed": "seed"}


def add_chat_commands(sub: Any) -> None:
    """Hang ``chat`` on the main parser's subparsers."""
    p = sub.add_parser(
        "chat",
        help="chat with one or two models (base, RUN/adapter, RUN/ckpt-N, a merged model's path) in the terminal",
    )
    p.add_argument(
        "models", nargs="+", metavar="MODEL", help="one or two models: base, RUN/adapter, RUN/ckpt-N, a path"
    )
    p.add_argument("--system", help="the system prompt (default: the one the run's training data used)")
    p.add_argument("--no-system", action="store_true", help="no system prompt at all")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); above 0: sample")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=256, help="stop each answer after this many new tokens")
    p.add_argument("--seed", type=int, help="seed of sampling (given: each answer is reproducible, generated alone)")
    p.set_defaults(func=cmd_chat)


def cmd_chat(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    if len(args.models) > 2:
        raise WorkbenchError(f"chat compares at most two models, got {len(args.models)}: {' '.join(args.models)}")
    chosen = dict(max_new_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed)
    settings = make_settings(**{k: v for k, v in chosen.items() if v is not None})
    print(f"loading {' and '.join(args.models)} …", file=sys.stderr, flush=True)
    system = "" if args.no_system else args.system
    with ChatSession(args.workspace, args.models, system_prompt=system, settings=settings) as session:
        _banner(session, out)
        Repl(session, Path(args.workspace), stdin, out).loop()
    return 0


def _banner(session: ChatSession, out: TextIO) -> None:
    names = "  ".join(f"[{i}] {m}" for i, m in enumerate(session.models, 1))
    out.write(f"chatting with {names}\n")
    out.write(f"system prompt: {_clip(session.system_prompt) if session.system_prompt else '(none)'}\n")
    out.write(f"{_settings_line(session.settings)}   /help for commands, ctrl-D quits\n")
    out.flush()


def _settings_line(s: GenerationSettings) -> str:
    how = "greedy" if s.greedy else f"temperature {s.temperature:g}, top_p {s.top_p:g}, seed {s.seed}"
    return f"{how}, at most {s.max_new_tokens} new tokens"


def _clip(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Repl:
    """The loop: read a line, run a command or send it, print the answers."""

    def __init__(self, session: ChatSession, workspace: Path, stdin: TextIO, out: TextIO) -> None:
        self.session, self.workspace, self.stdin, self.out = session, workspace, stdin, out
        self.tty = _isatty(stdin) and _isatty(out)

    def loop(self) -> None:
        while True:
            line = self._read()
            if line is None:
                return
            text = line.strip()
            if not text:
                continue
            try:
                if text.startswith("/"):
                    if self.command(text) == "quit":
                        return
                else:
                    self.answer(line.rstrip("\n"))
            except WorkbenchError as err:
                print(f"error: {err}", file=sys.stderr, flush=True)
            except KeyboardInterrupt:
                self.out.write("\n(interrupted: that turn is not kept)\n")

    def _read(self) -> str | None:
        if self.tty:
            try:
                return input("you> ")
            except EOFError:
                self.out.write("\n")
                return None
            except KeyboardInterrupt:
                self.out.write("\n")
                return None
        line = self.stdin.readline()
        return line if line else None

    def answer(self, text: str) -> None:
        session, out = self.session, self.out
        live = session.models[0]
        held: dict[str, str] = {m: "" for m in session.models[1:]}
        two = len(session.models) > 1
        out.write(f"── {live} ──\n" if two else "")
        done = {}
        stream = session.send(text)
        try:
            for delta in stream:
                if delta.done:
                    done[delta.model] = delta.completion
                    if delta.model == live:
                        out.write("\n" + _footer(delta.completion) + "\n")
                elif delta.model == live:
                    out.write(delta.text)
                else:
                    held[delta.model] += delta.text
                out.flush()
        finally:  # ctrl-C: the answers still being generated are cancelled
            stream.close()
        for model, answer in held.items():
            out.write(f"── {model} ──\n{answer}\n{_footer(done.get(model))}\n")
        out.write("\n")
        out.flush()

    def command(self, text: str) -> str | None:
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        session, out = self.session, self.out
        if name in ("/quit", "/exit", "/q"):
            return "quit"
        if name == "/help":
            out.write(HELP + "\n")
        elif name == "/reset":
            session.reset()
            out.write("conversation cleared\n")
        elif name == "/system":
            session.system_prompt = rest or None
            out.write(f"system prompt: {_clip(rest) if rest else '(none)'}\n")
        elif name in SETTING_COMMANDS:
            if not rest:
                raise WorkbenchError(
                    f"{name} needs a value, e.g. {name} {'0.7' if name in ('/temp', '/top_p') else 64}"
                )
            session.set_settings(**{SETTING_COMMANDS[name]: rest})
            out.write(_settings_line(session.settings) + "\n")
        elif name == "/settings":
            out.write(_settings_line(session.settings) + "\n")
        elif name == "/models":
            out.write("  ".join(f"[{i}] {m}" for i, m in enumerate(session.models, 1)) + "\n")
        elif name == "/save":
            self.save(rest)
        elif name == "/case":
            self.case(rest)
        else:
            raise WorkbenchError(f"unknown command {name!r}; /help lists them")
        out.flush()
        return None

    def save(self, rest: str) -> None:
        parts = rest.split()
        if not parts or len(parts) > 2:
            raise WorkbenchError("usage: /save DATASET [MODEL]")
        path, model = self._path(parts[0]), self._model(parts[1] if len(parts) > 1 else None)
        index = self.session.save_as_example(path, model)
        self.out.write(
            f"saved {model}'s conversation as example {index} of {path} (pending: review it in the Data pane)\n"
        )

    def case(self, rest: str) -> None:
        head, brace, tail = rest.partition("{")
        parts = head.split()
        if not parts or len(parts) > 2:
            raise WorkbenchError('usage: /case SUITE [MODEL] [{"must_contain": "..."}]')
        path, model = self._path(parts[0]), self._model(parts[1] if len(parts) > 1 else None)
        expect = parse_expect(brace + tail, self.session.last_answer(model))
        case_id = self.session.save_as_case(path, model, expect)
        self.out.write(f"saved case {case_id} to {path} (expect {json.dumps(expect, ensure_ascii=False)[:80]})\n")

    def _path(self, text: str) -> Path:
        path = Path(text).expanduser()
        if not path.is_absolute() and not path.exists() and (self.workspace / path).parent.is_dir():
            return self.workspace / path
        return path

    def _model(self, text: str | None) -> str:
        models = self.session.models
        if text is None:
            return models[0]
        if text.isdigit() and 1 <= int(text) <= len(models):
            return models[int(text) - 1]
        if text in models:
            return text
        raise WorkbenchError(f"no model {text!r} in this chat; name one of {', '.join(models)} or its number")


def _footer(completion: Any) -> str:
    if completion is None:
        return ""
    end = "stopped" if completion.finish_reason == "stop" else "cut at the token limit"
    return f"   [{completion.completion_tokens} tokens · {completion.seconds:.1f} s · {end}]"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
