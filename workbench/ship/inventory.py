"""Every model of a workspace in one list: bases, adapters, checkpoints, merged models, GGUF files, servers.

:func:`list_models` is what the Models pane shows and refreshes every few seconds, so it reads only
what changed: directory sizes, GGUF headers and eval figures are cached by modification stamps.
Each entry says where it came from (run, step, config), its size on disk, its best eval figure (the
main metric with its 95% interval, from :class:`workbench.eval.results.Results`), the suites' gate
verdict, a server's state, and the actions that apply to it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.eval.candidates import base_key, list_candidates
from workbench.eval.metrics import METRICS
from workbench.eval.store import EvalDir, EvalError, ModelRef
from workbench.models import BUNDLED_NAME, cache_dir, is_bundled
from workbench.ship.provenance import dir_size, read_provenance
from workbench.train.rundir import LIVE_STATES, RunDir
from workbench.train.runner import list_runs
from workbench.workspace import Workspace

KINDS = ("base", "adapter", "checkpoint", "merged", "gguf", "server")
GGUF_QTYPES = ("f16", "bf16", "q8_0", "q4_0", "f32", "q4_1", "q5_0", "q5_1", "q4_k_m", "q5_k_m", "q6_k")
"""Types recognized in a GGUF file name (``NAME.q8_0.gguf``); others are read from the file's header."""
PREFERRED_METRIC = "schema_valid"
"""The main figure when an eval checks a schema; otherwise the newest eval's main metric."""


@dataclass(frozen=True)
class EvalFigure:
    """One model's main metric in one eval, with its 95% bootstrap interval."""

    eval_id: str
    metric: str
    mean: float | None
    lo: float | None
    hi: float | None
    n: int
    created: float

    @property
    def rate(self) -> bool:
        """A share in [0, 1] (shown as a percentage); 'case' is the share of cases passed."""
        return self.metric == "case" or (self.metric in METRICS and METRICS[self.metric].kind == "rate")

    @property
    def higher_is_better(self) -> bool:
        meta = METRICS.get(self.metric)
        return meta is None or meta.higher_is_better is not False

    def describe(self) -> str:
        """``92% [80%, 98%]`` for a rate, ``0.62 [0.55, 0.69]`` otherwise; ``–`` without a value."""
        if self.mean is None or self.lo is None or self.hi is None:
            return "–"
        if self.rate:
            return f"{self.mean:.0%} [{self.lo:.0%}, {self.hi:.0%}]"
        return f"{self.mean:.2f} [{self.lo:.2f}, {self.hi:.2f}]"


@dataclass(frozen=True)
class GateVerdict:
    """The regression / red-team gate of one suite eval, for one model."""

    eval_id: str
    ok: bool
    passed: int
    total: int
    summary: str


@dataclass
class ModelEntry:
    """One model of the workspace, as the Models pane lists it."""

    kind: str
    """One of :data:`KINDS`."""
    key: str
    """What resolve_models and the CLIs accept (a server: its id)."""
    label: str
    path: str
    """The directory or file; a base's spec when it is not a directory (``bundled``, a hub id)."""
    run_id: str | None = None
    step: int | None = None
    config: str | None = None
    """The name in the run's config."""
    base: str | None = None
    """The base model spec an adapter applies to (a merged model's base)."""
    size_bytes: int | None = None
    """On disk; None when unknown (a hub base not in the cache, the bundled model not converted yet)."""
    created: float | None = None
    source: str = ""
    """Where it came from: run and step, the merged source, the merged dir of a GGUF, a server's models."""
    figure: EvalFigure | None = None
    """The best figure on the main metric over the evals that included it."""
    figures: list[EvalFigure] = field(default_factory=list)
    """Every eval that included it, newest first."""
    gate: GateVerdict | None = None
    """The newest suite eval's gate verdict."""
    state: str | None = None
    """A server's state: starting, running, stopping, stopped, failed, lost."""
    url: str | None = None
    requests: int | None = None
    models: list[str] = field(default_factory=list)
    """A server's model names."""
    qtype: str | None = None
    """A GGUF file's type (q8_0, f16...)."""
    modelfile: str | None = None
    """The Ollama Modelfile beside a GGUF file."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """A merged model's workbench.json."""
    actions: list[str] = field(default_factory=list)
    """What can be done with it: merge, gguf, chat, serve, stop."""


def actions_for(kind: str, state: str | None = None) -> list[str]:
    """merge for an adapter or checkpoint, gguf for a merged model, chat and serve for any model, monitor for any
    server (a stopped one's log still tells what it served), stop for a live one."""
    if kind == "server":
        return (["stop"] if state in LIVE_STATES else []) + ["monitor"]
    if kind == "gguf":
        return []
    return (
        (["merge"] if kind in ("adapter", "checkpoint") else [])
        + (["gguf"] if kind == "merged" else [])
        + [
            "chat",
            "serve",
        ]
    )


# --- caches by modification stamp -------------------------------------------------------

_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[Any, Any]] = {}


def _stamp(*paths: Path) -> tuple[tuple[int, int], ...]:
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((0, 0))
    return tuple(out)


def _cached(kind: str, path: Path, stamp: Any, compute: Callable[[], Any]) -> Any:
    """compute() once per (kind, path) until its stamp changes; safe from several threads."""
    key = (kind, str(path))
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = compute()
    with _lock:
        _cache[key] = (stamp, value)
    return value


def clear_cache() -> None:
    """Forget every cached size, GGUF header and eval figure (tests and benchmarks)."""
    with _lock:
        _cache.clear()


def _dir_size(path: Path) -> int:
    """A directory's size, re-walked when the directory or one of its subdirectories changes."""
    subdirs = [path]
    try:
        subdirs += [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return 0
    return int(_cached("size", path, _stamp(*subdirs), lambda: dir_size(path)))


def _base_size(spec: str) -> int | None:
    """The safetensors of the base's directory, never converting or downloading anything."""
    # For the bundled model, where workbench.models.bundled_model_dir() keeps its converted copy.
    path = cache_dir() / "models" / BUNDLED_NAME.lower() if is_bundled(spec) else Path(spec).expanduser()
    if not path.is_dir():
        return None  # a hub id: its snapshot is not looked up (that may reach the network)

    def weights() -> int:
        return sum(p.stat().st_size for p in path.glob("*.safetensors"))

    return int(_cached("base", path, _stamp(path), weights))


# --- GGUF files --------------------------------------------------------------------------


def gguf_qtype(path: Path) -> str | None:
    """The type in the name (``NAME.q8_0.gguf``), else the header's ``general.file_type``."""
    parts = path.name.lower().split(".")
    if len(parts) >= 3 and parts[-2] in GGUF_QTYPES:
        return parts[-2]
    return _cached("gguf", path, _stamp(path), lambda: _header_qtype(path))


def _header_qtype(path: Path) -> str | None:
    try:
        import gguf

        reader = gguf.GGUFReader(path)
        found = reader.get_field("general.file_type")
        if found is None:
            return None
        value = int(found.parts[found.data[0]][0])
        name = gguf.LlamaFileType(value).name  # MOSTLY_Q8_0, ALL_F32...
        return name.split("_", 1)[1].lower()
    except Exception:  # not a GGUF, or a truncated one: the entry stays, without a type
        return None


def _gguf_entry(ws: Workspace, path: Path, merged: dict[str, ModelEntry]) -> ModelEntry:
    qtype = gguf_qtype(path)
    stem = path.name[: -len(".gguf")]
    if qtype and stem.lower().endswith("." + qtype):
        stem = stem[: -len(qtype) - 1]
    modelfile = path.with_suffix(".Modelfile")
    source_dir = path.parent / stem
    source = merged.get(str(source_dir))
    st = path.stat()
    return ModelEntry(
        kind="gguf",
        key=str(path),
        label=path.name,
        path=str(path),
        run_id=source.run_id if source else None,
        step=source.step if source else None,
        config=source.config if source else None,
        base=source.base if source else None,
        size_bytes=st.st_size,
        created=st.st_mtime,
        source=_relative(ws, source_dir) if source_dir.is_dir() else "",
        qtype=qtype,
        modelfile=str(modelfile) if modelfile.is_file() else None,
        actions=actions_for("gguf"),
    )


# --- eval figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class _EvalModel:
    ref: ModelRef
    figure: EvalFigure
    gate: GateVerdict | None


def _eval_models(ev: EvalDir) -> list[_EvalModel]:
    """Per model of one eval with answers: its main figure and, for a suite, its gate verdict."""
    from workbench.eval.results import Results
    from workbench.eval.suites import gate

    results = Results(ev)
    created = float(results.spec.created)
    metric = results.primary
    out = []
    for summary in results.summaries([metric]):
        if summary.done == 0:
            continue
        s = summary.metrics.get(metric)
        figure = EvalFigure(
            ev.id,
            metric,
            s.mean if s else None,
            s.lo if s else None,
            s.hi if s else None,
            s.n if s else 0,
            created,
        )
        key = summary.model.key
        cases = [results.cases[(key, row.id)] for row in results.rows if (key, row.id) in results.cases]
        verdict = None
        if cases:
            ok, text = gate(cases)
            verdict = GateVerdict(ev.id, ok, sum(c.passed for c in cases), len(cases), text)
        out.append(_EvalModel(summary.model, figure, verdict))
    return out


def _readable_eval_models(ev: EvalDir) -> list[_EvalModel]:
    try:
        return _eval_models(ev)
    except (EvalError, OSError, ValueError):  # half-written or broken: no figures (cached until it changes)
        return []


def _evals(ws: Workspace) -> list[_EvalModel]:
    """Every model of every eval, newest eval first; an eval that cannot be read is left out."""
    found: list[_EvalModel] = []
    for path in ws.evals():
        ev = EvalDir(path)
        stamp = _stamp(path, ev.predictions_path, path / "ratings.jsonl", path / "judge.jsonl", ev.spec_path)
        found += _cached("eval", path, stamp, functools.partial(_readable_eval_models, ev))
    return sorted(found, key=lambda m: m.figure.created, reverse=True)


def _includes(entry: ModelEntry, ref: ModelRef) -> bool:
    """Whether an eval's model is this entry: the same directory, run key, base, or server (its endpoints)."""
    if entry.kind == "server" or ref.kind == "endpoint":
        return entry.kind == "server" and ref.kind == "endpoint" and ref.key.startswith(f"serve:{entry.key}/")
    if entry.kind == "base" or ref.kind == "base":
        if entry.kind == "base" and ref.kind == "base":
            return base_key(entry.path) == base_key(ref.path)
        return entry.kind == "merged" and _same_path(entry.path, ref.path)
    return ref.key == entry.key or _same_path(entry.path, ref.path)


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


def _attach_figures(entries: Iterable[ModelEntry], evals: list[_EvalModel]) -> None:
    for entry in entries:
        mine = [m for m in evals if _includes(entry, m.ref)]
        entry.figures = [m.figure for m in mine]
        entry.figure = best_figure(entry.figures)
        entry.gate = next((m.gate for m in mine if m.gate is not None), None)


def best_figure(figures: list[EvalFigure]) -> EvalFigure | None:
    """The best value on the main metric: schema validity when an eval checked it, else the newest eval's metric."""
    valued = [f for f in figures if f.mean is not None]
    if not valued:
        return None
    metric = PREFERRED_METRIC if any(f.metric == PREFERRED_METRIC for f in valued) else valued[0].metric
    same = [f for f in valued if f.metric == metric]
    sign = 1.0 if same[0].higher_is_better else -1.0
    return max(same, key=lambda f: (sign * (f.mean or 0.0), f.created))


# --- servers -----------------------------------------------------------------------------


def _servers(ws: Workspace) -> list[ModelEntry]:
    try:
        from workbench.serve.servedir import list_servers
    except ImportError:  # the serve package without its servers yet: read their status files
        return [_server_from_status(ws, p) for p in ws.servers()]
    out = []
    for s in list_servers(ws.path):
        out.append(
            ModelEntry(
                kind="server",
                key=s.id,
                label=s.id,
                path=str(s.path),
                size_bytes=None,
                created=s.started,
                source=", ".join(s.models),
                state=s.state,
                url=s.url,
                requests=s.requests,
                models=list(s.models),
                actions=actions_for("server", s.state),
            )
        )
    return out


def _server_from_status(ws: Workspace, path: Path) -> ModelEntry:
    status = RunDir(path).status()  # the same status.json, lock and heartbeat as a run: lost when gone
    raw = status.raw
    models = [str(m) for m in raw.get("models") or []]
    return ModelEntry(
        kind="server",
        key=path.name,
        label=path.name,
        path=str(path),
        created=raw.get("created"),
        source=", ".join(models),
        state=status.state,
        url=raw.get("url"),
        requests=raw.get("requests"),
        models=models,
        actions=actions_for("server", status.state),
    )


# --- the list ----------------------------------------------------------------------------


def _relative(ws: Workspace, path: Path) -> str:
    try:
        return str(path.relative_to(ws.path))
    except ValueError:
        return str(path)


def _from_ref(ref: ModelRef, configs: dict[str, str | None], created: dict[str, float]) -> ModelEntry:
    if ref.kind == "base":
        return ModelEntry(
            kind="base",
            key=ref.key,
            label=ref.label,
            path=ref.path,
            base=ref.base_model,
            size_bytes=_base_size(ref.path),
            source="bundled with the workbench" if is_bundled(ref.path) else ref.path,
            actions=actions_for("base"),
        )
    run_id = ref.run_id or ""
    if ref.kind == "adapter":
        source = f"{run_id} final" + (f" (best, step {ref.step})" if ref.step else "")
    else:
        source = f"{run_id} step {ref.step}"
    path = Path(ref.path)
    return ModelEntry(
        kind=ref.kind,
        key=ref.key,
        label=ref.label,
        path=ref.path,
        run_id=ref.run_id,
        step=ref.step,
        config=configs.get(run_id),
        base=ref.base_model,
        size_bytes=_dir_size(path),
        created=_mtime(path) or created.get(run_id),
        source=source,
        actions=actions_for(ref.kind),
    )


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _merged_entry(ws: Workspace, path: Path) -> ModelEntry:
    prov = read_provenance(path)
    config = prov.get("config") if isinstance(prov.get("config"), dict) else {}
    step = prov.get("step")
    return ModelEntry(
        kind="merged",
        key=str(path),
        label=path.name,
        path=str(path),
        run_id=prov.get("run_id"),
        step=step if isinstance(step, int) else None,
        config=config.get("name") if config else None,
        base=prov.get("base"),
        size_bytes=_dir_size(path),
        created=_created(prov) or _mtime(path),
        source=str(prov.get("source") or ""),
        provenance=prov,
        actions=actions_for("merged"),
    )


def _created(prov: dict[str, Any]) -> float | None:
    value = prov.get("created")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _runs_stamp(ws: Workspace) -> tuple[Any, ...]:
    """What changes when a run, its status, its adapter or a checkpoint does (status.json is replaced by rename)."""
    dirs = [ws.runs_dir]
    for run in ws.runs():
        dirs.append(run)
        try:
            dirs += sorted(p for p in run.iterdir() if p.is_dir())
        except OSError:
            continue
    return tuple(zip(map(str, dirs), _stamp(*dirs)))


def _trained(ws: Workspace) -> tuple[list[ModelRef], dict[str, str | None], dict[str, float]]:
    """The runs' models (bases, adapters, checkpoints), and per run id its config's name and creation time.

    Cached until a run changes: parsing every run's config.yaml twice a second would cost more than the rest.
    """

    def compute() -> tuple[list[ModelRef], dict[str, str | None], dict[str, float]]:
        from workbench.ship.provenance import run_config

        # Endpoints (a running server's models, as the Eval pane offers them) are listed as their servers.
        refs = [ref for ref in list_candidates(ws.path) if ref.kind != "endpoint"]
        names: dict[str, str | None] = {}
        created: dict[str, float] = {}
        for summary in list_runs(ws.path):
            config = run_config(summary.path)
            names[summary.id] = str(config.get("name") or summary.name or "") or None
            created[summary.id] = summary.created
        return refs, names, created

    return _cached("runs", ws.path, _runs_stamp(ws), compute)


def list_models(workspace: str | Path) -> list[ModelEntry]:
    """Every model of the workspace: bases, then each run's adapter and checkpoints (newest run first),
    merged models, GGUF files and servers; each with its source, size, eval figures and actions."""
    ws = Workspace(workspace)
    refs, configs, created = _trained(ws)
    entries = [_from_ref(ref, configs, created) for ref in refs]
    merged = [_merged_entry(ws, p) for p in ws.merged_models()]
    entries += merged
    by_dir = {e.path: e for e in merged}
    entries += [_gguf_entry(ws, p, by_dir) for p in ws.gguf_files()]
    entries += _servers(ws)
    _attach_figures([e for e in entries if e.kind != "gguf"], _evals(ws))
    return entries


def find_entry(entries: Iterable[ModelEntry], key: str) -> ModelEntry | None:
    """The entry with this key."""
    return next((e for e in entries if e.key == key), None)


__all__ = [
    "KINDS",
    "EvalFigure",
    "GateVerdict",
    "ModelEntry",
    "actions_for",
    "best_figure",
    "clear_cache",
    "find_entry",
    "gguf_qtype",
    "list_models",
]
