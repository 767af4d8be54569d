"""The ``consistency`` check: the conventions most answers follow, and the answers that break them.

For each convention (date format, JSON or not, JSON keys and their order,
first-letter case, final punctuation, list markers) the answers vote; when
one way holds in at least :data:`MAJORITY` of the answers it applies to, the
others are reported with the majority as evidence. Empty and placeholder
answers have findings of their own, and completions labelled undesirable are
bad on purpose: neither votes.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from workbench.data.checks.example import LIST_ITEM, Example
from workbench.data.checks.text import RESPONSE, percent, quote
from workbench.data.findings import DataFinding

MAJORITY = 0.7
"""The share of applicable answers a way of writing needs to be the convention."""
MIN_EXAMPLES = 5
"""Fewer applicable answers than this make no convention."""


@dataclass
class Convention:
    """A way of writing most answers share, e.g. dates as YYYY-MM-DD in 97% of the answers with a date."""

    name: str
    """What the convention is about: ``dates``, ``output format``, ``JSON keys``, ``'summary' first letter``..."""
    value: str
    """The majority way, or ``mixed`` when none reaches the majority."""
    share: float
    """The majority's share of the applicable answers (0 to 1)."""
    applicable: int
    """Answers the convention applies to (those with a date, for dates)."""
    breaking: int
    """Answers that break it (reported as findings when there is a majority)."""
    text: str
    """The convention in words: ``dates: YYYY-MM-DD in 97% of 291 answers with a date``."""


Labels = dict[int, tuple[str, ...]]
"""Example index → the ways it writes something (an answer may write dates in two ways)."""


class _Collector:
    """Gathers conventions and findings as the parts of the check run."""

    def __init__(self) -> None:
        self.conventions: list[Convention] = []
        self.findings: list[DataFinding] = []

    def vote(self, name: str, labels: Labels, scope: str) -> tuple[str, str] | None:
        """Record the convention among ``labels`` (``scope`` names the voters, plural: ``answers with a date``).

        Returns ``(majority label, "97% of <scope>")`` when a clear majority exists and some answers break it.
        """
        if len(labels) < MIN_EXAMPLES:
            return None
        counts = Counter(label for values in labels.values() for label in set(values))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))  # ties by name: the same on every run
        top, n = ranked[0]
        applicable = len(labels)
        if n / applicable < MAJORITY:
            mix = ", ".join(f"{label} {percent(c, applicable)}" for label, c in ranked[:3])
            self.conventions.append(
                Convention(
                    name,
                    "mixed",
                    n / applicable,
                    applicable,
                    0,
                    f"{name}: no clear convention ({mix} of {applicable:,} {scope})",
                )
            )
            return None
        breaking = sum(1 for values in labels.values() if any(v != top for v in values))
        text = f"{name}: {top} in {percent(n, applicable)} of {applicable:,} {scope}"
        self.conventions.append(Convention(name, top, n / applicable, applicable, breaking, text))
        return (top, f"{percent(n, applicable)} of {scope}") if breaking else None

    def add(self, ex: Example, severity: str, message: str, suggestion: str) -> None:
        self.findings.append(DataFinding(ex.index, "consistency", severity, message, suggestion, RESPONSE))


def check_consistency(examples: Sequence[Example]) -> tuple[list[DataFinding], list[Convention]]:
    """Findings for the answers that break a clear majority convention, and every convention found."""
    answered = [ex for ex in examples if ex.answered and not ex.undesirable]
    out = _Collector()
    _dates(answered, out)
    json_answers = _json_format(answered, out)
    _json_keys(json_answers, out)
    _text_style(answered, out)
    _list_style(answered, out)
    return out.findings, out.conventions


# -- dates --------------------------------------------------------------------------

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_NUMERIC_DATE = re.compile(r"(\d{1,4})([-/.])(\d{1,2})\2(\d{1,4})(?!\d|[/-]\d|\.\d)")
"""A numeric date; the character before it is checked by hand (a lookbehind here would slow every search)."""
_NAMED_DATE = re.compile(
    rf"\b(?P<m1>{_MONTH})\.? (?P<d1>\d{{1,2}})(?:st|nd|rd|th)?,? (?P<y1>\d{{4}})\b"
    rf"|\b(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?(?: of)? (?P<m2>{_MONTH})\.?,? (?P<y2>\d{{4}})\b",
    re.IGNORECASE,
)


class _Date(NamedTuple):  # a tuple: cheap to make, one per date of every answer
    text: str
    label: str
    """The format: ``YYYY-MM-DD``, ``MM/DD/YYYY``, ``Month D, YYYY``; ``NN`` where day and month can't be told
    apart."""
    iso: str | None
    """The same date as YYYY-MM-DD, when it is a real date."""


def _date(text: str, label: str, y: int, m: int, d: int) -> _Date:
    iso = f"{y:04d}-{m:02d}-{d:02d}" if 1 <= m <= 12 and 1 <= d <= 31 else None
    return _Date(text, label, iso)


def _numeric(match: re.Match[str]) -> _Date | None:
    a, sep, b, c = match.groups()
    if len(a) == 4:  # year first
        if len(c) > 2:
            return None
        iso_like = sep == "-" and len(b) == 2 and len(c) == 2
        return _date(match.group(0), "YYYY-MM-DD" if iso_like else f"YYYY{sep}MM{sep}DD", int(a), int(b), int(c))
    if len(a) > 2 or len(c) not in (2, 4):
        return None
    year = "YYYY" if len(c) == 4 else "YY"
    x, y = int(a), int(b)
    full_year = int(c) if len(c) == 4 else 2000 + int(c)
    if x > 12 or (sep == "." and y <= 12):  # dotted dates are day first unless they can't be
        return _date(match.group(0), f"DD{sep}MM{sep}{year}", full_year, y, x)
    first = "MM" if y > 12 else "NN"  # NN/NN: resolved against the dataset's other dates
    return _date(match.group(0), f"{first}{sep}{'DD' if y > 12 else 'NN'}{sep}{year}", full_year, x, y)


def _named(match: re.Match[str]) -> _Date:
    month = (match.group("m1") or match.group("m2")).lower()[:3]
    number = next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(month))
    day, year = (
        (int(match.group("d1")), int(match.group("y1")))
        if match.group("m1")
        else (int(match.group("d2")), int(match.group("y2")))
    )
    return _date(match.group(0), "Month D, YYYY" if match.group("m1") else "D Month YYYY", year, number, day)


_YEAR = re.compile(r"\d{4}(?!\d)")
_NAMED_SPAN = 26
"""The most characters a named date takes before its year: 'September 29th, ' or '29th of September, '."""


def _starts_word(text: str, start: int, also: str = "") -> bool:
    """Whether a match at ``start`` begins a word: no letter, digit or one of ``also`` right before it."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in also)


def find_dates(text: str) -> list[_Date]:
    """Every full date (with a year) in ``text``, with its format."""
    found = [
        d
        for m in _NUMERIC_DATE.finditer(text)
        if _starts_word(text, m.start(), "/.-_") and (d := _numeric(m)) is not None
    ]
    after = 0
    for year in _YEAR.finditer(text):  # a named date ends on its year: look just before each year
        if not _starts_word(text, year.start()):
            continue
        named = _NAMED_DATE.search(text, max(after, year.start() - _NAMED_SPAN), year.end())
        if named:
            found.append(_named(named))
            after = named.end()
    return found


def _resolve(date: _Date, day_first: bool) -> _Date:
    """An ambiguous ``03/04/2026`` read the way the dataset's unambiguous dates are written."""
    if not date.label.startswith("NN"):
        return date
    first, second = ("DD", "MM") if day_first else ("MM", "DD")
    label = date.label.replace("NN", first, 1).replace("NN", second, 1)
    iso = date.iso
    if day_first and iso:  # parsed month first
        y, m, d = iso.split("-")
        iso = f"{y}-{d}-{m}"
    return _Date(date.text, label, iso)


def _dates(examples: Sequence[Example], out: _Collector) -> None:
    found = {ex.index: dates for ex in examples if (dates := find_dates(ex.response_text))}
    labels = Counter(d.label for dates in found.values() for d in dates)
    day_first = sum(n for label, n in labels.items() if label[:3] in ("DD/", "DD-")) > sum(
        n for label, n in labels.items() if label[:3] in ("MM/", "MM-")
    )
    found = {i: [_resolve(d, day_first) for d in dates] for i, dates in found.items()}
    labels_of = {i: tuple(d.label for d in dates) for i, dates in found.items()}
    majority = out.vote("dates", labels_of, "answers with a date")
    if majority is None:
        return
    top, share = majority
    example = next(d.text for dates in found.values() for d in dates if d.label == top)
    for ex in examples:
        odd = next((d for d in found.get(ex.index, ()) if d.label != top), None)
        if odd is None:
            continue
        fix = f"Write it as {odd.iso}." if top == "YYYY-MM-DD" and odd.iso else f"Write it as {top}, like the others."
        out.add(ex, "warning", f"date {odd.text!r} is {odd.label}; {share} use {top} (e.g. {example!r})", fix)


# -- JSON ---------------------------------------------------------------------------

_JSON = "JSON"
_FENCED = "JSON in a ``` fence"


def _format_label(ex: Example) -> str:
    if ex.format in ("json object", "json array"):
        return _FENCED if ex.response_text.lstrip().startswith("```") else _JSON
    return ex.format


def _json_format(examples: Sequence[Example], out: _Collector) -> list[Example]:
    """Invalid JSON among mostly-JSON answers; returns the answers that are JSON objects."""
    labels: Labels = {ex.index: (_format_label(ex),) for ex in examples}
    majority = out.vote("output format", labels, "answers")
    if majority is not None and majority[0] in (_JSON, _FENCED):
        top, share = majority
        for ex in examples:
            label = labels[ex.index][0]
            if label == top:
                continue
            if label in (_JSON, _FENCED):
                wrap = "wrapped in a ``` fence" if label == _FENCED else "bare, without the ``` fence"
                out.add(ex, "warning", f"the JSON is {wrap}; {share} are {top}", "Write it like the others.")
            else:
                out.add(
                    ex,
                    "error",
                    f"{_why_not_json(ex)}; {share} are {top}",
                    "Fix the answer so it parses as JSON (json.loads), with the same keys as the others.",
                )
    return [ex for ex in examples if ex.format == "json object"]


def _why_not_json(ex: Example) -> str:
    text = ex.response_text.strip()
    if ex.format != "json (invalid)":
        return f"the answer is {ex.format}, not JSON: {quote(text)}"
    body = text.strip("`").removeprefix("json").strip()
    try:
        json.loads(body)
    except json.JSONDecodeError as err:
        try:
            if isinstance(ast.literal_eval(body), (dict, list)):
                return f"the answer is a Python literal (single quotes), not JSON: {quote(body, 50)}"
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
        if err.pos >= len(body) - 1:
            return f"the JSON is cut off at the end ({err.msg}): …{body[-40:]!r}"
        around = quote(body[max(0, err.pos - 25) : err.pos + 15])
        return f"invalid JSON: {err.msg} at character {err.pos}: {around}"
    return f"the answer is not valid JSON: {quote(text)}"  # pragma: no cover  (classify_output said it fails)


def _keys(keys: Sequence[str]) -> str:
    return ", ".join(keys)


def _json_keys(examples: Sequence[Example], out: _Collector) -> None:
    key_sets: Labels = {ex.index: (_keys(sorted(ex.parsed)),) for ex in examples}
    majority = out.vote("JSON keys", key_sets, "JSON object answers")
    if majority is None:
        return
    top, share = majority
    usual_order = next(list(ex.parsed) for ex in examples if key_sets[ex.index][0] == top)
    usual = set(usual_order)
    for ex in examples:
        if key_sets[ex.index][0] == top:
            continue
        missing = [k for k in usual_order if k not in ex.parsed]
        extra = [k for k in ex.parsed if k not in usual]
        what = "; ".join(
            part
            for part in (f"missing {_keys(missing)}" if missing else "", f"extra {_keys(extra)}" if extra else "")
            if part
        )
        out.add(
            ex,
            "warning",
            f"keys differ from the usual set: {what} ({share} have {_keys(usual_order)})",
            "Use the same keys as the other answers: a model learns one schema.",
        )
    same_set = [ex for ex in examples if key_sets[ex.index][0] == top]
    orders: Labels = {ex.index: (_keys(list(ex.parsed)),) for ex in same_set}
    majority = out.vote("JSON key order", orders, "answers with the usual keys")
    if majority is None:
        return
    top, share = majority
    for ex in same_set:
        if orders[ex.index][0] != top:
            out.add(
                ex,
                "info",
                f"keys in another order ({_keys(list(ex.parsed))}); {share} use {top}",
                "Keep one key order: it makes the answers easier to learn and to compare.",
            )


# -- text style: first letter, final punctuation, list markers ------------------------

_CLOSERS = "\"'`)]*_»”’"


def _casing(text: str) -> str | None:
    if " " not in text.strip():
        return None  # one word ('13', 'iPhone', 'yes'): no convention to keep
    first = text.lstrip(" \t\n\"'`([*_«“‘")[:1]
    if first.isupper():
        return "starts with a capital"
    return "starts lower-case" if first.islower() else None  # digits, symbols, scripts without case: no vote


_ENDS_IN_CALL = re.compile(
    r"(?:\b[A-Za-z_][\w.]*\([^()\n]*\)|</?(?:tool_call|function_call|functioncall|tool|function)\b[^>\n]*>"
    r"|<\|(?:python_tag|eom_id|eot_id|call)\|>|\})\s*$"
)


def _final(text: str) -> str | None:
    if _ENDS_IN_CALL.search(text):
        return None  # an answer that ends in a tool call ends where the call does: a house style, not a slip
    stripped = text.strip().rstrip(_CLOSERS)
    if stripped.count(" ") < 2 or "\n" in stripped:
        return None  # a word or two, or several lines (a poem, a letter): their ends follow other rules
    last = stripped[-1]
    if last in ".!?…。！？":
        return "ends with . ! or ?"
    return "has no final punctuation" if last.isalnum() else f"ends with {last!r}"


_STYLE_FIXES = {
    "starts with a capital": "Start with a capital letter, like the others.",
    "starts lower-case": "Start with a lower-case letter, like the others.",
    "ends with . ! or ?": "End it with a full stop (or ! or ?), like the others.",
    "has no final punctuation": "Drop the final punctuation, like the others.",
}


def _free_text(examples: Sequence[Example]) -> dict[str, dict[int, tuple[Example, str]]]:
    """Texts whose style can be compared: prose answers, and JSON string values that read as phrases."""
    scopes: dict[str, dict[int, tuple[Example, str]]] = {
        "answer": {ex.index: (ex, ex.response_text) for ex in examples if ex.format == "prose"}
    }
    objects = [ex for ex in examples if ex.format == "json object"]
    strings: Counter[str] = Counter()
    phrases: Counter[str] = Counter()
    for ex in objects:
        for key, value in ex.parsed.items():
            if isinstance(value, str):
                strings[key] += 1
                phrases[key] += value.count(" ") >= 2
    for key in (k for k in strings if phrases[k] >= MAJORITY * strings[k]):
        scopes[f"'{key}'"] = {ex.index: (ex, value) for ex in objects if isinstance(value := ex.parsed.get(key), str)}
    return scopes


def _style(
    out: _Collector, name: str, scope: str, texts: dict[int, tuple[Example, str]], label: Callable[[str], str | None]
) -> None:
    """Vote on one style (``label``) over one kind of text: answers, or the values of one JSON key."""
    labels: Labels = {i: (lab,) for i, (_, text) in texts.items() if (lab := label(text)) is not None}
    what = "the answer" if scope == "answer" else scope
    majority = out.vote(
        f"{scope} {name}" if scope != "answer" else name, labels, "answers" if scope == "answer" else f"{scope} values"
    )
    if majority is None:
        return
    top, share = majority
    for i, (ex, text) in texts.items():
        if i in labels and labels[i][0] != top:
            out.add(
                ex,
                "info",
                f"{what} {labels[i][0]} ({quote(text, 50)}), unlike {share}",
                _STYLE_FIXES.get(top, f"Write it like the others ({top})."),
            )


def _text_style(examples: Sequence[Example], out: _Collector) -> None:
    for scope, texts in _free_text(examples).items():
        _style(out, "first letter", scope, texts, _casing)
        _style(out, "final punctuation", scope, texts, _final)


def _marker(text: str) -> str | None:
    markers = Counter(re.sub(r"\d+", "1", m) for m in LIST_ITEM.findall(text))
    return markers.most_common(1)[0][0] if markers else None


def _list_style(examples: Sequence[Example], out: _Collector) -> None:
    lists = {ex.index: (ex, ex.response_text) for ex in examples if ex.format == "list"}
    labels: Labels = {i: (f"'{m}' items",) for i, (_, text) in lists.items() if (m := _marker(text))}
    majority = out.vote("list markers", labels, "list answers")
    if majority is None:
        return
    top, share = majority
    for i, (ex, _) in lists.items():
        if i in labels and labels[i][0] != top:
            out.add(ex, "info", f"the list uses {labels[i][0]}; {share} use {top}", f"Use {top} like the other lists.")
