"""Automated eval scoring: 10,000 predictions, every metric but embeddings, against a naive first version.

The data: N (output, reference) pairs shaped like the sample task. References
are the JSON answers of the sample train, val and test sets; outputs are, by
share, the reference itself (30%), the reference with a field changed (25%),
with a bad date or an extra key (10%), in a ```json fence (5%), cut short so
it is broken JSON (5%), a prose answer (15%), or a refusal (10%).

Timed, in one process, after a warm-up that does the imports (nltk for
rouge-score, about a second; jsonschema):

- ours: ``score_example(output, reference, schema=SCHEMA)`` for every pair
  (caches cleared first), then ``aggregate`` with 2,000 bootstrap resamples.
- rouge-score once: the same, but ROUGE-L from one ``RougeScorer`` reused (no
  token cache, rouge-score's dynamic-programming LCS).
- naive: what a first version does: a new ``RougeScorer`` and
  ``jsonschema.validate`` (which checks and compiles the schema) per example.

All three must give the same scores for every pair. The target is 10 s for
10,000 predictions on 2 CPU cores.

    python bench/eval_scoring.py [--n 10000] [--seed 0] [--no-naive]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.eval import metrics  # noqa: E402
from workbench.eval.metrics import (  # noqa: E402
    exact_match,
    is_refusal,
    json_valid,
    rouge_l,
    rouge_scorer,
    schema_valid,
    score_example,
    token_f1,
)
from workbench.eval.stats import aggregate  # noqa: E402

SUPPORT = ROOT / "sample_data" / "support"
SCHEMA: dict[str, Any] = json.loads((SUPPORT / "schema.json").read_text())
TARGET_S = 10.0
T = TypeVar("T")

PROSE = [
    "The customer {customer} reports a {issue} problem with the {product}; it started on {date}.",
    "Sure! Here is the extraction: customer {customer}, product {product}, issue {issue}, urgency {urgency}.",
    "{customer} wrote about their {product}. {summary} I would rate the urgency as {urgency}.",
]
REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "I cannot share another customer's payment details.",
    "As an AI, I am unable to access customer accounts.",
    "Sorry, I won't provide instructions for breaking into an account.",
]


def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (output, reference) pairs; see the module docstring for the mix."""
    rng = random.Random(seed)
    refs = [
        json.loads(line)["messages"][-1]["content"]
        for name in ("train", "val", "test")
        for line in (SUPPORT / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    answers = [json.loads(r) for r in refs]
    issues = ["billing", "shipping", "defect", "account", "refund", "other"]
    pairs = []
    for _ in range(n):
        i = rng.randrange(len(refs))
        ref, answer = refs[i], dict(answers[i])
        roll = rng.random()
        if roll < 0.30:
            out = ref
        elif roll < 0.55:
            key = rng.choice(["issue", "urgency", "summary", "customer"])
            answer[key] = (
                rng.choice(issues)
                if key == "issue"
                else rng.choice(["low", "medium", "high"])
                if key == "urgency"
                else " ".join(rng.sample(str(answer[key]).split() + ["the", "order", "late"], 3))
            )
            out = json.dumps(answer, ensure_ascii=False)
        elif roll < 0.65:
            if rng.random() < 0.5:
                y, m, d = answer["date"].split("-")
                answer["date"] = f"{m}/{d}/{y}"
            else:
                answer["sentiment"] = "negative"
            out = json.dumps(answer, ensure_ascii=False)
        elif roll < 0.70:
            out = f"```json\n{ref}\n```"
        elif roll < 0.75:
            out = ref[: rng.randint(10, len(ref) - 2)]
        elif roll < 0.90:
            out = rng.choice(PROSE).format(**answers[rng.randrange(len(answers))] if rng.random() < 0.2 else answer)
        else:
            out = rng.choice(REFUSALS)
        pairs.append((out, ref))
    return pairs


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def clear_caches() -> None:
    """Forget token, stem and schema caches, so the timed run starts cold."""
    metrics.clear_caches()


def score_rouge_once(output: str, reference: str) -> dict[str, float | None]:
    """Every metric as score_example computes it, but ROUGE-L from one reused RougeScorer (no token cache)."""
    return _score(output, reference, _rouge_score_f(rouge_scorer(), output, reference), schema_valid(output, SCHEMA)[0])


def score_naive(output: str, reference: str) -> dict[str, float | None]:
    """A first version: a new scorer, and a schema check and validator compiled, for every example."""
    import jsonschema
    from rouge_score.rouge_scorer import RougeScorer

    try:
        jsonschema.validate(metrics.parse_json(output), SCHEMA)
        valid = True
    except (ValueError, jsonschema.ValidationError):
        valid = False
    rouge = _rouge_score_f(RougeScorer(["rougeL"], use_stemmer=True), output, reference)
    return _score(output, reference, rouge, valid)


def _score(output: str, reference: str, rouge: float, valid: bool) -> dict[str, float | None]:
    return {
        "exact_match": exact_match(output, reference),
        "token_f1": token_f1(output, reference),
        "rouge_l": rouge,
        "json_valid": float(json_valid(output)),
        "schema_valid": float(valid),
        "refusal": float(is_refusal(output)),
        "words": float(len(output.split())),
    }


def _rouge_score_f(scorer: Any, output: str, reference: str) -> float:
    """rouge-score's F, with metrics.rouge_l's rule for two texts without tokens (rouge-score says 0)."""
    if not metrics.rouge_tokens(output) and not metrics.rouge_tokens(reference):
        return float(output.strip() == reference.strip())
    return scorer.score(reference, output)["rougeL"].fmeasure


def run(
    name: str, score: Callable[[str, str], dict[str, float | None]], pairs: list[tuple[str, str]]
) -> tuple[list[dict[str, float | None]], float, float]:
    clear_caches()
    scores, score_s = timed(lambda: [score(o, r) for o, r in pairs])
    _, agg_s = timed(lambda: aggregate(scores))
    return scores, score_s, agg_s


def row(name: str, seconds: float | None, note: str = "") -> None:
    print(f"  {name:<44} {'' if seconds is None else f'{seconds:8.2f} s':>10}  {note}")


def breakdown(pairs: list[tuple[str, str]]) -> None:
    """Each metric alone over all pairs, caches cleared first."""
    clear_caches()
    print("\n  each metric alone (ours):")
    for name, fn in [
        ("exact match", lambda o, r: exact_match(o, r)),
        ("token F1", lambda o, r: token_f1(o, r)),
        ("ROUGE-L", lambda o, r: rouge_l(o, r)),
        ("JSON valid", lambda o, r: json_valid(o)),
        ("schema valid", lambda o, r: schema_valid(o, SCHEMA)),
        ("refusal", lambda o, r: is_refusal(o)),
    ]:
        _, seconds = timed(lambda fn=fn: [fn(o, r) for o, r in pairs])
        row(f"  {name}", seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="predictions to score (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline (the slowest)")
    args = parser.parse_args(argv)
    pairs = make_pairs(args.n, args.seed)
    score_naive(*pairs[0]), score_rouge_once(*pairs[0])  # imports (nltk ~1 s, jsonschema) outside the timings
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{len(pairs):,} predictions, every automated metric but embeddings, schema {SUPPORT.name}/schema.json, "
        f"{cores} CPU cores; aggregation: 2,000 bootstrap resamples per metric"
    )
    ours, ours_s, ours_agg = run("ours", lambda o, r: score_example(o, r, schema=SCHEMA), pairs)
    once, once_s, once_agg = run("rouge-score once", score_rouge_once, pairs)
    assert once == ours, "ROUGE-L differs from rouge-score's"
    results = [("ours (score_example)", ours_s, ours_agg), ("rouge-score reused scorer", once_s, once_agg)]
    if not args.no_naive:
        naive, naive_s, naive_agg = run("naive", score_naive, pairs)
        assert naive == ours, "the naive baseline scores differently"
        results.append(("naive (new scorer, validator per example)", naive_s, naive_agg))
    print()
    print(f"  {'method':<44} {'score':>10}  + aggregate = total, examples/s")
    for name, score_s, agg_s in results:
        row(name, score_s, f"+ {agg_s:.2f} s = {score_s + agg_s:.2f} s, {len(pairs) / (score_s + agg_s):,.0f}/s")
    print()
    total = ours_s + ours_agg
    for name, score_s, agg_s in results[1:]:
        row(f"speed-up vs {name.split(' (')[0]}", None, f"{(score_s + agg_s) / total:.1f}x")
    scale = 10_000 / len(pairs)
    met = total * scale <= TARGET_S
    row("target: 10,000 in 10 s", None, f"{'met' if met else 'MISSED'}: {total * scale:.2f} s for 10,000")
    row("same scores on every pair", None, "yes (checked)")
    breakdown(pairs)
    summaries = aggregate(ours)
    print("\n  " + "; ".join(f"{k} {s.describe()}" for k, s in summaries.items() if s.n))


if __name__ == "__main__":
    main()
