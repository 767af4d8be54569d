"""Training speed: the workbench's worker against the plain TRL script a user would run instead.

Three contestants train the same model on the same examples (steps × batch
of the sample set, one epoch, LoRA r 16 on every linear layer), in this one
process, their order rotated each repeat so drift in the machine hits all
alike:

- ``workbench``: the real worker (`run_worker`) with the workbench's
  defaults: ``precision: auto``, ``padding_free: auto``, ``group_by_length:
  auto``, no activation checkpointing; its telemetry thread, metrics
  callback, status heartbeats and detector included.
- ``plain_same``: the few lines anyone writes with TRL and PEFT, given the
  very settings the workbench resolved to (precision, batching,
  checkpointing): what the workbench itself costs.
- ``trl_defaults``: the same few lines with TRL's defaults: the model path
  handed to ``SFTTrainer`` (TRL loads it in fp32), ``bf16`` autocast where
  the device allows, activation checkpointing on, shuffled padded batches.
  Only what the comparison needs is set: steps, batch, LoRA, no saving.

Ratios of means over ``--repeats`` (each repeat rotates the order, so each
contestant runs in each position equally often and the position effects,
±5% here, cancel in the mean; the medians are in the JSON too):

- ``ratio_same_settings``: workbench / plain_same tokens/s (target >= 0.98);
- ``ratio_vs_trl_defaults``: workbench / trl_defaults optimizer steps/s, i.e.
  the time to train the same examples (target >= 1.0);
- ``effective_tokens_ratio``: workbench / trl_defaults non-padding tokens/s
  (target >= 1.3). With the same examples and steps it tracks the previous
  ratio; the two part when a default packs (a step then holds more examples).

Also printed: the padding share of each side's batches, counted from the
tokenized examples with the batching each used.

    python bench/train_overhead.py [--steps 10] [--repeats 3] [--batch 4] [--model bundled] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAIN = ROOT / "sample_data" / "support" / "train.jsonl"
CONTESTANTS = ("workbench", "plain_same", "trl_defaults")
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}


def workbench_config(model_dir: Path, a: argparse.Namespace) -> Any:
    """The workbench's defaults, with only the model, data, batch and steps of the comparison set."""
    from workbench.config import RunConfig

    return RunConfig.model_validate(
        {
            "name": "bench",
            "model": str(model_dir),
            "data": {"train": str(TRAIN), "val_ratio": 0.0, "max_train_examples": a.steps * a.batch},
            "train": {"batch_size": a.batch, "max_steps": a.steps, "max_length": a.max_length},
            "eval": {"logging_steps": 1, "save_steps": a.steps * 10, "load_best": False},
        }
    )


def plain_trl(model_dir: Path, rows: list[dict], a: argparse.Namespace, out: Path, same: dict | None) -> dict:
    """The baseline script; ``same`` holds the workbench's resolved settings, None for TRL's defaults."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    kwargs: dict[str, Any] = {
        "output_dir": str(out),
        "max_steps": a.steps,
        "per_device_train_batch_size": a.batch,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",
        "use_cpu": not torch.cuda.is_available(),  # TRL's bf16 default refuses a CPU without it
        "seed": 42,
    }
    model: Any = str(model_dir)
    if same is not None:
        kwargs.update(
            same["flags"],
            learning_rate=2e-4,
            lr_scheduler_type="cosine",
            warmup_steps=0.05,
            max_length=a.max_length if not same["padding_free"] else None,
            padding_free=same["padding_free"],
            train_sampling_strategy="group_by_length" if same["group_by_length"] else "random",
            activation_checkpointing=False,
            logging_steps=1,
            data_seed=42,
            optim="adamw_torch",  # the workbench's default (transformers' is the fused kernel)
        )
        load: dict[str, Any] = {"dtype": getattr(torch, same["weights"])}
        if same["attention"]:
            load["attn_implementation"] = same["attention"]
        model = AutoModelForCausalLM.from_pretrained(model_dir, **load)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**kwargs),
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(**LORA),
    )
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    result = trainer.train()
    return {
        "runtime": result.metrics["train_runtime"],
        "steps": trainer.state.global_step,
        "tokens": trainer.state.num_input_tokens_seen,
        "lengths": lengths,
    }


def workbench(model_dir: Path, a: argparse.Namespace, out: Path) -> dict:
    """The comparison's config through the workbench's real worker, in this process."""
    from workbench.config import dump_config
    from workbench.train.rundir import RunDir
    from workbench.train.worker import run_worker

    run = RunDir(out)
    run.path.mkdir(parents=True)
    run.config_path.write_text(dump_config(workbench_config(model_dir, a)))
    run.write_status({"state": "starting", "created": time.time()})
    with contextlib.redirect_stdout(sys.stderr):  # the worker's log lines; stdout is for --json
        state = run_worker(run)
    assert state == "completed", run.read_status_raw().get("error")
    records = run.metrics()
    summary = next(r for r in records if r["type"] == "summary")
    return {
        "runtime": summary["train_runtime_s"],
        "steps": run.read_status_raw()["step"],
        "tokens": max(r.get("tokens_seen", 0) for r in records if r["type"] == "train"),
    }


def resolved(model_dir: Path, a: argparse.Namespace) -> dict:
    """What the workbench's defaults resolve to on this machine, for the plain script to copy."""
    import torch
    from transformers import AutoConfig

    from workbench.config.batching import plan_batching, worker_attention
    from workbench.config.precision import machine_plan

    plan = machine_plan("auto")
    attention = worker_attention(torch.cuda.is_available(), plan.precision != "fp32")
    default = getattr(AutoConfig.from_pretrained(model_dir), "_attn_implementation", None) or "sdpa"
    batching = plan_batching(workbench_config(model_dir, a), attention or default)
    return {
        "precision": plan.label,
        "weights": plan.weights,
        "flags": plan.flags,
        "attention": attention,
        "batches": batching.label,
        "padding_free": batching.padding_free,
        "group_by_length": batching.group_by_length,
    }


def measure(model_dir: Path, a: argparse.Namespace, log: Any = print) -> dict:
    """All three contestants, ``a.repeats`` times each in rotated order; the medians and ratios."""
    from workbench.config.batching import BatchingPlan, padding_share

    rows = [json.loads(line) for line in TRAIN.read_text().splitlines()[: a.steps * a.batch]]
    same = resolved(model_dir, a)
    runs: dict[str, list[dict]] = {name: [] for name in CONTESTANTS}
    with tempfile.TemporaryDirectory() as tmp:
        warm = argparse.Namespace(**{**vars(a), "steps": 2})
        plain_trl(model_dir, rows[: a.batch * 2], warm, Path(tmp) / "warm", same)
        for i in range(a.repeats):
            order = CONTESTANTS[i % 3 :] + CONTESTANTS[: i % 3]
            for name in order:
                out = Path(tmp) / f"{name}-{i}"
                if name == "workbench":
                    got = workbench(model_dir, a, out)
                else:
                    got = plain_trl(model_dir, rows, a, out, same if name == "plain_same" else None)
                runs[name].append(got)
                log(
                    f"  repeat {i + 1} {name:<12} {got['tokens']} tokens, {got['steps']} steps in "
                    f"{got['runtime']:6.2f} s = {got['tokens'] / got['runtime']:8.1f} tokens/s"
                )

    def rates(name: str, key: str) -> list[float]:
        return [r[key] / r["runtime"] for r in runs[name]]

    lengths = runs["trl_defaults"][0]["lengths"]
    ours = BatchingPlan(False, same["padding_free"], same["group_by_length"], "")
    tokens = {name: statistics.mean(rates(name, "tokens")) for name in CONTESTANTS}
    steps = {name: statistics.mean(rates(name, "steps")) for name in CONTESTANTS}
    medians = {name: statistics.median(rates(name, "tokens")) for name in CONTESTANTS}
    return {
        "model": a.model,
        "steps": a.steps,
        "batch": a.batch,
        "repeats": a.repeats,
        "workbench_resolved": {k: same[k] for k in ("precision", "batches", "attention")},
        **{f"{name}_tokens_per_s": round(tokens[name], 1) for name in CONTESTANTS},
        **{f"{name}_steps_per_s": round(steps[name], 4) for name in CONTESTANTS},
        "padding_share_workbench": round(padding_share(lengths, a.batch, ours), 4),
        "padding_share_trl_defaults": round(padding_share(lengths, a.batch, BatchingPlan(False, False, False, "")), 4),
        **{f"{name}_tokens_per_s_median": round(medians[name], 1) for name in CONTESTANTS},
        "ratio_same_settings": round(tokens["workbench"] / tokens["plain_same"], 4),
        "ratio_same_settings_of_medians": round(medians["workbench"] / medians["plain_same"], 4),
        "ratio_vs_trl_defaults": round(steps["workbench"] / steps["trl_defaults"], 4),
        "effective_tokens_ratio": round(tokens["workbench"] / tokens["trl_defaults"], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from workbench.models import resolve_model

    hf_logging.set_verbosity_error()
    result = measure(resolve_model(a.model).path, a, log=lambda line: print(line, file=sys.stderr))
    if a.json:
        print(json.dumps(result))
        return 0
    print(f"workbench defaults resolve to: {result['workbench_resolved']}")
    for name in CONTESTANTS:
        print(
            f"{name:<13} {result[f'{name}_tokens_per_s']:9.1f} tokens/s  {result[f'{name}_steps_per_s']:.4f} steps/s "
            f"(means of {a.repeats}; median {result[f'{name}_tokens_per_s_median']:.1f} tokens/s)"
        )
    print(
        f"padding share: workbench {result['padding_share_workbench']:.1%}, "
        f"TRL defaults {result['padding_share_trl_defaults']:.1%}"
    )
    print(f"ratio_same_settings     {result['ratio_same_settings']:7.4f}  (target >= 0.98)")
    print(f"ratio_vs_trl_defaults   {result['ratio_vs_trl_defaults']:7.4f}  (target >= 1.0)")
    print(f"effective_tokens_ratio  {result['effective_tokens_ratio']:7.4f}  (target >= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
