"""Training throughput: the workbench's worker against a plain TRL script.

Both train the same LoRA config on the same examples in this one process,
alternating (plain, workbench, plain, workbench, ...) so drift in the machine
hits both alike. The workbench side is the real worker (`run_worker`): its
telemetry thread, metrics callback, status heartbeats and detector included.
Prints tokens/s of each and the ratio workbench/plain (target: >= 0.98).

    python bench/train_overhead.py [--steps 12] [--repeats 3] [--model bundled]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN = ROOT / "sample_data" / "support" / "train.jsonl"


def plain_trl(model_dir: Path, rows: list[dict], a: argparse.Namespace, out: Path) -> tuple[float, int]:
    """The baseline: the few lines anyone would write with TRL and PEFT."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    args = SFTConfig(
        output_dir=str(out),
        max_steps=a.steps,
        per_device_train_batch_size=a.batch,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        max_length=a.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        activation_checkpointing=False,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),
        seed=42,
        data_seed=42,
        optim="adamw_torch",
    )
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft)
    result = trainer.train()
    return result.metrics["train_runtime"], trainer.state.num_input_tokens_seen


def workbench(model_dir: Path, a: argparse.Namespace, out: Path) -> tuple[float, int]:
    """The same config through the workbench's real worker, in this process."""
    from workbench.config import RunConfig, dump_config
    from workbench.train.rundir import RunDir
    from workbench.train.worker import run_worker

    config = RunConfig.model_validate(
        {
            "name": "bench",
            "model": str(model_dir),
            "data": {"train": str(TRAIN), "val_ratio": 0.0, "max_train_examples": a.examples},
            "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
            "train": {
                "learning_rate": 2e-4,
                "batch_size": a.batch,
                "max_steps": a.steps,
                "max_length": a.max_length,
                "lr_scheduler": "cosine",
                "warmup_ratio": 0.05,
                "optimizer": "adamw_torch",
            },
            "eval": {"logging_steps": 1, "save_steps": a.steps * 10, "load_best": False},
        }
    )
    run = RunDir(out)
    run.path.mkdir(parents=True)
    run.config_path.write_text(dump_config(config))
    run.write_status({"state": "starting", "created": time.time()})
    assert run_worker(run) == "completed", run.read_status_raw().get("error")
    records = run.metrics()
    summary = next(r for r in records if r["type"] == "summary")
    tokens = max(r.get("tokens_seen", 0) for r in records if r["type"] == "train")
    return summary["train_runtime_s"], tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    a.examples = a.steps * a.batch

    from transformers.utils import logging as hf_logging

    from workbench.models import resolve_model

    hf_logging.set_verbosity_error()
    model_dir = resolve_model(a.model).path
    rows = [json.loads(line) for line in TRAIN.read_text().splitlines()[: a.examples]]
    rates: dict[str, list[float]] = {"plain": [], "workbench": []}
    with tempfile.TemporaryDirectory() as tmp:
        plain_trl(model_dir, rows[: a.batch * 2], argparse.Namespace(**{**vars(a), "steps": 2}), Path(tmp) / "warm")
        for i in range(a.repeats):
            for name in ("plain", "workbench") if i % 2 == 0 else ("workbench", "plain"):
                out = Path(tmp) / f"{name}-{i}"
                runtime, tokens = (
                    plain_trl(model_dir, rows, a, out) if name == "plain" else workbench(model_dir, a, out)
                )
                rates[name].append(tokens / runtime)
                print(
                    f"  repeat {i + 1} {name:<9} {tokens} tokens in {runtime:6.2f} s = {tokens / runtime:8.1f} tokens/s",
                    file=sys.stderr,
                )
    plain, wb = statistics.median(rates["plain"]), statistics.median(rates["workbench"])
    result = {
        "model": a.model,
        "steps": a.steps,
        "batch": a.batch,
        "repeats": a.repeats,
        "plain_tokens_per_s": round(plain, 1),
        "workbench_tokens_per_s": round(wb, 1),
        "ratio": round(wb / plain, 4),
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"plain TRL  {plain:9.1f} tokens/s (median of {a.repeats})")
        print(f"workbench  {wb:9.1f} tokens/s (median of {a.repeats})")
        print(f"ratio      {wb / plain:9.4f}  (target >= 0.98)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
