"""One ticket example and its variants: slot filling, the user message and the
JSON record (``make_example``), the conversational row (``to_messages``), and
the DPO preference rows whose ``rejected`` answer has one typical flaw.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re

from scenarios import SCENARIOS
from vocab import (
    CARRIERS,
    CODES,
    DEVICES,
    FIRST_NAMES,
    INTROS,
    LAST_NAMES,
    MONTHS,
    OPENERS,
    PARTS,
    PHYSICAL,
    SERVICES,
    SIGNOFFS,
    SYSTEM_PROMPT,
    TONE_LINES,
    TONES_FOR_URGENCY,
    URGENCIES,
    URGENCY_LINES,
    random_date,
    render_date,
)

# --------------------------------------------------------------------------
# One example
# --------------------------------------------------------------------------


def money(rng: random.Random) -> tuple[str, str]:
    """Two amounts in one currency, the first larger (charged vs quoted, full vs partial)."""
    sym = rng.choice(["$", "$", "$", "€", "£"])
    a = rng.choice([19, 24, 29, 35, 39, 49, 59, 79, 89, 99, 129, 149, 199, 249, 349])
    cents = rng.choice([".00", ".99", ".50", ""])
    b = a + rng.choice([10, 15, 20, 30, 50])
    return f"{sym}{b}{cents}", f"{sym}{a}{cents}"  # amount > amount2


def with_article(name: str) -> str:
    return ("an " if name[0] in "AEIOU" else "a ") + name


def make_slots(rng: random.Random, product: str) -> dict:
    amount, amount2 = money(rng)
    part = rng.choice(PARTS)
    device = rng.choice(DEVICES)
    slots = {
        "product": product,
        "amount": amount,
        "amount2": amount2,
        "order": f"#{rng.randrange(10000, 99999)}",
        "carrier": rng.choice(CARRIERS),
        "days": rng.choice([5, 6, 8, 9, 10, 12, 14]),
        "weeks": rng.choice([2, 3, 4, 5, 6]),
        "code": rng.choice(CODES),
        "device": device[0],
        "device_s": device[1],
        "part": part,
        "part_cap": part[0].upper() + part[1:],
        "the_product": f"the {product}" if product in PHYSICAL else product,
        "a_product": with_article(product) if product in PHYSICAL else product,
        "a_other_product": with_article(rng.choice([p for p in PHYSICAL if p != product])),
    }
    slots["other_product"] = slots["a_other_product"].split(" ", 1)[1]
    return slots


def compact(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def make_example(rng: random.Random) -> dict:
    """Build one example; returns its parts (user text, record) for reuse."""
    issue, kind, texts, summaries, *allowed = rng.choice(SCENARIOS)
    pool = {"physical": PHYSICAL, "service": SERVICES, "any": PHYSICAL + SERVICES}[kind]
    product = rng.choice(pool)
    slots = make_slots(rng, product)
    date = random_date(rng)
    bare, on = render_date(rng, date)
    slots.update(date=bare, on_date=on, on_date_cap=on[0].upper() + on[1:])

    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = first if rng.random() < 0.12 else f"{first} {last}"
    urgency = rng.choices(URGENCIES, weights=[3, 4, 3])[0]
    if allowed and urgency not in allowed[0]:
        urgency = rng.choice(allowed[0])
    tone = rng.choice(TONES_FOR_URGENCY[urgency])

    core = rng.choice(texts).format(**slots).replace(",,", ",")
    core = re.sub(r",([.?!:)])", r"\1", core)  # "...of May,." -> "...of May."
    parts: list[str] = []
    name_at_start = rng.random() < 0.35
    if tone != "terse" and rng.random() < 0.6:
        parts.append(rng.choice(OPENERS))
    if name_at_start:
        parts.append(rng.choice(INTROS).format(name=name))
    extras = [rng.choice(TONE_LINES[tone]) if rng.random() < 0.4 else "", rng.choice(URGENCY_LINES[urgency])]
    rng.shuffle(extras)
    if len(core) + sum(map(len, extras)) > 150:  # keep examples short: drop the tone line
        extras = [e for e in extras if e not in TONE_LINES[tone]]
    body = " ".join(p for p in [core, *extras] if p)
    head = " ".join(parts)
    text = f"{head}\n{body}" if head and rng.random() < 0.5 else " ".join(p for p in [head, body] if p)
    if not name_at_start:
        text += "\n" + rng.choice(SIGNOFFS).format(name=name)

    record = {
        "customer": name,
        "product": product,
        "issue": issue,
        "date": date.isoformat(),
        "urgency": urgency,
        "summary": rng.choice(summaries).format(**slots),
    }
    return {"user": text, "record": record}


def to_messages(ex: dict, answer: str | None = None) -> dict:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": ex["user"]},
            {"role": "assistant", "content": compact(ex["record"]) if answer is None else answer},
        ]
    }


def dumps_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------
# Preferences (DPO): chosen = correct JSON, rejected = a typical flaw
# --------------------------------------------------------------------------

WRONG_ISSUE = {
    "billing": "refund",
    "refund": "billing",
    "shipping": "defect",
    "defect": "shipping",
    "account": "other",
    "other": "account",
}
CHATTY = [
    ("Sure! Here is the extracted ticket:\n\n", "\n\nLet me know if you need anything else!"),
    ("Of course. Based on the message, the JSON is:\n", "\nI hope this helps."),
    ("Here's the JSON you asked for:\n```json\n", "\n```"),
    ("I've analysed the customer's message. ", " Please double-check the date."),
]


def rejected_answer(rng: random.Random, rec: dict, kind: str) -> str:
    bad = dict(rec)
    if kind == "date_format":
        d = dt.date.fromisoformat(rec["date"])
        bad["date"] = rng.choice(
            [
                f"{d.month:02d}/{d.day:02d}/{d.year}",
                f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
                f"{d.day:02d}.{d.month:02d}.{d.year}",
            ]
        )
        return compact(bad)
    if kind == "missing_key":
        del bad[rng.choice(["date", "urgency", "summary", "customer"])]
        return compact(bad)
    if kind == "chatty":
        pre, post = rng.choice(CHATTY)
        return pre + compact(rec) + post
    if kind == "wrong_issue":
        bad["issue"] = WRONG_ISSUE[rec["issue"]]
        return compact(bad)
    raise ValueError(kind)


REJECT_KINDS = ["date_format", "missing_key", "chatty", "wrong_issue"]


def preference_row(ex: dict, rejected: str) -> dict:
    return {
        "prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": ex["user"]}],
        "chosen": [{"role": "assistant", "content": compact(ex["record"])}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }
