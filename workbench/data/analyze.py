"""Everything the Data pane and ``workbench data critique`` run over a dataset, in one place.

:func:`analyze` runs the rule checks (:mod:`workbench.data.checks`), exact and
near-duplicate detection (:mod:`workbench.data.dedup`) and leakage against the
dataset's sibling splits (``val.jsonl``, ``test.jsonl`` beside ``train.jsonl``),
and returns findings keyed by example id. :func:`llm_critic` and
:func:`generate` go through :mod:`workbench.llm`; :func:`split_session` writes
train/val/test files with each duplicate cluster kept whole.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.findings import DataFinding, severity_rank
from workbench.data.formats import Shape
from workbench.data.load import load_rows
from workbench.data.readers import file_type_for_name
from workbench.errors import DataError, WorkbenchError
from workbench.workspace import Workspace

Progress = Callable[[str], None]
DEFAULT_MAX_LENGTH = 512


@dataclass(frozen=True)
class ClusterView:
    """A duplicate cluster in example ids: who is kept, who would go."""

    id: int
    kind: str  # exact, near, semantic
    members: tuple[int, ...]
    keep: int
    similarity: float


@dataclass
class Analysis:
    """Findings by example id, the dataset summary, and the duplicate clusters."""

    findings: dict[int, list[DataFinding]] = field(default_factory=dict)
    summary: Any = None  # critique.DatasetSummary
    clusters: list[ClusterView] = field(default_factory=list)
    leakage: list[str] = field(default_factory=list)  # one line per cross-split cluster
    model: str = ""
    max_length: int | None = None
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)
    llm_usage: str = ""

    def all_findings(self) -> list[DataFinding]:
        return [f for items in self.findings.values() for f in items]

    def counts(self) -> Counter[str]:
        return Counter(f.check for f in self.all_findings())

    def headline(self) -> str:
        found = self.all_findings()
        if not found:
            text = "No findings."
        else:
            by_sev = Counter(f.severity for f in found)
            sev = ", ".join(f"{by_sev[s]} {s}" for s in ("error", "warning", "info") if by_sev[s])
            top = ", ".join(f"{check} {n}" for check, n in self.counts().most_common(4))
            text = f"{len(found)} findings on {len(self.findings)} examples ({sev}). Most: {top}."
        if self.clusters:
            text += f" {len(self.clusters)} duplicate cluster(s)."
        if self.leakage:
            text += f" {len(self.leakage)} leak(s) across splits."
        return text + (" (cancelled: partial)" if self.cancelled else "")

    def cluster_of(self, example_id: int) -> ClusterView | None:
        return next((c for c in self.clusters if example_id in c.members), None)

    def duplicate_ids(self) -> list[int]:
        """Every duplicate but one per cluster (the one kept)."""
        return sorted({m for c in self.clusters for m in c.members if m != c.keep})

    def merge(self, other: dict[int, list[DataFinding]], replace_check: str | None = None) -> None:
        """Add findings (replacing those of ``replace_check`` first, e.g. a new LLM critic pass)."""
        if replace_check:
            for ex_id in list(self.findings):
                kept = [f for f in self.findings[ex_id] if f.check != replace_check]
                if kept:
                    self.findings[ex_id] = kept
                else:
                    del self.findings[ex_id]
        for ex_id, items in other.items():
            self.findings.setdefault(ex_id, []).extend(items)
        for items in self.findings.values():
            items.sort(key=lambda f: severity_rank(f.severity))

    def summary_text(self) -> str:
        """The dataset summary as plain text, for the pane and the CLI."""
        sections = []
        if self.summary is not None and hasattr(self.summary, "text"):
            sections.append(self.summary.text())
        if self.clusters:
            kinds = Counter(c.kind for c in self.clusters)
            sections.append(
                f"Duplicates: {len(self.clusters)} cluster(s) ("
                + ", ".join(f"{n} {k}" for k, n in kinds.items())
                + f"); {len(self.duplicate_ids())} example(s) would go if one per cluster is kept."
            )
        if self.leakage:
            shown = [f"  {line}" for line in self.leakage[:20]]
            if len(self.leakage) > 20:
                shown.append(f"  … and {len(self.leakage) - 20} more")
            sections.append("Leakage across splits (examples also in an evaluation split):\n" + "\n".join(shown))
        if self.llm_usage:
            sections.append(f"LLM critic: {self.llm_usage}")
        if self.notes:
            sections.append("\n".join(self.notes))
        return "\n\n".join(sections) if sections else "Nothing to summarize."


# --- context: which model's tokens, which max_length ------------------------------------------


def config_for(dataset: Path, workspace: Path) -> tuple[str, int | None, Path | None]:
    """The model and max_length of a workspace config that trains on ``dataset`` (else the bundled model)."""
    from workbench.config.schema import load_config

    target = dataset.resolve()
    for path in Workspace(workspace).configs():
        try:
            config = load_config(path)
        except WorkbenchError:
            continue
        paths = [config.resolve(p) for p in (config.data.train, config.data.val, config.data.test)]
        if any(p is not None and p.resolve() == target for p in paths):
            return config.resolved_model(), config.train.max_length, path
    return "bundled", DEFAULT_MAX_LENGTH, None


def load_tokenizer(model: str) -> Any:
    """The tokenizer of a model spec (bundled, a local directory or a cached hub id)."""
    from transformers import AutoTokenizer

    from workbench.models import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model(model).path))


EVAL_SPLITS = ("val", "validation", "dev", "test", "eval")


def sibling_splits(path: Path) -> dict[str, Path]:
    """The files beside a dataset that it must not share examples with.

    For a training file (or any other, e.g. a cleaned copy): the evaluation splits beside it
    (``val``, ``validation``, ``dev``, ``test``, ``eval``). For an evaluation split: the
    ``train`` file beside it. Itself excepted.
    """
    mine = path.stem.lower()
    wanted = ("train",) if mine in EVAL_SPLITS else EVAL_SPLITS
    out = {}
    for other in sorted(path.parent.iterdir()):
        if other == path or not other.is_file() or other.stem.lower() not in wanted:
            continue
        if file_type_for_name(other) is not None:
            out[other.stem.lower()] = other
    return out


# --- the analysis -----------------------------------------------------------------------------


def analyze_rows(
    rows: Sequence[dict[str, Any]],
    shape: Shape,
    *,
    ids: Sequence[int] | None = None,
    path: Path | None = None,
    tokenizer: Any = None,
    max_length: int | None = None,
    model: str = "",
    threshold: float = 0.8,
    siblings: dict[str, Path] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Analysis:
    """Rule checks, duplicates and leakage over rows; findings are keyed by ``ids`` (default: positions)."""
    from workbench.data.checks import critique
    from workbench.data.dedup import Cancelled, find_duplicates, find_leakage, leakage_findings, texts_for

    ids = list(ids) if ids is not None else list(range(len(rows)))
    say = progress or (lambda _text: None)
    result = Analysis(model=model, max_length=max_length)

    def step(name: str) -> Callable[[int, int], None]:
        return lambda done, total: say(f"{name} {done}/{total}")

    say("checks…")
    report = critique(
        list(rows), shape, tokenizer=tokenizer, max_length=max_length, progress=step("checks"), cancel=cancel
    )
    result.summary = report.summary
    found: dict[int, list[DataFinding]] = {}
    for f in report.findings:
        found.setdefault(ids[f.index], []).append(f)
    if report.cancelled or (cancel is not None and cancel.is_set()):
        result.cancelled = True
        result.merge(found)
        return result
    say("duplicates…")
    texts = texts_for(list(rows), shape, "all")
    try:
        dedup = find_duplicates(texts, threshold=threshold, progress=step("duplicates"), cancel=cancel)
    except Cancelled:
        result.cancelled = True
        result.merge(found)
        return result
    for f in dedup.findings():
        found.setdefault(ids[f.index], []).append(f)
    for c in dedup.clusters:
        members = tuple(ids[m] for m in c.members)
        result.clusters.append(ClusterView(c.id, c.kind, members, ids[c.representative], c.min_similarity))
    if siblings and not (cancel is not None and cancel.is_set()):
        say("leakage…")
        me = path.stem if path is not None else "this file"
        split_texts = {me: texts}
        for name, other in siblings.items():
            try:
                loaded = load_rows(other, skip_bad=True)
            except WorkbenchError as exc:
                result.notes.append(f"Leakage check skipped {other.name}: {exc}")
                continue
            split_texts[name] = texts_for(loaded.rows, loaded.shape, "all")
        try:
            leaks = find_leakage(split_texts, threshold=threshold, train_split=me, cancel=cancel)
        except Cancelled:
            leaks = []
            result.cancelled = True
        for f in leakage_findings(leaks):
            found.setdefault(ids[f.index], []).append(f)
            result.leakage.append(f.message)
    result.cancelled = cancel is not None and cancel.is_set()
    result.merge(found)
    return result


def analyze(
    session: Any,
    *,
    workspace: Path,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    tokenizer: Any = None,
) -> Analysis:
    """Analyze an open dataset (a :class:`~workbench.data.store.DatasetSession`) as the Data pane does."""
    say = progress or (lambda _text: None)
    model, max_length, config = config_for(session.path, workspace)
    note = f"Lengths in tokens of {model}" + (
        f" (from {config.name})" if config else " (no config trains on this file)"
    )
    if tokenizer is None:
        say(f"loading the tokenizer of {model}…")
        try:
            tokenizer = load_tokenizer(model)
        except (WorkbenchError, OSError, ValueError) as exc:
            note = f"Lengths in words: the tokenizer of {model} could not be loaded ({exc})"
    examples = session.visible()
    result = analyze_rows(
        [e.row for e in examples],
        session.shape,
        ids=[e.id for e in examples],
        path=session.path,
        tokenizer=tokenizer,
        max_length=max_length,
        model=model,
        siblings=sibling_splits(session.path),
        progress=progress,
        cancel=cancel,
    )
    result.notes.insert(0, note + f"; max_length {max_length}.")
    return result


def semantic(
    session: Any,
    *,
    threshold: float = 0.95,
    previous: Analysis | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Analysis:
    """Paraphrase-level duplicates by MiniLM embeddings (cosine >= threshold), added to ``previous``."""
    from workbench.data.dedup import Cancelled, semantic_duplicates, texts_for

    say = progress or (lambda _text: None)
    examples = session.visible()
    texts = texts_for([e.row for e in examples], session.shape, "all")
    out = previous or Analysis()
    try:
        result = semantic_duplicates(
            texts, threshold=threshold, progress=lambda done, total: say(f"embedding {done}/{total}"), cancel=cancel
        )
    except Cancelled:
        out.cancelled = True
        return out
    found: dict[int, list[DataFinding]] = {}
    for f in result.findings():
        found.setdefault(examples[f.index].id, []).append(f)
    out.merge(found, replace_check="semantic_duplicate")
    out.clusters = [c for c in out.clusters if c.kind != "semantic"]
    base = max((c.id for c in out.clusters), default=-1) + 1
    for c in result.clusters:
        out.clusters.append(
            ClusterView(
                base + c.id,
                "semantic",
                tuple(examples[m].id for m in c.members),
                examples[c.representative].id,
                c.min_similarity,
            )
        )
    out.cancelled = False
    return out


# --- LLM --------------------------------------------------------------------------------------

LLMFactory = Callable[[str, Path], Any]


def default_llm(model: str, cache_dir: Path) -> Any:
    from workbench.llm import LLM

    return LLM(model, cache_dir=cache_dir)


LLM_FACTORY: LLMFactory = default_llm
"""How the app builds its LLM client; tests swap in one with litellm mock responses."""


def llm_cache_dir(workspace: Path) -> Path:
    return workspace / ".workbench" / "llm-cache"


def llm_critic(
    session: Any,
    model: str,
    ids: Sequence[int],
    *,
    workspace: Path,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    previous: Analysis | None = None,
) -> Analysis:
    """Score examples with an LLM critic; its findings join (and replace earlier critic findings in) ``previous``."""
    from workbench.data.critic import critique_with_llm

    if not ids:
        raise DataError("no examples to critique: the filter shows none")
    llm = LLM_FACTORY(model, llm_cache_dir(workspace))
    examples = [session.get(i) for i in ids]
    say = progress or (lambda _text: None)
    result = critique_with_llm(
        [e.row for e in examples],
        session.shape,
        llm,
        progress=lambda done, total: say(f"LLM critic {done}/{total}"),
        cancel=cancel,
    )
    found: dict[int, list[DataFinding]] = {}
    for f in result.findings():
        found.setdefault(examples[f.index].id, []).append(f)
    out = previous or Analysis()
    out.merge(found, replace_check="llm_critic")
    out.cancelled = result.cancelled
    out.llm_usage = f"{model}: {result.usage.describe()}" + (
        f"; {len(result.unparsed)} repl(ies) could not be read" if result.unparsed else ""
    )
    return out


def generate(
    session: Any, model: str, seed_ids: Sequence[int], *, workspace: Path, per_seed: int = 3
) -> tuple[list[int], list[str]]:
    """Variations of seed examples from a teacher model, added as pending; returns new ids and refusals."""
    from workbench.data.synth import generate_variations

    llm = LLM_FACTORY(model, llm_cache_dir(workspace))
    seeds = [session.get(i) for i in seed_ids]
    result = generate_variations(
        [e.row for e in seeds], session.shape, llm, seeds=list(range(len(seeds))), per_seed=per_seed
    )
    new_ids = session.add([r.row for r in result.rows], status="pending", source="synthetic") if result.rows else []
    return new_ids, [r.reason for r in result.rejected]


# --- split ------------------------------------------------------------------------------------


def parse_split_spec(spec: str, default_dir: Path) -> tuple[tuple[float, float, float], int, Path]:
    """``"0.8 0.1 0.1 seed=0 -> out/dir"``: ratios, seed and the output folder."""
    left, _, right = spec.partition("->")
    ratios: list[float] = []
    seed = 0
    for token in left.split():
        if token.startswith("seed="):
            seed = int(token[5:])
        else:
            ratios.append(float(token))
    if len(ratios) not in (2, 3):
        raise DataError(f"split {spec!r}: expected two or three ratios, like '0.8 0.1 0.1'")
    if len(ratios) == 2:
        ratios.append(0.0)
    out = Path(right.strip()) if right.strip() else default_dir
    return (ratios[0], ratios[1], ratios[2]), seed, out


def split_session(
    session: Any, spec: str, *, workspace: Path, analysis: Analysis | None = None
) -> dict[str, tuple[Path, int]]:
    """Write train/val/test files of the examples not rejected; duplicate clusters stay in one split."""
    from workbench.data.split import split_rows

    ratios, seed, out = parse_split_spec(spec, session.path.parent / "split")
    out = out if out.is_absolute() else workspace / out
    examples = [e for e in session.visible() if e.status != "rejected"]
    groups = None
    if analysis is not None and analysis.clusters:
        cluster_of = {m: c.id for c in analysis.clusters for m in c.members}
        groups = [cluster_of.get(e.id) for e in examples]
    result = split_rows(examples, ratios, seed, groups=groups)
    out.mkdir(parents=True, exist_ok=True)
    suffix = session.path.suffix if session.file_type != "datasets" else ".jsonl"
    written = {}
    for name, part in (("train", result.train), ("val", result.val), ("test", result.test)):
        if not part:
            continue
        target = out / f"{name}{suffix}"
        ids = {e.id for e in part}
        session.write_examples(target, [e for e in examples if e.id in ids])
        written[name] = (target, len(part))
    return written


def env_model() -> str:
    """The LLM the user named for critic and generation (``WORKBENCH_LLM_MODEL``), if any."""
    return os.environ.get("WORKBENCH_LLM_MODEL", "")
