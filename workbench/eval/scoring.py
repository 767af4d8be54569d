"""Scores of an eval's predictions: every automated metric, suite checks, and the cached MiniLM similarity.

The cheap metrics are recomputed whenever an eval is read (10k predictions in
about a second), so they always follow the code. The similarity needs MiniLM,
so it is computed on request and kept in ``similarity.jsonl``, keyed by the
output's and the reference's hashes: a regenerated answer is scored again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workbench.eval import metrics
from workbench.eval.store import EvalDir
from workbench.eval.suites import Case, CaseResult, check_case
from workbench.fileio import atomic_write_text
from workbench.train.rundir import read_jsonl

Key = tuple[str, str]  # (model key, example id)


def task_checks(ev: EvalDir) -> tuple[dict[str, Any] | None, str | None]:
    """The eval's JSON Schema (read from its file) and regex; a missing file reads as none, with the reason."""
    spec = ev.spec()
    schema = None
    if spec.schema_path:
        try:
            schema = json.loads(Path(spec.schema_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            schema = None
    return schema, spec.regex


def case_of(example: Mapping[str, Any]) -> Case | None:
    """The regression or red-team case an example carries (examples made from a suite), else None."""
    expect = example.get("expect")
    if not isinstance(expect, dict) or not expect:
        return None
    kind = example.get("kind") or ("red-team" if expect.get("refuse") is True else "regression")
    return Case(id=str(example["id"]), messages=list(example.get("messages") or []), expect=expect, kind=kind, line=0)


def score_predictions(
    examples: list[dict[str, Any]],
    predictions: Mapping[Key, Mapping[str, Any]],
    *,
    schema: dict[str, Any] | None = None,
    regex: str | None = None,
) -> dict[Key, dict[str, float | None]]:
    """Every metric but similarity for every prediction whose example is known."""
    by_id = {str(e["id"]): e for e in examples}
    return {
        key: metrics.score_example(
            str(record.get("output") or ""), by_id[key[1]].get("reference"), schema=schema, regex=regex
        )
        for key, record in predictions.items()
        if key[1] in by_id
    }


def check_cases(examples: list[dict[str, Any]], predictions: Mapping[Key, Mapping[str, Any]]) -> dict[Key, CaseResult]:
    """The suite verdict of each prediction whose example is a regression or red-team case."""
    cases = {str(e["id"]): c for e in examples if (c := case_of(e)) is not None}
    return {
        key: check_case(cases[key[1]], str(record.get("output") or ""))
        for key, record in predictions.items()
        if key[1] in cases
    }


# --- similarity (MiniLM), cached ---------------------------------------------------------------


def _sha(text: str | None) -> str:
    return hashlib.sha1((text or "").encode("utf-8")).hexdigest()[:16]


def similarity_path(ev: EvalDir) -> Path:
    return ev.path / "similarity.jsonl"


def load_similarity(
    ev: EvalDir, examples: list[dict[str, Any]], predictions: Mapping[Key, Mapping[str, Any]]
) -> dict[Key, float | None]:
    """Cached similarities that still match the output and the reference."""
    refs = {str(e["id"]): e.get("reference") for e in examples}
    cached = {(r["model"], r["id"]): r for r in read_jsonl(similarity_path(ev))[0] if "model" in r and "id" in r}
    out: dict[Key, float | None] = {}
    for key, record in predictions.items():
        hit = cached.get(key)
        if hit and hit.get("out") == _sha(record.get("output")) and hit.get("ref") == _sha(refs.get(key[1])):
            out[key] = hit.get("similarity")
    return out


def compute_similarity(
    ev: EvalDir,
    *,
    embedder: Any = None,
    progress: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[Key, float | None]:
    """MiniLM similarity of each output with its reference, computing only what the cache lacks."""
    examples, predictions = ev.examples(), ev.predictions()
    have = load_similarity(ev, examples, predictions)
    refs = {str(e["id"]): e.get("reference") for e in examples}
    todo = [k for k in predictions if k not in have and k[1] in refs]
    if todo and not (cancel and cancel.is_set()):
        if progress:
            progress(f"similarity: embedding {len(todo)} answer(s) with MiniLM…")
        values = metrics.semantic_similarity(
            [str(predictions[k].get("output") or "") for k in todo], [refs[k[1]] for k in todo], embedder=embedder
        )
        have.update(zip(todo, values))
    lines = [
        json.dumps(
            {
                "model": k[0],
                "id": k[1],
                "similarity": v,
                "out": _sha(predictions[k].get("output")),
                "ref": _sha(refs.get(k[1])),
            }
        )
        for k, v in have.items()
    ]
    atomic_write_text(similarity_path(ev), "".join(line + "\n" for line in lines))
    return have


def scores_path(ev: EvalDir) -> Path:
    return ev.path / "scores.jsonl"


def write_scores(ev: EvalDir) -> Path:
    """scores.jsonl: every automated metric (and the case verdict) of every prediction, for scripts and reports.

    Written when a generation completes and with each report; the pane recomputes its own, so this
    file is a record, never an input.
    """
    examples, predictions = ev.examples(), ev.predictions()
    schema, regex = task_checks(ev)
    scores = score_predictions(examples, predictions, schema=schema, regex=regex)
    cases = check_cases(examples, predictions)
    similarity = load_similarity(ev, examples, predictions)
    lines = []
    for key in sorted(scores):
        record: dict[str, Any] = {"model": key[0], "id": key[1], **scores[key]}
        if key in similarity:
            record["similarity"] = similarity[key]
        if key in cases:
            record["case_passed"] = cases[key].passed
            record["case_failures"] = cases[key].failures
        lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(scores_path(ev), "".join(line + "\n" for line in lines))
    return scores_path(ev)
