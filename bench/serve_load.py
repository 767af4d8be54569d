"""Serving under load: 8 concurrent clients against one client sending the same requests in turn.

One detached server (``workbench serve start``, our engine; the bundled SmolLM2-135M-Instruct unless
``--model`` names another) answers N chat requests of the sample task per side: the prompts of
sample_data/support/test.jsonl then val.jsonl (cycled), each with the task's system prompt, greedy,
``max_tokens`` fitting the task's answers (the longest reference answer's tokens plus a margin). The
sides alternate round by round (2 x clients prompts one at a time, then the same prompts from the
concurrent clients), so a neighbour's load on the machine falls on both alike. Printed: requests/s of
each side and their ratio (target >= 3), p50/p95 latency, errors, and whether every answered request
is in the server's requests.db (by the response id the client got). The server is stopped at the end.

    python bench/serve_load.py [--requests 200] [--clients 8] [--model base] [--workspace DIR] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from workbench.serve.log import RequestLog  # noqa: E402
from workbench.serve.servedir import KEY_ENV, ServeDir, start_server, stop_server  # noqa: E402

SUPPORT = ROOT / "sample_data" / "support"
TARGET = 3.0


def task_prompts() -> tuple[list[list[dict[str, str]]], list[str]]:
    """The sample task's prompts (system + user) and reference answers, test then val."""
    prompts, answers = [], []
    for name in ("test.jsonl", "val.jsonl"):
        for line in (SUPPORT / name).read_text(encoding="utf-8").splitlines():
            messages = json.loads(line)["messages"]
            prompts.append([m for m in messages if m["role"] != "assistant"])
            answers.append(next(m["content"] for m in messages if m["role"] == "assistant"))
    return prompts, answers


def answer_budget(model_dir: Path | None, answers: list[str]) -> int:
    """max_tokens for the task: the longest reference answer in the model's tokens, plus a quarter."""
    if model_dir is None:
        return 96
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    longest = max(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    return int(longest * 1.25) + 4


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Side:
    """The figures of one side (sequential or concurrent)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.wall = 0.0
        self.tokens = 0

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies)
        return {
            "requests": done + len(self.errors),
            "answered": done,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "seconds": round(self.wall, 2),
            "requests_per_s": round(done / self.wall, 3) if self.wall else None,
            "completion_tokens_per_s": round(self.tokens / self.wall, 1) if self.wall else None,
            "p50_latency_s": _round(percentile(self.latencies, 0.5)),
            "p95_latency_s": _round(percentile(self.latencies, 0.95)),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def ask(client: Any, model: str, messages: list[dict[str, str]], max_tokens: int, side: Side) -> None:
    start = time.perf_counter()
    try:
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0)
    except Exception as exc:
        side.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        return
    side.latencies.append(time.perf_counter() - start)
    side.ids.append(reply.id)
    side.tokens += reply.usage.completion_tokens if reply.usage else 0


def run_load(sd: ServeDir, n: int, clients: int, max_tokens: int) -> dict[str, Any]:
    from openai import OpenAI

    status = sd.status()
    model = status.raw["models"][0]
    client = OpenAI(base_url=f"{status.url}/v1", api_key=os.environ.get(KEY_ENV) or "none", max_retries=0, timeout=600)
    prompts, _ = task_prompts()
    todo = [prompts[i % len(prompts)] for i in range(n)]
    ask(client, model, todo[0], max_tokens, Side())  # warm-up, not counted
    sequential, concurrent = Side(), Side()
    step = 2 * clients
    with ThreadPoolExecutor(clients) as pool:
        for at in range(0, n, step):
            chunk = todo[at : at + step]
            start = time.perf_counter()
            for messages in chunk:
                ask(client, model, messages, max_tokens, sequential)
            sequential.wall += time.perf_counter() - start
            start = time.perf_counter()
            list(pool.map(lambda m: ask(client, model, m, max_tokens, concurrent), chunk))
            concurrent.wall += time.perf_counter() - start
            print(f"  {min(at + step, n)}/{n} per side", file=sys.stderr, flush=True)
    seq, con = sequential.summary(), concurrent.summary()
    ratio = con["requests_per_s"] / seq["requests_per_s"] if seq["requests_per_s"] and con["requests_per_s"] else None
    return {
        "model": model,
        "requests_per_side": n,
        "clients": clients,
        "max_tokens": max_tokens,
        "sequential": seq,
        "concurrent": con,
        "ratio": round(ratio, 2) if ratio else None,
        "target": TARGET,
        "target_met": bool(ratio and ratio >= TARGET and not seq["errors"] and not con["errors"]),
        "ids": sequential.ids + concurrent.ids,
    }


def check_log(sd: ServeDir, ids: list[str]) -> dict[str, Any]:
    """Whether every answered request is in requests.db, read as the monitor reads it."""
    log = RequestLog(sd.db_path, readonly=True)
    try:
        logged = log.recent(limit=1_000_000)
        count = log.count()
    finally:
        log.close()
    by_id = {r.id: r for r in logged}
    missing = [i for i in ids if i not in by_id]
    return {
        "logged": count,
        "answered_in_log": len(ids) - len(missing),
        "missing_from_log": len(missing),
        "every_request_logged": not missing,
        "logged_errors": sum(1 for r in logged if r.status != 200),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per side (default 200)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--model", default="base", help="what to serve (default: base, the bundled model)")
    parser.add_argument("--workspace", help="workspace the model name is resolved in (default: a fresh temp dir)")
    parser.add_argument("--max-tokens", type=int, help="default: fitted to the task's reference answers")
    parser.add_argument("--quick", action="store_true", help="16 requests per side")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    n = 16 if args.quick else args.requests
    for sig in (signal.SIGTERM, signal.SIGHUP):  # killed from outside: still stop the server (finally below)
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        workspace = Path(args.workspace) if args.workspace else Path(tmp)
        started = time.perf_counter()
        sd = start_server(workspace, [args.model], wait=600)
        try:
            startup = time.perf_counter() - started
            if sd.status().state != "running":
                print(f"server {sd.id} is still {sd.status().state} after 600 s", file=sys.stderr)
                return 1
            ref = sd.spec().refs[0]
            from workbench.models import resolve_model

            base_dir = resolve_model(ref.base_model or ref.path).path if ref.kind == "base" else None
            max_tokens = args.max_tokens or answer_budget(base_dir, task_prompts()[1])
            print(f"serving {args.model} at {sd.status().url} ({startup:.1f} s to start)", file=sys.stderr)
            result = run_load(sd, n, args.clients, max_tokens)
        finally:
            final = stop_server(sd, timeout=60) if sd.status().state in ("loading", "running") else sd.status().state
        result.update(check_log(sd, result.pop("ids")), server=sd.id, startup_s=round(startup, 1), final_state=final)
        result["target_met"] = result["target_met"] and result["every_request_logged"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"serve load: {result['model']}, {n} requests per side, {args.clients} clients, max_tokens {max_tokens}")
    for name in ("sequential", "concurrent"):
        s = result[name]
        print(
            f"  {name:<11} {s['requests_per_s']:>7} req/s  {s['completion_tokens_per_s']:>7} tok/s  "
            f"p50 {s['p50_latency_s']} s  p95 {s['p95_latency_s']} s  errors {s['errors']}"
        )
    print(f"  ratio {result['ratio']}x (target >= {TARGET}x): {'met' if result['target_met'] else 'NOT met'}")
    print(
        f"  request log: {result['logged']} rows, {result['answered_in_log']}/{2 * n} answered requests found "
        f"({'all' if result['every_request_logged'] else 'MISSING some'}); server {result['final_state']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
