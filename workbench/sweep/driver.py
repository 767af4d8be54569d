"""The sweep driver: ``python -m workbench.sweep.driver SWEEP_DIR``.

Started detached by :mod:`workbench.sweep.control` like a training worker (own session, no
terminal), it holds the sweep directory's lock and runs Optuna's ask-and-tell loop: each
trial asks for parameters, becomes an ordinary detached run under ``runs/``, is reported
every evaluation the run writes (the pruner's input), is stopped gracefully when the pruner
says so, and is told its objective when the run ends (the best eval loss, or a task metric
the eval core computes on the validation split). A run that fails is told FAIL and the
sweep goes on.

The driver never trains: killed, it leaves the trials' runs going, and a resumed driver
takes them up again where they are (see :meth:`Driver.adopt`).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any

from workbench.config.schema import load_config
from workbench.detach import stop_reason, worker_main
from workbench.errors import RunError, WorkbenchError
from workbench.sweep.spec import SweepSpec, check_spec, field_kind, with_params
from workbench.sweep.store import (
    SweepDir,
    SweepError,
    best_trial,
    frozen_view,
    grid_size,
    make_sampler,
    open_study,
    safe_url,
)
from workbench.train.rundir import HEARTBEAT_INTERVAL, LIVE_STATES, JsonlTail, RunDir, StatusWriter, as_float
from workbench.workspace import Workspace

TICK = 0.25  # seconds between looks at the trials' runs (two small file reads each; no study query while all slots are busy)
STOPPED_BY_SWEEP = "sweep stopped"  # the stop reason of a trial's run that the sweep's own stop halted


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Active:
    """A trial this driver is looking after."""

    trial: Any  # optuna.Trial
    run: RunDir
    phase: str = "training"  # training -> (pruning | evaluating) -> told
    tail: JsonlTail | None = None
    reported: set[int] = field(default_factory=set)
    eval_id: str | None = None

    @property
    def number(self) -> int:
        return int(self.trial.number)


class Driver:
    def __init__(self, sweep: SweepDir, spec: SweepSpec, study: Any, workspace: Workspace, stop: threading.Event):
        self.sweep = sweep
        self.spec = spec
        self.study = study
        self.workspace = workspace
        self.stop_event = stop
        self.base = load_config(spec.base_path)
        self.active: dict[int, Active] = {}
        self.changed = True
        self.uid = sweep.read_status_raw().get("uid") or sweep.id
        self.launch_cpu = 0.0  # CPU seconds spent starting runs (the config check of each: the baseline's cost too)
        self.cap = min(spec.trials, grid_size(spec) or spec.trials)

    # --- the study ----------------------------------------------------------------------------

    def counted(self) -> int:
        """Trials of the study that count toward the spec's number: every one asked, on any machine."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def snapshot(self) -> list[Any]:
        views = [frozen_view(t) for t in self.study.get_trials(deepcopy=False)]
        self.sweep.write_trials(views)
        return views

    def tell(self, active: Active, state: str, value: float | None = None, error: str | None = None) -> None:
        from optuna.trial import TrialState

        trial = active.trial
        if error:
            trial.set_user_attr("error", error[:500])
        if state == "COMPLETE":
            self.study.tell(trial.number, value)
            log(f"trial {trial.number} complete: {self.spec.objective.metric} {value:.4f} (run {active.run.id})")
        elif state == "PRUNED":
            self.study.tell(trial.number, state=TrialState.PRUNED)
            log(f"trial {trial.number} pruned (run {active.run.id})")
        else:
            self.study.tell(trial.number, state=TrialState.FAIL)
            log(f"trial {trial.number} failed: {error} (run {active.run.id})")
        self.active.pop(trial.number, None)
        self.changed = True

    # --- starting trials ----------------------------------------------------------------------

    def suggest(self, trial: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, p in self.spec.space.items():
            if p.choices is not None:
                params[name] = trial.suggest_categorical(name, p.choices)
            elif field_kind(name) == "int":
                step = int(p.step or 1)
                params[name] = trial.suggest_int(
                    name, math.ceil(p.low or 0), math.floor(p.high or 0), step=step, log=p.log
                )
            else:
                params[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        return params

    def start_trial(self) -> None:
        trial = self.study.ask()
        older = sum(1 for t in self.study.get_trials(deepcopy=False) if t.number < trial.number)
        if older >= self.cap:  # another machine asked at the same moment for the study's last trial
            trial.set_user_attr("error", f"beyond the study's {self.cap} trials: another machine took the last one")
            self.study.tell(trial.number, state=_fail_state())
            log(f"trial {trial.number} not run: the study's {self.cap} trials were all taken")
            self.changed = True
            return
        trial.set_user_attr("sweep_id", self.sweep.id)
        trial.set_user_attr("sweep_uid", self.uid)
        try:
            params = self.suggest(trial)
        except Exception as exc:  # an enqueued parameter outside the space, say
            self.study.tell(trial.number, state=_fail_state())
            log(f"trial {trial.number} failed before it started: {exc}")
            return
        self.launch(trial, params)

    def launch(self, trial: Any, params: dict[str, Any]) -> None:
        from workbench.train import runner

        shown = ", ".join(f"{k}={_show(v)}" for k, v in params.items())
        cpu = time.process_time()
        try:
            config = with_params(self.base, params, name=f"{self.spec.name}-t{trial.number}")
            run = runner.launch(
                config, self.workspace.path, meta={"sweep": {"id": self.sweep.id, "trial": trial.number}}
            )
        except Exception as exc:  # a config the checks refuse, or a bug in them: this trial fails, the sweep goes on
            trial.set_user_attr(
                "error", f"{type(exc).__name__}: {exc}"[:500] if not isinstance(exc, WorkbenchError) else str(exc)[:500]
            )
            self.study.tell(trial.number, state=_fail_state())
            log(f"trial {trial.number} ({shown}) could not start: {exc}")
            self.changed = True
            return
        finally:
            self.launch_cpu += time.process_time() - cpu
        trial.set_user_attr("run_id", run.id)
        self.active[trial.number] = Active(trial, run, tail=JsonlTail(run.metrics_path))
        log(f"trial {trial.number} started as run {run.id}: {shown}")
        self.changed = True

    # --- taking trials up again after a restart ---------------------------------------------

    def adopt(self) -> None:
        """Take up this sweep's trials the study still has running (after a stop, a kill or a crash)."""
        import optuna
        from optuna.trial import TrialState

        from workbench.train import runner

        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = frozen.user_attrs
            if attrs.get("sweep_uid", attrs.get("sweep_id")) != self.uid:
                continue  # another machine's
            trial = optuna.trial.Trial(self.study, frozen._trial_id)
            run_id = attrs.get("run_id")
            if not run_id or set(frozen.params) != set(self.spec.space):
                if set(frozen.params) == set(self.spec.space):
                    log(f"trial {frozen.number}: its run was never started; starting it now")
                    self.launch(trial, dict(frozen.params))
                else:
                    self.study.tell(frozen.number, state=TrialState.FAIL)
                    log(f"trial {frozen.number} failed: the driver stopped while it was being asked")
                continue
            run = RunDir(self.workspace.runs_dir / run_id)
            active = Active(trial, run, tail=JsonlTail(run.metrics_path), reported=set(frozen.intermediate_values))
            active.phase = "pruning" if attrs.get("pruning") else "evaluating" if attrs.get("eval_id") else "training"
            active.eval_id = attrs.get("eval_id")
            self.active[frozen.number] = active
            state = run.status().state if run.exists() else "missing"
            why = stop_reason(run.stop_path, "") or run.read_status_raw().get("stop_reason") or ""
            if (
                active.phase == "training"
                and state in ("stopped", "lost")
                and (state == "lost" or STOPPED_BY_SWEEP in why)
            ):
                if run.checkpoints():
                    runner.resume(run)
                    log(f"trial {frozen.number}: resumed run {run.id} from its last checkpoint")
                else:
                    log(f"trial {frozen.number}: run {run.id} had no checkpoint; starting it again")
                    self.active.pop(frozen.number)
                    self.launch(trial, dict(frozen.params))
            else:
                log(f"trial {frozen.number}: taking up run {run.id} ({state}, {active.phase})")
        self.changed = True

    # --- watching trials ----------------------------------------------------------------------

    def poll(self, active: Active) -> None:
        if active.phase == "evaluating":
            self.poll_eval(active)
            return
        run = active.run
        if active.phase == "training":
            self.report(active)
        status = run.status()
        if status.state in LIVE_STATES:
            return
        if active.phase == "pruning":
            self.tell(active, "PRUNED")
            return
        if status.state == "completed":
            self.finish(active)
        elif status.state == "stopped":
            why = status.raw.get("stop_reason") or "stopped"
            active.trial.set_user_attr("error", f"run stopped outside the sweep ({why}) at step {status.step}")
            self.tell(active, "PRUNED")
        elif status.state == "lost":
            self.tell(
                active, "FAIL", error=f"run {run.id} was lost: its worker died without a word (see its train.log)"
            )
        else:
            self.tell(active, "FAIL", error=f"run {status.state}: {status.error or 'no error recorded'}")

    def report(self, active: Active) -> None:
        """Report each new evaluation of the run to the pruner; stop the run when it says prune."""
        from workbench.train import runner

        assert active.tail is not None
        sign = -1.0 if self.spec.direction == "maximize" else 1.0  # the pruner compares in the study's direction
        for record in active.tail.read_new():
            loss = as_float(record.get("eval_loss"))
            step = record.get("step")
            if loss is None or not isinstance(step, int) or step in active.reported or not math.isfinite(loss):
                continue
            active.trial.report(sign * loss, step)
            active.reported.add(step)
            self.changed = True
            if self.spec.pruner.kind != "none" and active.trial.should_prune():
                reason = (
                    f"pruned by sweep {self.sweep.id}: eval loss {loss:.4f} at step {step} is not promising "
                    f"next to the other trials at that step ({self.spec.pruner.kind} pruner)"
                )
                active.trial.set_user_attr("pruning", True)
                active.trial.set_user_attr("pruned_at", step)
                active.phase = "pruning"
                log(f"trial {active.number}: {reason}")
                with contextlib.suppress(WorkbenchError):  # it ended on its own: told PRUNED all the same
                    runner.stop(active.run, reason=reason)
                return

    def finish(self, active: Active) -> None:
        """The run completed: its objective, or an eval of it on the validation split."""
        raw = active.run.read_status_raw()
        if not self.spec.objective.is_task_metric:
            best = as_float(raw.get("best_eval_loss"))
            if best is None:
                evals = [as_float(r.get("eval_loss")) for r in active.run.metrics()]
                best = min((v for v in evals if v is not None and math.isfinite(v)), default=None)
            if best is None:
                self.tell(active, "FAIL", error="the run wrote no eval loss (the base config has no validation split)")
            else:
                self.tell(active, "COMPLETE", best)
            return
        try:
            ev = self.start_eval(active)
        except WorkbenchError as exc:
            self.tell(active, "FAIL", error=f"eval of the run could not start: {exc}")
            return
        active.eval_id = ev.id
        active.phase = "evaluating"
        active.trial.set_user_attr("eval_id", ev.id)
        log(
            f"trial {active.number}: run {active.run.id} completed; measuring {self.spec.objective.metric} in eval {ev.id}"
        )

    def start_eval(self, active: Active) -> Any:
        from workbench.eval import runner as eval_runner
        from workbench.eval.candidates import run_models
        from workbench.eval.plan import create_from_plan, plan_eval

        config = load_config(active.run.config_path)
        _, refs = run_models(active.run)
        adapters = [r for r in refs if r.kind == "adapter"]
        if not adapters:
            raise SweepError(f"run {active.run.id} saved no adapter to evaluate")
        val = config.resolve(config.data.val) if config.data.val else None
        if val is None:
            raise SweepError("the run's config has no validation file (data.val) to measure the metric on")
        plan = plan_eval(adapters[:1], data=val, limit=self.spec.objective.limit, name=f"{active.run.id}-objective")
        ev = create_from_plan(self.workspace.path, plan)
        eval_runner.launch(ev)
        return ev

    def poll_eval(self, active: Active) -> None:
        from workbench.eval.results import Results
        from workbench.eval.store import EvalDir

        ev = EvalDir(self.workspace.evals_dir / str(active.eval_id))
        state = ev.status().state
        if state in LIVE_STATES:
            return
        if state != "completed":
            self.tell(active, "FAIL", error=f"eval {ev.id} {state}: {ev.status().error or 'see its eval.log'}")
            return
        metric = self.spec.objective.metric
        summary = Results(ev).summaries([metric])[0].metrics[metric]
        if summary.mean is None:
            self.tell(active, "FAIL", error=f"eval {ev.id}: no example has a {metric} value")
        else:
            self.tell(active, "COMPLETE", summary.mean)

    # --- the loop -----------------------------------------------------------------------------

    def stop_trials(self) -> None:
        """The sweep was asked to stop: stop every live run and eval it started, and wait for them."""
        from workbench.eval import runner as eval_runner
        from workbench.eval.store import EvalDir
        from workbench.train import runner

        log(f"stopping: {len(self.active)} trial(s) in progress are stopped and resumed with the sweep")
        for active in self.active.values():
            try:
                if active.phase == "evaluating":
                    eval_runner.stop(EvalDir(self.workspace.evals_dir / str(active.eval_id)))
                elif active.run.status().state in LIVE_STATES:
                    runner.stop(active.run, reason=f"{STOPPED_BY_SWEEP} ({self.sweep.id})")
            except WorkbenchError:
                pass  # it ended on its own
        deadline = time.time() + 600
        while time.time() < deadline and any(a.run.status().state in LIVE_STATES for a in self.active.values()):
            time.sleep(0.5)

    def stop_requested(self) -> bool:
        return self.stop_event.is_set() or self.sweep.stop_path.exists()

    def loop(self, status: StatusWriter) -> str:
        last_beat = 0.0
        while True:
            if self.stop_requested():
                self.stop_trials()
                self.snapshot()
                return "stopped"
            for active in list(self.active.values()):
                self.poll(active)
            while len(self.active) < self.spec.parallel and self.counted() < self.cap and not self.stop_requested():
                if self.spec.sampler == "grid" and self.study.sampler.is_exhausted(self.study):
                    self.cap = self.counted()
                    break
                self.start_trial()
            if self.changed or time.monotonic() - last_beat >= HEARTBEAT_INTERVAL:
                if self.changed:
                    views = self.snapshot()
                    best = best_trial(views, self.spec.direction)
                    done = sum(v.state in ("COMPLETE", "PRUNED", "FAIL") for v in views)
                    status.set(done=done, running=len(self.active), trials=self.cap)
                    status.set(best_value=best.value if best else None, best_trial=best.number if best else None)
                    status.set(best_run=best.run_id if best else None)
                    self.changed = False
                status.beat()
                last_beat = time.monotonic()
            if not self.active and self.counted() >= self.cap:
                return "completed"
            self.stop_event.wait(TICK)


def _fail_state() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def run_driver(sweep: SweepDir) -> str:
    """Drive the sweep in this process; returns the final state. Holds the sweep's lock throughout."""
    stop_event = threading.Event()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal never stops a sweep
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())
    with sweep.exclusive():
        previous = sweep.read_status_raw()
        status = StatusWriter(
            sweep._files, {**previous, "pid": os.getpid(), "host": socket.gethostname(), "error": None}
        )
        status.update(state="running", started=time.time(), ended=None)
        try:
            spec = sweep.spec()
            check = check_spec(spec, source=str(sweep.spec_path), rules=False)
            if check.errors:
                raise SweepError("\n".join(check.errors))
            study = open_study(sweep.storage_url, sweep.study_name, spec, create=True)
            if not study.trials:
                for params in spec.first_trials:
                    study.enqueue_trial(params)
            if spec.seed is not None and (study.trials or spec.storage):
                # Resumed, or one of several machines: a fresh sampler with the spec's seed would repeat the
                # parameters it gave the first trials. On shared storage each machine's sweep draws its own.
                uid = str(previous.get("uid") or sweep.id)
                shared = zlib.crc32(uid.encode()) if spec.storage else 0
                study.sampler = make_sampler(spec, len(study.trials) + shared)
            driver = Driver(sweep, spec, study, Workspace(previous.get("workspace") or "."), stop_event)
            log(
                f"sweep {sweep.id}: study {sweep.study_name!r} in {safe_url(sweep.storage_url)}, "
                f"{driver.counted()} of {driver.cap} trial(s) asked so far"
            )
            driver.adopt()
            loop_cpu = time.process_time()
            final = driver.loop(status)
            loop_cpu = time.process_time() - loop_cpu
            views = driver.snapshot()
            best = best_trial(views, spec.direction)
            status.update(
                state=final,
                ended=time.time(),
                # the driver's own CPU (training is in the runs' processes): all of it, and its loop's
                cpu_s=round(time.process_time(), 2),
                loop_cpu_s=round(loop_cpu, 2),
                launch_cpu_s=round(driver.launch_cpu, 2),
                running=0,
                done=sum(v.state in ("COMPLETE", "PRUNED", "FAIL") for v in views),
            )
            if best is not None:
                log(f"best: trial {best.number} ({spec.objective.metric} {best.value:.4f}, run {best.run_id})")
            log(f"sweep {final}")
            return final
        except BaseException as exc:
            traceback.print_exc()
            sys.stderr.flush()
            status.update(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000], ended=time.time())
            return "failed"
        finally:
            sweep.stop_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    return worker_main(
        sys.argv[1:] if argv is None else argv,
        "python -m workbench.sweep.driver SWEEP_DIR",
        lambda path, _extra: run_driver(SweepDir(path)),
        SweepDir,
        RunError,  # another driver holds the sweep's lock
        end_key="ended",
    )


if __name__ == "__main__":
    sys.exit(main())
