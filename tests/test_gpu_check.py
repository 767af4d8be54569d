"""bench/gpu_check.sh: without a GPU it says so and exits 0; --cpu-smoke runs its plumbing end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _has_gpu() -> bool:
    detect = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--detect"], capture_output=True, timeout=60
    )
    return detect.returncode == 0


def _run(tmp_path: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out"), "TMPDIR": str(tmp_path)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=str(tmp_path)
    )


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    if _has_gpu():
        pytest.skip("this machine has a GPU: the check would run for real")
    done = _run(tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no NVIDIA GPU" in done.stdout
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["result"] == "no GPU"
    assert not list(tmp_path.glob("gpu-check.*")), "no workspace is made without a GPU"


def test_nvml_checks_on_samples():
    gc = _module()
    gpu = {"index": 0, "name": "NVIDIA H200", "util_percent": 87, "mem_used_gb": 3.2, "mem_total_gb": 139.8}
    gpu |= {"temp_c": 41, "power_w": 210.5}
    samples = [{"time": 100.0 + i, "cpu_percent": 50.0, "gpus": [dict(gpu)]} for i in range(5)]
    status = {"train_started": 100.5, "ended": 104.0}
    ok = gc._nvml_checks(samples, status, "gpu")
    assert ok["status"] == "ok", ok
    assert ok["samples_while_training"] == 4 and ok["figures"]["util_max"] == 87
    samples[2]["gpus"][0]["temp_c"] = 300
    del samples[3]["gpus"][0]["power_w"]
    bad = gc._nvml_checks(samples, status, "gpu")
    assert bad["status"] == "failed"
    assert "temp_c within 5-105 C" in bad["error"] and "power_w in every GPU record" in bad["error"]
    none = gc._nvml_checks([{"time": 101.0, "cpu_percent": 1.0}], status, "gpu")
    assert none["status"] == "failed" and "every sample has gpus" in none["error"]


def test_slim_bnb_drops_libraries_and_their_record_lines(tmp_path):
    gc = _module()
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    names = [
        "bitsandbytes/__init__.py",
        *(f"bitsandbytes/libbitsandbytes_{v}.so" for v in ("cpu", "cuda118", "cuda130")),
    ]
    with zipfile.ZipFile(wheel, "w") as z:
        for name in names:
            z.writestr(name, "x" * 1000)
        z.writestr("bitsandbytes-0.50.2.dist-info/RECORD", "".join(f"{n},sha256=x,1000\n" for n in names))
    gc.slim_bnb(wheel)
    with zipfile.ZipFile(wheel) as z:
        kept = set(z.namelist())
        record = z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    assert "bitsandbytes/libbitsandbytes_cuda118.so" not in kept and "cuda118" not in record
    assert {"bitsandbytes/libbitsandbytes_cpu.so", "bitsandbytes/libbitsandbytes_cuda130.so"} <= kept
    assert "cuda130" in record and "__init__.py" in record


def test_older():
    gc = _module()
    assert gc._older("4.15.0", "4.16.0") and not gc._older("4.16.0", "4.16.0") and not gc._older("2.11.0+cu130", "2.4")


@pytest.mark.slow
def test_cpu_smoke_runs_the_lora_part_end_to_end(tmp_path):
    """The model part and a real detached LoRA run of 2 steps on the CPU (about a minute on two cores)."""
    done = _run(tmp_path, "--cpu-smoke", "--parts", "lora", timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    parts = report["parts"]
    assert parts["model"]["status"] == "ok" and parts["model"]["params"] > 100e6
    lora = parts["lora"]
    assert lora["status"] == "ok", lora
    assert lora["state"] == "completed" and lora["final_loss"] > 0 and lora["tokens_per_s"] > 0
    assert lora["system"]["samples"] >= 1 and lora["system"]["cpu_fields_in_every_sample"]
    assert parts["nvml"]["status"] == "skipped" and "needs CUDA" in parts["nvml"]["error"]
    assert "cpu-smoke" in done.stdout and (tmp_path / "out" / "gpu_check.txt").is_file()


def test_the_ddp_part_is_skipped_below_two_gpus_and_says_why(tmp_path):
    import argparse

    import torch

    gc = _module()
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has two GPUs: the part would measure for real")
    args = argparse.Namespace(part="ddp", cpu_smoke=True, workspace=str(tmp_path), model="auto")
    assert gc.part_main(args) == 0
    result = json.loads((tmp_path / "parts" / "ddp" / "result.json").read_text())
    assert result["status"] == "skipped"
    assert result["error"] == f"needs 2 GPUs or more ({torch.cuda.device_count()} visible): no DDP scaling to measure"
    measured = {"status": "ok", "steps": 40, "batch": 16, "scaling": 1.9, "efficiency": 0.95}
    measured |= {"gpus_1": {"samples_per_s": 100.0}, "gpus_2": {"samples_per_s": 190.0}}
    line = gc._describe("ddp", measured)
    assert "1 GPU 100.0 samples/s, 2 GPUs (DDP) 190.0 samples/s: scaling 1.90x of 2 (95% efficiency)" in line
