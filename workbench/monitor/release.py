"""The release eval of a served model: the reference its production traffic is compared with.

A server serves :class:`~workbench.eval.store.ModelRef` s (its ``serve.yaml``), each under the name
clients send (:func:`workbench.serve.engine.default_name`). The release eval of one of them is the
newest complete eval of the same model on a dataset (the test split, not the regression or red-team
suites, and not a revalidation: those are measured against the release, not used as one). "The same
model" is the same weights: the same adapter or checkpoint (run and step), the same model directory,
or, for a merged model, the adapter or checkpoint it was merged from (``workbench.json``), whose
answers are the merged model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError


@dataclass
class Release:
    """An eval, and which of its models is the served one."""

    eval: Any
    """The :class:`~workbench.eval.store.EvalDir`."""
    model_key: str
    model: Any
    """The eval's :class:`~workbench.eval.store.ModelRef` of the served model."""
    dataset: str | None
    via: str | None = None
    """How a merged model was matched: ``merged from demo-.../ckpt-24``; None for the same ref."""


def served_model_refs(workspace: str | Path, server: str) -> dict[str, Any]:
    """``{name clients send: ModelRef}`` of a server (id, unique prefix or ``last``), in serve.yaml's order."""
    from workbench.serve.engine import default_name
    from workbench.serve.servedir import find_server

    spec = find_server(workspace, server).spec()
    return {default_name(ref): ref for ref in spec.refs}


def identity(ref: Any) -> list[tuple[Any, ...]]:
    """What makes two refs the same weights: (kind, run, step) for a run's output, ("path", dir) always.

    A merged model adds the identity of what it was merged from (its ``workbench.json``).
    """
    kind = getattr(ref, "kind", None)
    out: list[tuple[Any, ...]] = []
    run_id, step = getattr(ref, "run_id", None), getattr(ref, "step", None)
    if kind == "adapter" and run_id:
        out.append(("adapter", run_id))
    elif kind == "checkpoint" and run_id and step is not None:
        out.append(("checkpoint", run_id, int(step)))
    path = str(getattr(ref, "path", "") or "")
    if kind != "endpoint" and path:
        out.append(("path", _resolved(path)))
    return out


@dataclass
class ServedTask:
    """What a server's fine-tuned model was trained for: its system prompt and the task's schema."""

    system_prompt: str | None
    schema: dict[str, Any] | None


def served_task(workspace: str | Path, server: str) -> ServedTask:
    """The first fine-tuned model's (else the first model's) training system prompt and schema.json."""
    from workbench.monitor.health import load_schema
    from workbench.ship.provenance import schema_of_ref, system_prompt_of_ref

    refs = list(served_model_refs(workspace, server).values())
    ref = next((r for r in refs if r.kind != "base"), refs[0] if refs else None)
    if ref is None:
        return ServedTask(None, None)
    schema_path = schema_of_ref(workspace, ref)
    try:
        schema = load_schema(schema_path) if schema_path else None
    except WorkbenchError:
        schema = None
    return ServedTask(system_prompt_of_ref(workspace, ref), schema)


def _resolved(path: str) -> str:
    """A directory's absolute path; a model spec that is not one (a hub id) as written."""
    try:
        p = Path(path).expanduser()
        return str(p.resolve()) if p.exists() else path
    except OSError:
        return path


def _merged_from(ref: Any) -> list[tuple[Any, ...]]:
    """The identity of the run output a merged model directory came from (empty when it is not one)."""
    from workbench.ship.provenance import read_provenance

    path = Path(str(getattr(ref, "path", "") or "")).expanduser()
    if getattr(ref, "kind", None) != "base" or not path.is_dir():
        return []
    prov = read_provenance(path)
    run_id, step = prov.get("run_id"), prov.get("step")
    if not run_id:
        return []
    if step is None:
        return [("adapter", str(run_id))]
    return [("checkpoint", str(run_id), int(step))]


def is_revalidation(spec: Any) -> bool:
    """An eval written by ``workbench monitor revalidate`` (it says so in eval.yaml)."""
    extra = getattr(spec, "model_extra", None) or {}
    return bool(extra.get("revalidation"))


def _complete(summary: Any, key: str) -> bool:
    """Every example answered by ``key`` (the list's own counts: nothing is read again)."""
    done = summary.per_model.get(key, 0)
    return done > 0 and done >= summary.examples


def release_eval(workspace: str | Path, ref: Any) -> Release | None:
    """The newest complete dataset eval of ``ref`` (or of what a merged ``ref`` was merged from), else None."""
    from workbench.eval.store import EvalDir, EvalError, list_evals

    own = identity(ref)
    merged = _merged_from(ref)
    if not own and not merged:
        return None
    fallback: Release | None = None
    for summary in list_evals(workspace):  # newest first
        if summary.dataset is None:
            continue
        ev = EvalDir(summary.path)
        try:
            spec = ev.spec()
        except EvalError:
            continue
        if spec.source != "dataset" or is_revalidation(spec):
            continue
        for model in spec.models:
            ids = identity(model)
            if any(i in own for i in ids) and _complete(summary, model.key):
                return Release(ev, model.key, model, spec.dataset)
            if fallback is None and any(i in merged for i in ids) and _complete(summary, model.key):
                fallback = Release(ev, model.key, model, spec.dataset, via=f"merged from {model.label}")
    return fallback


__all__ = ["Release", "ServedTask", "identity", "is_revalidation", "release_eval", "served_model_refs", "served_task"]
