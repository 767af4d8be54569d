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
from workbench.errors import ConfigError, DataError, RunError
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


#: The worker's process-level trainer settings: not part of a config, so not in the shared mapping.
PROCESS_ARGUMENTS: dict[str, Any] = {
    "disable_tqdm": True,
    "include_num_input_tokens_seen": "non_padding",
    "dataloader_num_workers": 0,
}


def build_trainer(run: RunDir, config: RunConfig, callback: Any) -> tuple[Any, Any]:
    """The TRL trainer for this config, and the tokenizer to save beside the adapter.

    Its arguments come from the one mapping the exports use too
    (:func:`workbench.config.trl_args.training_arguments`), with the step
    count of the prepared data and the precision of this machine.
    """
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback

    from workbench.config.batching import worker_attention
    from workbench.config.precision import machine_plan
    from workbench.config.trl_args import (
        peft_arguments,
        quantization_arguments,
        training_arguments,
    )
    from workbench.config.validate import total_steps
    from workbench.models import resolve_model
    from workbench.train.dataprep import prepare_data
    from workbench.train.packed import truncate

    data = prepare_data(config)
    for note in data.notes + data.bad_rows:
        print(f"[workbench] {note}", flush=True)
    train_ds, eval_ds = data.datasets()

    model_path = resolve_model(config.resolved_model()).path
    print(f"[workbench] model {config.model} from {model_path}", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plan = machine_plan(config.train.precision)
    print(f"[workbench] precision {config.train.precision}: {plan.label} ({plan.why})", flush=True)
    load_kwargs: dict[str, Any] = {"dtype": getattr(torch, plan.weights), "trust_remote_code": config.trust_remote_code}
    attention = worker_attention(torch.cuda.is_available(), plan.precision != "fp32")
    if attention:
        load_kwargs["attn_implementation"] = attention
    quantization = quantization_arguments(config)
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        load_kwargs["quantization_config"] = BitsAndBytesConfig(**quantization)
    model = AutoModelForCausalLM.from_pretrained(model_path, **load_kwargs)
    if attention and next(model.parameters()).device.type == "cpu":
        model = model.to("cuda")  # type: ignore[arg-type]  # flash-attention runs on the GPU only (as the trainer would)
    batching = _batching(config, model)

    peft = peft_arguments(config)
    peft_config = PeftLoraConfig(**peft) if peft is not None else None

    t, e = config.train, config.eval
    has_eval = eval_ds is not None and len(eval_ds) > 0
    common = training_arguments(
        config,
        output_dir=str(run.path),
        steps=total_steps(config, len(data.train)),
        has_eval=has_eval,
        precision=plan.precision,
        batching=batching,
    )
    common.update(PROCESS_ARGUMENTS, use_cpu=not torch.cuda.is_available())
    callbacks = [callback]
    if e.early_stopping_patience and has_eval:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=e.early_stopping_patience))
    import trl

    # Only the classes differ between the methods: the arguments come from one mapping.
    config_class, trainer_class = (
        (trl.DPOConfig, trl.DPOTrainer) if config.method == "dpo" else (trl.SFTConfig, trl.SFTTrainer)
    )
    args: Any = config_class(**common)
    trainer: Any = trainer_class(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if has_eval else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    if batching.padding_free and not batching.packing:  # TRL leaves padding-free rows untruncated
        trainer.train_dataset = truncate(trainer.train_dataset, t.max_length)
        trainer.eval_dataset = truncate(trainer.eval_dataset, t.max_length)
    if len(trainer.train_dataset) == 0:
        raise DataError(
            f"all {len(data.train)} training examples were dropped while tokenizing: with max_length "
            f"{t.max_length} their responses are cut off entirely. Raise train.max_length."
        )
    return trainer, tokenizer


def _batching(config: RunConfig, model: Any) -> Any:
    """The batching plan for the loaded model; rows of several examples only where the model keeps them apart."""
    from workbench.config.batching import BatchingPlan, plan_batching
    from workbench.train.packed import packed_rows_isolated

    t = config.train
    attn = getattr(model.config, "_attn_implementation", None)
    batching = plan_batching(config, attn)
    if batching.flattened:
        isolated, difference = packed_rows_isolated(model)
        if not isolated:
            leak = (
                f"packed examples attend to each other with this model's {attn or 'default'} attention (an "
                f"example's logits after another in one row differ from alone by {difference:.2g} of their scale)"
            )
            if t.packing or t.padding_free is True:
                field = "train.packing" if t.packing else "train.padding_free"
                raise ConfigError(f"{field}: {leak}; set it to false, or train with flash-attention")
            batching = BatchingPlan(False, False, t.group_by_length is not False, f"auto: {leak}")
    print(f"[workbench] batches: {batching.label} ({batching.why})", flush=True)
    return batching


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
