"""``workbench merge RUN[/checkpoint-N]`` and ``workbench gguf MODEL_DIR``: ship a run's model without the app.

Thin shells over :func:`workbench.ship.merge.merge_model` and :func:`workbench.ship.gguf.export_gguf`
(the same calls the Models pane makes). Progress goes to stderr, so ``--json`` on stdout stays one
JSON object; a refusal (:class:`~workbench.errors.ShipError`) is printed as one ``error:`` line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

GGUF_TYPES = ("f16", "bf16", "q8_0", "q4_0")
"""What ``--type`` offers: :data:`workbench.ship.gguf.GGUF_TYPES` (kept here so the parser needs no import)."""


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _progress(args: argparse.Namespace) -> Any:
    return None if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


def cmd_merge(args: argparse.Namespace) -> int:
    from workbench.ship.merge import merge_model

    result = merge_model(
        args.workspace,
        args.model,
        Path(args.output) if args.output else None,
        dtype=args.dtype,
        overwrite=args.overwrite,
        progress=_progress(args),
    )
    if args.json:
        _print_json(result.to_dict())
        return 0
    where = f"run {result.run_id}" + (f", step {result.step}" if result.step is not None else "")
    print(f"merged {result.source} ({where}) into {result.base} in {result.dtype}")
    print(f"wrote {result.path} ({_mb(result.size_bytes)}) in {result.seconds:.1f} s")
    for note in result.notes:
        print(f"note: {note}")
    print(f"next: workbench gguf {result.path} --type q8_0")
    return 0


def cmd_gguf(args: argparse.Namespace) -> int:
    from workbench.ship.gguf import export_gguf

    result = export_gguf(
        Path(args.model_dir).expanduser(),
        Path(args.output).expanduser() if args.output else None,
        qtype=args.type,
        progress=_progress(args),
    )
    if args.json:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
        _print_json(data)
        return 0
    print(f"wrote {result.path} ({result.qtype}, {result.arch}, {_mb(result.size_bytes)}) in {result.seconds:.1f} s")
    print(f"wrote {result.modelfile}")
    print(f"next: ollama create NAME -f {result.modelfile}")
    return 0


def add_ship_commands(sub: Any) -> None:
    """Hang ``merge`` and ``gguf`` on the main parser's subparsers."""
    p = sub.add_parser(
        "merge",
        help="merge a run's adapter (or checkpoint) into its base: a safetensors model dir with a model card",
    )
    p.add_argument("model", help="RUN (its final adapter), RUN/final, RUN/checkpoint-N, RUN/ckpt-N, or a path")
    p.add_argument(
        "-o", "--output", help="the model directory to write (default: WORKSPACE/models/RUN[-ckpt-N]-merged)"
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="weights' dtype (auto: fp32 on a CPU, bf16 or fp16 on a GPU; never 4-bit)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the output directory if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("gguf", help="export a merged model directory to GGUF (llama.cpp, Ollama) with a Modelfile")
    p.add_argument("model_dir", help="a model directory (e.g. one `workbench merge` wrote)")
    p.add_argument("--type", default="q8_0", choices=GGUF_TYPES, help="tensor type (default q8_0)")
    p.add_argument("-o", "--output", help="the .gguf file to write (default: beside MODEL_DIR, NAME.TYPE.gguf)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gguf)
