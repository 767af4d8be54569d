"""Where a shipped model came from: ``workbench.json`` beside its weights, and the facts it is made of.

A merged model directory carries ``workbench.json``: the run and step it was merged from, the base,
the dtype, the run's config, the data it was trained on (each file with its row count and SHA-256),
the evals that included it and the training data's system prompt. The Models pane, the model card,
the GGUF exporter (its Modelfile's SYSTEM) and the chat playground all read it through
:func:`read_provenance`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import DataError, WorkbenchError

PROVENANCE_NAME = "workbench.json"
DATA_SPLITS = ("train", "val", "test")
CHUNK = 1 << 20


def read_provenance(model_dir: str | Path) -> dict[str, Any]:
    """``workbench.json`` of a model directory; ``{}`` when it has none or it is unreadable."""
    path = Path(model_dir) / PROVENANCE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_provenance(model_dir: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``workbench.json`` into a model directory (the merge writes it into its temporary directory)."""
    path = Path(model_dir) / PROVENANCE_NAME
    path.write_text(json.dumps(dict(data), indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path


def dir_size(path: str | Path) -> int:
    """Bytes of every regular file under ``path`` (a file: its own size; missing: 0). Links are not followed."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(top, name)):
                total += st.st_size
    return total


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, or of a directory's files (relative name and bytes, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's ``config.yaml`` as a plain dict (``{}`` when absent or unreadable)."""
    try:
        data = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _data_paths(run_dir: Path, config: Mapping[str, Any]) -> dict[str, Path]:
    """The run's data files by split, resolved against the run directory (the runner writes them absolute)."""
    data = config.get("data") or {}
    out: dict[str, Path] = {}
    if not isinstance(data, Mapping):
        return out
    for split in DATA_SPLITS:
        value = data.get(split)
        if value:
            path = Path(str(value)).expanduser()
            out[split] = path if path.is_absolute() else (run_dir / path)
    return out


def data_files(run_dir: str | Path) -> list[dict[str, Any]]:
    """Each data file the run named: ``{"split", "path", "rows", "sha256"}``.

    ``rows`` counts the rows that load (bad rows skipped); a file that is gone since the run
    is listed with ``rows`` and ``sha256`` None and ``missing`` True, so a card says so
    rather than leaving it out.
    """
    from workbench.data.load import load_rows

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    shape = (config.get("data") or {}).get("shape") if isinstance(config.get("data"), Mapping) else None
    out: list[dict[str, Any]] = []
    for split, path in _data_paths(run_dir, config).items():
        entry: dict[str, Any] = {"split": split, "path": str(path), "rows": None, "sha256": None}
        if not path.exists():
            entry["missing"] = True
            out.append(entry)
            continue
        entry["sha256"] = sha256_of(path)
        try:
            entry["rows"] = load_rows(path, shape=shape, split=split, skip_bad=True).row_count
        except (WorkbenchError, OSError, ValueError) as exc:
            entry["error"] = str(exc).splitlines()[0][:200]
        out.append(entry)
    return out


def _system_messages(rows: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for row in rows:
        turns = row.get("messages") if "messages" in row else row.get("prompt")
        if isinstance(turns, list) and turns and isinstance(turns[0], Mapping) and turns[0].get("role") == "system":
            content = turns[0].get("content")
            if isinstance(content, str) and content.strip():
                yield content


def system_prompt_of_run(run_dir: str | Path) -> str | None:
    """The system message most common in the run's training data (after the config's ``data.system_prompt``
    is applied, as the trainer saw it); None when the data has none or cannot be read."""
    from workbench.data.load import load_rows
    from workbench.data.normalize import normalize

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    train = _data_paths(run_dir, config).get("train")
    if train is None or not train.exists():
        return None
    data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    method = str(config.get("method") or "sft")
    try:
        loaded = load_rows(train, shape=data.get("shape"), skip_bad=True)
        rows = normalize(loaded.rows, loaded.shape, method=method, system_prompt=data.get("system_prompt"))
    except (DataError, OSError, ValueError):
        return None
    counts = Counter(_system_messages(rows))
    return counts.most_common(1)[0][0] if counts else None


def schema_of_ref(workspace: str | Path, ref: Any) -> Path | None:
    """The task's JSON Schema of a served model: the ``schema.json`` beside its training data (the run's
    config, or a merged model's ``workbench.json``), as the Eval pane finds it beside a test split."""
    from workbench.eval.plan import schema_beside

    candidates: list[Path] = []
    if getattr(ref, "run_id", None):
        from workbench.train.runner import find_run

        try:
            run = find_run(workspace, ref.run_id)
        except WorkbenchError:
            return None
        paths = _data_paths(run.path, run_config(run.path))
        candidates = [paths[s] for s in DATA_SPLITS if s in paths]
    else:
        path = Path(str(getattr(ref, "path", "") or "")).expanduser()
        if path.is_dir():
            data = read_provenance(path).get("data") or []
            order = {s: i for i, s in enumerate(DATA_SPLITS)}
            entries = [d for d in data if isinstance(d, dict) and d.get("path")]
            entries.sort(key=lambda d: order.get(str(d.get("split")), len(order)))
            candidates = [Path(str(d["path"])) for d in entries]
    for candidate in candidates:
        found = schema_beside(candidate)
        if found is not None:
            return found
    return None


__all__ = [
    "PROVENANCE_NAME",
    "data_files",
    "dir_size",
    "read_provenance",
    "run_config",
    "schema_of_ref",
    "sha256_of",
    "system_prompt_of_run",
    "write_provenance",
]


def system_prompt_of_ref(workspace: str | Path, ref: Any) -> str | None:
    """The system prompt a model was trained with: its run's most common one, or a merged model's (workbench.json).

    ``ref`` is an eval :class:`~workbench.eval.store.ModelRef`; None for a base model or when nothing is known.
    """
    from workbench.errors import WorkbenchError

    if getattr(ref, "run_id", None):
        from workbench.train.runner import find_run

        try:
            run = find_run(workspace, ref.run_id)
        except WorkbenchError:
            return None
        return system_prompt_of_run(run.path)
    path = Path(str(ref.path)).expanduser()
    if path.is_dir():
        prompt = read_provenance(path).get("system_prompt")
        return prompt if isinstance(prompt, str) and prompt.strip() else None
    return None
