"""Vocabulary of the support-ticket task: the fixed answer format and the
system prompt, the slot values messages are built from (names, products,
carriers, devices, parts, promo codes), the phrasing tables (openers, intros,
sign-offs, tone and urgency lines) and the helpers that write a date in many
human styles. The scenario templates live in ``scenarios.py``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random

REFERENCE_YEAR = 2026

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
    "Maria",
    "Tom",
    "Priya",
    "Jonas",
    "Aisha",
    "Kenji",
    "Olivia",
    "Mateo",
    "Fatima",
    "Liam",
    "Chloé",
    "Dmitri",
    "Ngozi",
    "Sven",
    "Hana",
    "Carlos",
    "Emily",
    "Rahul",
    "Zoë",
    "Kwame",
    "Ingrid",
    "Wei",
    "Sofia",
    "Arjun",
    "Grace",
    "Tariq",
    "Lena",
    "Diego",
    "Yuki",
    "Noah",
    "Amara",
    "Pierre",
    "Bianca",
    "Omar",
    "Freya",
    "Jamal",
    "Ana",
    "Mikhail",
    "Leila",
    "Ben",
    "Siobhan",
    "Hiroshi",
    "Camille",
    "Tunde",
    "Elena",
    "Raj",
    "Marta",
    "Kofi",
    "Isla",
    "Andrés",
    "Nadia",
    "Oscar",
    "Mei",
    "Finn",
    "Rosa",
    "Yusuf",
    "Clara",
    "Ivan",
    "Thandiwe",
    "Luca",
]
LAST_NAMES = [
    "Lopez",
    "Becker",
    "Nair",
    "Schmidt",
    "Khan",
    "Tanaka",
    "Brown",
    "García",
    "Haddad",
    "O'Connor",
    "Dubois",
    "Volkov",
    "Okafor",
    "Lindqvist",
    "Kim",
    "Mendes",
    "Clarke",
    "Sharma",
    "Müller",
    "Mensah",
    "Berg",
    "Zhang",
    "Rossi",
    "Patel",
    "Walsh",
    "Aziz",
    "Novak",
    "Fernández",
    "Sato",
    "Miller",
    "Eze",
    "Laurent",
    "Costa",
    "Farouk",
    "Hansen",
    "Jackson",
    "Souza",
    "Petrov",
    "Rahimi",
    "Cohen",
    "Murphy",
    "Yamamoto",
    "Moreau",
    "Adeyemi",
    "Ionescu",
    "Gupta",
    "Kowalski",
    "Boateng",
    "Fraser",
    "Ortiz",
    "Chen",
    "Nguyen",
    "Svensson",
    "Romano",
    "Dlamini",
    "Weber",
    "Kaur",
    "Silva",
    "Hughes",
    "Ivanova",
]

# Physical goods can have shipping problems and defects; services can have
# account problems. Billing, refund and "other" apply to both.
PHYSICAL = [
    "AeroBlend 500 blender",
    "Nimbus X2 earbuds",
    "Trailhead 40L backpack",
    "LumaDesk lamp",
    "Kettle One electric kettle",
    "Orbit S3 smartwatch",
    "PixelPal 10 tablet",
    "Cirrus air purifier",
    "Stride Runner shoes",
    "BrewMate grinder",
    "Halo ring light",
    "QuietCore fan",
    "Vista 27 monitor",
    "TerraGrip yoga mat",
    "SnapCharge power bank",
    "EchoDome speaker",
    "FrostLine mini fridge",
    "Pathfinder e-bike",
    "GlowSleep alarm clock",
    "Nomad carry-on",
    "Kinetic K8 keyboard",
    "Sprout smart planter",
    "Aria hair dryer",
    "Ember skillet",
    "Drift robot vacuum",
    "Atlas standing desk",
]
SERVICES = [
    "CloudVault Plus",
    "StreamHub Premium",
    "FitTrack Pro",
    "Ledgerly",
    "PhotoNest",
    "MealBox",
    "LinguaLeap",
    "SafeHome Monitor",
    "Inkwell Pro",
    "Skyline Wi-Fi",
    "Tempo Music",
    "Harbor VPN",
]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS", "Royal Mail", "DPD", "Canada Post"]
DEVICES = [
    ("my iPhone 15", "an iPhone 15"),
    ("my Android phone", "Android"),
    ("my Mac", "a Mac"),
    ("Windows 11", "Windows 11"),
    ("my old router", "an older router"),
    ("a 220V outlet", "220V power"),
    ("Alexa", "Alexa"),
    ("my car's USB port", "a car USB port"),
]
PARTS = [
    "the handle",
    "a hinge",
    "the power button",
    "the charging port",
    "the cable",
    "the lid",
    "a plastic clip",
    "the strap",
]
CODES = ["SPRING20", "WELCOME10", "SAVE15", "FRIEND25", "VIP30", "HOLIDAY5"]

# --------------------------------------------------------------------------
# Phrasing: greetings, sign-offs, tone and urgency lines
# --------------------------------------------------------------------------

OPENERS = [
    "Hi,",
    "Hello,",
    "Hey there,",
    "Good morning,",
    "Dear support team,",
    "To whom it may concern,",
    "Hi team,",
    "Hello support,",
    "Hiya,",
    "Good afternoon,",
    "Hey,",
]
INTROS = ["This is {name}.", "My name is {name}.", "{name} here.", "I'm {name}."]
SIGNOFFS = [
    "Thanks,\n{name}",
    "— {name}",
    "Regards,\n{name}",
    "Best, {name}",
    "Thank you,\n{name}",
    "Cheers,\n{name}",
    "Kind regards,\n{name}",
    "{name}",
]

TONE_LINES = {
    "angry": [
        "This is ridiculous.",
        "Honestly, I'm fed up.",
        "I expected a lot better from you.",
        "Really not impressed.",
    ],
    "anxious": ["I'm a bit worried about this.", "I'm not sure what to do now.", "This is stressing me out a little."],
    "casual": ["Bit of a bummer.", "Not ideal, haha.", "Anyway, that's my story."],
    "formal": ["I would appreciate your assistance in resolving this matter.", "Kindly advise on the next steps."],
    "polite": ["Thanks so much for your help!", "I appreciate you looking into this.", "Thank you in advance."],
    "terse": [""],
}
TONES_FOR_URGENCY = {
    "high": ["angry", "anxious", "formal", "terse", "angry"],
    "medium": ["polite", "formal", "casual", "anxious", "terse"],
    "low": ["polite", "casual", "formal", "polite"],
}
URGENCY_LINES = {
    "high": [
        "This is urgent.",
        "I need this resolved today.",
        "Please fix this ASAP, I need it for work tomorrow.",
        "This is my third email, please escalate.",
        "I'm travelling on Friday, so time is short.",
        "URGENT, please reply today.",
    ],
    "medium": [
        "",
        "",
        "Could you look into it this week?",
        "Please let me know what you can do.",
        "An update soon would be appreciated.",
    ],
    "low": [
        "No rush at all.",
        "Whenever you have a moment.",
        "Not urgent, just letting you know.",
        "Low priority on my end.",
        "No hurry.",
    ],
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
        f"{mm}/{dd}/{d.year}",  # 3/14/2026
        d.isoformat(),  # 2026-03-14
        f"{M} {dd}, {d.year}",  # March 14, 2026
        f"{ordinal(dd)} {Ma} {d.year}",  # 14th Mar 2026
        f"{dd} {M} {d.year}",  # 14 March 2026
    ]
    no_year = [
        f"{M} {ordinal(dd)}",  # March 14th
        f"{mm}/{dd}",  # 3/14
        f"{dd} {Ma}",  # 14 Mar
        f"{Ma} {dd}",  # Mar 14
        f"the {ordinal(dd)} of {M}",  # the 14th of March
        f"{wd} the {ordinal(dd)} of {M}",  # Saturday the 14th of March
        f"{wd[:3]} {dd} {Ma}",  # Sat 14 Mar
        f"{Ma}. {dd}",  # Mar. 14
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
