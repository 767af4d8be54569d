"""The health of one answer: valid against the task's schema, a refusal, empty, cut at max tokens, its
categorical fields and languages.

The server judges every request as it records it (:func:`annotate`), so the request log carries the
health as columns and the monitor's figures are SQL aggregates. The same :func:`judge` reads the release
eval's answers for the baseline, so production and release are measured by one rule. The checks are the
eval's own (``schema_valid``, ``is_refusal``) and the data checks' language detector: one definition of
a refusal or of valid JSON across the workbench.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import ServeError, WorkbenchError

MIN_LANGUAGE_CHARS = 20
"""Shorter texts get no language: the stop-word detector needs words to count (as the data checks do)."""


@dataclass(frozen=True)
class Health:
    prompt_chars: int
    answer_chars: int | None
    valid: bool | None
    refusal: bool | None
    empty: bool | None
    truncated: bool | None
    fields: dict[str, str] | None
    lang: str | None
    prompt_lang: str | None


def categorical_fields(schema: dict[str, Any] | None) -> list[str]:
    """The schema's top-level properties with a fixed set of values: an ``enum`` of strings, or a boolean."""
    if not isinstance(schema, dict):
        return []
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        enum = prop.get("enum")
        if (isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum)) or prop.get("type") == "boolean":
            out.append(name)
    return out


_FIELDS_CACHE: dict[int, tuple[dict[str, Any], list[str]]] = {}


def _fields_of(schema: dict[str, Any]) -> list[str]:
    cached = _FIELDS_CACHE.get(id(schema))
    if cached is None or cached[0] is not schema:  # ids are reused after a schema is freed
        cached = _FIELDS_CACHE[id(schema)] = (schema, categorical_fields(schema))
    return cached[1]


def load_schema(path: str | Path | None) -> dict[str, Any] | None:
    """A task's schema.json; a file that is not a JSON Schema object is an error naming it."""
    if path is None:
        return None
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ServeError(f"{path}: cannot read the schema: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ServeError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ServeError(f"{path}: expected a JSON Schema object, found {type(data).__name__}")
    return data


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _language(text: str) -> str | None:
    from workbench.data.checks.lang import detect

    return detect(text) if len(text) >= MIN_LANGUAGE_CHARS else None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def judge(
    messages: list[dict[str, Any]],
    response: str | None,
    finish_reason: str | None,
    schema: dict[str, Any] | None,
) -> Health:
    """The health of an answer (``response`` None: there is none, an error) to ``messages``."""
    from workbench.eval.metrics import is_refusal, parse_json, schema_valid

    users = [_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    prompt_chars = sum(len(u) for u in users)
    prompt_lang = _language(users[-1]) if users else None
    if response is None:
        return Health(prompt_chars, None, None, None, None, None, None, None, prompt_lang)
    empty = not response.strip()
    parsed: Any = None
    try:
        parsed = parse_json(response)
    except ValueError:
        parsed = None
    valid: bool | None = None
    if schema is not None:
        try:
            valid = schema_valid(response, schema)[0]
        except WorkbenchError:  # a schema that is not one: no verdict rather than a wrong one
            valid = None
    fields: dict[str, str] | None = None
    if isinstance(parsed, dict) and schema is not None:
        fields = {}
        for name in _fields_of(schema):
            if name in parsed:
                value = parsed[name]
                fields[name] = value if isinstance(value, str) else json.dumps(value)
    words = " ".join(_strings(parsed)) if isinstance(parsed, (dict, list)) else response
    return Health(
        prompt_chars=prompt_chars,
        answer_chars=len(response),
        valid=valid,
        refusal=False if empty else is_refusal(response),
        empty=empty,
        truncated=finish_reason == "length",
        fields=fields,
        lang=_language(words),
        prompt_lang=prompt_lang,
    )


def annotate(entry: Any, schema: dict[str, Any] | None) -> None:
    """Set a :class:`~workbench.serve.log.LoggedRequest`'s health fields (the answer's only when it was answered)."""
    answered = entry.status == 200 and entry.response is not None
    health = judge(entry.messages or [], entry.response if answered else None, entry.finish_reason, schema)
    for name in Health.__dataclass_fields__:
        setattr(entry, name, getattr(health, name))


__all__ = ["Health", "annotate", "categorical_fields", "judge", "load_schema"]
