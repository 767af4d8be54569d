"""A trained-looking run without training: a run directory whose adapter and checkpoints are real PEFT LoRA
adapters with random (non-zero) weights, so merging, exporting, chatting and serving change the model's answers.

Used by the merge, GGUF, chat, serve and Models-pane tests, on the tiny random model (milliseconds) or on the
bundled SmolLM2 (seconds).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"


def save_random_lora(base_dir: Path, out: Path, *, seed: int = 0, r: int = 8, scale: float = 1.0) -> Path:
    """A LoRA adapter on every linear layer of ``base_dir``'s model, with random A and B, saved to ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.mul_(scale)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


def fake_run(
    workspace: Path,
    base_dir: Path,
    *,
    name: str = "demo",
    steps: Sequence[int] = (4, 8),
    best: int | None = 4,
    model_spec: str | None = None,
    stamp: str = "20261203-114013",
) -> Path:
    """``workspace/runs/NAME-STAMP/``: config.yaml, a completed status.json, checkpoint-N/ for each step
    (complete: trainer_state.json) and adapter/ (a copy of the best checkpoint's weights, like load_best)."""
    run = workspace / "runs" / f"{name}-{stamp}"
    run.mkdir(parents=True)
    spec = model_spec or str(base_dir)
    config = {
        "name": name,
        "model": spec,
        "method": "sft",
        "finetune": "lora",
        "data": {"train": str(SUPPORT / "train.jsonl"), "val": str(SUPPORT / "val.jsonl")},
        "lora": {"r": 8, "alpha": 16, "target_modules": "all-linear"},
        "train": {"learning_rate": 0.001, "batch_size": 4, "max_steps": max(steps) if steps else 8},
        "eval": {"eval_steps": 4, "load_best": True},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    for i, step in enumerate(steps):
        ckpt = save_random_lora(base_dir, run / f"checkpoint-{step}", seed=i)
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    final_seed = list(steps).index(best) if best in steps else len(steps)
    save_random_lora(base_dir, run / "adapter", seed=final_seed)
    now = time.time()
    status = {
        "state": "completed",
        "name": name,
        "created": now - 60,
        "finished": now,
        "heartbeat": now,
        "step": max(steps) if steps else 0,
        "total_steps": max(steps) if steps else 0,
    }
    if best is not None:
        status["best_checkpoint"] = str(run / f"checkpoint-{best}")
    (run / "status.json").write_text(json.dumps(status))
    metrics = [{"step": s, "loss": 2.0 / (1 + s), "eval_loss": 1.5 + abs(s - (best or s)) * 0.1} for s in steps]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return run


@contextmanager
def serving(app) -> Iterator[str]:
    """An ASGI app on 127.0.0.1 at a free port (uvicorn in a thread); its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
