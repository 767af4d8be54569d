"""Anthropic's HH transcripts: ``"\\n\\nHuman: …\\n\\nAssistant: …"`` strings, as turns.

The HH-RLHF preference set (and the many sets copied from its layout) stores each side of a
pair as one string holding the whole conversation. Taken as it is, the transcript would be a
single user message with the speakers' labels inside it; parsed, it is the conversation it
is: the turns both sides share become the prompt of a DPO pair, and SFT trains on the
chosen conversation's assistant turns.

Parsing keeps every turn, empty ones included (a check can flag them; dropping one would
join two turns of the same speaker). Text before the first label (a transcript that does not
start with ``Human:``) becomes a system turn, since it is neither speaker's.
"""

from __future__ import annotations

import re
from typing import Any

_LABEL = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def is_hh(text: Any) -> bool:
    """Whether a string is an HH transcript: at least one Human and one Assistant label, at turn starts."""
    if not isinstance(text, str):
        return False
    labels = {m.group(1) for m in _LABEL.finditer(text)}
    return labels == {"Human", "Assistant"}


def parse_hh(text: str) -> list[dict[str, str]]:
    """The turns of an HH transcript as ``{role, content}`` messages, in order."""
    found = list(_LABEL.finditer(text))
    if not found:  # a row without labels among transcripts: one user turn, as any plain string
        return [{"role": "user", "content": text}]
    turns: list[dict[str, str]] = []
    head = text[: found[0].start()].strip()
    if head:
        turns.append({"role": "system", "content": head})
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        turns.append({"role": _ROLE[match.group(1)], "content": text[match.end() : end].strip()})
    return turns


def rows_are_hh(rows: list[Any], sample: int = 50) -> bool:
    """Whether the chosen and rejected strings of (a sample of) preference rows are HH transcripts."""
    seen = hits = 0
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("chosen"), str):
            continue
        seen += 1
        hits += is_hh(row["chosen"]) and is_hh(row.get("rejected"))
        if seen >= sample:
            break
    return seen > 0 and hits * 2 > seen
