"""messy.jsonl: a copy of the train split with planted defects
(``build_messy``), and the DEFECTS.md table listing each one by line number
(``defects_md``).
"""

from __future__ import annotations

import datetime as dt
import random
import re

from tickets import compact, dumps_line, to_messages
from vocab import MONTHS, SYSTEM_PROMPT

N_MESSY_BASE = 280  # train rows copied into messy.jsonl before defects are added

# --------------------------------------------------------------------------
# messy.jsonl: a train copy with planted defects
# --------------------------------------------------------------------------

PLACEHOLDERS = ["N/A", "<No Output>", "<noinput>", "TODO", "...", "TBD"]
EMPTIES = ["", " ", "\n", "  \n\t", "   "]


def long_thread(rng: random.Random, ex: dict) -> str:
    """A pasted email thread, quoting grows with every reply (> 2,000 tokens)."""
    rec = ex["record"]
    d = dt.date.fromisoformat(rec["date"])
    msgs = []
    lines_customer = [
        f"I'm writing about my {rec['product']}. {ex['user'].splitlines()[0]}",
        "I have tried everything your help page suggests: restarting, reinstalling, "
        "waiting a day, clearing the cache, trying a different network and a different "
        "browser. None of it changed anything and I am running out of ideas.",
        "I already sent you my order number twice. I also attached the receipt in my "
        "first message. Could somebody please read the earlier emails before replying?",
        "This is now the fourth time I am explaining the same thing. I would like a "
        "supervisor to look at this thread from the beginning, please.",
    ]
    lines_support = [
        "Thank you for contacting us. We are sorry to hear about the trouble. Could you "
        "please confirm your order number and the date of purchase so we can look into it?",
        "Thanks for the details. Our records show the order but we need a bit more time "
        "to investigate. We will get back to you within 3 to 5 business days.",
        "We apologise for the delay. Your case has been forwarded to the relevant team. "
        "Please do not open a new ticket, as that resets your place in the queue.",
        "Thank you for your patience. A specialist will review the thread and contact you.",
    ]
    for i in range(8):
        who = rec["customer"] if i % 2 == 0 else "Support Team"
        body = (lines_customer if i % 2 == 0 else lines_support)[i // 2]
        when = d + dt.timedelta(days=2 * i)
        msgs.append((f"On {when.strftime('%a, %b %d, %Y')} at {9 + i}:1{i} AM, {who} wrote:", body))
    # newest first, each older message quoted one level deeper, as mail clients do
    out = ["Forwarding the whole thread below, sorry it's long. Please read all of it.", ""]
    for depth, (hdr, body) in enumerate(reversed(msgs)):
        q = "> " * depth
        out.append(q + hdr)
        for sentence in re.split(r"(?<=[.?!]) ", body + " " + FOOTER):
            out.append(q + "> " + sentence)
        out.append(q.rstrip())
    # then the client's "show quoted text" repeats the full thread twice more
    thread = "\n".join(out)
    return thread + "\n\n--- Original thread ---\n" + thread + "\n\n--- Original thread ---\n" + thread


FOOTER = (
    "-- This e-mail and any attachments are confidential and intended solely for "
    "the addressee. If you have received it in error, please notify the sender and "
    "delete it. Any views expressed are those of the author. Please consider the "
    "environment before printing this e-mail. Ticket replies are monitored for quality "
    "and training purposes."
)


def near_duplicate_text(rng: random.Random, text: str, how: str) -> str:
    if how == "case":
        return text.lower()
    if how == "whitespace":
        return "  " + text.replace(" ", "  ", 3).replace("\n", " \n\n") + "  "
    if how == "word":
        swaps = [
            ("Hi,", "Hello,"),
            ("Hello,", "Hi,"),
            (" my ", " our "),
            ("Thanks,", "Thank you,"),
            (" the ", " that "),
            (" I ", " we "),
            (" still ", " STILL "),
            ("?", "??"),
            (". ", "! "),
        ]
        out, changed = text, 0
        for a, b in rng.sample(swaps, len(swaps)):
            if a in out and changed < 2:
                out, changed = out.replace(a, b, 1), changed + 1
        assert out != text
        return out
    raise ValueError(how)


def build_messy(rng: random.Random, train: list[dict], test: list[dict]) -> tuple[list[str], list[dict]]:
    """Return (lines of messy.jsonl, defect records with line numbers)."""
    base = [dict(ex) for ex in train[:N_MESSY_BASE]]
    # entries: {"line": str, "kind": str|None, "note": str, "ref": int|None (index into base)}
    entries = [
        {"line": dumps_line(to_messages(ex)), "kind": None, "note": "", "ref": None, "src": i}
        for i, ex in enumerate(base)
    ]

    idx = list(range(len(base)))
    rng.shuffle(idx)
    take = iter(idx)

    def pick(n):
        return [next(take) for _ in range(n)]

    def answer_of(i, answer, kind, note):
        e = entries[i]
        e["line"] = dumps_line(to_messages(base[i], answer))
        e["kind"], e["note"] = kind, note

    def with_messages(i, msgs, kind, note):
        entries[i]["line"] = dumps_line({"messages": msgs})
        entries[i]["kind"], entries[i]["note"] = kind, note

    # --- in-place defects
    for i, ans in zip(pick(5), EMPTIES):
        answer_of(i, ans, "empty_output", f"assistant content is {ans!r}")
    for i, ans in zip(pick(6), PLACEHOLDERS):
        answer_of(i, ans, "placeholder_output", f"assistant content is {ans!r}")
    date_styles = ["mdy"] * 4 + ["long"] * 3 + ["dmy_dots"] * 3
    for i, style in zip(pick(10), date_styles):
        rec = dict(base[i]["record"])
        d = dt.date.fromisoformat(rec["date"])
        rec["date"] = {
            "mdy": f"{d.month:02d}/{d.day:02d}/{d.year}",
            "long": f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
            "dmy_dots": f"{d.day:02d}.{d.month:02d}.{d.year}",
        }[style]
        answer_of(i, compact(rec), "non_iso_date", f"date is {rec['date']!r} instead of {d.isoformat()!r}")
    a, b = pick(2)
    full = compact(base[a]["record"])
    answer_of(
        a, full[: full.index(',"urgency"')], "invalid_json_output", "JSON cut off after the date (no closing brace)"
    )
    rec = base[b]["record"]
    answer_of(b, str(rec), "invalid_json_output", "Python dict repr with single quotes")
    a, b = pick(2)
    r = base[a]["record"]
    answer_of(
        a,
        compact(
            {
                "name": r["customer"],
                "item": r["product"],
                "category": r["issue"],
                "date": r["date"],
                "priority": r["urgency"],
                "summary": r["summary"],
            }
        ),
        "wrong_keys",
        "keys renamed: name/item/category/priority",
    )
    r = dict(base[b]["record"])
    del r["urgency"]
    r["sentiment"] = "negative"
    answer_of(b, compact(r), "wrong_keys", "urgency missing, extra key sentiment")
    a, b = pick(2)
    base[a] = dict(base[a], user=base[a]["user"].replace("\n", " See the attached screenshot for the error.\n", 1))
    answer_of(a, None, "unseeable_reference", "user refers to an attached screenshot")
    base[b] = dict(
        base[b],
        user=base[b]["user"].replace(
            "\n",
            " All the details are on my ticket page, please read it there: https://support.example.com/tickets/48213\n",
            1,
        ),
    )
    answer_of(b, None, "unseeable_reference", "user asks the model to read a URL")
    (i,) = pick(1)
    with_messages(
        i,
        [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "assistant", "content": compact(base[i]["record"])},
            {"role": "user", "content": base[i]["user"]},
        ],
        "role_order",
        "assistant turn comes before the user turn",
    )
    a, b = pick(2)
    base[a] = dict(
        base[a], user=base[a]["user"].replace("\n", " You can reach me at jordan.fake@example.com or 555-0147.\n", 1)
    )
    answer_of(a, None, "pii", "fake email address and phone number in the user text")
    key = "sk-fake-" + "".join(
        rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(32)
    )
    base[b] = dict(base[b], user=base[b]["user"].replace("\n", f" In case it helps, my API key is {key}.\n", 1))
    answer_of(b, None, "pii", f"API-key-looking string {key[:12]}... in the user text")
    (i,) = pick(1)
    r = dict(base[i]["record"])
    r["summary"] = "El cliente informa de un problema con su pedido y solicita que se lo resuelvan lo antes posible."
    answer_of(i, compact(r), "language_mismatch", "summary written in Spanish for an English message")

    # --- added lines: duplicates, near-duplicates, leakage, an over-long example, malformed lines
    added = []
    for i in pick(6):
        added.append({"line": entries[i]["line"], "kind": "exact_duplicate", "note": "", "ref": i})
    hows = ["word"] * 4 + ["whitespace"] * 2 + ["case"] * 2
    for i, how in zip(pick(8), hows):
        ex = dict(base[i], user=near_duplicate_text(rng, base[i]["user"], how))
        added.append(
            {
                "line": dumps_line(to_messages(ex)),
                "kind": "near_duplicate",
                "note": {"word": "a word or two changed", "whitespace": "whitespace changed", "case": "lower-cased"}[
                    how
                ],
                "ref": i,
                "copy": "near copy",
            }
        )
    for t in rng.sample(range(len(test)), 3):
        added.append(
            {
                "line": dumps_line(to_messages(test[t])),
                "kind": "test_leakage",
                "note": f"identical to test.jsonl line {t + 1}",
                "ref": None,
            }
        )
    (i,) = pick(1)
    ex = dict(base[i], user=long_thread(rng, base[i]))
    added.append(
        {
            "line": dumps_line(to_messages(ex)),
            "kind": "overlong",
            "note": f"pasted email thread, {len(ex['user'])} characters",
            "ref": None,
        }
    )
    a, b = pick(2)
    good = dumps_line(to_messages(base[a]))
    added.append(
        {
            "line": good[: len(good) * 2 // 3],
            "kind": "malformed_line",
            "note": "truncated line (not valid JSON)",
            "ref": a,
            "copy": "truncated copy",
        }
    )
    good = dumps_line(to_messages(base[b]))
    added.append(
        {
            "line": good[:-2] + "},]}",
            "kind": "malformed_line",
            "note": "trailing comma (not valid JSON)",
            "ref": b,
            "copy": "broken copy",
        }
    )

    # insert added lines at random positions, each after the line it copies
    # (never among the first lines, which format sniffers read)
    for e in added:
        lo = 5
        if e["ref"] is not None:
            lo = max(lo, next(k for k, x in enumerate(entries) if x.get("src") == e["ref"]) + 1)
        entries.insert(rng.randint(lo, len(entries)), e)

    lines, defects = [], []
    src_line = {e["src"]: n for n, e in enumerate(entries, 1) if "src" in e}
    for n, e in enumerate(entries, 1):
        lines.append(e["line"])
        if e["kind"]:
            note = e["note"]
            if e["ref"] is not None:
                note = (f"{note}; " if note else "") + f"{e.get('copy', 'copy')} of line {src_line[e['ref']]}"
            defects.append({"line": n, "kind": e["kind"], "note": note})
    return lines, defects


DEFECT_ORDER = [
    "malformed_line",
    "exact_duplicate",
    "near_duplicate",
    "empty_output",
    "placeholder_output",
    "non_iso_date",
    "invalid_json_output",
    "wrong_keys",
    "overlong",
    "unseeable_reference",
    "role_order",
    "pii",
    "language_mismatch",
    "test_leakage",
]
DEFECT_TEXT = {
    "malformed_line": "the line itself is not valid JSON; a loader must report it with its line number and keep it",
    "exact_duplicate": "the whole line is identical to an earlier line",
    "near_duplicate": "same example as an earlier line with a word or two, whitespace or case changed",
    "empty_output": "assistant output is empty or whitespace only",
    "placeholder_output": "assistant output is a placeholder, not an answer",
    "non_iso_date": "the output's date is not ISO 8601 (YYYY-MM-DD)",
    "invalid_json_output": "assistant output is not valid JSON",
    "wrong_keys": "assistant output parses but has a different key set",
    "overlong": "far over 2,000 tokens (a pasted email thread)",
    "unseeable_reference": "user refers to something the model cannot see (attachment, URL)",
    "role_order": "roles out of order (assistant before user)",
    "pii": "contains a (fake) email/phone or API-key-looking string",
    "language_mismatch": "response not in the language of the prompt",
    "test_leakage": "example is also in test.jsonl",
}


def defects_md(defects: list[dict], n_lines: int) -> str:
    counts = {k: sum(d["kind"] == k for d in defects) for k in DEFECT_ORDER}
    out = [
        "# Planted defects in messy.jsonl",
        "",
        "Generated by `sample_data/generate.py`; do not edit by hand (rerun the script).",
        f"`messy.jsonl` has {n_lines} lines: a copy of {N_MESSY_BASE} train examples, some",
        f"edited in place, plus {n_lines - N_MESSY_BASE} inserted lines. Line numbers are 1-based",
        "physical lines of the file. Every line not listed below is a clean example.",
        "The `kind` column uses stable identifiers; tests may parse the table below.",
        "",
        "## Summary",
        "",
        "| kind | count | what it is |",
        "|---|---|---|",
    ]
    out += [f"| {k} | {counts[k]} | {DEFECT_TEXT[k]} |" for k in DEFECT_ORDER]
    out += [
        "",
        f"Total: {len(defects)} defective lines.",
        "",
        "## By line",
        "",
        "| line | kind | note |",
        "|---|---|---|",
    ]
    out += [f"| {d['line']} | {d['kind']} | {d['note'].replace('|', '/')} |" for d in defects]
    return "\n".join(out) + "\n"
