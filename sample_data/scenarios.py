"""Scenario templates of the support-ticket task.

Each scenario is ``(issue, product kind, message templates, summary
templates)``, with an optional fifth element limiting the urgencies that make
sense. The slot values and phrasing tables are in ``vocab.py``; the templates
are filled in by ``tickets.make_example``.
"""

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
    (
        "billing",
        "any",
        [
            "I was charged twice for my {product} {on_date} — two identical charges of {amount}.",
            "My card statement shows {amount} taken twice for {the_product}, both dated {date}.",
            "{on_date_cap} you billed me two times for {the_product}. One of those {amount} charges has to go.",
        ],
        [
            "Double-charged {amount} for one purchase; wants one reversed.",
            "Duplicate {amount} charge on the same day; asks for a reversal.",
            "Billed twice for the same order.",
        ],
    ),
    (
        "billing",
        "service",
        [
            "I cancelled {product} weeks ago but you still charged me {amount} {on_date}.",
            "Why was I billed {amount} for {product} {on_date}? I cancelled that subscription last month.",
            "Got a {amount} renewal charge for {product} {on_date}, even though I'd already cancelled.",
        ],
        [
            "Charged {amount} after cancelling; wants it reversed.",
            "Still billed for a cancelled subscription.",
            "Disputes a renewal charge made after cancellation.",
        ],
    ),
    (
        "billing",
        "any",
        [
            "The invoice for my {product} dated {date} says {amount}, but checkout showed {amount2}.",
            "I was quoted {amount2} for {the_product}, yet {on_date} my card was charged {amount}.",
        ],
        [
            "Charged {amount} instead of the quoted {amount2}.",
            "Invoice total is higher than the checkout price.",
            "Overcharged versus the agreed price; wants the difference back.",
        ],
    ),
    (
        "billing",
        "any",
        [
            "My discount code {code} wasn't applied when I bought {the_product} {on_date}, so I paid full price.",
            "I entered {code} at checkout for {the_product} {on_date} and the discount never showed up on my bill.",
        ],
        [
            "Promo code {code} was not applied at checkout.",
            "Discount missing from the bill; paid full price.",
            "Wants the {code} discount credited after the fact.",
        ],
    ),
    (
        "billing",
        "any",
        [
            "I need a proper VAT invoice for {the_product} I bought {on_date}; the receipt has no company details.",
            "Could you reissue the invoice for my {product} purchase from {date} with our company name and tax ID?",
        ],
        [
            "Needs a VAT invoice with company details.",
            "Requests a corrected invoice for company records.",
            "Asks for the invoice to be reissued with tax details.",
        ],
    ),
    # ---- shipping
    (
        "shipping",
        "physical",
        [
            "My {product} was supposed to arrive {on_date} and it still hasn't shown up. Order {order}.",
            "I ordered the {product} {on_date} and {days} days later there's still nothing at my door.",
            "Order {order} ({a_product}) was due {on_date}. Where is it?",
        ],
        [
            "Order {order} not delivered; past the expected date.",
            "Package still missing {days} days after ordering.",
            "Late delivery; asks where the package is.",
        ],
    ),
    (
        "shipping",
        "physical",
        [
            "Tracking for my {product} has said 'in transit' with {carrier} since {date}.",
            "The {carrier} tracking on my {product} hasn't moved since {date}. Is it lost?",
        ],
        [
            "{carrier} tracking stuck; no updates.",
            "Tracking has not updated; fears the parcel is lost.",
            "Wants a status check on a stalled {carrier} shipment.",
        ],
    ),
    (
        "shipping",
        "physical",
        [
            "I just noticed the {product} I ordered {on_date} is going to my old address. Can you reroute it?",
            "Typo in my shipping address for the {product} ordered {on_date} — can it be changed before it ships?",
        ],
        [
            "Wrong shipping address; wants the parcel rerouted.",
            "Asks to correct the delivery address before dispatch.",
            "Order is headed to an old address.",
        ],
    ),
    (
        "shipping",
        "physical",
        [
            "The box with my {product} arrived {on_date} completely crushed, and {carrier} left it in the rain.",
            "My {product} was delivered {on_date} in a torn, soaked box. I haven't dared to plug it in.",
        ],
        [
            "Parcel arrived crushed and wet.",
            "Shipping damage on delivery; item condition unknown.",
            "Box damaged in transit by {carrier}.",
        ],
    ),
    (
        "shipping",
        "physical",
        [
            "I ordered {a_product} {on_date} but the parcel contained {a_other_product} instead.",
            "Opened my delivery from {date} and found {a_other_product}, not the {product} I paid for.",
        ],
        [
            "Received a {other_product} instead of the order.",
            "Wrong item delivered; wants the right one sent.",
            "Order mix-up: got someone else's product.",
        ],
    ),
    (
        "shipping",
        "physical",
        [
            "{carrier} says my {product} was delivered {on_date}, but it isn't here and the neighbours haven't seen it.",
            "The tracking page says delivered {on_date}, but no {product} ever reached me.",
        ],
        [
            "Marked delivered but never received.",
            "Carrier shows delivered; parcel missing.",
            "Missing parcel despite a delivery scan.",
        ],
    ),
    # ---- defect
    (
        "defect",
        "physical",
        [
            "Since {date} my {product} won't power on at all. I've tried another outlet.",
            "My {product} died {on_date}, only {weeks} weeks after I bought it. No lights, nothing.",
        ],
        [
            "Unit is dead and will not power on.",
            "Stopped working after {weeks} weeks of use.",
            "Device won't turn on; tried another outlet.",
        ],
    ),
    (
        "defect",
        "physical",
        [
            "The {product} started making a loud grinding noise {on_date} and now it smells like burning plastic.",
            "My {product} rattles and buzzes since {date}. It didn't do that when it was new.",
        ],
        [
            "Loud grinding noise and burning smell.",
            "Unit makes an abnormal noise.",
            "New rattling and buzzing during use.",
        ],
    ),
    (
        "defect",
        "physical",
        [
            "Since {date} my {product} won't hold a charge for more than an hour.",
            "The battery in my {product} drains overnight now; it started {on_date}.",
        ],
        [
            "Battery no longer holds a charge.",
            "Rapid battery drain.",
            "Battery life collapsed to about an hour.",
        ],
    ),
    (
        "defect",
        "physical",
        [
            "{part_cap} on my {product} snapped {on_date} during completely normal use.",
            "I was using the {product} {on_date} and {part} just broke off in my hand.",
        ],
        [
            "{part_cap} broke during normal use.",
            "Part snapped off; wants a repair or replacement.",
            "Build quality issue: {part} broke.",
        ],
    ),
    (
        "defect",
        "physical",
        [
            "My {product} gets too hot to touch after a few minutes. I first noticed it {on_date}.",
            "The {product} I received {on_date} overheats and shuts itself off.",
        ],
        [
            "Overheats and shuts down.",
            "Unit runs dangerously hot.",
            "Overheating after a few minutes of use.",
        ],
    ),
    (
        "defect",
        "physical",
        [
            "The {product} that arrived {on_date} was faulty out of the box — {part} is loose and it won't start.",
            "Brand new {product}, delivered {on_date}, and it's already broken: {part} wobbles and nothing works.",
        ],
        [
            "Dead on arrival; {part} is loose.",
            "Faulty out of the box.",
            "New unit broken on delivery.",
        ],
    ),
    # ---- account
    (
        "account",
        "service",
        [
            "I haven't been able to log in to {product} since {date}. It says my password is wrong even after a reset.",
            "Since {date} every login to my {product} account fails with 'invalid credentials'.",
        ],
        [
            "Cannot log in even after a password reset.",
            "Login fails with invalid credentials.",
            "Locked out of the account.",
        ],
    ),
    (
        "account",
        "service",
        [
            "I requested a password reset for {product} {on_date} and the email never arrived. Checked spam too.",
            "Tried to reset my {product} password {on_date}; no reset email, not even in junk.",
        ],
        [
            "Password reset email never arrives.",
            "No reset email received, spam checked.",
            "Can't reset the password; email missing.",
        ],
    ),
    (
        "account",
        "service",
        [
            "I changed phones {on_date} and now I can't get the two-factor codes for {product}.",
            "My old phone broke {on_date}, and it had the authenticator for my {product} account.",
        ],
        [
            "Lost access to 2FA after changing phones.",
            "Needs two-factor authentication reset.",
            "Authenticator lost with the old phone.",
        ],
    ),
    (
        "account",
        "service",
        [
            "I need to change the email on my {product} account; I lost access to the old address {on_date}.",
            "Please update the login email for {product}. My work address was shut off {on_date}.",
        ],
        [
            "Wants the account email changed.",
            "Lost access to the old email; needs it updated.",
            "Requests a login email change.",
        ],
    ),
    (
        "account",
        "service",
        [
            "My {product} account was suspended {on_date} with no explanation at all.",
            "Got a notice {on_date} that my {product} account is 'under review' and I can't use it.",
        ],
        [
            "Account suspended without explanation.",
            "Account locked for review; wants access back.",
            "Asks why the account was suspended.",
        ],
    ),
    (
        "account",
        "service",
        [
            "Please delete my {product} account and all my data. I first asked {on_date} and heard nothing.",
            "I submitted a data deletion request for {product} {on_date}. Has it been processed?",
        ],
        [
            "Wants the account and data deleted.",
            "Follow-up on an unanswered deletion request.",
            "Data deletion request still pending.",
        ],
    ),
    # ---- refund
    (
        "refund",
        "physical",
        [
            "I returned the {product} {on_date} and still haven't received my {amount} refund.",
            "{carrier} confirms you got my returned {product} {on_date}. Where is my {amount}?",
        ],
        [
            "Refund of {amount} missing after return.",
            "Returned the item; refund not received.",
            "Return delivered but no money back yet.",
        ],
    ),
    (
        "refund",
        "any",
        [
            "An agent promised me a {amount} refund for {the_product} {on_date}, but nothing has come through.",
            "I was told {on_date} that {amount} would be refunded for {the_product}. Still waiting.",
        ],
        [
            "Promised {amount} refund never arrived.",
            "Waiting on a refund an agent approved.",
            "Follow-up on an approved refund.",
        ],
    ),
    (
        "refund",
        "any",
        [
            "I'd like a refund for {the_product} I bought {on_date}. It isn't what I expected and I'm within 30 days.",
            "Can I get my money back for {the_product}? Purchased {on_date}, still inside the return window.",
        ],
        [
            "Requests a refund within the 30-day window.",
            "Wants to return the product for a refund.",
            "Not satisfied; asks for money back.",
        ],
    ),
    (
        "refund",
        "any",
        [
            "I only got {amount2} back for {the_product} instead of the full {amount}. The refund posted {on_date}.",
            "Partial refund for my {product} {on_date}: {amount2} out of {amount}. Why?",
        ],
        [
            "Partial refund of {amount2} instead of {amount}.",
            "Refund short; wants the remaining amount.",
            "Questions a partial refund.",
        ],
    ),
    (
        "refund",
        "physical",
        [
            "I cancelled my order for {the_product} {on_date} before it shipped. When will the {amount} be refunded?",
            "Order {order} for {a_product} was cancelled {on_date}, but my {amount} is still on hold.",
        ],
        [
            "Cancelled before shipping; awaiting {amount} refund.",
            "Refund pending for a cancelled order.",
            "Money still held after cancellation.",
        ],
    ),
    # ---- other
    (
        "other",
        "physical",
        [
            "Does the warranty on my {product} cover accidental damage? I bought it {on_date}.",
            "Quick question: how long is the warranty on the {product}? Mine was purchased {on_date}.",
        ],
        [
            "Asks what the warranty covers.",
            "Warranty question.",
            "Wants to know the warranty length.",
        ],
        ["low", "medium"],
    ),
    (
        "other",
        "service",
        [
            "Any chance {product} will get a dark mode? I've been using it daily since {date}.",
            "Feature request for {product}: offline mode, please. Been a subscriber since {date}.",
        ],
        [
            "Feature request.",
            "Suggests a new feature.",
            "Long-time user asking for an improvement.",
        ],
        ["low", "medium"],
    ),
    (
        "other",
        "any",
        [
            "Just wanted to say {the_product} I got {on_date} is fantastic, and your agent Sam was really helpful.",
            "No problem, just a thank-you: {the_product} from {date} has been great so far.",
        ],
        [
            "Compliment; no action needed.",
            "Positive feedback about the product and support.",
            "Thank-you note.",
        ],
        ["low"],
    ),
    (
        "other",
        "physical",
        [
            "Will the {product} I ordered {on_date} work with {device}?",
            "Before I open it — is the {product} (ordered {on_date}) compatible with {device}?",
        ],
        [
            "Compatibility question about {device_s}.",
            "Asks if the product works with {device_s}.",
            "Pre-use compatibility check.",
        ],
        ["low", "medium"],
    ),
    (
        "other",
        "physical",
        [
            "Where can I download the manual for the {product}? I bought it {on_date} and lost the paper copy.",
            "Is there a setup guide for the {product}? Mine arrived {on_date} without one.",
        ],
        [
            "Needs a copy of the manual.",
            "Asks where to find setup instructions.",
            "Lost the user manual.",
        ],
        ["low", "medium"],
    ),
    (
        "other",
        "any",
        [
            "Is there a trade-in program? I'd like to upgrade {the_product} I purchased {on_date}.",
            "Do you offer upgrades for existing customers? I've had my {product} since {date}.",
        ],
        [
            "Asks about trade-in or upgrade options.",
            "Interested in an upgrade offer.",
            "Upgrade and trade-in question.",
        ],
        ["low", "medium"],
    ),
]
