"""The training worker: ``python -m workbench.train.worker RUN_DIR [--resume]``.

Started detached by :mod:`workbench.train.runner` in a session of its own, it
holds the run directory's lock for its whole life, trains with TRL and PEFT,
and reports only through files. SIGTERM (``workbench stop``) or a STOP file
asks for a graceful stop: a checkpoint and the adapter are saved.

In a run of several processes torchrun starts it once per process (see
:mod:`workbench.train.launch`) and sets RANK, LOCAL_RANK and WORLD_SIZE. Rank
0 alone holds the lock and writes status, metrics, system samples,
checkpoints and the adapter; the others train their share and write nothing
but their output (which reaches train.log, labelled with their rank) and,
when they die of an exception, ``errors/rank-N.json`` for the launcher to
report.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config.schema import RunConfig, load_config
from workbench.detach import worker_main
from workbench.errors import ConfigError, DataError, RunError
from workbench.train.rundir import HEARTBEAT_INTERVAL, RunDir, StatusWriter, append_jsonl, rank_failure
from workbench.train.telemetry import SystemSampler

TELEMETRY_INTERVAL = 1.0

FAIL_RANK_ENV = "WORKBENCH_TEST_FAIL_RANK"
"""A test hook: ``RANK`` or ``RANK@STEP`` makes that process of a distributed run raise at the end of that
optimizer step (default 1), a real death of one rank mid-run (tests/test_train_distributed.py; README)."""


@dataclass(frozen=True)
class Rank:
    """This process's place in the run: what torchrun's environment says, or one process alone."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    agent_pid: int | None = None
    """The pid of the elastic agent that started this process (torchrun, accelerate, our launcher)."""

    @classmethod
    def from_env(cls) -> Rank:
        env = os.environ
        if "WORLD_SIZE" not in env:
            return cls()
        agent = os.getppid() if "TORCHELASTIC_RUN_ID" in env else None
        return cls(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]), agent)

    @property
    def writer(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.rank == 0


def say(text: str) -> None:
    """A line for train.log, from rank 0 only (the others would repeat it)."""
    if Rank.from_env().writer:
        print(f"[workbench] {text}", flush=True)


def _telemetry_loop(run: RunDir, status: StatusWriter, done: threading.Event) -> None:
    """Samples the system about once a second and keeps the heartbeat fresh.

    In a distributed run (rank 0 samples for its node) the process figures are the agent's and all of its
    workers' together, and NVML reports every GPU of the node.
    """
    rank = Rank.from_env()
    sampler = SystemSampler(rank.agent_pid, tree=rank.agent_pid is not None)
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
        say(note)
    train_ds, eval_ds = data.datasets()

    model_path = resolve_model(config.resolved_model()).path
    say(f"model {config.model} from {model_path}")
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=config.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plan = machine_plan(config.train.precision)
    say(f"precision {config.train.precision}: {plan.label} ({plan.why})")
    load_kwargs: dict[str, Any] = {"dtype": getattr(torch, plan.weights), "trust_remote_code": config.trust_remote_code}
    attention = worker_attention(torch.cuda.is_available(), plan.precision != "fp32")
    if attention:
        load_kwargs["attn_implementation"] = attention
    quantization = quantization_arguments(config)
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        load_kwargs["quantization_config"] = BitsAndBytesConfig(**quantization)
        if Rank.from_env().world_size > 1:  # a 4-bit model cannot be moved: load it on this process's GPU
            load_kwargs["device_map"] = {"": Rank.from_env().local_rank}
    model = AutoModelForCausalLM.from_pretrained(model_path, **load_kwargs)
    if attention and next(model.parameters()).device.type == "cpu":
        # flash-attention runs on the GPU only (as the trainer would): this process's GPU
        model = model.to(f"cuda:{Rank.from_env().local_rank}")  # type: ignore[arg-type]
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
        cuda=torch.cuda.is_available(),
    )
    common.update(PROCESS_ARGUMENTS, use_cpu=not torch.cuda.is_available())
    callbacks = [callback, *_fail_hook()]
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
    say(f"batches: {batching.label} ({batching.why})")
    return batching


def _fail_hook() -> list[Any]:
    """The test hook of :data:`FAIL_RANK_ENV`, when it names this process: a callback that raises."""
    spec = os.environ.get(FAIL_RANK_ENV)
    if not spec:
        return []
    rank, _, step = spec.partition("@")
    if int(rank) != Rank.from_env().rank:
        return []
    from transformers import TrainerCallback

    at = int(step or 1)

    class FailAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= at:
                raise RuntimeError(f"{FAIL_RANK_ENV}: rank {rank} fails at step {state.global_step} (a test hook)")

    return [FailAt()]


def run_worker(run: RunDir, resume: bool = False) -> str:
    """Train the run in this process; returns the final state. Rank 0 holds the run's lock throughout."""
    stop_event = threading.Event()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal never stops a run
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())
    rank = Rank.from_env()
    if not rank.writer:
        return _train_share(run, stop_event, resume)

    with run.exclusive():
        previous = run.read_status_raw()
        elapsed_before = float(previous.get("elapsed_s") or 0.0) if resume else 0.0
        status = StatusWriter(
            run,
            {
                **previous,
                "run_id": run.id,
                "pid": rank.agent_pid or os.getpid(),
                "host": socket.gethostname(),
                "world_size": rank.world_size,
                "error": None,
            },
        )
        status.update(state="starting", started=time.time(), resumed=resume, elapsed_before=elapsed_before)
        done = threading.Event()
        telemetry = threading.Thread(target=_telemetry_loop, args=(run, status, done), daemon=True)
        telemetry.start()
        t0 = time.time()
        try:
            config = load_config(run.config_path)
            from workbench.train.callbacks import RunDirCallback

            callback = RunDirCallback(run, status, stop_event, stop_on_overfit=config.eval.stop_on_overfit)
            trainer, tokenizer = _train(run, config, callback, resume)
            if callback.verdict.kind == "diverged":
                final, error = "diverged", callback.verdict.message
            else:
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
            tail = traceback.format_exc().splitlines()[-15:]
            if rank.world_size > 1:  # the first process to die names the cause; this may be its echo
                run.record_rank_error(rank.rank, exc, tail)
                first = run.rank_errors()[0]
                summary, tail = rank_failure(first, rank.world_size), first.get("traceback") or tail
            status.update(
                state="failed",
                error=summary[:2000],
                ended=time.time(),
                elapsed_s=elapsed_before + time.time() - t0,
                error_tail=tail,
            )
            return "failed"
        finally:
            done.set()
            telemetry.join(timeout=5)
            run.stop_path.unlink(missing_ok=True)


def _train(run: RunDir, config: RunConfig, callback: Any, resume: bool) -> tuple[Any, Any]:
    """Build the trainer, train (from the last checkpoint when resuming), save the adapter unless discarded.

    Every process of a distributed run calls this: the trainer saves from rank 0 alone, and FSDP or
    DeepSpeed need every process to take part in gathering what is saved.
    """
    trainer, tokenizer = build_trainer(run, config, callback)
    checkpoint = str(run.checkpoints()[-1]) if resume and run.checkpoints() else None
    if resume:
        partial = [p.name for p in run.checkpoints(complete=False) if p not in run.checkpoints()]
        if partial:
            say(f"skipping incomplete checkpoint(s) {', '.join(partial)} (the worker was killed while saving)")
        say(f"resuming from {checkpoint or 'the start (no checkpoint)'}")
    trainer.train(resume_from_checkpoint=checkpoint)
    if not callback.discard:
        trainer.save_model(str(run.adapter_path))
    return trainer, tokenizer


def _train_share(run: RunDir, stop_event: threading.Event, resume: bool) -> str:
    """A process other than rank 0: trains its share of each step and writes nothing to the run directory."""
    from workbench.train.callbacks import RunDirCallback

    config = load_config(run.config_path)
    callback = RunDirCallback(run, None, stop_event)
    _train(run, config, callback, resume)
    return "diverged" if callback.discard else "stopped" if callback.stop_reason else "completed"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rank = Rank.from_env()
    work = lambda path, extra: run_worker(RunDir(path), resume="--resume" in extra)  # noqa: E731
    if rank.writer:
        return worker_main(argv, "python -m workbench.train.worker RUN_DIR [--resume]", work, RunDir, RunError, "ended")
    try:  # another rank: its error goes to errors/rank-N.json, never into status.json
        final = work(Path(argv[0]).resolve(), argv[1:])
    except BaseException as exc:
        traceback.print_exc()
        RunDir(Path(argv[0]).resolve()).record_rank_error(rank.rank, exc, traceback.format_exc().splitlines()[-15:])
        return 1
    return 0 if final in ("completed", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
