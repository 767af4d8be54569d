"""A word-level diff of an answer against its reference, as plain segments for a screen to colour."""

from __future__ import annotations

import difflib
import re

_TOKEN = re.compile(r"\s+|[\w'-]+|[^\w\s]")


def tokens(text: str) -> list[str]:
    """Words, punctuation marks and runs of whitespace: joined back they give the text exactly."""
    return _TOKEN.findall(text)


def word_diff(reference: str, output: str) -> list[tuple[str, str]]:
    """Segments ``(op, text)`` with op ``same``, ``added`` (only in the output) or ``missing`` (only in the reference).

    Whitespace never counts as a difference on its own, so a re-wrapped answer reads as the same.
    """
    ref, out = tokens(reference), tokens(output)
    matcher = difflib.SequenceMatcher(lambda t: t.isspace(), ref, out, autojunk=False)
    segments: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            segments.append(("same", "".join(out[j1:j2])))
            continue
        if op in ("replace", "delete") and "".join(ref[i1:i2]).strip():
            segments.append(("missing", "".join(ref[i1:i2])))
        if op in ("replace", "insert"):
            added = "".join(out[j1:j2])
            segments.append(("added" if added.strip() else "same", added))
    merged: list[tuple[str, str]] = []
    for kind, text in segments:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        elif text:
            merged.append((kind, text))
    return merged


def similarity(reference: str, output: str) -> float:
    """The share of words the two have in common, in order (difflib's ratio over words)."""
    a = [t for t in tokens(reference) if not t.isspace()]
    b = [t for t in tokens(output) if not t.isspace()]
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a or b else 1.0
