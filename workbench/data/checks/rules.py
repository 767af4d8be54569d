"""The critic's checks that read one example at a time.

Each check takes an :class:`~workbench.data.checks.example.Example` and
returns its findings (usually none). They are plain rules over text, with the
evidence quoted in the message, so a reader can tell at once whether it is real.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from functools import lru_cache

from workbench.data.checks.example import Example, placeholder_severity
from workbench.data.checks.text import PROMPT, REJECTED, RESPONSE, mentions, quote
from workbench.data.findings import DataFinding, severity_rank
from workbench.data.formats import ROLES

RowCheck = Callable[[Example], list[DataFinding]]


def _worst(severities: list[str]) -> str:
    return min(severities, key=severity_rank)


# -- empty_output -------------------------------------------------------------------


def check_empty_output(ex: Example) -> list[DataFinding]:
    """The answer (or the rejected answer, or an earlier assistant turn) is empty or whitespace only."""
    out = []
    if ex.format == "empty":
        out.append(
            DataFinding(
                ex.index,
                "empty_output",
                "error",
                f"the answer is empty ({quote(ex.response_text)})",
                "Write the answer, or drop the example: it teaches the model to say nothing.",
                RESPONSE,
            )
        )
    if ex.has_rejected and not ex.view.rejected_text.strip():
        out.append(
            DataFinding(
                ex.index,
                "empty_output",
                "error",
                f"the rejected answer is empty ({quote(ex.view.rejected_text)})",
                "Give a real rejected answer: an empty one teaches only 'say something'.",
                REJECTED,
            )
        )
    for n, turn in enumerate(ex.view.prompt, 1):
        if turn.role == "assistant" and not turn.content.strip():
            out.append(
                DataFinding(
                    ex.index,
                    "empty_output",
                    "warning",
                    f"assistant turn {n} is empty",
                    "Fill in the earlier answer or cut the conversation before it.",
                    PROMPT,
                )
            )
            break
    return out


# -- placeholder_output -------------------------------------------------------------

_LOREM = re.compile(r"\blorem ipsum\b", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\bas an ai(?: language)? model\b|\bas a language model\b"
    r"|^\s*i(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|am unable|am not able|won't)"
    r"|^\s*i (?:can(?:no|')t|am unable to|am not able to|won't) (?:help|assist|provide|answer|comply|do that)"
    r"|\bi (?:don't|do not) have (?:access to|the ability to) (?:the internet|real-time|browse|view|open|see)",
    re.IGNORECASE,
)
_SLOT = re.compile(
    r"\[(?:your|insert|enter|name of|add)\b[^\]\n]{0,40}\]|\{\{\s*\w+\s*\}\}|<(?:insert|your)\b[^>\n]{0,40}>",
    re.IGNORECASE,
)
_REFUSAL_WORDS = (
    "ai ",
    "language model",
    "sorry",
    "afraid",
    "unable",
    "can't",
    "cannot",
    "not able",
    "won't",
    "don't have",
    "do not have",
)
_INPUT_PLACEHOLDER = re.compile(r"\s*<?(?:noinput|no input|no_input|n/a|none|null|nan|empty)>?\s*", re.IGNORECASE)


def check_placeholder_output(ex: Example) -> list[DataFinding]:
    """The answer is a stand-in (N/A, TODO, ...), lorem ipsum, a refusal, or has an unfilled ``[Your Name]`` slot."""
    out = []
    data_lorem = "lorem" in ex.prompt_text.lower() and bool(_LOREM.search(ex.prompt_text))
    for field, text in _answers(ex):
        finding = _placeholder(ex.index, field, text, lorem_is_data=data_lorem)
        if finding:
            out.append(finding)
    for turn in ex.user_turns:
        tail = turn.content.rsplit("\n\n", 1)[-1] if "\n\n" in turn.content else ""
        if tail and _INPUT_PLACEHOLDER.fullmatch(tail):
            out.append(
                DataFinding(
                    ex.index,
                    "placeholder_output",
                    "warning",
                    f"the input is a placeholder ({quote(tail)})",
                    "Leave the input empty instead: the model would learn to expect the placeholder.",
                    PROMPT,
                )
            )
            break
    return out


def _answers(ex: Example) -> list[tuple[str, str]]:
    answers = [(RESPONSE, ex.response_text)] if ex.has_response else []
    if ex.has_rejected:
        answers.append((REJECTED, ex.view.rejected_text))
    return answers


def _placeholder(index: int, field: str, text: str, *, lorem_is_data: bool = False) -> DataFinding | None:
    """``lorem_is_data``: the prompt holds lorem ipsum too, so the example works on it as text (count, translate...)."""
    which = "the rejected answer" if field == REJECTED else "the answer"
    severity = placeholder_severity(text)
    if severity and field == REJECTED:
        severity = "warning"  # a placeholder rejected answer teaches little, but nothing wrong
    if severity:
        return DataFinding(
            index,
            "placeholder_output",
            severity,
            f"{which} is a placeholder: {quote(text)}",
            "Write the real answer or drop the example.",
            field,
        )
    low = text.lower()
    if "lorem" in low and not lorem_is_data and _LOREM.search(text):
        return DataFinding(
            index,
            "placeholder_output",
            "error",
            f"{which} is lorem ipsum filler: {quote(text)}",
            "Replace the filler text with the real answer.",
            field,
        )
    refusal = _REFUSAL.search(text) if field == RESPONSE and mentions(low, _REFUSAL_WORDS) else None
    if refusal:
        return DataFinding(
            index,
            "placeholder_output",
            "warning",
            f"the answer is a canned refusal: {quote(refusal.group(0))}",
            "Replace it with an answer, or keep it only if refusing is the behaviour you want.",
            field,
        )
    slot = _SLOT.search(text) if mentions(text, ("[", "{{", "<")) else None
    if slot:
        return DataFinding(
            index,
            "placeholder_output",
            "warning",
            f"{which} has an unfilled slot {quote(slot.group(0))}",
            "Fill in the slot: the model would learn to write it.",
            field,
        )
    return None


# -- invisible_input ----------------------------------------------------------------

_UNSEEABLE_WORDS = frozenset(
    [
        "attach",
        "attached",
        "attachment",
        "attachments",
        "enclosed",
        "image",
        "images",
        "picture",
        "pictures",
        "photo",
        "photos",
        "img",
        "screenshot",
        "screenshots",
        "diagram",
        "diagrams",
        "chart",
        "charts",
        "graph",
        "graphs",
        "figure",
        "figures",
        "video",
        "videos",
        "recording",
        "recordings",
        "audio",
        "file",
        "files",
        "csv",
        "xls",
        "xlsx",
        "pdf",
        "doc",
        "docx",
        "txt",
        "json",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "zip",
        "log",
        "logs",
        "ppt",
        "pptx",
        "mp",
    ]
)
"""Words one of which every _UNSEEABLE match holds: a prompt without any is skipped at once."""
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_READ_CUE = re.compile(
    r"\b(?:read|summari[sz]e|summary|see|check|look|visit|open|review|analy[sz]e|follow|go to|click|watch|listen"
    r"|article|page|link|post|video|document|details|according to|content|from this|at this)\b",
    re.IGNORECASE,
)
_UNSEEABLE = re.compile(
    r"<\s*(?:picture|image|photo|img|video|audio|file|attachment|screenshot)\b[^>\n]{0,30}>"
    r"|\b(?:see|check|find|refer to|look at|view|open)\b[^.\n]{0,30}\b(?:attached|attachment|enclosed)\b"
    r"|\battached (?:screenshot|image|photo|picture|file|document|pdf|spreadsheet|video|recording|log|invoice"
    r"|receipt)s?\b"
    r"|\b(?:the|this|that) (?:image|picture|photo|screenshot|diagram|chart|graph|figure|video|recording)s? "
    r"(?:above|below|attached|here|I (?:sent|attached|uploaded))\b"
    r"|\b(?:above|below|attached|uploaded) (?:image|picture|photo|screenshot|diagram|chart|graph|figure|video)s?\b"
    r"|\b(?:open|read|load|analy[sz]e|use|check|see) (?:the |this |my )?(?:file |document |spreadsheet )?[`'\"]?"
    r"(?:[A-Za-z]:\\|~/|\.{0,2}/)?(?:[\w-]+[/\\])*[\w-]+"
    r"\.(?:csv|xlsx?|pdf|docx?|txt|json|png|jpe?g|gif|zip|log|pptx?|mp[34])\b",
    re.IGNORECASE,
)


def check_invisible_input(ex: Example) -> list[DataFinding]:
    """The prompt points at something the model cannot see: an attachment, an image, a URL to read, a file."""
    maybe_unseeable = not _UNSEEABLE_WORDS.isdisjoint(ex.prompt_words)
    for turn in ex.user_turns:
        low = turn.content.lower()
        hit = _UNSEEABLE.search(turn.content) if maybe_unseeable else None
        if hit:
            return [
                DataFinding(
                    ex.index,
                    "invisible_input",
                    "warning",
                    f"the prompt refers to something the model can't see: {quote(hit.group(0))}",
                    "Paste the content into the prompt, or drop the example: "
                    "the answer relies on information the model never gets.",
                    PROMPT,
                )
            ]
        if ex.declares_tools or not mentions(low, ("http", "www.")):
            continue  # a model given a tool to fetch pages can open the link
        last = turn.content.rsplit("\n\n", 1)[-1].strip()
        if last != turn.content.strip() and _URL.fullmatch(last) and _GIVEN_TEXT.search(turn.content):
            return [
                DataFinding(
                    ex.index,
                    "invisible_input",
                    "warning",
                    f"the input is only a link, which the prompt treats as the text itself: {quote(last, 90)}",
                    "Paste the article's text as the input: the model cannot follow links during training.",
                    PROMPT,
                )
            ]
        for url in _URL.finditer(turn.content):
            before = _clause_before(turn.content, url.start())
            if _READ_CUE.search(before):
                return [
                    DataFinding(
                        ex.index,
                        "invisible_input",
                        "warning",
                        f"the prompt asks to use a page the model can't open: {quote(before + url.group(0), 90)}",
                        "Paste the page's text into the prompt: the model cannot follow links during training.",
                        PROMPT,
                    )
                ]
    return []


_GIVEN_TEXT = re.compile(
    r"\b(?:the|this|that|given|following|provided|above|below|attached)\s+(?:given\s+|following\s+|provided\s+)?"
    r"(?:article|page|link|website|web ?page|post|blog(?: post)?|text|document|story|paper|report|news(?: article)?)\b",
    re.IGNORECASE,
)


def _clause_before(text: str, end: int) -> str:
    """The sentence that leads up to ``end`` (at most 120 characters): where a 'read this' cue would be."""
    before = text[max(0, end - 120) : end]
    cut = max(before.rfind(". "), before.rfind("? "), before.rfind("! "), before.rfind("\n"))
    return before[cut + 1 :].lstrip() if cut >= 0 else before


# -- merged_instructions ------------------------------------------------------------

_SPECIAL_TOKEN = re.compile(
    r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|user|assistant|system|end)\|>"
    r"|\[/?INST\]|<(?:start|end)_of_turn>|</s>|<s>"
)
_ROLE_MARKER = re.compile(
    r"^[ \t]*(?:#{1,4}[ \t]*(?:instruction|input|response|human|user|assistant)[ \t]*:?[ \t]*$"
    r"|(?:\d{1,4}[.)][ \t]*)?(?:human|user|assistant|instruction|question|q)[ \t]*\d*[ \t]*:"
    r"|(?:task|question|instruction|prompt)[ \t]*#?[ \t]*\d+[ \t]*[:.])",
    re.IGNORECASE | re.MULTILINE,
)
_PROMPT_MARKER = re.compile(
    r"^[ \t]*(?:#{1,4}[ \t]*instruction\b|instruction[ \t]*\d*[ \t]*:|human[ \t]*:|assistant[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)


def check_merged_instructions(ex: Example) -> list[DataFinding]:
    """Several examples in one: the answer runs on into a new instruction, or a prompt holds several."""
    out = []
    if ex.answered:
        marker = _ROLE_MARKER.search(ex.response_text)
        if marker and ex.response_text[: marker.start()].strip():
            out.append(
                DataFinding(
                    ex.index,
                    "merged_instructions",
                    "warning",
                    f"the answer runs on into a new turn or task at {quote(marker.group(0).strip())}: "
                    f"{quote(ex.response_text[marker.start() :], 70)}",
                    "Cut the answer before the marker; make the rest its own example if it is useful.",
                    RESPONSE,
                )
            )
    for turn in ex.user_turns if mentions(ex.prompt_text, (":", "#")) else ():
        markers = _PROMPT_MARKER.findall(turn.content)
        if len(markers) >= 2:
            shown = ", ".join(quote(m.strip(), 20) for m in markers[:3])
            out.append(
                DataFinding(
                    ex.index,
                    "merged_instructions",
                    "warning",
                    f"one user turn holds {len(markers)} instructions or turns ({shown})",
                    "Split it into separate examples, or into separate turns of a conversation.",
                    PROMPT,
                )
            )
            break
    for field, text in ex.parts():
        token = _SPECIAL_TOKEN.search(text) if mentions(text, ("<", "[")) else None
        if token:
            out.append(
                DataFinding(
                    ex.index,
                    "merged_instructions",
                    "warning",
                    f"the {field} text contains the chat token {token.group(0)!r}",
                    "Remove template tokens from the text: the chat template adds them, and a stray one splits the turn.",
                    field,
                )
            )
            break
    return out


# -- role_order ---------------------------------------------------------------------


def check_role_order(ex: Example) -> list[DataFinding]:
    """Roles out of order: assistant first, the same role twice, a late system turn, unknown roles, no final answer."""
    if not ex.chat:
        return []
    roles = tuple(t.role for t in ex.view.turns)
    problem = _role_problems(roles, ex.needs_answer)
    if problem is None:
        return []
    severity, message = problem
    return [
        DataFinding(
            ex.index,
            "role_order",
            severity,
            message,
            "Order the turns system (optional), then user and assistant alternating, ending on the assistant's answer.",
            PROMPT,
        )
    ]


@lru_cache(maxsize=1024)
def _role_problems(roles: tuple[str, ...], needs_answer: bool) -> tuple[str, str] | None:
    """The severity and message for a sequence of roles, None when it is fine (cached: datasets repeat a few)."""
    problems: list[tuple[str, str]] = []
    unknown = sorted({r for r in roles if r not in ROLES})
    if unknown:
        names = ", ".join(repr(r) for r in unknown)
        problems.append(("error", f"unknown role {names} (expected {', '.join(ROLES)})"))
    late_system = [n for n, role in enumerate(roles, 1) if role == "system" and n > 1]
    if late_system:
        problems.append(("warning", f"system turn {late_system[0]} is not the first turn"))
    talk = [(n, role) for n, role in enumerate(roles, 1) if role != "system"]
    if talk and talk[0][1] == "assistant":
        problems.append(("error", f"assistant turn {talk[0][0]} comes before any user turn"))
    for (_, before), (n, role) in itertools.pairwise(talk):
        if role == before and role in ("user", "assistant"):
            problems.append(("warning", f"turns {n - 1} and {n} are both {role}"))
            break
    if needs_answer and talk and talk[-1][1] != "assistant":
        problems.append(("error", f"the conversation ends on a {talk[-1][1]} turn: there is no answer to train on"))
    elif needs_answer and not talk:
        problems.append(("error", "the conversation has no user or assistant turn"))
    if not problems:
        return None
    shown = " → ".join(roles) or "no turns"
    return _worst([s for s, _ in problems]), "; ".join(text for _, text in problems) + f" (roles: {shown})"


# -- preference_pair ----------------------------------------------------------------


def check_preference_pair(ex: Example) -> list[DataFinding]:
    """For preference data, chosen and rejected are the same answer: the pair teaches nothing."""
    if not ex.has_rejected or not ex.response_text.strip():
        return []
    if " ".join(ex.response_text.split()) != " ".join(ex.view.rejected_text.split()):
        return []
    return [
        DataFinding(
            ex.index,
            "preference_pair",
            "error",
            f"chosen and rejected are the same answer: {quote(ex.response_text)}",
            "Give a worse rejected answer, or drop the pair.",
            REJECTED,
        )
    ]
