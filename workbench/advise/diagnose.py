"""Why did a run fail, or train badly, and what to change: known causes matched in logs and metrics.

:func:`diagnose_text` matches error text (a traceback, a pasted log) against
the known failures in :mod:`workbench.advise.patterns`; loss values logged in
the text are checked like metrics (:mod:`workbench.advise.metric_checks`).
:func:`diagnose_run` reads a run directory: its status (state, error, error
tail), its metrics (the detector for overfitting and divergence, plus a
flat-loss and a train/eval gap check) and the tail of ``train.log``.

Every :class:`~workbench.advise.diagnosis.Diagnosis` names a cause, concrete
fixes in terms of the run config's fields, the line it rests on and how
confident the match is. When nothing matches, the answer says so and where to
look; :func:`llm_diagnosis` asks the user's LLM for a deeper reading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.advise.diagnosis import Diagnosis, by_confidence, merge
from workbench.advise.metric_checks import metric_diagnoses, records_from_text
from workbench.advise.patterns import match_patterns
from workbench.config.schema import RunConfig, field_help, load_config
from workbench.errors import RunError, WorkbenchError
from workbench.train.rundir import RunDir

if TYPE_CHECKING:
    from workbench.llm import LLM

LOG_TAIL_BYTES = 64_000
"""How much of the end of train.log is read."""
LLM_TEXT_CHARS = 8_000
"""How much of the end of a log an LLM is shown."""


def _diagnose_text(text: str, config: RunConfig | None) -> list[Diagnosis]:
    """What the patterns and the logged losses say; nothing when nothing is known."""
    matched = match_patterns(text, config)
    matched.sort(key=lambda pair: -pair[0])  # the last error first
    found = merge([d for _, d in matched], metric_diagnoses(records_from_text(text), config))
    return by_confidence(found)


def diagnose_text(text: str, *, config: RunConfig | None = None) -> list[Diagnosis]:
    """Known causes found in error text, most confident first; an honest 'no known cause' otherwise.

    ``config``, when given, makes fixes concrete (the current value and a new one).
    """
    return _diagnose_text(text, config) or [_unknown(text)]


_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception)|Error|Killed|Traceback)\b.*$", re.MULTILINE)


def _unknown(text: str, evidence: str | None = None) -> Diagnosis:
    """The honest answer when no known cause matches, with where to look."""
    if evidence is None:
        lines = [m.group(0).strip() for m in _ERROR_LINE.finditer(text)]
        tail = [line.strip() for line in text.strip().splitlines()[-1:]]
        evidence = (lines or tail or ["(no text)"])[-1][:300]
    return Diagnosis(
        "unknown",
        "no known cause matched this text",
        (
            "read the last exception line of the traceback, then the deepest frame in code you control above it",
            "run `workbench check` on the config: it validates fields, data files and hardware",
            "search the exact message in the transformers, TRL and PEFT issue trackers",
            "ask for a deeper reading with an LLM (llm_diagnosis)",
        ),
        evidence,
        "low",
    )


# --- a run directory ----------------------------------------------------------


def _tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The end of a text file; empty when it does not exist."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if size <= max_bytes else text.split("\n", 1)[-1]  # drop the cut first line


def _as_run(run_dir: str | Path | RunDir) -> RunDir:
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)


def run_text(run_dir: str | Path | RunDir) -> str:
    """What a run says about how it ended: the status error, its traceback tail, and the tail of train.log."""
    run = _as_run(run_dir)
    raw = run.read_status_raw()
    parts = [str(raw["error"])] if raw.get("error") else []
    tail = raw.get("error_tail")
    if isinstance(tail, list) and tail:
        parts.append("\n".join(str(line) for line in tail))
    log = _tail(run.log_path)
    if log.strip():
        parts.append(log)
    return "\n".join(parts)


def _load_run_config(run: RunDir) -> RunConfig | None:
    try:
        return load_config(run.config_path)
    except WorkbenchError:
        return None


def diagnose_run(run_dir: str | Path | RunDir) -> list[Diagnosis]:
    """Known causes of a run's trouble, from its status, metrics and log; empty for a healthy run.

    A failed, diverged or lost run with no known cause gets the honest 'no known cause' diagnosis.
    Raises RunError when the directory is not a run.
    """
    run = _as_run(run_dir)
    if not run.exists():
        raise RunError(f"{run.path}: not a run directory (no status.json or config.yaml)")
    status = run.status()
    config = _load_run_config(run)
    text = run_text(run)
    found = merge(metric_diagnoses(run.metrics(), config), _diagnose_text(text, config) if text else [])
    if status.state == "lost":
        found.append(
            Diagnosis(
                "worker_lost",
                "the training process is gone without a final status: killed (often by the system when RAM ran out), "
                "or the machine restarted",
                (
                    "check the system log for the out-of-memory killer (dmesg | grep -i kill)",
                    "if RAM ran out: a smaller model, lower train.batch_size or train.max_length, or data.max_train_examples",
                    "`workbench resume` continues from the last complete checkpoint",
                ),
                f"state lost at step {status.step}",
                "medium",
            )
        )
    if not found and status.state in ("failed", "diverged"):
        found.append(_unknown(text, status.error or None))
    return by_confidence(found)


# --- a deeper look ----------------------------------------------------------

_DIAGNOSE_PROMPT = (
    "You diagnose failed or unhealthy fine-tuning runs of language models (PyTorch, transformers, TRL, PEFT). "
    "From the log below, name the most likely cause, then give concrete fixes, most effective first. When a fix is a "
    "config change, name the run config field; the fields are: {fields}. Say plainly when the log is not enough to "
    "tell, and what to look at next. Be brief."
)


def llm_diagnosis(text: str, llm: LLM, *, config: RunConfig | None = None) -> str:
    """A deeper diagnosis of error text by the user's LLM, with our rule-based findings as a start; its text."""
    findings = _diagnose_text(text, config)
    known = "\n".join(f"- {d.cause} (evidence: {d.evidence})" for d in findings) or "- none"
    body = f"Rule-based findings so far:\n{known}\n\nLog (its end):\n```\n{text[-LLM_TEXT_CHARS:]}\n```"
    reply = llm.complete(
        [
            {"role": "system", "content": _DIAGNOSE_PROMPT.format(fields=", ".join(field_help()))},
            {"role": "user", "content": body},
        ]
    )
    return reply.text.strip()
