"""A small offline language detector and the ``language_mismatch`` check.

Latin-script text is told apart by stop words (ten European languages); other
scripts by their Unicode blocks (CJK, Cyrillic, Arabic, Greek, Hebrew,
Devanagari...). It abstains on short or unclear text rather than guess, so the
check only speaks when both sides are clear.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench.data.checks.text import RESPONSE, quote, words
from workbench.data.findings import DataFinding

if TYPE_CHECKING:
    from workbench.data.checks.example import Example

_STOPWORDS: dict[str, str] = {
    "en": "the and of to is in it that for you was with on are this have be not but my we they at from or an will "
    "can would please me has had what when your been there their which do does did about if so no just all our "
    "i'm it's i a could should into than them then these those how why who",
    "es": "el la los las de del que y en un una por con para es se su sus lo al como más pero mi me le ya muy sin "
    "sobre este esta también porque cuando hay fue son está yo nos ha desde hasta donde todo ni usted no "
    "gracias",
    "fr": "le la les de des du et est un une en que qui pour dans ce cette pas sur au aux avec il elle je vous nous "
    "ne se mais ou son sa ses mon ma mes très été être avoir plus par comme tout merci j'ai c'est",
    "de": "der die das und ist nicht ein eine einen dem den des zu mit sich auf für von im es ich sie wir ihr auch "
    "aber wie noch nach bei aus wenn oder mein meine haben hat wurde sind war kein bitte danke",
    "it": "il lo la gli le di che e è un una per con non sono mi si del della dei nel nella al alla da ma come "
    "anche più questo questa ho ha perché io ci ne se molto grazie",
    "pt": "o a os as de do da dos das que e é um uma para com não em no na por se mais mas como foi ao meu minha "
    "você eu ele ela isso este esta muito tem são também obrigado",
    "nl": "de het een en van is dat niet op te in ik je met voor zijn er maar om aan ook als bij nog wat mijn hij "
    "ze wij heb heeft was door naar dan kan geen bedankt",
    "sv": "och att det som en ett är på av för med till den har de inte om jag du vi var men så han hon från kan "
    "min mitt eller när vad ska skulle efter tack",
    "pl": "i w na z że nie się do jest to o jak ale po co tak za od jego jej mnie mi czy już ten ta są być był "
    "była przez dla tylko dziękuję",
    "fi": "ja on ei se että oli ovat hän minä sinä me te he mutta kun jos niin kuin tämä joka mitä myös vain "
    "olen ole voi siitä kanssa minun sen kiitos",
}
LANGUAGES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "sv": "Swedish",
    "pl": "Polish",
    "fi": "Finnish",
}


def _weights() -> dict[str, tuple[tuple[str, float], ...]]:
    """Each stop word spreads one vote over the languages that share it."""
    langs: dict[str, list[str]] = {}
    for lang, text in _STOPWORDS.items():
        for word in text.split():
            langs.setdefault(word, []).append(lang)
    return {word: tuple((lang, 1 / len(shared)) for lang in shared) for word, shared in langs.items()}


_WEIGHTS = _weights()
STOPWORDS = frozenset(_WEIGHTS)
"""Every stop word of every language: what topic clustering leaves out."""

_SCRIPTS = (  # (first code point, last code point, script)
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"),
    (0x0900, 0x097F, "Devanagari"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x1100, 0x11FF, "Korean"),
    (0x3040, 0x30FF, "Japanese"),
    (0x3400, 0x4DBF, "Chinese"),
    (0x4E00, 0x9FFF, "Chinese"),
    (0xAC00, 0xD7AF, "Korean"),
)
MIN_WORDS = 6
"""Texts with fewer words are not judged."""
MAX_WORDS, MAX_CHARS = 120, 1000
"""Only the start of a long text is read: enough to tell its language."""
_TRANSLATION = re.compile(
    r"translat|traduc|traduz|übersetz|vertaal|översätt|tłumacz|käännä|перев|翻译|翻訳|번역"
    r"|\b(?:english|spanish|español|french|français|german|deutsch|italian|portuguese|dutch|swedish|polish|finnish"
    r"|russian|chinese|japanese|korean|arabic|hebrew|hindi|greek)\b",
    re.IGNORECASE,
)
_NON_LATIN = re.compile(r"[^\W\d_\u0000-\u036f]")
"""A letter past the Latin blocks."""
_LETTER = re.compile(r"[^\W\d_]")


def _script(text: str) -> str | None:
    """The non-Latin script most letters are written in, or None for Latin (or no letters)."""
    if text.isascii():
        return None
    foreign = _NON_LATIN.findall(text)
    if not foreign:
        return None
    counts: Counter[str] = Counter()
    for ch in foreign:
        code = ord(ch)
        for first, last, script in _SCRIPTS:
            if first <= code <= last:
                counts[script] += 1
                break
    if not counts:
        return None
    if counts["Japanese"] and counts["Chinese"]:  # kanji + kana is Japanese
        counts["Japanese"] += counts.pop("Chinese")
    script, n = counts.most_common(1)[0]
    return script if n >= 0.4 * len(_LETTER.findall(text)) else None


def detect(text: str, tokens: Sequence[str] | None = None) -> str | None:
    """The language of ``text``: an ISO code (``en``, ``es``...), a script name (``Cyrillic``), or None if unclear.

    ``tokens`` are the text's lower-cased words when the caller has them already.
    """
    script = _script(text)
    if script is not None:
        return script if len(text) >= 2 * MIN_WORDS else None
    if tokens is None and text.count(" ") < MIN_WORDS - 1:
        return None  # too short to judge, known without splitting it into words
    tokens = (words(text[:MAX_CHARS]) if tokens is None else tokens)[:MAX_WORDS]
    if len(tokens) < MIN_WORDS:
        return None
    counts = Counter(tokens)
    scores: dict[str, float] = {}
    for token in STOPWORDS.intersection(counts):
        for lang, weight in _WEIGHTS[token]:
            scores[lang] = scores.get(lang, 0.0) + weight * counts[token]
    if not scores:
        return None
    best = max(scores, key=scores.__getitem__)
    score = scores.pop(best)
    runner_up = max(scores.values(), default=0.0)
    if score < 2 or score < 2 * runner_up or score < 0.12 * len(tokens):
        return None
    return best


def name(language: str) -> str:
    """``Spanish`` for ``es``; script names as they are."""
    return LANGUAGES.get(language, language)


def check_language_mismatch(ex: Example) -> list[DataFinding]:
    """The answer's natural-language text is in another language than the prompt (translation tasks excepted)."""
    answer = ex.natural_response
    answer_language = detect(answer) if len(answer) >= 20 else None
    if answer_language is None:
        return []
    prompt_language = ex.prompt_language
    if prompt_language is None or prompt_language == answer_language:
        return []
    if _TRANSLATION.search(ex.prompt_text) or _TRANSLATION.search(ex.system):
        return []
    return [
        DataFinding(
            ex.index,
            "language_mismatch",
            "warning",
            f"the answer is in {name(answer_language)} but the prompt is in {name(prompt_language)}: "
            f"{quote(answer, 70)}",
            f"Rewrite the answer in {name(prompt_language)}, or say in the prompt which language to answer in.",
            RESPONSE,
        )
    ]
