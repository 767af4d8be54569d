"""Lengths for the dataset critic: measuring, histograms, and the checks built on them.

With a tokenizer, an example is rendered through its chat template (which is
also where the ``chat_template`` check looks for renders that fail or drop a
turn) and counted in tokens; without one, lengths are words. Counting splits
the rendered text at the tokenizer's added tokens (``<|im_start|>``...), as
the tokenizer itself does, so a system prompt shared by every row is
tokenized once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.data.checks.example import Example
from workbench.data.checks.text import PROMPT, REJECTED, RESPONSE, count_words, plural, quote
from workbench.data.findings import DataFinding
from workbench.data.view import Turn

TOKENS, WORDS = "tokens", "words (no tokenizer)"
"""The two length units a summary can be in."""
CHARS_PER_TOKEN = 3.8
"""Without a tokenizer, tokens are estimated from characters: English text and JSON run 3.5 to 4.5 a token."""


@dataclass
class Histogram:
    """A length distribution: ``counts[i]`` examples have a length in ``[edges[i], edges[i + 1])``.

    The bins are equal up to the 99th percentile; the last one runs on to the maximum.
    """

    edges: list[int]
    counts: list[int]
    count: int
    min: int
    median: float
    p95: float
    max: int

    def sparkline(self) -> str:
        """The counts as one line of block characters: ``▁▃█▅▂▁``."""
        top = max(self.counts) or 1
        return "".join(_BARS[round(c / top * (len(_BARS) - 1))] for c in self.counts)


_BARS = " ▁▂▃▄▅▆▇█"


def histogram(values: Sequence[int], bins: int = 20) -> Histogram | None:
    """The histogram of ``values``; None when there are none."""
    if not values:
        return None
    import numpy as np

    arr = np.asarray(values, dtype=np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    top = int(np.percentile(arr, 99))
    width = max(1, math.ceil((top - lo + 1) / bins))
    edges = list(range(lo, top + 1, width)) + [hi + 1]
    counts = np.histogram(arr, bins=edges)[0]
    median, p95 = np.percentile(arr, [50, 95])
    return Histogram(
        edges, [int(c) for c in counts], len(values), lo, round(float(median), 1), round(float(p95), 1), hi
    )


@dataclass
class Lengths:
    """Every example's lengths, by index, in ``unit``; None where a part is missing."""

    unit: str
    prompt: list[int | None] = field(default_factory=list)
    """The prompt as the model reads it (system turn and chat markup included)."""
    response: list[int | None] = field(default_factory=list)
    """The answer (for preference data, the chosen one)."""
    rejected: list[int | None] = field(default_factory=list)
    """The rejected answer, for preference data."""
    tokens: dict[str, list[int | None]] = field(default_factory=dict)
    """Field (prompt, response, rejected) → lengths in tokens: the lists above, or estimates in the unit words."""

    @property
    def estimated(self) -> bool:
        return self.unit == WORDS

    def __post_init__(self) -> None:
        if not self.estimated:
            self.tokens = {PROMPT: self.prompt, RESPONSE: self.response, REJECTED: self.rejected}
        else:
            self.tokens = {PROMPT: [], RESPONSE: [], REJECTED: []}

    def add(self, prompt: int | None, response: int | None, rejected: int | None) -> None:
        """One more example's lengths in the unit."""
        self.prompt.append(prompt)
        self.response.append(response)
        self.rejected.append(rejected)

    def add_estimate(self, prompt: int, response: int | None, rejected: int | None) -> None:
        """One more example's token counts guessed from its length in characters (about 4 to a token)."""
        for key, chars in ((PROMPT, prompt), (RESPONSE, response), (REJECTED, rejected)):
            self.tokens[key].append(None if chars is None else math.ceil(chars / CHARS_PER_TOKEN))


def _chat(turns: Sequence[Turn]) -> list[dict[str, str]]:
    return [{"role": t.role, "content": t.content} for t in turns]


class Meter:
    """Measures chunks of examples while they still have their views; ``lengths`` grows by one per example."""

    def __init__(self, unit: str) -> None:
        self.lengths = Lengths(unit)
        self.findings: list[DataFinding] = []
        """Findings of the checks measuring takes part in (``chat_template``)."""

    def measure(self, chunk: Sequence[Example]) -> None:
        raise NotImplementedError


class WordMeter(Meter):
    """Lengths in words, and token counts estimated from characters: no tokenizer."""

    def __init__(self) -> None:
        super().__init__(WORDS)
        self._system: dict[str, int] = {}  # a system prompt shared by many rows is counted once

    def measure(self, chunk: Sequence[Example]) -> None:
        for ex in chunk:
            v = ex.view
            self.lengths.add(
                sum(self._system_words(t.content) if t.role == "system" else count_words(t.content) for t in v.prompt),
                count_words(ex.response_text) if ex.has_response else None,
                count_words(v.rejected_text) if ex.has_rejected else None,
            )
            self.lengths.add_estimate(
                sum(len(t.content) for t in v.prompt),
                len(ex.response_text) if ex.has_response else None,
                len(v.rejected_text) if ex.has_rejected else None,
            )

    def _system_words(self, text: str) -> int:
        n = self._system.get(text)
        if n is None:
            n = self._system[text] = count_words(text)
        return n


class TokenCounter:
    """Counts tokens of many texts, tokenizing each piece between added tokens only once.

    The tokenizer splits text at its added tokens before anything else, so the counts are the
    tokenizer's own (checked for byte-level BPE; a SentencePiece tokenizer that marks the start of
    the text may differ by a token per turn).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        added = [
            t.content
            for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
            if not (t.lstrip or t.rstrip or t.normalized)
        ]
        alternatives = "|".join(map(re.escape, sorted(added, key=len, reverse=True)))
        self.split = re.compile(f"({alternatives})") if added else None
        self.cache: dict[str, int] = {token: 1 for token in added}
        self.cache[""] = 0

    def count(self, texts: Sequence[str]) -> list[int]:
        pieces = [self.split.split(t) if self.split else [t] for t in texts]
        new = list({p for ps in pieces for p in ps if p not in self.cache})
        for piece, n in zip(new, self._encode(new)):
            self.cache[piece] = n
        return [sum(self.cache[p] for p in ps) for ps in pieces]

    def _encode(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self.backend is not None:
            return [len(e) for e in self.backend.encode_batch(texts, add_special_tokens=False)]
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


class TokenMeter(Meter):
    """Lengths in tokens, through the chat template where the example is a chat and the tokenizer has one.

    With ``render_check`` it also collects the ``chat_template`` findings: renders that fail, and turns a
    render leaves out.
    """

    def __init__(self, tokenizer: Any, render_check: bool) -> None:
        super().__init__(TOKENS)
        self.tokenizer = tokenizer
        self.counter = TokenCounter(tokenizer)
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        self.render_check = render_check

    def measure(self, chunk: Sequence[Example]) -> None:
        prompts, answers, rejects = [], [], []
        for ex in chunk:
            rendered = (
                _render(ex, self.tokenizer, self.findings if self.render_check else None)
                if self.has_template and ex.chat
                else None
            )
            if rendered is None:  # plain text: each part on its own
                v = ex.view
                rendered = ("\n".join(t.content for t in v.prompt), ex.response_text, v.rejected_text)
            prompts.append(rendered[0])
            answers.append(rendered[1])
            rejects.append(rendered[2])
        p, a, r = self.counter.count(prompts), self.counter.count(answers), self.counter.count(rejects)
        for i, ex in enumerate(chunk):
            self.lengths.add(p[i], a[i] if ex.has_response else None, r[i] if ex.has_rejected else None)


def _render(ex: Example, tokenizer: Any, findings: list[DataFinding] | None) -> tuple[str, str, str] | None:
    """``(prompt, answer, rejected)`` as the template writes them (the answer being what follows the prompt).

    None when the template fails, with a finding added.
    """
    v = ex.view
    try:
        prompt = (
            tokenizer.apply_chat_template(_chat(v.prompt), tokenize=False, add_generation_prompt=True)
            if v.prompt
            else ""
        )
        full = tokenizer.apply_chat_template(_chat(v.turns), tokenize=False) if v.response else prompt
        rejected = tokenizer.apply_chat_template(_chat(v.prompt + v.rejected), tokenize=False) if v.rejected else ""
    except Exception as err:
        if findings is not None:
            message = " ".join(str(err).split()) or type(err).__name__
            findings.append(
                DataFinding(
                    ex.index,
                    "chat_template",
                    "error",
                    f"the chat template fails on this conversation: {message}",
                    "Fix the turns the template rejects (often: roles must alternate user/assistant, or a system turn it "
                    "does not allow), or use a model whose template accepts them.",
                    PROMPT,
                )
            )
        return None
    if findings is not None:
        _lost_turns(ex, full + rejected, findings)
    return prompt, _after(full, prompt), _after(rejected, prompt)


def _after(text: str, prompt: str) -> str:
    """The part of a render that follows the prompt's render (the whole render when the template reorders)."""
    return text[len(prompt) :] if text.startswith(prompt) else text


def _lost_turns(ex: Example, rendered: str, findings: list[DataFinding]) -> None:
    for turn in ex.view.turns + (ex.view.rejected or ()):
        content = turn.content.strip()
        if turn.role in ("system", "user", "assistant") and content and content not in rendered:
            findings.append(
                DataFinding(
                    ex.index,
                    "chat_template",
                    "error",
                    f"the chat template drops the {turn.role} turn {quote(content, 50)}: the model never sees it",
                    "Merge that turn into one the template keeps (e.g. put the system prompt in the first user turn), "
                    "or use a model whose template supports it.",
                    PROMPT if turn.role != "assistant" else RESPONSE,
                )
            )
            return


# -- length_outlier -----------------------------------------------------------------

OUTLIER_Z = 3.5
"""Robust z-score (median and MAD of log lengths) past which a length is an outlier..."""
OUTLIER_RATIO = 3.0
"""...as long as it is also this many times longer (or shorter) than the median."""


def check_length_outliers(examples: Sequence[Example], lengths: Lengths) -> list[DataFinding]:
    """Prompts and answers far longer or shorter than the rest (median and MAD on a log scale)."""
    answered = {ex.index for ex in examples if ex.answered}
    out: list[DataFinding] = []
    for part, values in ((PROMPT, lengths.prompt), (RESPONSE, lengths.response)):
        points = {i: v for i, v in enumerate(values) if v and (part == PROMPT or i in answered)}
        out += _outliers(part, points, lengths.unit.split()[0].removesuffix("s"))
    return out


def _outliers(part: str, points: dict[int, int], unit: str) -> list[DataFinding]:
    if len(points) < 10:
        return []
    import numpy as np

    index = np.fromiter(points.keys(), dtype=np.int64, count=len(points))
    value = np.fromiter(points.values(), dtype=np.float64, count=len(points))
    logs = np.log(value)
    median = float(np.median(logs))
    scale = max(1.4826 * float(np.median(np.abs(logs - median))), 0.1)
    z = (logs - median) / scale
    ratio = value / math.exp(median)
    hits = np.nonzero((np.abs(z) > OUTLIER_Z) & ((ratio >= OUTLIER_RATIO) | (ratio <= 1 / OUTLIER_RATIO)))[0]
    typical = f"the median is {math.exp(median):,.0f}"
    what = "prompt" if part == PROMPT else "answer"
    out = []
    for k in hits:
        n, r = int(value[k]), float(ratio[k])
        long = r > 1
        times = f"{r:.0f}× the median" if long else f"1/{1 / r:.0f} of the median"
        out.append(
            DataFinding(  # very long is a warning (pasted threads, logs); short ones are often right
                int(index[k]),
                "length_outlier",
                "warning" if r >= 10 else "info",
                f"the {what} is {plural(n, unit)}, {times} ({typical})",
                (
                    f"Check for pasted threads, logs or repeated text; trim the {what} to what the task needs."
                    if long
                    else f"Check that the {what} is complete."
                ),
                part,
                score=round(r, 2),
            )
        )
    return out


# -- too_long -----------------------------------------------------------------------

TRUNCATIONS = ("keep_start", "keep_end")
"""Which end truncation keeps: the start (the trainer default: the answer's end is cut) or the end."""


def check_too_long(
    examples: Sequence[Example], lengths: Lengths, max_length: int, truncation: str = "keep_start"
) -> list[DataFinding]:
    """Examples over ``max_length``, with what truncation would cut: part of the answer, or only the prompt."""
    out = []
    approx = "~" if lengths.estimated else ""
    unit = "tokens (estimated from characters)" if lengths.estimated else "tokens"
    for ex in examples:
        i = ex.index
        for part in (RESPONSE, REJECTED) if ex.has_rejected else (RESPONSE,):
            prompt = lengths.tokens[PROMPT][i] or 0
            reply = lengths.tokens[part][i] or 0
            total = prompt + reply
            if total <= max_length:
                continue
            over = f"{approx}{total:,} {unit} > max_length {max_length:,}"
            which = "answer" if part == RESPONSE else "rejected answer"
            raise_to = f"Raise max_length to {total:,} or more"
            cut = total - max_length
            if not reply or ex.plain_text:  # no answer, or plain text trained on as a whole
                severity, message, fix = "warning", f"{over}: the last {cut:,} are cut", f"{raise_to}, or shorten it."
            elif truncation == "keep_end":
                if reply >= max_length:
                    severity, message = "error", f"{over}: the {which} alone is {approx}{reply:,}, so its start is cut"
                else:
                    severity, message = "warning", f"{over}: truncation cuts only the prompt, its first {cut:,} tokens"
                fix = f"{raise_to}, or shorten the prompt."
            elif prompt >= max_length:
                severity = "error"
                message = f"{over}: the prompt alone is {approx}{prompt:,}, so the whole {which} is cut"
                fix = f"{raise_to}, or shorten the prompt (a pasted thread, a log?) so the {which} fits."
            else:
                severity = "error"
                message = f"{over}: truncation cuts the last {cut:,} of the {which}'s {approx}{reply:,} tokens"
                fix = f"{raise_to}, or shorten the {which}: the model would learn an answer cut mid-way."
            out.append(
                DataFinding(i, "too_long", severity, message, fix, part if reply else PROMPT, score=float(total))
            )
    return out
