"""The LLM critic: a model scores dataset examples against an editable rubric.

Each example is shown the way a reader sees it (:func:`workbench.data.view.view`:
system, user and assistant turns; chosen and rejected answers for preference
data) next to a few other examples of the dataset, so the model can judge
diversity. The model answers with JSON: an overall score from 1 to 5, a score
per criterion and a one-sentence reason. Replies are read tolerantly, and one
that cannot be read becomes an *unparsed* verdict that keeps the raw reply:
the critic never crashes on what a model says.

Calls go through :class:`workbench.llm.LLM`, so its disk cache makes a re-run
free, and its ``mock`` makes the whole path run offline.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.data.findings import DataFinding
from workbench.data.formats import Shape
from workbench.data.view import view
from workbench.errors import DataError
from workbench.llm import LLM, Messages, Progress, Usage, extract_json, rubric_items

CHECK = "llm_critic"
"""The DataFinding check id of the critic."""

SCORE_RANGE = (1, 5)

DEFAULT_RUBRIC = """\
You review training examples for fine-tuning a language model. Judge the example on each criterion,
from 1 (bad) to 5 (excellent):
- format: the answer follows the format that the system prompt and the other examples use
  (the same structure, fields and conventions, e.g. valid JSON with the same keys, ISO dates).
- correctness: the answer is right for the prompt: every fact and value is supported by the prompt,
  nothing is invented, nothing asked for is missing.
- helpfulness: the answer does what the user asked, completely, without padding or refusing needlessly;
  the prompt is something the model can actually answer (no unseen attachments or links).
- diversity: the example adds something the other examples shown do not (a new situation, wording or
  edge case); a near copy of another example scores 1.
For preference data, judge the chosen answer; the rejected answer should be clearly worse than it.
The overall score is your verdict on the example as training data: an example that would teach
something wrong scores 2 or lower, a doubtful one 3, a good one 4 or 5."""
"""The rubric users start from; they may edit it freely (criteria are read from its ``- name:`` lines)."""

DEFAULT_CRITERIA = ("format", "correctness", "helpfulness", "diversity")

CONTEXT_CHARS = 600
"""How much of each context example the critic sees."""

_SCORE_KEYS = ("score", "overall", "overall_score", "rating")
_REASON_KEYS = ("reason", "explanation", "rationale", "why")
_LINE_START = r"(?im)^[\s*#>_-]*"
_SEP = r"[\s*_]*[:=][\s*_]*"
_NUMBER = r"(\d+(?:\.\d+)?)"


@dataclass(frozen=True)
class Verdict:
    """What the critic said about one example."""

    index: int
    """The example's 0-based position in the rows."""
    score: int | None
    """The overall score, 1 to 5; None when the reply could not be read."""
    criteria: dict[str, int] = field(default_factory=dict)
    """A score per criterion, as the model named them."""
    reason: str = ""
    """The model's one-sentence reason; for an unparsed verdict, why the reply could not be read."""
    raw: str = ""
    """The reply as the model wrote it."""
    cached: bool = False

    @property
    def unparsed(self) -> bool:
        return self.score is None

    @property
    def severity(self) -> str | None:
        """``error`` for a score of 2 or less, ``warning`` for 3, None for 4 and 5 (``info`` when unparsed)."""
        if self.score is None:
            return "info"
        if self.score <= 2:
            return "error"
        return "warning" if self.score == 3 else None

    def finding(self) -> DataFinding | None:
        """The verdict as a DataFinding, or None when the example is fine."""
        severity = self.severity
        if severity is None:
            return None
        if self.score is None:
            return DataFinding(self.index, CHECK, severity, f"the LLM critic's reply could not be read: {self.reason}")
        low = ", ".join(f"{name} {value}" for name, value in self.criteria.items() if value <= 2)
        detail = f" (low: {low})" if low else ""
        return DataFinding(
            self.index,
            CHECK,
            severity,
            f"LLM critic score {self.score}/5{detail}: {self.reason}",
            score=float(self.score),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unparsed": self.unparsed}


@dataclass
class CriticResult:
    """The critic's verdicts on the examples it was asked about (those done, when cancelled)."""

    model: str
    verdicts: list[Verdict]
    usage: Usage
    """What this run cost: cached verdicts are free."""
    cancelled: bool = False
    requested: int = 0
    """How many examples were asked for (more than ``len(verdicts)`` when cancelled)."""
    rubric: str = DEFAULT_RUBRIC

    @property
    def unparsed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.unparsed]

    def findings(self) -> list[DataFinding]:
        """One DataFinding per example scored 3 or less (or whose reply could not be read)."""
        return [f for v in self.verdicts if (f := v.finding()) is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "cancelled": self.cancelled,
            "requested": self.requested,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "usage": self.usage.model_dump(),
            "rubric": self.rubric,
        }


def critique_with_llm(
    rows: Sequence[Any],
    shape: Shape | str,
    llm: LLM,
    *,
    indexes: Sequence[int] | None = None,
    sample: int | None = None,
    seed: int = 0,
    rubric: str = DEFAULT_RUBRIC,
    context: int = 3,
    workers: int = 4,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> CriticResult:
    """Ask ``llm`` to score examples against ``rubric``.

    ``indexes`` picks examples (default: all); ``sample`` then takes a random
    ``sample`` of them, chosen by ``seed``. Each example is shown with
    ``context`` other examples (picked by ``seed`` too, so a re-run sends the
    same request and the cache answers it). ``progress(done, total)`` and
    ``cancel`` work as in :meth:`LLM.complete_many`; a cancelled run returns
    the verdicts done so far.
    """
    shape = Shape.parse(shape)
    chosen = _choose(len(rows), indexes, sample, seed)
    criteria = rubric_criteria(rubric)
    system = f"{rubric.strip()}\n\n{reply_format(criteria)}"
    requests = [_request(rows, shape, index, system, context, seed) for index in chosen]
    replies = llm.complete_many(requests, workers=workers, progress=progress, cancel=cancel)
    verdicts = [
        parse_verdict(index, reply.text, criteria, cached=reply.cached)
        for index, reply in zip(chosen, replies, strict=True)
        if reply is not None
    ]
    return CriticResult(
        model=llm.model,
        verdicts=verdicts,
        usage=Usage.of(replies),
        cancelled=len(verdicts) < len(chosen),
        requested=len(chosen),
        rubric=rubric,
    )


def rubric_criteria(rubric: str) -> tuple[str, ...]:
    """The criteria a rubric names on its ``- name: ...`` lines (the defaults when it names none)."""
    return rubric_items(rubric) or DEFAULT_CRITERIA


def reply_format(criteria: Sequence[str]) -> str:
    """The instruction that asks for the JSON verdict (kept out of the editable rubric so edits cannot break it)."""
    scores = ", ".join(f'"{name}": <1-5>' for name in criteria)
    return (
        "Reply with one JSON object and nothing else:\n"
        f'{{"score": <overall 1-5>, "criteria": {{{scores}}}, "reason": "<one sentence>"}}'
    )


def render_example(row: Any, shape: Shape | str | None, *, system: bool = True) -> str:
    """An example as labelled turns (``[user]``, ``[assistant]``, ``[chosen assistant]``...), for a prompt."""
    example = view(row, shape)
    parts = [f"[{t.role}]\n{t.content}" for t in example.prompt if system or t.role != "system"]
    answer_prefix = "chosen " if example.is_preference else ""
    parts += [f"[{answer_prefix}{t.role}]\n{t.content}" for t in example.response]
    parts += [f"[rejected {t.role}]\n{t.content}" for t in example.rejected or ()]
    if example.label is not None:
        parts.append(f"[label] {'desirable' if example.label else 'undesirable'}")
    if example.problems:
        parts.append(f"[unreadable parts] {'; '.join(example.problems)}")
    return "\n\n".join(parts)


def parse_verdict(
    index: int, text: str, criteria: Sequence[str] = DEFAULT_CRITERIA, *, cached: bool = False
) -> Verdict:
    """Read a verdict from a reply: a JSON object (fenced or with text around it), else ``Score: 4`` lines.

    A reply without a readable score from 1 to 5 gives an unparsed verdict
    whose reason says why; the raw reply is kept either way.
    """
    if not text.strip():
        return Verdict(index, None, reason="the reply is empty", raw=text, cached=cached)
    found = _from_json(text, criteria) or _from_lines(text, criteria)
    if found is None:
        return Verdict(index, None, reason="no score in the reply", raw=text, cached=cached)
    value, scores, reason = found
    score = _score(value)
    if score is None:
        low, high = SCORE_RANGE
        return Verdict(
            index, None, reason=f"the score {value!r} is not a number from {low} to {high}", raw=text, cached=cached
        )
    return Verdict(index, score, scores, reason, text, cached)


# -- internals ---------------------------------------------------------------


def _choose(count: int, indexes: Sequence[int] | None, sample: int | None, seed: int) -> list[int]:
    if indexes is None:
        chosen = list(range(count))
    else:
        bad = [i for i in indexes if not 0 <= i < count]
        if bad:
            raise DataError(f"example index {bad[0]} is out of range: the dataset has {count} rows")
        chosen = sorted(set(indexes))
    if sample is not None and sample < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, max(0, sample)))
    return chosen


def _request(rows: Sequence[Any], shape: Shape, index: int, system: str, context: int, seed: int) -> Messages:
    others = max(0, len(rows) - 1)  # every row but this one: picks at or past the index shift up by one
    picked = [i + (i >= index) for i in random.Random(f"{seed}:{index}").sample(range(others), min(context, others))]
    shown = [_clip(render_example(rows[i], shape, system=False)) for i in sorted(picked)]
    parts = ["Other examples from the same dataset (system prompt left out), for judging diversity:"]
    parts += [f"--- other example {n} ---\n{text}" for n, text in enumerate(shown, 1)] or ["(none)"]
    parts.append(f"--- the example to judge ---\n{render_example(rows[index], shape)}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _clip(text: str, limit: int = CONTEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"


def _from_json(text: str, criteria: Sequence[str]) -> tuple[Any, dict[str, int], str] | None:
    """Score, criteria and reason from the first JSON object in the reply that has a score.

    Criterion scores are read from a ``criteria`` (or ``scores``) object, else from top-level keys named
    like the rubric's criteria."""
    candidates: list[Any] = []
    for value in extract_json(text):
        candidates += value if isinstance(value, list) else [value]
    for obj in candidates:
        if not isinstance(obj, Mapping):
            continue
        lowered = {str(k).lower(): v for k, v in obj.items()}
        key = next((k for k in _SCORE_KEYS if k in lowered), None)
        if key is None:
            continue
        nested = lowered.get("criteria", lowered.get("scores"))
        pool = nested if isinstance(nested, Mapping) else {k: v for k, v in lowered.items() if k in criteria}
        scores = {str(k).lower(): s for k, v in pool.items() if (s := _score(v)) is not None}
        reason = next((str(lowered[k]) for k in _REASON_KEYS if lowered.get(k) is not None), "")
        return lowered[key], scores, reason.strip()
    return None


def _from_lines(text: str, criteria: Sequence[str]) -> tuple[Any, dict[str, int], str] | None:
    """The fallback: ``Score: 4`` (``**Overall score:** 4/5``...) lines."""
    score = re.search(_LINE_START + r"(?:overall[\s_]*)?(?:score|rating)" + _SEP + _NUMBER, text)
    if score is None:
        return None
    scores = {}
    for name in criteria:
        found = re.search(
            _LINE_START + re.escape(name).replace("_", "[ _]") + r"\w*[\s*_]*(?:score)?" + _SEP + _NUMBER, text
        )
        if found and (value := _score(found.group(1))) is not None:
            scores[name] = value
    reason = re.search(_LINE_START + r"(?:" + "|".join(_REASON_KEYS) + r")" + _SEP + r"(.+)$", text)
    return score.group(1), scores, reason.group(1).strip().strip('"') if reason else ""


def _score(value: Any) -> int | None:
    """A 1-5 score from a number or text like ``4``, ``"4"``, ``"4/5"``, ``4.0`` (halves round up); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*5)?\s*", value)
        if match is None:
            return None
        value = float(match.group(1))
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    score = math.floor(value + 0.5)
    low, high = SCORE_RANGE
    return score if low <= score <= high else None
