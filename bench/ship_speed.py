"""Shipping the bundled model: merge time, GGUF export time per type, and file sizes against the safetensors.

A run directory like a trained one (tests/shipkit.py's ``fake_run``: real random LoRA adapters on the bundled
SmolLM2-135M-Instruct) in a temporary workspace; its adapter merged with ``workbench.ship.merge.merge_model``
(reported "not available" when that module is missing, and the bundled model itself exported instead); then
the merged directory exported to GGUF once per type with ``workbench.ship.gguf.export_gguf``. The baseline
for sizes is the safetensors weights of the exported directory.

    python bench/ship_speed.py [--types f16,bf16,q8_0,q4_0] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from workbench.ship.gguf import GGUF_TYPES, export_gguf  # noqa: E402


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _safetensors_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))


def merge_step(workspace: Path, base_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Merge a fake run's adapter; the directory to export and the merge's figures (or why there are none)."""
    if importlib.util.find_spec("workbench.ship.merge") is None:
        return base_dir, {"available": False, "note": "workbench/ship/merge.py not available: the base is exported"}
    from shipkit import fake_run

    from workbench.ship.merge import merge_model

    run = fake_run(workspace, base_dir, steps=(4,), best=4)
    t0 = time.perf_counter()
    result = merge_model(workspace, f"{run.name}/adapter")
    seconds = time.perf_counter() - t0
    return result.path, {
        "available": True,
        "seconds": round(seconds, 2),
        "dtype": result.dtype,
        "size_bytes": result.size_bytes,
        "path": str(result.path),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default=",".join(GGUF_TYPES), help="GGUF types to export (comma-separated)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the two-core target)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    import torch

    from workbench.models import bundled_model_dir

    torch.set_num_threads(args.threads)
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    base_dir = bundled_model_dir()
    report: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct (bundled)",
        "threads": args.threads,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="ship-speed-") as tmp:
        workspace = Path(tmp)
        source, report["merge"] = merge_step(workspace, base_dir)
        baseline = _safetensors_bytes(source)
        report["safetensors_bytes"] = baseline
        report["gguf"] = {}
        for qtype in types:
            result = export_gguf(source, workspace / "models" / f"bench.{qtype}.gguf", qtype=qtype)
            report["gguf"][qtype] = {
                "seconds": round(result.seconds, 2),
                "size_bytes": result.size_bytes,
                "ratio_to_safetensors": round(result.size_bytes / baseline, 3),
                "tensor_types": result.tensor_types,
                "fallbacks": result.fallbacks,
            }
            result.path.unlink()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['model']}, {args.threads} torch threads, {report['cpus']} CPUs")
    merge = report["merge"]
    if merge["available"]:
        print(
            f"  merge (adapter -> {merge['dtype']} safetensors)  {merge['seconds']:7.2f} s  {_mib(merge['size_bytes'])}"
        )
    else:
        print(f"  merge: {merge['note']}")
    print(f"  baseline: safetensors weights          {_mib(baseline)}")
    for qtype, figures in report["gguf"].items():
        print(
            f"  gguf {qtype:5}  {figures['seconds']:7.2f} s  {_mib(figures['size_bytes']):>10}"
            f"  x{figures['ratio_to_safetensors']:.3f} of the safetensors  {figures['tensor_types']}"
        )


if __name__ == "__main__":
    main()
