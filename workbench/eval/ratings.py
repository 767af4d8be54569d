"""Human ratings of an eval: 1-5 scores per (example, model), A/B/tie choices per pair, notes.

Ratings live in ``ratings.jsonl`` inside the eval directory, one line per
change, fsynced before the call returns, so a rating the grid shows survives a
kill the next moment. Reading replays the lines: the last word on a key wins,
and a ``null`` score or choice clears it. A torn last line (a crash mid-write)
is skipped. Blind mode's column order is a pure function of the example and a
seed kept with the eval, so it is stable across sessions and never reveals the
models' order in the spec.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

SCORES = (1, 2, 3, 4, 5)
CHOICES = ("a", "b", "tie")


@dataclass
class Rating:
    """What a person said of one example: a score per model, a choice per pair, a note."""

    id: str
    scores: dict[str, int] = field(default_factory=dict)  # model key -> 1..5
    items: dict[str, dict[str, int]] = field(default_factory=dict)  # model key -> rubric item -> 1..5
    choices: dict[tuple[str, str], str] = field(default_factory=dict)  # (model_a, model_b) -> a | b | tie
    note: str = ""

    def records(self) -> list[dict[str, Any]]:
        """The rating in the shape workbench.eval.agreement reads: one record per model score and per choice."""
        models = list(dict.fromkeys([*self.scores, *(m for m, graded in self.items.items() if graded)]))
        out: list[dict[str, Any]] = [
            {
                "id": self.id,
                "model": m,
                "score": self.scores.get(m),
                "items": dict(self.items.get(m, {})),
                "choice": None,
                "pair": None,
                "note": self.note,
            }
            for m in models
        ]
        out += [
            {
                "id": self.id,
                "model": None,
                "score": None,
                "items": {},
                "choice": c,
                "pair": list(pair),
                "note": self.note,
            }
            for pair, c in self.choices.items()
        ]
        return out


class Ratings:
    """The ratings of one eval, replayed from its journal; every change is appended and fsynced at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.by_id: dict[str, Rating] = {}
        self.skipped = 0  # unreadable lines (a torn last line after a crash)
        self._replay()

    def _replay(self) -> None:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                record = json.loads(line)
                self._apply(record)
            except (ValueError, TypeError, KeyError):
                self.skipped += 1

    def _apply(self, record: dict[str, Any]) -> None:
        rating = self.by_id.setdefault(str(record["id"]), Rating(str(record["id"])))
        kind = record.get("kind")
        if kind == "score":
            if record.get("score") is None:
                rating.scores.pop(record["model"], None)
            else:
                rating.scores[record["model"]] = int(record["score"])
        elif kind == "choice":
            pair = (record["pair"][0], record["pair"][1])
            if record.get("choice") is None:
                rating.choices.pop(pair, None)
            else:
                rating.choices[pair] = str(record["choice"])
        elif kind == "item":
            graded = rating.items.setdefault(record["model"], {})
            if record.get("score") is None:
                graded.pop(str(record["item"]), None)
            else:
                graded[str(record["item"])] = int(record["score"])
        elif kind == "note":
            rating.note = str(record.get("note") or "")
        else:
            raise KeyError(kind)

    def _append(self, record: dict[str, Any]) -> None:
        record = {**record, "time": round(time.time(), 3)}
        self._apply(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fh.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())

    # -- changes ----------------------------------------------------------

    def score(self, example_id: str, model: str, score: int | None) -> None:
        """Rate one model's answer 1-5; None clears the rating."""
        if score is not None and score not in SCORES:
            raise WorkbenchError(f"a rating is 1 to 5, not {score!r}")
        self._append({"kind": "score", "id": example_id, "model": model, "score": score})

    def score_item(self, example_id: str, model: str, item: str, score: int | None) -> None:
        """Rate one rubric item (correctness, format...) of one answer 1-5, so the judge can be checked item by item."""
        if score is not None and score not in SCORES:
            raise WorkbenchError(f"a rating is 1 to 5, not {score!r}")
        self._append({"kind": "item", "id": example_id, "model": model, "item": item, "score": score})

    def item_of(self, example_id: str, model: str, item: str) -> int | None:
        rating = self.by_id.get(example_id)
        return rating.items.get(model, {}).get(item) if rating else None

    def choose(self, example_id: str, model_a: str, model_b: str, choice: str | None) -> None:
        """Say which of two models answered better: 'a', 'b' or 'tie' (None clears)."""
        if choice is not None and choice not in CHOICES:
            raise WorkbenchError(f"a choice is one of {', '.join(CHOICES)}, not {choice!r}")
        self._append({"kind": "choice", "id": example_id, "pair": [model_a, model_b], "choice": choice})

    def note(self, example_id: str, text: str) -> None:
        self._append({"kind": "note", "id": example_id, "note": text.strip()})

    # -- reading ----------------------------------------------------------

    def get(self, example_id: str) -> Rating | None:
        return self.by_id.get(example_id)

    def score_of(self, example_id: str, model: str) -> int | None:
        rating = self.by_id.get(example_id)
        return rating.scores.get(model) if rating else None

    def choice_of(self, example_id: str, model_a: str, model_b: str) -> str | None:
        """The choice for this pair, whichever order it was rated in."""
        rating = self.by_id.get(example_id)
        if rating is None:
            return None
        if (model_a, model_b) in rating.choices:
            return rating.choices[(model_a, model_b)]
        flipped = rating.choices.get((model_b, model_a))
        return {"a": "b", "b": "a"}.get(flipped, flipped) if flipped else None

    def records(self) -> list[dict[str, Any]]:
        return [r for rating in self.by_id.values() for r in rating.records()]

    def rated_count(self, models: Iterable[str] | None = None) -> int:
        """Examples with at least one score (of one of models) or choice."""
        wanted = set(models) if models is not None else None
        return sum(
            1
            for r in self.by_id.values()
            if r.choices or any(wanted is None or m in wanted for m in [*r.scores, *r.items])
        )


def blind_order(models: Sequence[str], example_id: str, seed: str) -> list[str]:
    """The models in a shuffled order that depends only on (seed, example): stable, and different per example."""
    digest = hashlib.sha256(f"{seed}\0{example_id}".encode()).digest()
    order = list(models)
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def blind_label(position: int) -> str:
    """What blind mode calls the model in a column: 'Model A', 'Model B'..."""
    return f"Model {chr(ord('A') + position)}" if position < 26 else f"Model {position + 1}"
