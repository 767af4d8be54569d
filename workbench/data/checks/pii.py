"""The ``pii`` check: strings that look like personal data or secrets.

Emails, phone numbers, card numbers (Luhn-checked), IBANs (mod-97-checked),
keys and tokens by the patterns of detect-secrets' detectors (and a few shapes
it lacks), and values next to ``password``/``token``/``key``, with
detect-secrets' false-positive controls (sequential strings, UUIDs, templated
and ``$VAR`` values). Values are masked in every message: only their first and
last characters are shown.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from workbench.data.checks.example import Example
from workbench.data.checks.text import mask, mentions
from workbench.data.findings import DataFinding


@dataclass(frozen=True)
class Hit:
    kind: str
    """What it looks like: ``email address``, ``API key``..."""
    value: str
    severity: str
    """``error`` for secrets and card numbers, ``warning`` for contact details."""


TOKEN, NUMBER, TEXT = "token", "number", "text"
"""Where a pattern is looked for: in texts holding a key prefix (``sk-``, ``AKIA``...), inside runs of digits
(phones, cards, IBANs), or in texts that hold one of its needles (emails, ``password: ...``)."""


@dataclass(frozen=True)
class _Pattern:
    kind: str
    regex: re.Pattern[str]
    severity: str
    where: str
    needles: tuple[str, ...] = ()
    """For TEXT patterns: the lower-cased text must hold one of these for the regex to run."""
    valid: Callable[[str], bool] | None = None
    whole: bool = False
    """The value is the whole match (detect-secrets' patterns: their groups mark a prefix, not the value)."""


def _card(value: str) -> bool:
    """A card number: 13 to 19 digits, a card network's first digit, and a valid Luhn checksum."""
    digits = [int(c) for c in value if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1 or digits[0] not in (2, 3, 4, 5, 6):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def _phone(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    if not 7 <= digits <= 15 or _DATE_LIKE.search(value):
        return False
    groups = re.findall(r"\d+", value)
    return value[0] in "+(" or len(groups[0]) >= 3


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _secret(value: str) -> bool:
    """A value next to ``password``/``token``/``key`` that looks random, not like a word."""
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return (has_digit and has_alpha) or (len(value) >= 16 and _entropy(value) >= 3.5)


_KEY_PREFIX = re.compile(r"^(?:[A-Za-z]{2,12}[_-])+")


def _not_a_stand_in(value: str) -> bool:
    """detect-secrets' false-positive controls: not ``abcdef...``, a UUID, ``${VAR}``/``<key>``, or ``$VAR``."""
    from detect_secrets.filters import heuristic

    value = _KEY_PREFIX.sub("", value)  # ghp_abcdef...: the part after a vendor's prefix is what is made up
    return not (
        heuristic.is_sequential_string(value)
        or heuristic.is_potential_uuid(value)
        or heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
    )


def _secret_shape(value: str) -> bool:
    return _secret(value) and _not_a_stand_in(value)


# The key shapes of detect-secrets (Yelp's maintained scanner), by its detectors' own patterns: a new service's
# keys come with an upgrade of it. Left out: the keyword and entropy detectors (the ``secret`` pattern below does
# that job with a context word), public IPs (not a secret), and detectors whose pattern needs a keyword of one vendor.
_SCANNER_KINDS = {
    "AWSKeyDetector": "AWS access key",
    "AzureStorageKeyDetector": "Azure storage key",
    "BasicAuthDetector": "password in a URL",
    "DiscordBotTokenDetector": "Discord bot token",
    "GitHubTokenDetector": "GitHub token",
    "GitLabTokenDetector": "GitLab token",
    "JwtTokenDetector": "JWT",
    "MailchimpDetector": "Mailchimp key",
    "NpmDetector": "npm token",
    "OpenAIDetector": "OpenAI key",
    "PrivateKeyDetector": "private key",
    "PypiTokenDetector": "PyPI token",
    "SendGridDetector": "SendGrid key",
    "SlackDetector": "Slack token",
    "SquareOAuthDetector": "Square OAuth secret",
    "StripeDetector": "Stripe key",
    "TelegramBotTokenDetector": "Telegram bot token",
    "TwilioKeyDetector": "Twilio key",
}


def _scanner_patterns() -> tuple[_Pattern, ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    out = []
    plugin: Any
    for plugin in get_mapping_from_secret_type_to_class().values():
        kind = _SCANNER_KINDS.get(plugin.__name__)
        for regex in getattr(plugin, "denylist", ()) if kind else ():
            out.append(_Pattern(kind, regex, "error", TOKEN, valid=_not_a_stand_in, whole=True))  # type: ignore[arg-type]
    return tuple(out)


_PATTERNS = (
    *_scanner_patterns(),
    # Shapes detect-secrets 1.5 does not know: Anthropic's and project-scoped keys, restricted Stripe keys, Google's.
    _Pattern("API key", re.compile(r"\b(?:sk|rk)-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{16,}"), "error", TOKEN),
    _Pattern("API key", re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), "error", TOKEN),
    _Pattern("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "error", TOKEN),
    _Pattern(
        "secret",
        re.compile(
            r"(?i)\b(?:api[_ -]?key|secret(?:[_ -]?key)?|access[_ -]?key|auth[_ -]?token|token|password|passwd|pwd)\b"
            r"[\"']?\s*(?:is|=|:|=>)?\s*[\"']?([A-Za-z0-9_\-+/=.!@#$%^&*]{8,})"
        ),
        "error",
        TEXT,
        ("key", "secret", "token", "passw", "pwd"),
        _secret_shape,
    ),
    _Pattern("card number", re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"), "error", NUMBER, valid=_card),
    _Pattern("email address", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"), "warning", TEXT, ("@",)),
    _Pattern(
        "IBAN",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        "warning",
        NUMBER,
        valid=_iban,
    ),
    _Pattern(
        "phone number",
        re.compile(
            r"(?<![\w#@/.+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}"
            r"(?![\w/@-]|[.,]\d)"
        ),
        "warning",
        NUMBER,
        valid=_phone,
    ),
)
_TOKENISH = re.compile(r"[A-Za-z0-9+/=_.-]{20,}|://[^\s/@]+:[^\s/@]+@|-----BEGIN|AccountKey=")
"""Every key shape holds one of these (a long unbroken run, a URL with a password, a PEM header): a quick test
tells whether to run the key patterns at all."""
_NUMBER_RUN = re.compile(r"\d[\d .()-]{5,}\d")
"""Where a phone, card or IBAN number can be: seven characters or more of digits and separators."""
_BEFORE_RUN = 12
"""How far before a run of digits a number may start: '+44 (', or an IBAN's 'GB82 WEST '."""


@lru_cache(maxsize=2048)
def scan(text: str) -> tuple[Hit, ...]:
    """Every personal-data or secret-looking value in ``text``, most severe kinds first, each value once.

    Cached: a system prompt shared by every row is scanned once.
    """
    hits: list[Hit] = []
    seen: list[tuple[int, int]] = []
    low = text.lower()
    keys = _TOKENISH.search(text) is not None
    numbers = [
        (max(0, m.start() - _BEFORE_RUN), m.end() + 2)
        for m in _NUMBER_RUN.finditer(text)
        if not _DATE_LIKE.fullmatch(m.group(0))
    ]
    for pattern in _PATTERNS:
        if pattern.where == TOKEN:
            if not keys:
                continue
            matches = list(pattern.regex.finditer(text))
        elif pattern.where == NUMBER:
            matches = [m for start, end in numbers for m in pattern.regex.finditer(text, start, end)]
        elif mentions(low, pattern.needles):
            matches = list(pattern.regex.finditer(text))
        else:
            continue
        for match in matches:
            group = 1 if match.re.groups and not pattern.whole else 0
            start, end = match.span(group)
            value = match.group(group)
            if any(s < end and start < e for s, e in seen):
                continue  # part of a value found by a more specific pattern
            if pattern.valid is None or pattern.valid(value):
                hits.append(Hit(pattern.kind, value, pattern.severity))
                seen.append((start, end))
    return tuple(hits)


def check_pii(ex: Example) -> list[DataFinding]:
    """One finding per part of the example (prompt, response...) that holds personal data or secrets."""
    out = []
    found: dict[str, list[Hit]] = {}
    for field, text in ex.parts():
        found.setdefault(field, []).extend(scan(text))
    for field, hits in found.items():
        if not hits:
            continue
        severity = "error" if any(h.severity == "error" for h in hits) else "warning"
        shown = ", ".join(f"{h.kind} {mask(h.value)}" for h in hits[:4])
        more = f" and {len(hits) - 4} more" if len(hits) > 4 else ""
        secret = severity == "error"
        out.append(
            DataFinding(
                ex.index,
                "pii",
                severity,
                f"the {field} contains {shown}{more}",
                "Remove or replace it with a fake value of the same shape; revoke any real key."
                if secret
                else "Replace it with a made-up value unless the model must learn to handle it.",
                field,
            )
        )
    return out
