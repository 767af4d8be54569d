"""``workbench monitor revalidate SERVER``: an eval of the served endpoint, held to the release eval.

Real inputs drift and a model can degrade with no change to its code, so the served model is evaluated
again, through its own endpoint (the system prompt, template and engine it is served with), on:

- the release eval's dataset (the test split), row for row;
- the regression and red-team suites (the workspace's, or those named);
- a sample of recent production prompts from the request log (``prod-<request id>``, source
  ``production``): no reference answers, so they are scored by the schema and, where a judge is
  configured (``judge_model`` in monitor.yaml, or ``--judge``), by the LLM judge.

It is an eval like any other (``evals/``, the same grid, ``workbench eval show/report/gate``). Its
first column is the release: the release eval's answers copied in (``frozen``: never generated
again) for every example whose prompt is unchanged since, and ``baseline`` in eval.yaml names it, so
the grid marks the answers that got worse and ``workbench eval gate`` fails on a significant drop
of any metric (paired over the examples both answered), as well as on any failing case.
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

DEFAULT_PRODUCTION = 50
DEFAULT_WINDOW_S = 7 * 86400.0


def _choose_model(refs: dict[str, Any], served: list[str], model: str | None, server_id: str) -> str:
    names = [n for n in refs if n in served] or list(served)
    if model is not None:
        if model not in served:
            raise WorkbenchError(f"server {server_id} does not serve {model!r}; it serves: {', '.join(served)}")
        return model
    fine_tuned = [n for n in names if refs.get(n) is not None and refs[n].kind != "base"]
    if not names:
        raise WorkbenchError(f"server {server_id} serves no model")
    return (fine_tuned or names)[0]


def _endpoint(sd: Any, name: str) -> Any:
    from workbench.eval.remote import check_endpoint, endpoint_ref
    from workbench.serve.servedir import KEY_ENV

    status = sd.status()
    if status.state != "running" or not status.url:
        raise WorkbenchError(
            f"server {sd.id} is {status.state}: revalidation asks the served endpoint, so start it first "
            f"(`workbench serve start ...`)"
        )
    key_env = KEY_ENV if sd.spec().key_required or os.environ.get(KEY_ENV) else None
    if sd.spec().key_required and not os.environ.get(KEY_ENV):
        raise WorkbenchError(f"server {sd.id} requires its key: set {KEY_ENV} in this shell")
    ref = endpoint_ref(
        str(status.url), name, api_key_env=key_env, key=f"serve:{sd.id}/{name}", label=f"served · {name} ({sd.id})"
    )
    check_endpoint(ref)
    return ref


def production_examples(log_path: Path, model: str, *, limit: int, since: float, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``limit`` recent answered requests of ``model`` as eval examples, one per distinct prompt.

    The newest ``4 * limit`` distinct prompts are drawn from, then ``limit`` of them at random (``seed``):
    a burst of one client's retries does not fill the sample.
    """
    from workbench.monitor.samples import select_requests

    if limit <= 0 or not log_path.is_file():
        return []
    requests = select_requests(
        log_path,
        filter="all",
        since=since,
        model=model,
        predicate=lambda r: r.status == 200 and bool(r.messages),
        limit=max(limit * 20, 200),
    )
    seen: set[str] = set()
    distinct = []
    for request in requests:  # newest first
        text = repr([(m.get("role"), m.get("content")) for m in request.messages or []])
        if text not in seen:
            seen.add(text)
            distinct.append(request)
        if len(distinct) >= 4 * limit:
            break
    picked = random.Random(seed).sample(distinct, min(limit, len(distinct)))
    picked.sort(key=lambda r: r.time)
    return [
        {
            "id": f"prod-{r.id}",
            "messages": list(r.messages or []),
            "reference": None,
            "source": "production",
            "request_id": r.id,
            "time": r.time,
        }
        for r in picked
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "model"


def revalidate(
    workspace: str | Path,
    server: str,
    *,
    model: str | None = None,
    production: int = DEFAULT_PRODUCTION,
    since_s: float = DEFAULT_WINDOW_S,
    suites: list[str | Path] | None = None,
    judge: str | None = None,
    wait: bool = False,
    llm_mock: Any = None,
    progress: Any = None,
    seed: int = 0,
) -> Any:
    """Create (and with ``wait`` run, then judge) the revalidation eval of one served model; its EvalDir."""
    from workbench.eval.candidates import examples_from_dataset, examples_from_suite
    from workbench.eval.plan import schema_beside
    from workbench.eval.store import EvalSpec, GenerationSettings, create_eval
    from workbench.monitor.baseline import test_split_of
    from workbench.monitor.release import release_eval, served_model_refs
    from workbench.monitor.settings import load_settings
    from workbench.serve.servedir import find_server
    from workbench.workspace import Workspace

    settings = load_settings(workspace)
    sd = find_server(workspace, server)
    refs = served_model_refs(workspace, sd.id)
    served_names = list(sd.status().raw.get("models") or refs)
    name = _choose_model(refs, served_names, model, sd.id)
    endpoint = _endpoint(sd, name)
    ref = refs.get(name)
    release = release_eval(workspace, ref) if ref is not None else None

    dataset: Path | None = None
    selection = None
    if release is not None and release.dataset:
        dataset = Path(release.dataset)
        # the release's own rows (a --limit is not in its eval.yaml, so read them off its examples)
        selection = release.eval.spec().selection or sorted(
            int(e["index"])
            for e in release.eval.examples()
            if isinstance(e.get("index"), int) and not e.get("expect") and e.get("source") != "production"
        )
    elif ref is not None:
        dataset = test_split_of(workspace, ref)
    if dataset is not None and not dataset.exists():
        dataset = None
    examples: list[dict[str, Any]] = []
    notes: list[str] = []
    if dataset is not None:
        examples += examples_from_dataset(dataset, selection=selection, skip_bad=True)
    else:
        notes.append("no test split known: production prompts and suites only")
    suite_paths = [Path(s) for s in suites] if suites is not None else Workspace(workspace).suites()
    for suite in suite_paths:
        cases, bad = examples_from_suite(suite)
        examples += cases
        notes += bad
    prod = production_examples(sd.db_path, name, limit=production, since=time.time() - since_s, seed=seed)
    examples += prod
    if not examples:
        raise WorkbenchError(
            f"nothing to revalidate {name} on: no test split, no suite and no answered production request"
        )

    models = [endpoint]
    baseline = None
    if release is not None:
        frozen = release.model.model_copy(
            update={
                "key": f"release:{release.model.key}",
                "label": f"release · {release.model.label} ({release.eval.id})",
                "frozen": release.eval.id,
            }
        )
        models.insert(0, frozen)
        baseline = frozen.key
    else:
        notes.append(f"no release eval of {name}: nothing to hold it to (evaluate it on the test split first)")
    schema = release.eval.spec().schema_path if release is not None else None
    schema = schema or (str(schema_beside(dataset)) if schema_beside(dataset) else None)
    generation = release.eval.spec().generation if release is not None else GenerationSettings()
    first = dataset or (suite_paths[0] if suite_paths else sd.db_path)
    spec = EvalSpec(
        name=f"revalidate-{_slug(name)}",
        dataset=str(Path(first).resolve()),
        source="dataset" if dataset is not None else "suite",
        selection=selection,
        models=models,
        generation=generation,
        schema=schema,
        baseline=baseline,
        suites=[str(Path(s).resolve()) for s in suite_paths],
        revalidation={
            "server": sd.id,
            "model": name,
            "release": release.eval.id if release is not None else None,
            "production": len(prod),
            "since": time.time() - since_s,
            "notes": notes,
        },
    )
    ev = create_eval(workspace, spec, examples)
    if release is not None:
        _copy_release(ev, release, baseline or "")
    if not wait:
        from workbench.eval.runner import launch

        launch(ev)
        return ev
    from workbench.eval.worker import append_to_log, run_eval

    run_eval(ev, progress=progress, log=append_to_log(ev), handle_signals=False)
    judge_model = judge or settings.judge_model
    if judge_model and ev.status().state == "completed":
        from workbench.eval.judging import judge_eval
        from workbench.llm import LLM
        from workbench.models import cache_dir

        llm = LLM(judge_model, cache_dir=cache_dir() / "llm", mock=llm_mock)
        judge_eval(ev, llm, models=[endpoint.key])
    return ev


def _copy_release(ev: Any, release: Any, key: str) -> int:
    """The release eval's answers to the examples whose prompt is unchanged, under the frozen key."""
    theirs = {str(e.get("id")): e.get("messages") for e in release.eval.examples()}
    predictions = release.eval.predictions()
    records = []
    for example in ev.examples():
        eid = str(example.get("id"))
        record = predictions.get((release.model_key, eid))
        if record is None or theirs.get(eid) != example.get("messages"):
            continue
        records.append({**record, "model": key, "copied_from": release.eval.id})
    ev.append_predictions(records)
    return len(records)


__all__ = ["DEFAULT_PRODUCTION", "production_examples", "revalidate"]
