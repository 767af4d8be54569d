"""A small eval made by hand (no generation): three support tickets, a base and an adapter."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.eval.store import EvalDir, EvalSpec, ModelRef, create_eval

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"


def ticket(customer: str, issue: str, date: str = "2026-05-13") -> str:
    return json.dumps(
        {
            "customer": customer,
            "product": "PhotoNest",
            "issue": issue,
            "date": date,
            "urgency": "medium",
            "summary": "Locked out.",
        },
        separators=(",", ":"),
    )


EXAMPLES = [
    {
        "id": str(i),
        "index": i,
        "messages": [
            {"role": "system", "content": "Answer with one line of JSON."},
            {"role": "user", "content": f"I'm {name}; {issue} problem."},
        ],
        "reference": ticket(name, issue),
    }
    for i, (name, issue) in enumerate(
        [
            ("Aisha Nguyen", "account"),
            ("Mateo Haddad", "refund"),
            ("Hana Kowalski", "billing"),
            ("Omar Diaz", "shipping"),
            ("Lena Park", "defect"),
            ("Ravi Shah", "account"),
        ]
    )
]
# The adapter answers every ticket in JSON; the base rambles on three and gets one exactly right.
OUTPUTS = {
    "base": [
        "Sure! The customer is Aisha.",
        ticket("Mateo Haddad", "refund"),
        "I think it is billing.",
        ticket("Omar Diaz", "refund"),
        "Hello.",
        ticket("Ravi Shah", "account"),
    ],
    "run/adapter": [
        ticket("Aisha Nguyen", "account"),
        ticket("Mateo Haddad", "refund"),
        ticket("Hana Kowalski", "billing"),
        ticket("Omar Diaz", "shipping"),
        ticket("Lena Park", "defect"),
        "I'm sorry, but I can't help with that.",
    ],
}


def make_eval(
    workspace: Path,
    *,
    outputs: dict[str, list[str]] | None = None,
    schema: bool = True,
    examples: list[dict] | None = None,
) -> EvalDir:
    spec = EvalSpec(
        name="support",
        dataset=str(SUPPORT / "test.jsonl"),
        models=[
            ModelRef(key="base", label="SmolLM2 base", kind="base", path="bundled", base_model="bundled"),
            ModelRef(
                key="run/adapter",
                label="demo · final",
                kind="adapter",
                path="/x/adapter",
                base_model="bundled",
                run_id="run",
            ),
        ],
        schema=str(SUPPORT / "schema.json") if schema else None,
    )
    examples = examples or EXAMPLES
    ev = create_eval(workspace, spec, examples)
    outputs = OUTPUTS if outputs is None else outputs
    ev.append_predictions(
        {
            "model": m,
            "id": str(examples[i]["id"]),
            "output": text,
            "prompt_tokens": 20,
            "output_tokens": 30,
            "finish": "stop",
            "seconds": 0.1,
        }
        for m, texts in outputs.items()
        for i, text in enumerate(texts)
    )
    return ev
