"""The TrainerCallback that turns trainer events into the run directory's files.

In a run of several processes every process has one, but only rank 0's
writes (it is given the status writer); every process takes part in each
stop decision. A stop asked of any process (a signal, rank 0's STOP file or
its detector's verdict) is combined across all of them at the end of every
step with one small all-reduce (MAX), so all of them stop after the same
step and the checkpoint is saved once, never with one process gone ahead
into a step the others never take.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from transformers import TrainerCallback

from workbench.detach import stop_reason
from workbench.train.detector import OK, Verdict, diagnose
from workbench.train.rundir import RunDir, StatusWriter, append_jsonl

_KEYS = {
    "loss": "loss",
    "eval_loss": "eval_loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "rewards/accuracies": "reward_accuracy",
    "eval_rewards/accuracies": "eval_reward_accuracy",
    "rewards/margins": "reward_margin",
    "eval_rewards/margins": "eval_reward_margin",
}


class RunDirCallback(TrainerCallback):
    """Writes metrics.jsonl and the step into status.json; stops on request or on a verdict.

    ``status`` is None in the processes of a distributed run other than rank 0: they write nothing.
    """

    def __init__(
        self,
        run: RunDir,
        status: StatusWriter | None,
        stop_event: threading.Event,
        *,
        stop_on_overfit: bool = False,
        patience: int = 3,
    ) -> None:
        self.run = run
        self.status = status or StatusWriter(run, {}, write=False)
        self.writes = status is not None
        self.stop_event = stop_event
        self.stop_on_overfit = stop_on_overfit
        self.patience = patience
        self.records: list[dict[str, Any]] = run.metrics() if self.writes else []  # a resumed run continues
        self.verdict: Verdict = OK
        self.stop_reason: str | None = None
        self.discard = False  # the stop keeps nothing (a diverged run): no checkpoint, no adapter
        self._asked = (False, False)  # (stop, discard) asked of this process, combined at the next step's end
        self._t0 = time.time()
        self._start_step: int | None = None
        self._last_tokens: tuple[float, int] | None = None

    # --- events -------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        self._start_step = state.global_step
        self._t0 = time.time()
        self._last_tokens = (self._t0, state.num_input_tokens_seen or 0)
        self.status.update(state="running", step=state.global_step, total_steps=state.max_steps, train_started=self._t0)

    def on_step_end(self, args, state, control, **kwargs):
        self.status.set(step=state.global_step, total_steps=state.max_steps, epoch=state.epoch)
        if self.stop_event.is_set() or (self.writes and self.run.stop_path.exists()):
            self._stop(control, stop_reason(self.run.stop_path), state="stopping")
        stop, discard = agree(self._asked, getattr(args, "device", None))
        if stop:
            if self.stop_reason is None:  # another process asked (a signal reached it)
                self._stop(control, "stop requested", state="stopping")
            self._apply(control, discard)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.writes:
            return  # rank 0 logs and judges; its verdicts reach the others at the next step's end
        logs = logs or {}
        now = time.time()
        record: dict[str, Any] = {
            "type": "eval" if any(k.startswith("eval_") for k in logs) else "train",
            "step": state.global_step,
            "epoch": round(state.epoch or 0.0, 4),
            "time": now,
            "elapsed_s": round(now - self._t0 + self.status.get("elapsed_before", 0.0), 2),
        }
        for key, name in _KEYS.items():
            if key in logs:
                record[name] = logs[key]
        if "train_loss" in logs:  # the trainer's closing summary
            record["type"] = "summary"
            record["train_runtime_s"] = logs["train_runtime"]
        if record["type"] != "summary" and not any(name in record for name in _KEYS.values()):
            return  # nothing we chart
        if record["type"] == "train":
            record.update(self._throughput(state, now))
        append_jsonl(self.run.metrics_path, record)
        self.records.append(record)
        eval_loss = record.get("eval_loss")
        if isinstance(eval_loss, float) and eval_loss == eval_loss:
            best = self.status.get("best_eval_loss")
            if best is None or eval_loss < best:
                self.status.set(best_eval_loss=eval_loss)  # the runs list reads it without the metrics
        self._judge(state, control)

    def on_evaluate(self, args, state, control, **kwargs):
        self._restart_throughput(state)

    def on_save(self, args, state, control, **kwargs):
        self._restart_throughput(state)

    # --- helpers ------------------------------------------------------------

    def _restart_throughput(self, state) -> None:
        """Evaluations and saves are not training: tokens/s starts counting again after them."""
        self._last_tokens = (time.time(), state.num_input_tokens_seen or 0)

    def _throughput(self, state, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        tokens = state.num_input_tokens_seen or 0
        if self._last_tokens is not None and tokens:
            t_prev, tok_prev = self._last_tokens
            if now > t_prev and tokens > tok_prev:
                out["tokens_per_s"] = round((tokens - tok_prev) / (now - t_prev), 1)
        self._last_tokens = (now, tokens)
        done = state.global_step - (self._start_step or 0)
        if done > 0 and state.max_steps:
            per_step = (now - self._t0) / done
            out["eta_s"] = round(per_step * (state.max_steps - state.global_step), 1)
            out["s_per_step"] = round(per_step, 3)
        out["tokens_seen"] = tokens
        return out

    def _judge(self, state, control) -> None:
        verdict = diagnose(self.records, patience=self.patience)
        if verdict.kind != self.verdict.kind:
            self.verdict = verdict
            if verdict.kind != "ok":
                record = {"type": "verdict", "step": state.global_step, "time": time.time(), **verdict.to_dict()}
                append_jsonl(self.run.metrics_path, record)
                self.records.append(record)
                self.status.update(verdict=verdict.to_dict())
        if verdict.kind == "diverged":
            self._stop(control, verdict.message, save=False)
        elif verdict.kind == "overfitting" and self.stop_on_overfit:
            self._stop(control, "stopped on overfitting: " + verdict.message)

    def _stop(self, control, reason: str, *, save: bool = True, state: str | None = None) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if state:
                self.status.update(state=state)
        self._asked = (True, self._asked[1] or not save)
        if not distributed():  # alone, a process stops at once; together, at the next agreement
            self._apply(control, self._asked[1])

    def _apply(self, control, discard: bool) -> None:
        self.discard = self.discard or discard
        control.should_training_stop = True
        control.should_save = not self.discard


def distributed() -> bool:
    """Whether this process trains in a process group of more than one."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def agree(asked: tuple[bool, bool], device: Any) -> tuple[bool, bool]:
    """Every process's (stop, discard) combined by MAX: one process's request holds for all, at this same step.

    ``device`` is where the process group's backend reduces (the trainer's device: a GPU for nccl, the CPU
    for gloo). One process alone agrees with itself.
    """
    if not distributed():
        return asked
    import torch
    import torch.distributed as dist

    flags = torch.tensor([float(asked[0]), float(asked[1])], device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    stop, discard = flags.tolist()
    return bool(stop), bool(discard)
