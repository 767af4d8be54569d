"""The reference a served model's traffic is compared with: its release eval, or its test split.

The release eval (:mod:`workbench.monitor.release`: the same model on the test split, before it was
served) says what the model's answers looked like when it was judged good enough to ship: their
lengths, the values of the schema's categorical fields, their languages, and how often they failed
(schema, refusals, empty, cut at max tokens). With no such eval the test split's reference answers
stand in (what the model was trained to answer), and the monitor says so: the answers' drift is then
measured against the data, not against the model, and failure rates have no reference.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.monitor.health import Health, judge, load_schema


@dataclass
class Rate:
    """``k`` of ``n`` answers failed in this way."""

    k: int = 0
    n: int = 0

    @property
    def share(self) -> float | None:
        return self.k / self.n if self.n else None


@dataclass
class Baseline:
    """The distributions and failure rates of the reference answers."""

    source: str
    """``release`` (an eval of the served model) or ``test split`` (the data's reference answers)."""
    label: str
    """What people read: ``release eval support-20261203-120000 (demo 11:40 · step 24)``."""
    eval_id: str | None = None
    dataset: str | None = None
    schema_path: str | None = None
    n: int = 0
    answer_lengths: list[int] = field(default_factory=list)
    prompt_lengths: list[int] = field(default_factory=list)
    fields: dict[str, Counter[str]] = field(default_factory=dict)
    languages: Counter[str] = field(default_factory=Counter)
    prompt_languages: Counter[str] = field(default_factory=Counter)
    rates: dict[str, Rate] = field(default_factory=dict)
    """``invalid``, ``refusal``, ``empty``, ``truncated``: only for a release eval (the model's own answers)."""

    def add(self, health: Health, *, rates: bool) -> None:
        self.n += 1
        self.prompt_lengths.append(health.prompt_chars)
        if health.prompt_lang:
            self.prompt_languages[health.prompt_lang] += 1
        if health.answer_chars is None:
            return
        self.answer_lengths.append(health.answer_chars)
        if health.lang:
            self.languages[health.lang] += 1
        for name, value in (health.fields or {}).items():
            self.fields.setdefault(name, Counter())[value] += 1
        if rates:
            for name, flag in (
                ("invalid", None if health.valid is None else not health.valid),
                ("refusal", health.refusal),
                ("empty", health.empty),
                ("truncated", health.truncated),
            ):
                if flag is not None:
                    rate = self.rates.setdefault(name, Rate())
                    rate.n += 1
                    rate.k += int(flag)


def baseline_of_eval(ev: Any, model_key: str, *, label: str | None = None) -> Baseline:
    """The answers of ``model_key`` in eval ``ev`` to the eval's dataset rows (regression and red-team cases,
    which are not the traffic a model serves, are left out)."""
    spec = ev.spec()
    schema = load_schema(spec.schema_path) if spec.schema_path else None
    base = Baseline(
        source="release",
        label=label or f"release eval {ev.id}",
        eval_id=ev.id,
        dataset=spec.dataset,
        schema_path=spec.schema_path,
    )
    predictions = ev.predictions()
    for example in ev.examples():
        if example.get("expect") or example.get("source") == "production":
            continue
        record = predictions.get((model_key, str(example.get("id"))))
        if record is None:
            continue
        finish = record.get("finish")
        health = judge(example.get("messages") or [], record.get("output"), _finish_reason(finish), schema)
        base.add(health, rates=True)
    return base


def baseline_of_dataset(path: str | Path, *, schema_path: str | Path | None = None) -> Baseline:
    """The reference answers of a test split, when no eval of the served model exists."""
    from workbench.eval.candidates import examples_from_dataset
    from workbench.eval.plan import schema_beside

    path = Path(path)
    schema_file = Path(schema_path) if schema_path else schema_beside(path)
    schema = load_schema(schema_file) if schema_file else None
    base = Baseline(
        source="test split",
        label=f"the test split's reference answers ({path.name}; no release eval of this model)",
        dataset=str(path),
        schema_path=str(schema_file) if schema_file else None,
    )
    for example in examples_from_dataset(path, skip_bad=True):
        reference = example.get("reference")
        base.add(judge(example["messages"], reference, "stop" if reference is not None else None, schema), rates=False)
    return base


def baseline_for(workspace: str | Path, ref: Any) -> Baseline | None:
    """The served model's baseline: its release eval, else its run's test split, else None."""
    from workbench.monitor.release import release_eval

    release = release_eval(workspace, ref)
    if release is not None:
        return baseline_of_eval(
            release.eval, release.model_key, label=f"release eval {release.eval.id} ({release.model.label})"
        )
    test = test_split_of(workspace, ref)
    if test is None:
        return None
    try:
        return baseline_of_dataset(test)
    except WorkbenchError:
        return None


def test_split_of(workspace: str | Path, ref: Any) -> Path | None:
    """The test split of the run a ref (or a merged model's ``workbench.json``) comes from."""
    from workbench.eval.candidates import config_test_file

    run_id = getattr(ref, "run_id", None)
    if not run_id:
        from workbench.ship.provenance import read_provenance

        path = Path(str(getattr(ref, "path", ""))).expanduser()
        run_id = read_provenance(path).get("run_id") if path.is_dir() else None
    if not run_id:
        return None
    from workbench.train.runner import find_run

    try:
        run = find_run(workspace, str(run_id))
    except WorkbenchError:
        return None
    return config_test_file(run.config_path)


def _finish_reason(finish: Any) -> str | None:
    """The eval's ``finish`` (``stop``, ``length``/``max_new_tokens``...) as an OpenAI finish_reason."""
    if finish is None:
        return None
    text = str(finish)
    return "length" if text in ("length", "max_new_tokens", "max_tokens") else "stop"


__all__ = ["Baseline", "Rate", "baseline_for", "baseline_of_dataset", "baseline_of_eval", "test_split_of"]
