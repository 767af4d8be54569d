"""The training worker: ``python -m workbench.train.worker RUN_DIR [--resume]``.

Started detached by :mod:`workbench.train.runner` in a session of its own, it
holds the run directory's lock for its whole life, trains with TRL and PEFT,
and reports only through files. SIGTERM (``workbench stop``) or a STOP file
asks for a graceful stop: a checkpoint and the adapter are saved.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from workbench.config.schema import RunConfig, load_config
from workbench.detach import worker_main
from workbench.errors import DataError, RunError
from workbench.train.rundir import HEARTBEAT_INTERVAL, RunDir, StatusWriter, append_jsonl
from workbench.train.telemetry import SystemSampler

TELEMETRY_INTERVAL = 1.0


def _telemetry_loop(run: RunDir, status: StatusWriter, done: threading.Event) -> None:
    """Samples the system about once a second and keeps the heartbeat fresh."""
    sampler = SystemSampler()
    if sampler.gpu_error:
        print(f"[workbench] no GPU telemetry: {sampler.gpu_error}", flush=True)
    last_beat = 0.0
    try:
        while not done.wait(TELEMETRY_INTERVAL):
            append_jsonl(run.system_path, sampler.sample())
            if time.monotonic() - last_beat >= HEARTBEAT_INTERVAL:
                status.beat()
                last_beat = time.monotonic()
    finally:
        sampler.close()


def _precision(config: RunConfig) -> tuple[Any, dict[str, bool]]:
    """The dtype to load the base model in and the trainer's mixed-precision flags.

    Both flags are always passed: TRL's configs default bf16 to True, so leaving them out
    would train an fp32 run (every CPU run) under bf16 autocast.
    """
    import torch

    p = config.train.precision
    cuda = torch.cuda.is_available()
    if p == "auto":
        p = "bf16" if cuda and torch.cuda.is_bf16_supported() else ("fp16" if cuda else "fp32")
    if p == "bf16":
        return torch.bfloat16, {"bf16": True, "fp16": False}
    if p == "fp16":
        return torch.float32, {"bf16": False, "fp16": True}  # fp16 AMP needs fp32 master weights
    return torch.float32, {"bf16": False, "fp16": False}


def _has_arg(name: str) -> bool:
    import dataclasses

    from transformers import TrainingArguments

    return any(f.name == name for f in dataclasses.fields(TrainingArguments))


def build_trainer(run: RunDir, config: RunConfig, callback: Any) -> tuple[Any, Any]:
    """The TRL trainer for this config, and the tokenizer to save beside the adapter."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback

    from workbench.config.validate import eval_interval, total_steps
    from workbench.models import resolve_model
    from workbench.train.dataprep import prepare_data

    data = prepare_data(config)
    for note in data.notes + data.bad_rows:
        print(f"[workbench] {note}", flush=True)
    train_ds, eval_ds = data.datasets()

    model_path = resolve_model(config.resolved_model()).path
    print(f"[workbench] model {config.model} from {model_path}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype, amp = _precision(config)
    load_kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": config.trust_remote_code}
    if config.finetune == "qlora":
        from transformers import BitsAndBytesConfig

        load_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    model = AutoModelForCausalLM.from_pretrained(model_path, **load_kwargs)

    peft_config = None
    if config.finetune in ("lora", "qlora"):
        lora = config.lora
        peft_config = PeftLoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            use_rslora=lora.rslora,
            use_dora=lora.dora,
            task_type="CAUSAL_LM",
        )

    t, e = config.train, config.eval
    steps = total_steps(config, len(data.train))
    has_eval = eval_ds is not None and len(eval_ds) > 0
    every = eval_interval(config, steps)
    common: dict[str, Any] = dict(
        output_dir=str(run.path),
        seed=config.seed,
        data_seed=config.seed,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optimizer,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        max_length=t.max_length,
        logging_steps=e.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=every,
        save_strategy="steps",
        save_steps=e.save_steps or every,
        save_total_limit=e.save_total_limit,
        load_best_model_at_end=e.load_best and has_eval,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        **amp,
    )
    # TRL turns checkpointing on by default; transformers 5 renamed it. Say exactly what the config says.
    common["activation_checkpointing" if _has_arg("activation_checkpointing") else "gradient_checkpointing"] = (
        t.gradient_checkpointing
    )
    callbacks = [callback]
    if e.early_stopping_patience and has_eval:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=e.early_stopping_patience))
    if config.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(beta=t.dpo_beta, **common)
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds if has_eval else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    else:
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(packing=t.packing, **common)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds if has_eval else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    if len(trainer.train_dataset) == 0:
        raise DataError(
            f"all {len(data.train)} training examples were dropped while tokenizing: with max_length "
            f"{t.max_length} their responses are cut off entirely. Raise train.max_length."
        )
    return trainer, tokenizer


def run_worker(run: RunDir, resume: bool = False) -> str:
    """Train the run in this process; returns the final state. Holds the run's lock throughout."""
    from workbench.train.callbacks import RunDirCallback

    stop_event = threading.Event()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal never stops a run
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())

    with run.exclusive():
        previous = run.read_status_raw()
        elapsed_before = float(previous.get("elapsed_s") or 0.0) if resume else 0.0
        status = StatusWriter(
            run, {**previous, "run_id": run.id, "pid": os.getpid(), "host": socket.gethostname(), "error": None}
        )
        status.update(state="starting", started=time.time(), resumed=resume, elapsed_before=elapsed_before)
        done = threading.Event()
        telemetry = threading.Thread(target=_telemetry_loop, args=(run, status, done), daemon=True)
        telemetry.start()
        t0 = time.time()
        try:
            config = load_config(run.config_path)
            callback = RunDirCallback(
                run,
                status,
                stop_event,
                stop_on_overfit=config.eval.stop_on_overfit,
            )
            trainer, tokenizer = build_trainer(run, config, callback)
            checkpoint = str(run.checkpoints()[-1]) if resume and run.checkpoints() else None
            if resume:
                partial = [p.name for p in run.checkpoints(complete=False) if p not in run.checkpoints()]
                if partial:
                    print(
                        f"[workbench] skipping incomplete checkpoint(s) {', '.join(partial)} "
                        "(the worker was killed while saving)",
                        flush=True,
                    )
                print(f"[workbench] resuming from {checkpoint or 'the start (no checkpoint)'}", flush=True)
            trainer.train(resume_from_checkpoint=checkpoint)
            if callback.verdict.kind == "diverged":
                final, error = "diverged", callback.verdict.message
            else:
                trainer.save_model(str(run.adapter_path))
                tokenizer.save_pretrained(str(run.adapter_path))
                final = "stopped" if callback.stop_reason else "completed"
                error = None
            best = trainer.state.best_metric
            status.update(
                state=final,
                error=error,
                stop_reason=callback.stop_reason,
                ended=time.time(),
                step=trainer.state.global_step,
                best_eval_loss=best,
                best_checkpoint=trainer.state.best_model_checkpoint,
                elapsed_s=elapsed_before + time.time() - t0,
            )
            print(f"[workbench] run {final} at step {trainer.state.global_step}", flush=True)
            return final
        except BaseException as exc:
            traceback.print_exc()
            sys.stderr.flush()
            summary = f"{type(exc).__name__}: {exc}".strip()
            status.update(
                state="failed",
                error=summary[:2000],
                ended=time.time(),
                elapsed_s=elapsed_before + time.time() - t0,
                error_tail=traceback.format_exc().splitlines()[-15:],
            )
            return "failed"
        finally:
            done.set()
            telemetry.join(timeout=5)
            run.stop_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    return worker_main(
        sys.argv[1:] if argv is None else argv,
        "python -m workbench.train.worker RUN_DIR [--resume]",
        lambda path, extra: run_worker(RunDir(path), resume="--resume" in extra),
        RunDir,
        RunError,
        end_key="ended",
    )


if __name__ == "__main__":
    sys.exit(main())
