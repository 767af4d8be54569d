"""Running the LLM judge over an eval, and keeping its verdicts and rubric beside the predictions.

``rubric.json`` holds the rubric the user edited; ``judge.jsonl`` the verdicts,
one line each, the last per key winning (re-judging with a new rubric replaces
the old verdicts). A verdict remembers a hash of the answer it graded, so one
whose answer was regenerated no longer shows. The judge's model name is kept;
its key never is (keys come from the environment, see workbench.llm).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.eval.judge import JudgeCase, PairVerdict, Rubric, SingleVerdict, judge_pairwise, judge_single, usage_of
from workbench.eval.store import EvalDir
from workbench.fileio import atomic_write_text
from workbench.llm import LLM, Usage
from workbench.train.rundir import append_jsonl, read_jsonl

Key = tuple[str, str]


def rubric_path(ev: EvalDir) -> Path:
    return ev.path / "rubric.json"


def judge_path(ev: EvalDir) -> Path:
    return ev.path / "judge.jsonl"


def load_rubric(ev: EvalDir) -> Rubric:
    """The eval's rubric, or the default one."""
    try:
        return Rubric.from_dict(json.loads(rubric_path(ev).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return Rubric()


def save_rubric(ev: EvalDir, rubric: Rubric) -> None:
    atomic_write_text(rubric_path(ev), json.dumps(rubric.to_dict(), indent=1))


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The conversation as the judge reads it: one block per turn, with its role."""
    return "\n\n".join(f"{m.get('role', 'user')}: {str(m.get('content', '')).strip()}" for m in messages)


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class Verdicts:
    """The judge's verdicts of one eval that still match the answers they graded."""

    def __init__(
        self, single: dict[Key, SingleVerdict], pairs: dict[tuple[str, str, str], PairVerdict], judge_model: str | None
    ) -> None:
        self.single = single  # (model, example id) -> verdict
        self.pairs = pairs  # (example id, model_a, model_b) -> verdict
        self.judge_model = judge_model

    def pair(self, example_id: str, model_a: str, model_b: str) -> PairVerdict | None:
        return self.pairs.get((example_id, model_a, model_b))

    @property
    def usage(self) -> Usage:
        return usage_of([*self.single.values(), *self.pairs.values()])


def load_verdicts(ev: EvalDir, predictions: Mapping[Key, Mapping[str, Any]] | None = None) -> Verdicts:
    """Verdicts from judge.jsonl, dropping those whose answers changed since they were graded."""
    predictions = ev.predictions() if predictions is None else predictions
    shas = {k: _sha(str(r.get("output") or "")) for k, r in predictions.items()}
    single: dict[Key, SingleVerdict] = {}
    pairs: dict[tuple[str, str, str], PairVerdict] = {}
    judge_model = None
    for record in read_jsonl(judge_path(ev))[0]:
        try:
            if record.get("kind") == "single":
                v = SingleVerdict.model_validate(record)
                key = (v.model, str(v.example_id))
                if shas.get(key) == record.get("sha"):
                    single[key] = v
            elif record.get("kind") == "pair":
                p = PairVerdict.model_validate(record)
                ex = str(p.example_id)
                if [shas.get((p.model_a, ex)), shas.get((p.model_b, ex))] == record.get("sha"):
                    pairs[(ex, p.model_a, p.model_b)] = p
            judge_model = record.get("judge") or judge_model
        except (KeyError, TypeError, ValueError):
            continue
    return Verdicts(single, pairs, judge_model)


def _case(example: Mapping[str, Any], model: str, output: str) -> JudgeCase:
    return JudgeCase(
        example_id=str(example["id"]),
        prompt=prompt_text(example.get("messages") or []),
        reference=example.get("reference"),
        output=output,
        model=model,
    )


def judge_eval(
    ev: EvalDir,
    llm: LLM,
    *,
    models: Sequence[str],
    ids: Sequence[str] | None = None,
    rubric: Rubric | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int = 4,
) -> list[SingleVerdict]:
    """Grade each model's answers (of the examples ``ids``, default all) against the rubric; verdicts are kept."""
    rubric = rubric or load_rubric(ev)
    examples = {str(e["id"]): e for e in ev.examples()}
    predictions = ev.predictions()
    wanted = [i for i in (ids if ids is not None else examples) if i in examples]
    cases = [
        _case(examples[i], m, str(predictions[(m, i)].get("output") or ""))
        for i in wanted
        for m in models
        if (m, i) in predictions
    ]
    verdicts = judge_single(llm, cases, rubric, progress=progress, cancel=cancel, workers=workers)
    graded = {(c.model, c.example_id): c.output for c in cases}  # a cancelled run returns fewer verdicts
    for v in verdicts:
        append_jsonl(
            judge_path(ev),
            {
                "kind": "single",
                "judge": llm.model,
                "sha": _sha(graded[(v.model, str(v.example_id))]),
                **v.model_dump(mode="json"),
            },
        )
    return verdicts


def judge_pairs(
    ev: EvalDir,
    llm: LLM,
    *,
    model_a: str,
    model_b: str,
    ids: Sequence[str] | None = None,
    rubric: Rubric | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int = 4,
) -> list[PairVerdict]:
    """Pairwise A/B of two models on each example, asked in both orders (see judge.judge_pairwise)."""
    rubric = rubric or load_rubric(ev)
    examples = {str(e["id"]): e for e in ev.examples()}
    predictions = ev.predictions()
    wanted = [
        i
        for i in (ids if ids is not None else examples)
        if i in examples and (model_a, i) in predictions and (model_b, i) in predictions
    ]
    pairs = [
        (
            _case(examples[i], model_a, str(predictions[(model_a, i)].get("output") or "")),
            _case(examples[i], model_b, str(predictions[(model_b, i)].get("output") or "")),
        )
        for i in wanted
    ]
    verdicts = judge_pairwise(llm, pairs, rubric, progress=progress, cancel=cancel, workers=workers)
    shown = {a.example_id: (a.output, b.output) for a, b in pairs}
    for v in verdicts:
        out_a, out_b = shown[str(v.example_id)]
        append_jsonl(
            judge_path(ev),
            {"kind": "pair", "judge": llm.model, "sha": [_sha(out_a), _sha(out_b)], **v.model_dump(mode="json")},
        )
    return verdicts


def pair_tally(verdicts: Sequence[PairVerdict], model_a: str, model_b: str) -> str:
    """'a 3 · b 1 · ties 2 (1 counted as a tie: ...)': the A/B judge's wins, said the same by the pane and the CLI."""
    wins = {k: sum(v.winner_model == k for v in verdicts) for k in (model_a, model_b, "tie")}
    swayed = sum(not v.consistent and not v.unparsed for v in verdicts)
    return f"{model_a} {wins[model_a]} · {model_b} {wins[model_b]} · ties {wins['tie']}" + (
        f" ({swayed} counted as ties: the judge changed its mind when the order was swapped)" if swayed else ""
    )
