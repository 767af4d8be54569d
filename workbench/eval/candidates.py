"""What an eval can compare and what it asks: models from the workspace's runs, examples from a dataset.

:func:`list_candidates` offers the base model(s), each run's final adapter and each complete
checkpoint; :func:`resolve_models` turns what a user typed (``base``, ``RUN/adapter``,
``RUN/ckpt-24``, a path) into those refs. :func:`examples_from_dataset` freezes any dataset
shape into eval examples: the prompt turns and the reference answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from workbench.data.formats import Shape
from workbench.data.load import load_rows
from workbench.data.normalize import messages as as_messages
from workbench.data.normalize import normalize
from workbench.errors import DataError, RunError
from workbench.eval.store import EvalError, ModelRef
from workbench.models import BUNDLED_NAME, is_bundled
from workbench.train.rundir import RunDir
from workbench.train.runner import list_runs
from workbench.workspace import Workspace

# --- models -----------------------------------------------------------------------


def base_key(spec: str) -> str:
    """One name per base model, whatever spelling: 'bundled' for the bundled one, else the resolved path or hub id."""
    if is_bundled(spec):
        return "bundled"
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def _base_label(spec: str) -> str:
    return f"base · {BUNDLED_NAME}" if is_bundled(spec) else f"base · {Path(spec).name or spec}"


def _run_config(run: RunDir) -> dict[str, Any]:
    try:
        data = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_short(run_id: str, name: str, created: float | None) -> str:
    """'demo 11:40' from the run id's stamp (or its creation time)."""
    found = re.search(r"-(\d{8})-(\d{2})(\d{2})\d{2}(?:-\d+)?$", run_id)
    if found:
        return f"{name} {found.group(2)}:{found.group(3)}"
    return f"{name} {time.strftime('%H:%M', time.localtime(created))}" if created else name


def _loadable(path: Path) -> bool:
    """A PEFT adapter or a full model saved with save_pretrained."""
    return (path / "adapter_config.json").is_file() or (path / "config.json").is_file()


def list_candidates(workspace: str | Path, *, served: bool = True) -> list[ModelRef]:
    """The base model(s), each run's final adapter and complete checkpoints (newest run first), then
    each running server's models as endpoints (``serve:<server-id>/<model>``; ``served=False`` leaves them out)."""
    bases: dict[str, ModelRef] = {}
    trained: list[ModelRef] = []
    for summary in list_runs(workspace):
        spec, refs = run_models(RunDir(summary.path), summary.name, summary.created)
        key = base_key(spec)
        if key not in bases:
            remote = any(r.trust_remote_code for r in refs)
            bases[key] = ModelRef(
                key="base" if not bases else _unique_base_key(spec, bases),
                label=_base_label(spec),
                kind="base",
                path=spec,
                base_model=spec,
                trust_remote_code=remote,
            )
        trained += refs
    if not bases:
        bases["bundled"] = ModelRef(
            key="base", label=_base_label("bundled"), kind="base", path="bundled", base_model="bundled"
        )
    if served:
        from workbench.eval.remote import served_candidates

        trained += served_candidates(workspace)
    return [*bases.values(), *trained]


def run_models(run: RunDir, name: str | None = None, created: float | None = None) -> tuple[str, list[ModelRef]]:
    """A run's base model spec, and its final adapter and complete checkpoints (newest step first)."""
    config = _run_config(run)
    raw = run.read_status_raw()
    spec = str(config.get("model") or "bundled")
    remote = bool(config.get("trust_remote_code"))
    short = _run_short(run.id, name or raw.get("name") or config.get("name") or run.id, created or raw.get("created"))
    refs = []
    if run.adapter_path.is_dir() and _loadable(run.adapter_path):
        best = _best_step(run)
        refs.append(
            ModelRef(
                key=f"{run.id}/adapter",
                label=f"{short} · final" + (f" (best, step {best})" if best else ""),
                kind="adapter",
                path=str(run.adapter_path.resolve()),
                base_model=spec,
                run_id=run.id,
                step=best,
                trust_remote_code=remote,
            )
        )
    for ckpt in reversed(run.checkpoints(complete=True)):
        if _loadable(ckpt):
            step = int(ckpt.name.split("-")[-1])
            refs.append(
                ModelRef(
                    key=f"{run.id}/ckpt-{step}",
                    label=f"{short} · step {step}",
                    kind="checkpoint",
                    path=str(ckpt.resolve()),
                    base_model=spec,
                    run_id=run.id,
                    step=step,
                    trust_remote_code=remote,
                )
            )
    return spec, refs


def _unique_base_key(spec: str, bases: Mapping[str, ModelRef]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(spec).name or spec).strip("-") or "model"
    key, n = f"base:{stem}", 1
    taken = {b.key for b in bases.values()}
    while key in taken:
        n += 1
        key = f"base:{stem}-{n}"
    return key


def _best_step(run: RunDir) -> int | None:
    """The step the final adapter was taken from when the trainer loaded the best checkpoint."""
    raw = run.read_status_raw()
    best = raw.get("best_checkpoint")
    config = _run_config(run)
    if not best or not (config.get("eval") or {}).get("load_best", True):
        return None
    tail = Path(str(best)).name.split("-")[-1]
    return int(tail) if tail.isdigit() else None


def default_models(candidates: Sequence[ModelRef]) -> list[ModelRef]:
    """What to compare when nobody says: the first base and the newest run's final adapter."""
    base = [c for c in candidates if c.kind == "base"][:1]
    adapter = [c for c in candidates if c.kind == "adapter"][:1]
    return base + adapter


def resolve_models(workspace: str | Path, names: Sequence[str], *, api_key_env: str | None = None) -> list[ModelRef]:
    """Model refs from what a user typed, each one of:

    ``base`` (the first base), a candidate key (``RUN/adapter``, ``RUN/ckpt-24``,
    ``serve:<server-id>/<model>``), the same with a unique run-id prefix or ``last`` for the run,
    ``RUN/final`` or ``RUN/checkpoint-24``, the path of a model directory, a run's adapter or a
    checkpoint, or an endpoint: ``http(s)://HOST:PORT/v1#MODEL``, ``endpoint:URL#MODEL``,
    ``litellm:PROVIDER/MODEL``. ``api_key_env`` names the environment variable holding the key
    of the endpoints named here (never the key itself).
    """
    from workbench.eval.remote import check_env_name, parse_endpoint

    candidates = list_candidates(workspace)
    by_key = {c.key: c for c in candidates}
    out: list[ModelRef] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        ref = by_key.get(name) or _served(parse_endpoint(name), candidates)
        if ref is not None and ref.is_endpoint and api_key_env:
            ref = ref.model_copy(update={"api_key_env": check_env_name(api_key_env)})
        ref = ref or parse_endpoint(name, api_key_env=api_key_env)
        ref = ref or _by_run_prefix(workspace, name, candidates) or _by_path(workspace, name, candidates)
        if ref is None:
            keys = ", ".join(c.key for c in candidates[:8]) + (" …" if len(candidates) > 8 else "")
            raise EvalError(
                f"no model {name!r}: expected base, RUN/adapter, RUN/ckpt-N, a path or an endpoint "
                f"(http://HOST:PORT/v1#MODEL, litellm:PROVIDER/MODEL) "
                f"(candidates: {keys}; see `workbench eval candidates`)"
            )
        if ref.key in {r.key for r in out}:
            raise EvalError(f"model {name!r} is listed twice")
        out.append(ref)
    return out


def _served(ref: ModelRef | None, candidates: Sequence[ModelRef]) -> ModelRef | None:
    """The running server's candidate for an endpoint typed as a URL, when it is one of ours."""
    if ref is None or not ref.path:
        return None
    return next(
        (c for c in candidates if c.is_endpoint and (c.path, c.endpoint_model) == (ref.path, ref.endpoint_model)),
        None,
    )


def _by_run_prefix(workspace: str | Path, name: str, candidates: Sequence[ModelRef]) -> ModelRef | None:
    if "/" not in name:
        return None
    run_ref, _, what = name.rpartition("/")
    what = {"final": "adapter"}.get(what, what)
    found = re.fullmatch(r"(?:ckpt|checkpoint|step)?-?(\d+)", what)
    if found:
        what = f"ckpt-{int(found.group(1))}"
    from workbench.train.runner import find_run

    try:
        run = find_run(workspace, run_ref)
    except RunError:  # not a run: maybe a path
        return None
    return next((c for c in candidates if c.key == f"{run.id}/{what}"), None)


def _by_path(workspace: str | Path, name: str, candidates: Sequence[ModelRef]) -> ModelRef | None:
    path = Path(name).expanduser()
    if not path.is_dir():
        return None
    resolved = str(path.resolve())
    known = next((c for c in candidates if c.kind != "base" and c.path == resolved), None)
    if known:
        return known
    run = RunDir(path.resolve().parent)
    if run.config_path.is_file():  # a run's adapter or checkpoint from another workspace
        found = next((r for r in run_models(run)[1] if r.path == resolved), None)
        if found:
            return found
    if (path / "adapter_config.json").is_file():
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base = config.get("base_model_name_or_path") or "bundled"
        return ModelRef(key=path.name, label=f"adapter · {path.name}", kind="adapter", path=resolved, base_model=base)
    if (path / "config.json").is_file():
        return ModelRef(
            key=f"base:{path.name}", label=f"base · {path.name}", kind="base", path=resolved, base_model=resolved
        )
    return None


# --- examples ---------------------------------------------------------------------


def examples_from_dataset(
    path: str | Path,
    *,
    selection: Sequence[int] | None = None,
    limit: int | None = None,
    skip_bad: bool = False,
) -> list[dict[str, Any]]:
    """A dataset's rows as eval examples: ``{id, index, messages, reference}``.

    ``messages`` are the prompt turns, up to and excluding the final assistant turn, which
    becomes ``reference`` (for preference data, the chosen answer; None where there is no
    answer). ``index`` is the row's 0-based position in the file and ``id`` the same as a
    string, so ids stay put when other rows are chosen. ``selection`` keeps only those row
    indexes; ``limit`` then keeps the first N.
    """
    loaded = load_rows(path, skip_bad=skip_bad)
    rows, indexes = loaded.rows, loaded.row_indexes
    if selection is not None:
        wanted = set(selection)
        missing = sorted(wanted - set(indexes))
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
            raise DataError(f"{path}: the selection names rows that are not in the file (or are bad rows): {shown}")
        keep = [i for i, index in enumerate(indexes) if index in wanted]
        rows, indexes = [rows[i] for i in keep], [indexes[i] for i in keep]
    if limit is not None:
        rows, indexes = rows[:limit], indexes[:limit]
    turns = _prompts_and_references(rows, loaded.shape, Path(path))
    return [
        {"id": str(index), "index": index, "messages": prompt, "reference": reference}
        for index, (prompt, reference) in zip(indexes, turns)
    ]


def _prompts_and_references(
    rows: list[dict[str, Any]], shape: Shape, path: Path
) -> list[tuple[list[dict[str, Any]], str | None]]:
    if shape is Shape.PROMPT_ONLY:
        return [(as_messages(r["prompt"], "user"), None) for r in rows]
    if shape is Shape.UNPAIRED_PREFERENCE:  # a completion labelled false is no reference
        return [
            (as_messages(r["prompt"], "user"), _text(as_messages(r["completion"], "assistant")) if r["label"] else None)
            for r in rows
        ]
    if shape in (Shape.PREFERENCE, Shape.IMPLICIT_PREFERENCE):
        return [(r["prompt"], _text(r["chosen"])) for r in normalize(rows, shape, "dpo")]
    out: list[tuple[list[dict[str, Any]], str | None]] = []
    for row in normalize(rows, shape, "sft"):
        if "text" in row:
            raise DataError(
                f"{path}: plain-text rows have no prompt and answer turns to generate from; "
                "use a conversational, prompt-completion, alpaca or ShareGPT dataset"
            )
        if "prompt" in row:
            out.append((row["prompt"], _text(row["completion"])))
        else:
            out.append(_split_last_answer(row["messages"]))
    return out


def _split_last_answer(turns: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    last = max((i for i, m in enumerate(turns) if m.get("role") == "assistant"), default=None)
    if last is None or last == 0:
        return turns, None
    return turns[:last], _text([turns[last]])


def _text(turns: list[dict[str, Any]]) -> str:
    parts = [m.get("content") for m in turns if m.get("role", "assistant") == "assistant"] or [
        m.get("content") for m in turns
    ]
    return "\n".join(p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in parts if p is not None)


def examples_from_suite(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """A regression / red-team suite's cases as eval examples, and its bad lines as messages."""
    from workbench.eval.suites import load_suite

    suite = load_suite(path)
    examples = [{**e, "index": i} for i, e in enumerate(suite.examples())]
    return examples, [str(p) for p in suite.problems]


def config_test_file(config_path: str | Path) -> Path | None:
    """The test split a run config names (``data.test``), resolved against the config's directory."""
    config_path = Path(config_path)
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    test = ((data or {}).get("data") or {}).get("test") if isinstance(data, dict) else None
    if not test:
        return None
    path = Path(str(test)).expanduser()
    path = path if path.is_absolute() else config_path.resolve().parent / path
    return path.resolve() if path.exists() else None


def default_dataset(workspace: str | Path) -> Path | None:
    """The test split to evaluate on: the newest run's, else the first workspace config's that has one."""
    ws = Workspace(workspace)
    configs = [RunDir(s.path).config_path for s in list_runs(ws.path)] + ws.configs()
    for config in configs:
        found = config_test_file(config)
        if found is not None:
            return found
    return None


__all__ = [
    "base_key",
    "config_test_file",
    "default_dataset",
    "default_models",
    "examples_from_dataset",
    "examples_from_suite",
    "list_candidates",
    "resolve_models",
    "run_models",
]
