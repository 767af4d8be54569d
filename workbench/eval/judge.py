"""The LLM judge: a model grades answers against an editable rubric, one at a time or two side by side.

*Single-answer grading* scores one model's answer to one example, 1 to 5 or
pass/fail, overall and per rubric item, with a reason. *Pairwise judging*
shows two models' answers to the same example twice, the second time with
their places swapped: a judge that changes its mind when only the order
changed has shown position bias, and the pair counts as a tie.

The judge never sees which model wrote an answer. Replies are read
tolerantly (JSON anywhere in the reply, ``Score: 4`` lines, ``PASS``/``FAIL``,
``[[A]]``); a reply that cannot be read becomes an *unparsed* verdict that
keeps the raw reply and says why: the judge never crashes on what a model says.

Calls go through :class:`workbench.llm.LLM` at temperature 0, so a judgement
is repeatable and the disk cache makes a re-run free; its ``mock`` makes the
whole path run offline.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, computed_field, model_serializer

from workbench.data.critic import parse_verdict, reply_format
from workbench.errors import WorkbenchError
from workbench.llm import LLM, Messages, Progress, Reply, Usage, extract_json, rubric_items

ExampleId = str | int
"""An example's id in an eval (its row id, or its position in the eval set)."""

SCALES = ("1-5", "pass/fail")
"""The scales a rubric can grade on: a score from 1 (bad) to 5 (excellent), or pass (1) / fail (0)."""

DEFAULT_RUBRIC = """\
You grade a model's answer to the last user turn of a conversation. Judge the answer on each item:
- correctness: every fact, value and step is right; when a reference answer is given, the answer
  agrees with it (the wording may differ).
- format: the answer has the form the conversation asks for or implies (structure, fields and
  conventions, e.g. valid JSON with the expected keys, ISO dates).
- completeness: the answer does everything the user asked; nothing asked for is missing.
- concision: no padding, repetition or needless refusal; the length suits the question.
Correctness weighs most: a wrong answer fails, or scores 2 or lower, however well it is written."""
"""The rubric users start from; they may edit it freely (its items are read from its ``- name:`` lines)."""

DEFAULT_ITEMS = ("correctness", "format", "completeness", "concision")

RAW_CHARS = 4000
"""How much of a reply a verdict keeps."""

PAIR_INSTRUCTIONS = """\
You are shown two answers, A and B, to the same conversation. Decide which answer is better by the
criteria above. The order in which the answers are shown and their length say nothing about their
quality. Call it a tie when neither is better."""

PAIR_REPLY_FORMAT = """\
Reply with one JSON object and nothing else:
{"winner": "A" | "B" | "tie", "reason": "<one sentence>"}"""

_REASON_KEYS = ("reason", "reasons", "explanation", "rationale", "why")
_VERDICT_KEYS = ("verdict", "result", "pass", "passed", "grade", "score", "overall")
_CHOICE_KEYS = ("winner", "better", "preferred", "preference", "choice", "verdict", "answer")
_ITEM_KEYS = ("criteria", "items", "scores")
_PASS_WORDS = frozenset({"pass", "passed", "passes", "yes", "true", "ok", "good", "correct"})
_FAIL_WORDS = frozenset({"fail", "failed", "fails", "no", "false", "bad", "incorrect", "wrong"})
_TIE_WORDS = frozenset({"tie", "tied", "draw", "equal", "same", "both", "neither", "none", "c"})
_LINE_START = r"(?im)^[\s*#>_-]*"
_SEP = r"[\s*_]*[:=][\s*_]*"
_WORD = r"[\"'\[(]*(\w+)"


# -- the rubric --------------------------------------------------------------


@dataclass(frozen=True)
class Rubric:
    """What the judge grades by: text the user edits, and the scale it grades on."""

    text: str = DEFAULT_RUBRIC
    scale: str = "1-5"
    """``1-5`` or ``pass/fail`` (:data:`SCALES`)."""

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise WorkbenchError(f"unknown judge scale {self.scale!r}: use 1-5 or pass/fail")

    @classmethod
    def parse(cls, text: str, scale: str = "1-5") -> Rubric:
        """A rubric from the pane's editor; the scale may be spelt loosely (``1-5``, ``pass-fail``, ``binary``)."""
        key = re.sub(r"[\s_/-]+", "", scale.lower())
        aliases = {
            "15": "1-5",
            "1to5": "1-5",
            "5": "1-5",
            "likert": "1-5",
            "passfail": "pass/fail",
            "binary": "pass/fail",
        }
        return cls(text if text.strip() else DEFAULT_RUBRIC, aliases.get(key, scale))

    @property
    def items(self) -> tuple[str, ...]:
        """The items the text names on its ``- name: ...`` lines; () when it names none (an overall grade only)."""
        return rubric_items(self.text)

    @property
    def pass_fail(self) -> bool:
        return self.scale == "pass/fail"

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "scale": self.scale, "items": list(self.items)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rubric:
        return cls.parse(str(data.get("text", DEFAULT_RUBRIC)), str(data.get("scale", "1-5")))


@dataclass(frozen=True)
class JudgeCase:
    """One model's answer to one example, as the judge sees it."""

    example_id: ExampleId
    prompt: str
    """The conversation up to the last user turn, rendered as text."""
    reference: str | None
    """The expected answer, when the eval set has one; the judge grades against it."""
    output: str
    """The model's answer."""
    model: str
    """The model's key in the eval (``base``, an adapter's name...); never shown to the judge."""


# -- verdicts ----------------------------------------------------------------


class _Verdict(BaseModel):
    """What both kinds of verdict share: a frozen record, what it cost, and its judge.jsonl form.

    ``model_dump(mode="json")`` writes a judge.jsonl record (with the computed
    fields, ``usage`` last); ``model_validate`` reads one back, old records too.
    """

    model_config = ConfigDict(frozen=True)

    usage: Usage = Field(default_factory=Usage)
    """What the call(s) cost this time (nothing when answered from the cache)."""

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens

    @property
    def cost_usd(self) -> float | None:
        """None when the judge model's price is unknown."""
        return self.usage.cost_usd if self.usage.cost_known else None

    @model_serializer(mode="wrap")
    def _usage_last(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        data["usage"] = data.pop("usage")  # where judge.jsonl has always had it
        return data


class SingleVerdict(_Verdict):
    """The judge's grade of one model's answer to one example."""

    example_id: ExampleId
    model: str
    score: int | None
    """1 to 5, or 1 (pass) / 0 (fail); None when the reply could not be read."""
    item_scores: dict[str, int] = Field(default_factory=dict)
    """A score per rubric item, on the same scale, as far as the reply gave them."""
    reasons: str = ""
    """The judge's reason; for an unparsed verdict, why the reply could not be read."""
    raw: str = ""
    """The reply as the judge wrote it (clipped to :data:`RAW_CHARS`)."""
    scale: str = "1-5"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def unparsed(self) -> bool:
        return self.score is None


class PairVerdict(_Verdict):
    """The judge's choice between two models' answers to one example, asked in both orders.

    ``first`` and ``second`` are the two rounds' answers in terms of the
    models (``a`` is ``model_a`` whichever place it was shown in). The winner
    is their common answer; when they differ the judge followed the order,
    not the answers, and the winner is ``tie``. When either round could not be
    read the winner is None (unparsed): one order alone cannot rule out
    position bias. ``usage`` is both calls together.
    """

    example_id: ExampleId
    model_a: str
    model_b: str
    winner: str | None
    """``a``, ``b`` or ``tie``; None when a reply could not be read."""
    first: str | None
    """The round with ``model_a`` shown first: ``a``, ``b``, ``tie``, or None (unparsed)."""
    second: str | None
    """The round with ``model_b`` shown first, mapped back to the models."""
    reason_first: str = ""
    reason_second: str = ""
    raw_first: str = ""
    raw_second: str = ""

    @property
    def unparsed(self) -> bool:
        return self.winner is None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def consistent(self) -> bool:
        """Both rounds read and agreeing: no sign of position bias."""
        return self.first is not None and self.first == self.second

    @property
    def winner_model(self) -> str | None:
        """The winning model's key, ``tie``, or None."""
        return {"a": self.model_a, "b": self.model_b}.get(self.winner or "", self.winner)

    @property
    def position_bias(self) -> str | None:
        """``first`` or ``second`` when the judge picked whichever answer stood in that place both times."""
        return {("a", "b"): "first", ("b", "a"): "second"}.get((self.first or "", self.second or ""))

    @property
    def reasons(self) -> str:
        return f"[{self.model_a} first] {self.reason_first} | [{self.model_b} first] {self.reason_second}"


def usage_of(verdicts: Iterable[SingleVerdict | PairVerdict]) -> Usage:
    """What some verdicts cost together."""
    total = Usage()
    for verdict in verdicts:
        for name in Usage.model_fields:
            setattr(total, name, getattr(total, name) + getattr(verdict.usage, name))
    return total


# -- single-answer grading ---------------------------------------------------


def judge_single(
    llm: LLM,
    cases: Sequence[JudgeCase],
    rubric: Rubric | None = None,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    workers: int = 4,
    temperature: float = 0.0,
) -> list[SingleVerdict]:
    """Grade each case's answer against ``rubric`` (default: :data:`DEFAULT_RUBRIC` on 1-5).

    One call per case. ``progress(done, total)`` and ``cancel`` work as in
    :meth:`LLM.complete_many`; a cancelled run returns the verdicts done, in
    the cases' order. Provider errors (no key, rate limits after the
    retries) raise :class:`WorkbenchError`; replies never do.
    """
    rubric = rubric or Rubric()
    system = single_system_prompt(rubric)
    requests = [
        _messages(system, _conversation(case) + [f"[answer to grade]\n{_answer(case.output)}"]) for case in cases
    ]
    replies = llm.complete_many(requests, workers=workers, progress=progress, cancel=cancel, temperature=temperature)
    return [_single(case, reply, rubric) for case, reply in zip(cases, replies, strict=True) if reply is not None]


def single_system_prompt(rubric: Rubric) -> str:
    """The rubric and the reply format (kept out of the editable text so that edits cannot break it)."""
    items = rubric.items
    if rubric.pass_fail:
        shown = ", ".join(f'"{name}": "pass" | "fail"' for name in items)
        reply = (
            "Grade the answer pass or fail, overall and on each item.\n"
            "Reply with one JSON object and nothing else:\n"
            f'{{"verdict": "pass" | "fail", "criteria": {{{shown}}}, "reason": "<one sentence>"}}'
        )
    else:
        reply = f"Score the answer from 1 (bad) to 5 (excellent), overall and on each item.\n{reply_format(items)}"
    return f"{rubric.text.strip()}\n\n{reply}"


def parse_single(
    text: str,
    rubric: Rubric | None = None,
    *,
    example_id: ExampleId = "",
    model: str = "",
    usage: Usage | None = None,
    truncated: bool = False,
) -> SingleVerdict:
    """A verdict from a reply; one without a readable grade on the rubric's scale is unparsed, never an error.

    On 1-5 this is the Data critic's reader (:func:`workbench.data.critic.parse_verdict`): JSON with a
    ``score`` (``4``, ``"4/5"``, ``4.5`` rounds up), else ``Score: 4`` lines; scores outside 1-5 are
    unparsed (an item outside it is dropped). On pass/fail: ``"verdict": "pass"`` (or true/false, 1/0),
    ``Verdict: FAIL`` lines, else a lone ``PASS`` or ``FAIL`` word in capitals.
    """
    rubric = rubric or Rubric()
    if rubric.pass_fail:
        score, items, reason = _read_pass_fail(text, rubric.items)
    else:
        read = parse_verdict(0, text, rubric.items)
        score, items, reason = read.score, dict(read.criteria), read.reason
    if score is None and truncated:
        reason += " (the reply was cut off at max_tokens)"
    return SingleVerdict(
        example_id=example_id,
        model=model,
        score=score,
        item_scores=items,
        reasons=reason,
        raw=_clip(text),
        scale=rubric.scale,
        usage=usage or Usage(),
    )


# -- pairwise ----------------------------------------------------------------


def judge_pairwise(
    llm: LLM,
    pairs: Sequence[tuple[JudgeCase, JudgeCase]],
    rubric: Rubric | None = None,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    workers: int = 4,
    temperature: float = 0.0,
) -> list[PairVerdict]:
    """Choose between two models' answers to each example, asking twice with the answers' places swapped.

    Each pair is ``(case of model_a, case of model_b)`` for the same example.
    Identical answers are a tie without asking. ``progress(done, total)``
    counts calls (two per pair); a cancelled run returns the pairs whose two
    calls both finished. See :class:`PairVerdict` for how the rounds combine.
    """
    rubric = rubric or Rubric()
    system = f"{rubric.text.strip()}\n\n{PAIR_INSTRUCTIONS}\n{PAIR_REPLY_FORMAT}"
    asked: list[int] = []
    requests: list[Messages] = []
    for n, (a, b) in enumerate(pairs):
        if a.example_id != b.example_id:
            raise WorkbenchError(f"a pair must be one example's two answers: got {a.example_id!r} and {b.example_id!r}")
        if a.output.strip() != b.output.strip():
            asked.append(n)
            requests += [_pair_messages(system, a, a.output, b.output), _pair_messages(system, a, b.output, a.output)]
    replies = llm.complete_many(requests, workers=workers, progress=progress, cancel=cancel, temperature=temperature)
    rounds = {n: (replies[2 * i], replies[2 * i + 1]) for i, n in enumerate(asked)}
    verdicts = []
    for n, (a, b) in enumerate(pairs):
        if n not in rounds:
            verdicts.append(
                PairVerdict(
                    example_id=a.example_id,
                    model_a=a.model,
                    model_b=b.model,
                    winner="tie",
                    first="tie",
                    second="tie",
                    reason_first="the two answers are identical",
                    reason_second="the two answers are identical",
                )
            )
        else:
            first, second = rounds[n]
            if first is not None and second is not None:  # else cancelled before both were answered
                verdicts.append(_pair(a, b, first, second))
    return verdicts


def parse_choice(text: str) -> tuple[str | None, str]:
    """The answer a pairwise reply prefers, by place (``a``, ``b`` or ``tie``), and its reason.

    Reads ``{"winner": "A"}`` (``"Answer B"``, ``"tie"``...) anywhere in the reply, else
    ``Winner: A`` lines, MT-Bench's ``[[A]]``/``[[B]]``/``[[C]]``, or a reply that is just ``A``, ``B`` or
    ``tie``. When none is found the choice is None and the reason says why.
    """
    if not text.strip():
        return None, "the reply is empty"
    for obj in _objects(text):
        key = next((k for k in _CHOICE_KEYS if k in obj), None)
        if key is not None:
            choice = _choice(obj[key])
            if choice is None:
                return None, f"the winner {obj[key]!r} is not A, B or tie"
            return choice, _reason(obj)
    line = re.search(
        _LINE_START
        + r"(?:the\s+)?(?:winner|better(?: answer)?|verdict|choice|preferred(?: answer)?)"
        + _SEP
        + r"[\"'\[(]*(?:answer\s+|response\s+|assistant\s+)?(\w+)",
        text,
    )
    bracket = re.search(r"\[\[\s*(A|B|C|tie)\s*\]\]", text, re.IGNORECASE)
    bare = re.fullmatch(r"[\s\"'*\[(]*(?:answer\s+)?(a|b|tie)[\s\"'*\].)!]*", text, re.IGNORECASE)
    for found in (line, bracket, bare):
        if found and (choice := _choice(found.group(1))) is not None:
            reason = re.search(_LINE_START + "(?:" + "|".join(_REASON_KEYS) + ")" + _SEP + r"(.+)$", text)
            return choice, reason.group(1).strip().strip('"') if reason else ""
    return None, "no winner in the reply"


# -- internals ---------------------------------------------------------------


def _single(case: JudgeCase, reply: Reply, rubric: Rubric) -> SingleVerdict:
    return parse_single(
        reply.text,
        rubric,
        example_id=case.example_id,
        model=case.model,
        usage=Usage.of([reply]),
        truncated=reply.truncated,
    )


def _pair(a: JudgeCase, b: JudgeCase, first: Reply, second: Reply) -> PairVerdict:
    one, reason_one = parse_choice(first.text)
    two, reason_two = parse_choice(second.text)
    two = {"a": "b", "b": "a"}.get(two or "", two)  # model_b stood in place A in the second round
    winner = None if one is None or two is None else one if one == two else "tie"
    return PairVerdict(
        example_id=a.example_id,
        model_a=a.model,
        model_b=b.model,
        winner=winner,
        first=one,
        second=two,
        reason_first=reason_one,
        reason_second=reason_two,
        raw_first=_clip(first.text),
        raw_second=_clip(second.text),
        usage=Usage.of([first, second]),
    )


def _messages(system: str, parts: list[str]) -> Messages:
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _pair_messages(system: str, case: JudgeCase, shown_a: str, shown_b: str) -> Messages:
    answers = [f"[answer A]\n{_answer(shown_a)}", f"[answer B]\n{_answer(shown_b)}"]
    return _messages(system, _conversation(case) + answers)


def _conversation(case: JudgeCase) -> list[str]:
    parts = [f"[conversation]\n{case.prompt.strip()}"]
    if case.reference is not None and case.reference.strip():
        parts.append(f"[reference answer] (correct; the answer need not match its wording)\n{case.reference.strip()}")
    return parts


def _answer(text: str) -> str:
    return text.strip() or "(empty answer)"


def _clip(text: str, limit: int = RAW_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def _objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects in a reply (those inside a top-level array too), keys lowercased."""
    found: list[Any] = []
    for value in extract_json(text):
        found += value if isinstance(value, list) else [value]
    return [{str(k).lower(): v for k, v in obj.items()} for obj in found if isinstance(obj, Mapping)]


def _reason(obj: Mapping[str, Any]) -> str:
    return next((str(obj[k]).strip() for k in _REASON_KEYS if obj.get(k) is not None), "")


def _read_pass_fail(text: str, items: Sequence[str]) -> tuple[int | None, dict[str, int], str]:
    """Grade, item grades and reason (or why there is no grade) from a pass/fail reply."""
    if not text.strip():
        return None, {}, "the reply is empty"
    for obj in _objects(text):
        key = next((k for k in _VERDICT_KEYS if k in obj), None)
        if key is None:
            continue
        nested = next((obj[k] for k in _ITEM_KEYS if isinstance(obj.get(k), Mapping)), None)
        pool = nested if nested is not None else {k: v for k, v in obj.items() if k in items}
        graded = {str(k).lower(): g for k, v in pool.items() if (g := pass_fail_value(v)) is not None}
        score = pass_fail_value(obj[key])
        if score is None:
            return None, {}, f"the verdict {obj[key]!r} is not pass or fail"
        return score, graded, _reason(obj)
    line = re.search(_LINE_START + r"(?:overall[\s_]*)?(?:verdict|result|grade|score)" + _SEP + _WORD, text)
    score = pass_fail_value(line.group(1)) if line else None
    if score is None:
        capitals = {word[:4] for word in re.findall(r"\b(PASS(?:ED)?|FAIL(?:ED)?)\b", text)}
        if len(capitals) != 1:
            return None, {}, "both PASS and FAIL in the reply" if capitals else "no pass or fail in the reply"
        score = 1 if capitals == {"PASS"} else 0
    graded = {}
    for name in items:
        found = re.search(_LINE_START + re.escape(name).replace("_", "[ _]") + _SEP + _WORD, text)
        if found and (value := pass_fail_value(found.group(1))) is not None:
            graded[name] = value
    reason = re.search(_LINE_START + "(?:" + "|".join(_REASON_KEYS) + ")" + _SEP + r"(.+)$", text)
    return score, graded, reason.group(1).strip().strip('"') if reason else ""


def pass_fail_value(value: Any) -> int | None:
    """1 for pass (``"pass"``, true, 1, ``"yes"``), 0 for fail; None for anything else."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value) if value in (0, 1) else None
    if isinstance(value, str):
        word = value.strip().strip(".!\"'").lower()
        return 1 if word in _PASS_WORDS else 0 if word in _FAIL_WORDS else None
    return None


def _choice(value: Any) -> str | None:
    """``a``, ``b`` or ``tie`` from what a judge wrote for the winner."""
    if not isinstance(value, str):
        return None
    word = re.sub(r"^(?:answer|response|assistant|output)\s+", "", value.strip().strip(".!\"'[]()").lower())
    if word in ("a", "b"):
        return word
    return "tie" if word in _TIE_WORDS else None
