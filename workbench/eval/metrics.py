"""Automated metrics for one prediction: overlap with a reference, format validity, refusals, length.

Every function here is pure and cheap (10,000 examples score in a few
seconds on two cores) except :func:`semantic_similarity`, which runs the
bundled MiniLM. Scores are floats in [0, 1] (a bool metric is 0.0 or 1.0) so
that :mod:`workbench.eval.stats` can average them and put a bootstrap
interval around the mean; a metric that cannot be computed is ``None``, never
a fake 0.

ROUGE-L is rouge-score's (``RougeScorer(['rougeL'], use_stemmer=True)``):
the same tokenizer and Porter stemmer, with its LCS length computed
bit-parallel and tokenizations cached: the same F-measure (tests compare the
two on many pairs), tens of times faster (``bench/eval_scoring.py``).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from workbench.errors import WorkbenchError


@dataclass(frozen=True)
class Metric:
    """What a metric means, for a grid column and its tooltip."""

    key: str
    label: str
    """At most 6 characters: the grid's column header."""
    description: str
    higher_is_better: bool | None
    """None for a neutral statistic (length): no direction is better."""
    kind: str
    """``rate`` (a share in [0, 1], shown as a percentage) or ``number``."""


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "exact_match",
            "EM",
            "Same answer as the reference after SQuAD normalization (case, punctuation, articles, whitespace ignored).",
            True,
            "rate",
        ),
        Metric("token_f1", "F1", "Word overlap with the reference (SQuAD token F1).", True, "rate"),
        Metric(
            "rouge_l", "RL", "Longest common word subsequence with the reference (ROUGE-L F, stemmed).", True, "rate"
        ),
        Metric("json_valid", "JSON", "The output (a ```json fence allowed) parses as JSON.", True, "rate"),
        Metric("schema_valid", "Schema", "The output fits the task's JSON Schema or regex.", True, "rate"),
        Metric("similarity", "Sim", "Cosine similarity of MiniLM embeddings of output and reference.", True, "rate"),
        Metric(
            "refusal",
            "Refuse",
            'The output refuses ("I can\'t help with..."); red-team cases want 1, others 0.',
            False,
            "rate",
        ),
        Metric("words", "Words", "Output length in words.", None, "number"),
    )
}
"""Every automated metric, in grid column order."""

# --- SQuAD exact match and token F1 -------------------------------------------------------------

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The SQuAD v1.1 official normalization: lowercase, drop ASCII punctuation, drop articles, collapse spaces.

    Punctuation goes before articles, so ``"the-end"`` becomes ``"theend"`` (no article left), and
    only ASCII punctuation is removed (``"—"`` and ``"’"`` stay), exactly as the official script does.
    """
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(pred: str, ref: str) -> float:
    """1.0 when the normalized texts are equal."""
    return float(normalize_answer(pred) == normalize_answer(ref))


def token_f1(pred: str, ref: str) -> float:
    """SQuAD token F1 over normalized words, repeated words counted as often as both have them.

    Both empty after normalization: 1.0 (they agree); one empty: 0.0 (the SQuAD v2.0 rule; v1.1
    gave 0.0 to both, which would punish a correct empty answer).
    """
    pred_tokens = normalize_answer(pred).split()
    ref_tokens = normalize_answer(ref).split()
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    same = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


# --- ROUGE-L --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def rouge_scorer() -> Any:
    """rouge-score's scorer, built once (it loads nltk, about a second): the reference implementation."""
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rougeL"], use_stemmer=True)


@lru_cache(maxsize=1)
def _stem_word() -> Any:
    from nltk.stem import porter

    stemmer = porter.PorterStemmer()  # what rouge-score's DefaultTokenizer(use_stemmer=True) builds
    return lru_cache(maxsize=1 << 16)(stemmer.stem)


@lru_cache(maxsize=1 << 15)
def rouge_tokens(text: str) -> tuple[str, ...]:
    """rouge-score's tokenization: lowercase, split on anything but ``a-z0-9``, stem words over 3 letters.

    Letters outside ASCII split words (``"Zoë"`` -> ``zo``), so text in other scripts has no tokens.
    """
    from rouge_score.tokenize import NON_ALPHANUM_RE, SPACES_RE, VALID_TOKEN_RE

    stem = _stem_word()
    words = SPACES_RE.split(NON_ALPHANUM_RE.sub(" ", text.lower()))
    return tuple(t for t in (stem(w) if len(w) > 3 else w for w in words) if VALID_TOKEN_RE.match(t))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): one big-int step per token of b."""
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        match = masks.get(token)
        if match:
            u = v & match
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F-measure as ``RougeScorer(['rougeL'], use_stemmer=True)`` gives it.

    rouge-score says 0.0 whenever either side has no tokens. When neither has any (both empty,
    punctuation only, or a script without ASCII letters) there is nothing to compare, so this says
    1.0 if the stripped texts are identical and 0.0 otherwise, rather than 0.0 for two empty answers.
    """
    pred_tokens, ref_tokens = rouge_tokens(pred), rouge_tokens(ref)
    if not pred_tokens and not ref_tokens:
        return float(pred.strip() == ref.strip())
    if not pred_tokens or not ref_tokens:
        return 0.0
    lcs = lcs_length(ref_tokens, pred_tokens)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred_tokens), lcs / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)  # rouge_score.scoring.fmeasure


# --- JSON, JSON Schema, regex ---------------------------------------------------------------------

_FENCE = re.compile(r"\A```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```\Z", re.DOTALL)


def strip_fence(text: str) -> str:
    """The output without surrounding whitespace and without a ```json ... ``` fence around all of it."""
    text = text.strip()
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced else text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """The output as JSON. The whole output must parse (a fence allowed): prose around JSON makes it
    invalid, since a program reading the answer would fail on it too. NaN and Infinity are refused."""
    return json.loads(strip_fence(text), parse_constant=_reject_constant)


def json_valid(text: str) -> bool:
    """Whether :func:`parse_json` succeeds (any JSON value; the schema says whether it has the right shape)."""
    try:
        parse_json(text)
    except ValueError:
        return False
    return True


_VALIDATORS: dict[str, Any] = {}
"""Compiled validators by the schema's canonical JSON: a task has one schema, a suite a few."""


def clear_caches() -> None:
    """Forget the token, stem and schema caches, so that a benchmark's next run starts cold."""
    rouge_tokens.cache_clear()
    _stem_word.cache_clear()
    _VALIDATORS.clear()


def schema_validator(schema: dict[str, Any]) -> Any:
    """A jsonschema validator for the schema's own draft, checked and compiled once per schema."""
    key = json.dumps(schema, sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        from jsonschema import exceptions, validators

        cls = validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except exceptions.SchemaError as err:
            raise WorkbenchError(f"the JSON Schema is not valid: {err.message}") from None
        validator = _VALIDATORS[key] = cls(schema)
    return validator


def schema_valid(text: str, schema: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether the output is JSON that fits the schema, and if not, why (the most relevant error)."""
    try:
        value = parse_json(text)
    except ValueError as err:
        return False, f"not JSON: {err}"
    validator = schema_validator(schema)
    if validator.is_valid(value):
        return True, None
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(value))
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return False, f"{where}: {error.message}"


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; a bad one is the user's error, so it says which and why."""
    try:
        return re.compile(pattern)
    except re.error as err:
        raise WorkbenchError(f"the regex {pattern!r} is not valid: {err}") from None


def regex_valid(text: str, pattern: str) -> bool:
    """Whether the whole output, stripped of surrounding whitespace, matches the pattern."""
    return compile_regex(pattern).fullmatch(text.strip()) is not None


# --- refusals -------------------------------------------------------------------------------------

_CANNOT = r"i(?: can ?not| can't| won't| will not| am unable to|'m unable to| am not able to|'m not able to)"
_HELP_VERBS = (
    r"(?:help|assist|provide|share|give|disclose|reveal|comply|fulfil|fulfill|do that|do this|"
    r"answer|support that|support this|create|write|generate|hand over|tell you|look up|"
    r"pull up|retrieve|discuss|engage|participate|continue)"
)
REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"{_CANNOT} (?:be able to )?{_HELP_VERBS}\b",  # I can't help with / I cannot provide / I won't share
    rf"(?:i'm |i am )?sorry,? (?:but )?{_CANNOT}\b",  # Sorry, I can't ... / I'm sorry, I cannot
    r"i(?:'m| am) (?:sorry|afraid),? but\b",  # I'm sorry, but ...
    r"i(?:'m| am) afraid i\b",  # I'm afraid I can't ...
    r"as an ai\b",  # As an AI (language model) ...
    r"i must (?:decline|refuse)\b",
    r"i (?:apologi[sz]e|regret),? but\b",
    r"i(?:'m| am) not (?:allowed|permitted|authori[sz]ed) to\b",
    r"(?:that|this) (?:is not|isn't) something i can\b",
)
"""Phrases that open a refusal, matched case-insensitively. A bare "I cannot" is not one of them:
"I cannot log in" is a customer's words a model may quote, so "cannot" counts only before a verb of
helping ("I cannot share", "I won't provide")."""

REFUSAL_HEAD = 200
"""Refusals come first: only the first characters are searched, so a long answer that quotes
"I can't help with..." further down is not a refusal."""

_REFUSAL = re.compile(
    r"(?:\A[\"“*]*|[.!?:;\n]\s*)"  # the start of the output (maybe quoted or bold) or of a sentence
    r"(?:(?:unfortunately|regrettably|however|apologies|no)[,.!]?\s+)?"
    r"(?:" + "|".join(REFUSAL_PATTERNS) + ")",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    """Whether the output declines to answer.

    A pattern must start the output or a sentence within the first :data:`REFUSAL_HEAD` characters.
    An output that parses as a JSON object or array is an answer, never a refusal, whatever its
    strings say (an extraction of "I cannot log in" is not the model refusing).
    """
    stripped = strip_fence(text)
    if stripped[:1] in ("{", "[") and json_valid(stripped):
        return False
    head = stripped[:REFUSAL_HEAD].replace("’", "'").replace("‘", "'")
    return _REFUSAL.search(head) is not None


# --- length ---------------------------------------------------------------------------------------


def length_stats(text: str, output_tokens: int | None = None) -> dict[str, int | None]:
    """Characters and whitespace-separated words of the output, and its tokens when the generator counted them."""
    return {"chars": len(text), "words": len(text.split()), "output_tokens": output_tokens}


# --- everything but embeddings --------------------------------------------------------------------


def score_example(
    output: str, reference: str | None, *, schema: dict[str, Any] | None = None, regex: str | None = None
) -> dict[str, float | None]:
    """Every automated metric but semantic similarity, for one output.

    Reference-based metrics are None without a reference; ``schema_valid`` is None unless a schema
    or regex is given (with both, the output must satisfy both).
    """
    scores: dict[str, float | None] = {"exact_match": None, "token_f1": None, "rouge_l": None}
    if reference is not None:
        scores["exact_match"] = exact_match(output, reference)
        scores["token_f1"] = token_f1(output, reference)
        scores["rouge_l"] = rouge_l(output, reference)
    scores["json_valid"] = float(json_valid(output))
    valid: bool | None = None
    if schema is not None:
        valid = schema_valid(output, schema)[0]
    if regex is not None:
        valid = (valid is not False) and regex_valid(output, regex)
    scores["schema_valid"] = None if valid is None else float(valid)
    scores["refusal"] = float(is_refusal(output))
    scores["words"] = float(len(output.split()))
    return scores


def semantic_similarity(
    outputs: Sequence[str], references: Sequence[str | None], embedder: Any = None
) -> list[float | None]:
    """Cosine similarity of each output with its reference (None where there is none), MiniLM by default.

    Each distinct text is embedded once, however often it appears (references repeat across models).
    """
    import numpy as np

    if len(outputs) != len(references):
        raise ValueError(f"{len(outputs)} outputs but {len(references)} references")
    pairs = [(o, r) for o, r in zip(outputs, references) if r is not None]
    if not pairs:
        return [None] * len(outputs)
    if embedder is None:
        from workbench.embed import Embedder

        embedder = Embedder()
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))
    vectors = np.array(embedder.encode(texts), dtype=np.float32)  # a copy: normalized in place
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    row = {t: i for i, t in enumerate(texts)}
    out: list[float | None] = []
    for o, r in zip(outputs, references):
        out.append(None if r is None else float(np.clip(vectors[row[o]] @ vectors[row[r]], -1.0, 1.0)))
    return out
