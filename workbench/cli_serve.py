"""``workbench serve start|list|stop|logs``: detached OpenAI-compatible servers (``serves/<id>/``).

Thin shells over :mod:`workbench.serve.servedir`: ``start`` returns once the server answers (or
failed, with its log's last lines), and the server goes on after the terminal closes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import Any

from workbench.fmt import age


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def usage_examples(url: str, model: str, *, key_required: bool) -> str:
    """A curl line and an openai-client snippet that call the server as started."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    auth = ' -H "Authorization: Bearer $WORKBENCH_SERVE_KEY"' if key_required else ""
    key = 'os.environ["WORKBENCH_SERVE_KEY"]' if key_required else '"none"'
    return (
        f"curl -s {url}/v1/chat/completions -H 'Content-Type: application/json'{auth} -d {shlex.quote(body)}\n\n"
        "import os\n"
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="{url}/v1", api_key={key})\n'
        f'reply = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hello!"}}])\n'
        "print(reply.choices[0].message.content)"
    )


def cmd_serve_start(args: argparse.Namespace) -> int:
    from workbench.serve.servedir import start_server

    sd = start_server(args.workspace, args.models, host=args.host, port=args.port, engine=args.engine, wait=args.wait)
    status = sd.status()
    spec = sd.spec()
    models = status.raw.get("models") or spec.models
    if args.json:
        _print_json({"id": sd.id, "path": str(sd.path), "state": status.state, "url": status.url, "models": models})
        return 0
    if status.state != "running":
        print(sd.id)
        print(
            f"{sd.id}: still {status.state} after {args.wait:g}s; it goes on in the background. "
            f"Watch it: workbench serve list; its log: workbench serve logs {sd.id}",
            file=sys.stderr,
        )
        return 0
    print(sd.id)
    print(f"url:    {status.url}/v1  ({spec.engine} engine, pid {status.pid})")
    print(f"models: {', '.join(models)}")
    print(f"stop:   workbench serve stop {sd.id}")
    print()
    print(usage_examples(str(status.url), models[0], key_required=spec.key_required))
    return 0


def cmd_serve_list(args: argparse.Namespace) -> int:
    from workbench.serve.servedir import list_servers
    from workbench.workspace import Workspace

    servers = list_servers(args.workspace)
    if args.json:
        _print_json([s.to_dict() for s in servers])
        return 0
    if not servers:
        print(f"no servers in {Workspace(args.workspace).serves_dir} (start one: workbench serve start MODEL)")
        return 0
    w = max(6, *(len(s.id) for s in servers))
    u = max(3, *(len(s.url or "-") for s in servers))
    print(f"{'SERVER':<{w}} {'STATE':<9} {'URL':<{u}} {'REQS':>5} {'AGE':>5}  MODELS")
    for s in servers:
        requests = "-" if s.requests is None else str(s.requests)
        note = f"  ({s.error.splitlines()[0][:60]})" if s.error and s.state == "failed" else ""
        print(
            f"{s.id:<{w}} {s.state:<9} {s.url or '-':<{u}} {requests:>5} {age(s.age_s):>5}  {', '.join(s.models)}{note}"
        )
    return 0


def cmd_serve_stop(args: argparse.Namespace) -> int:
    from workbench.serve.servedir import LIVE_STATES, ServeDir, find_server, list_servers, stop_server

    if args.server == "all":
        targets = [ServeDir(s.path) for s in list_servers(args.workspace) if s.state in LIVE_STATES]
        if not targets:
            print("no server is running")
            return 0
    else:
        targets = [find_server(args.workspace, args.server)]
    for sd in targets:
        state = stop_server(sd, timeout=args.wait)
        print(f"{sd.id}: {state}" + (" (it finishes the answers in flight)" if state == "stopping" else ""))
    return 0


def cmd_serve_logs(args: argparse.Namespace) -> int:
    from workbench.serve.servedir import LIVE_STATES, find_server
    from workbench.train.rundir import LogTail

    sd = find_server(args.workspace, args.server)
    if not args.follow:
        lines = sd.log_tail(args.lines) if args.lines else sd.log_tail(10**9)
        print("\n".join(lines) if lines else f"(no serve.log yet in {sd.path})")
        return 0
    tail = LogTail(sd.log_path)
    try:
        while True:
            for line in tail.read_new():
                print(line, flush=True)
            if sd.status().state not in LIVE_STATES:
                for line in tail.read_new():
                    print(line, flush=True)
                print(f"[{sd.id}: {sd.status().state}]")
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def add_serve_commands(sub: Any) -> None:
    """Hang ``serve`` and its commands on the main parser's subparsers."""
    serve = sub.add_parser("serve", help="OpenAI-compatible servers, detached (start, list, stop, logs)")
    cmds = serve.add_subparsers(dest="serve_command", required=True)

    p = cmds.add_parser("start", help="serve models (one base and its adapters) in the background")
    p.add_argument("models", nargs="+", metavar="MODEL", help="base, RUN/adapter, RUN/ckpt-N, a merged model's path")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need WORKBENCH_SERVE_KEY)"
    )
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument(
        "--engine",
        choices=["workbench", "vllm"],
        default="workbench",
        help="workbench: ours, CPU and small GPUs (default); vllm: vllm serve, on a GPU server",
    )
    p.add_argument("--wait", type=float, default=120.0, help="seconds to wait for it to answer (0: return at once)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_serve_start)

    p = cmds.add_parser("list", help="the workspace's servers: state, url, models, requests, age")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_serve_list)

    p = cmds.add_parser("stop", help="stop a server gracefully (answers in flight finish)")
    p.add_argument("server", metavar="ID|all", help="a server id, unique prefix, 'last', or 'all'")
    p.add_argument("--wait", type=float, default=15.0, help="seconds to wait for it to stop")
    p.set_defaults(func=cmd_serve_stop)

    p = cmds.add_parser("logs", help="a server's serve.log")
    p.add_argument("server", metavar="ID", help="a server id, unique prefix or 'last'")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the server stops")
    p.add_argument("-n", "--lines", type=int, default=0, help="only the last N lines")
    p.set_defaults(func=cmd_serve_logs)


__all__ = ["add_serve_commands", "usage_examples"]
