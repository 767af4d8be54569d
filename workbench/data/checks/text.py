"""Text helpers the dataset critic's checks share: words, short quotes, masks, shares."""

from __future__ import annotations

import re

RESPONSE, PROMPT, REJECTED, SYSTEM = "response", "prompt", "rejected", "system"
"""DataFinding ``field`` values: which part of the example a finding is about."""

WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
"""A word: letters, with an inner apostrophe (``don't``, ``l'eau``)."""


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``."""
    return WORD_RE.findall(text.lower())


_LENGTH_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|\w+")


def count_words(text: str) -> int:
    """Words for a length without a tokenizer: runs of letters and digits, and each CJK character.

    Closer to a token count than ``len(text.split())`` for compact JSON and for languages written without spaces.
    """
    return len(_LENGTH_WORD.findall(text))


def mentions(text: str, needles: tuple[str, ...]) -> bool:
    """Whether ``text`` holds any of ``needles``: a cheap gate before a costly regex."""
    return any(needle in text for needle in needles)


def quote(text: str, limit: int = 60) -> str:
    """A short one-line excerpt for a message, quoted: ``'Hello, I ordered…'``."""
    one = " ".join(text.split())
    if len(one) > limit:
        one = one[: limit - 1] + "…"
    return repr(one)


def mask(value: str) -> str:
    """A secret shown by its first and last characters only: ``s…T (40 chars)``."""
    if len(value) <= 4:
        return "*" * len(value)
    return f"{value[0]}…{value[-1]} ({len(value)} chars)"


def percent(part: int, whole: int) -> str:
    """``97%``; ``<1%`` for a small non-zero share."""
    if whole <= 0:
        return "0%"
    share = 100 * part / whole
    return "<1%" if 0 < share < 1 else f"{share:.0f}%"


def plural(n: int, noun: str) -> str:
    """``1 output``, ``3 outputs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
