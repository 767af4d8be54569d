"""The eval directory: the contract between the generator process and everyone who reads its results.

``<workspace>/evals/<eval-id>/`` holds

- ``eval.yaml``: the :class:`EvalSpec` (models, dataset, generation settings, task checks);
- ``examples.jsonl``: the examples frozen at creation, so predictions stay tied to what was
  asked even if the dataset is edited later;
- ``predictions.jsonl``: one line per (model, example), appended a batch at a time; the last
  line for a pair wins, and a torn last line is skipped (the generator seals it before it
  appends again);
- ``status.json``: state, pid, heartbeat, done / total, the model being generated, error;
  replaced atomically like a run's, and read as ``lost`` when the worker is gone;
- ``eval.log``: the generator process's output.

Like the run directory, every writer appends or replaces atomically and every reader reads
files, never the worker.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.detach import match_ref, new_dir_id
from workbench.errors import RunError, WorkbenchError
from workbench.fileio import atomic_write_text
from workbench.train.rundir import LIVE_STATES, RunDir, dumps, read_jsonl
from workbench.workspace import Workspace

STATES = ("created", "starting", "running", "stopping", "stopped", "completed", "failed")
"""What status.json can say; ``lost`` is what a reader makes of a live state whose worker is gone."""


class EvalError(WorkbenchError):
    """An eval directory that cannot be created, found, read or controlled."""


class _Section(BaseModel):
    # Unknown keys are kept, not refused: eval.yaml is written by programs, and a newer
    # workbench may add fields that an older one must still read (and write back).
    model_config = ConfigDict(extra="allow", validate_assignment=True, populate_by_name=True)


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What an environment variable's name looks like (a key does not: it has dashes, or is far too long)."""


class ModelRef(_Section):
    """One model under comparison: a base model, a run's final adapter, a checkpoint, or an endpoint."""

    key: str = Field(description="short unique id within the eval: base, demo-20261125-114013/adapter, .../ckpt-24")
    label: str = Field(description="what people read: 'demo 11:40 · step 24'")
    kind: Literal["base", "adapter", "checkpoint", "endpoint"] = Field(
        description="base: a model as given; adapter: a run's final output (adapter/); checkpoint: a run's "
        "checkpoint-N; endpoint: a model behind an OpenAI-compatible API (ours, vLLM) or a litellm provider"
    )
    path: str = Field(
        description="the model or adapter directory (for a base model, its spec as given); for an endpoint, the API "
        "base URL (http://127.0.0.1:8123/v1), empty for a litellm provider id"
    )
    base_model: str | None = Field(
        None, description="the base model spec (resolve_model) a LoRA adapter applies to; for a base, the spec itself"
    )
    run_id: str | None = Field(None, description="the run the adapter or checkpoint comes from")
    step: int | None = Field(None, description="the checkpoint's training step")
    trust_remote_code: bool = Field(False, description="run the model repository's own code (as its run's config said)")
    endpoint_model: str | None = Field(
        None,
        description="endpoint: the model name sent in requests; with no URL, a litellm id such as openai/gpt-4o-mini",
    )
    api_key_env: str | None = Field(
        None,
        description="endpoint: the NAME of the environment variable that holds the API key; the key itself is "
        "never written anywhere (None: no key, or litellm's own variable for a provider)",
    )
    frozen: str | None = Field(
        None,
        description="answers copied from another eval (its id) and never generated here: a revalidation's "
        "release column",
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and (not ENV_NAME.fullmatch(value) or len(value) > 100):
            raise ValueError(
                "api_key_env is the NAME of an environment variable (letters, digits and _, such as "
                "WORKBENCH_SERVE_KEY), never the key itself"
            )
        return value or None

    @property
    def is_endpoint(self) -> bool:
        """Answered over HTTP by a server, not loaded here."""
        return self.kind == "endpoint"


class GenerationSettings(_Section):
    max_new_tokens: int = Field(256, ge=1, description="stop each answer after this many new tokens")
    temperature: float = Field(
        0.0, ge=0.0, description="0: greedy (deterministic); above 0: sample at this temperature"
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="nucleus sampling: keep the smallest token set with this much probability"
    )
    # 16, not 8: on two CPU cores (SmolLM2, bench/eval_throughput.py) batch 8 gave 3.2x the
    # examples/s of one at a time, batch 16 4.2-4.5x, batch 32 about 6x but a long wait between
    # progress updates and for a stop; a 16-prompt cache is small next to a model's weights.
    batch_size: int = Field(16, ge=1, description="prompts generated together (left-padded, grouped by length)")
    seed: int = Field(0, description="seed of sampling (unused when greedy)")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


class EvalSpec(_Section):
    """eval.yaml: everything needed to (re)generate an eval's predictions."""

    name: str = Field("eval", description="a short name; the eval id is built from it")
    created: float = Field(default_factory=time.time, description="creation time (Unix seconds)")
    dataset: str | None = Field(None, description="absolute path of the dataset or suite the examples came from")
    source: Literal["dataset", "suite"] = Field(
        "dataset", description="dataset: a dataset's rows; suite: regression/red-team cases"
    )
    selection: list[int] | None = Field(None, description="the dataset row indexes chosen (None: all, or the first N)")
    models: list[ModelRef] = Field(default_factory=list, description="the models compared, in order")
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    schema_path: str | None = Field(None, alias="schema", description="a JSON Schema file every output should fit")
    regex: str | None = Field(None, description="a regex every output should match")
    baseline: str | None = Field(
        None,
        description="the model key the others are held to: the grid flags where they do worse and `eval gate` "
        "fails on a significant drop (None: the base model, if any, for the grid only)",
    )


def dump_spec(spec: EvalSpec) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json", by_alias=True), sort_keys=False, allow_unicode=True)


def parse_spec(text: str, source: str = "eval.yaml") -> EvalSpec:
    try:
        data = yaml.safe_load(text) or {}
        return EvalSpec.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise EvalError(f"{source}: {exc}") from None


def evals_dir(workspace: str | Path) -> Path:
    """``evals/`` of the workspace (see :class:`workbench.workspace.Workspace`)."""
    return Workspace(workspace).evals_dir


@dataclass
class EvalStatus:
    """status.json, and the state to show (``lost`` when a live worker is gone)."""

    state: str
    raw: dict[str, Any]

    done = property(lambda self: int(self.raw.get("done") or 0))
    total = property(lambda self: int(self.raw.get("total") or 0))
    model = property(lambda self: self.raw.get("model"))
    error = property(lambda self: self.raw.get("error"))
    pid = property(lambda self: self.raw.get("pid"))


class EvalDir:
    """Paths and safe reads and writes of one eval directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # status.json, .lock and STOP work exactly as a run's: reuse the run directory's code.
        self._files = RunDir(self.path)
        self._spec: EvalSpec | None = None

    def __repr__(self) -> str:
        return f"EvalDir({str(self.path)!r})"

    @property
    def id(self) -> str:
        return self.path.name

    spec_path = property(lambda self: self.path / "eval.yaml")
    examples_path = property(lambda self: self.path / "examples.jsonl")
    predictions_path = property(lambda self: self.path / "predictions.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "eval.log")
    lock_path = property(lambda self: self.path / ".lock")
    stop_path = property(lambda self: self.path / "STOP")

    def exists(self) -> bool:
        return self.spec_path.is_file()

    # --- what was asked ---------------------------------------------------

    def spec(self) -> EvalSpec:
        """eval.yaml (read once per EvalDir: it does not change after creation)."""
        if self._spec is None:
            try:
                text = self.spec_path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise EvalError(f"{self.path} is not an eval directory (no eval.yaml)") from None
            self._spec = parse_spec(text, str(self.spec_path))
        return self._spec

    def examples(self) -> list[dict[str, Any]]:
        return read_jsonl(self.examples_path)[0]

    # --- what came out ----------------------------------------------------

    def predictions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """``{(model key, example id): record}``, the last line of each pair winning."""
        records, _bad = read_jsonl(self.predictions_path)
        return {(str(r.get("model")), str(r.get("id"))): r for r in records if "model" in r and "id" in r}

    def append_predictions(self, records: Iterable[dict[str, Any]]) -> None:
        """Append one batch in one write; first seal a torn last line left by a killed writer."""
        text = "".join(dumps(r) + "\n" for r in records)
        if not text:
            return
        with open(self.predictions_path, "ab") as fh:
            if fh.tell() > 0:
                with open(self.predictions_path, "rb") as check:
                    check.seek(-1, 2)
                    if check.read(1) != b"\n":
                        text = "\n" + text  # the fragment becomes one corrupt line that readers skip
            fh.write(text.encode("utf-8"))
            fh.flush()

    def progress(self, predictions: dict[tuple[str, str], dict[str, Any]] | None = None) -> dict[str, int]:
        """Examples done per model key (every model of the spec, 0 when none)."""
        predictions = self.predictions() if predictions is None else predictions
        ids = {str(e.get("id")) for e in self.examples()}
        counts = Counter(model for model, example in predictions if example in ids)
        return {m.key: counts.get(m.key, 0) for m in self.spec().models}

    # --- the worker's state ------------------------------------------------

    def read_status_raw(self) -> dict[str, Any]:
        return self._files.read_status_raw()

    def status(self, now: float | None = None) -> EvalStatus:
        run_status = self._files.status(now)
        return EvalStatus(run_status.state, run_status.raw)

    def write_status(self, data: dict[str, Any]) -> None:
        self._files.write_status(data)

    def locked(self) -> bool:
        """Whether a generator holds this eval's lock right now."""
        return self._files.locked()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writer lock; a second generator gets an EvalError instead of interleaving."""
        lock = self._files.exclusive()
        try:
            lock.__enter__()
        except RunError:
            pid = self.read_status_raw().get("pid")
            raise EvalError(f"eval {self.id} is already being generated by another process (pid {pid})") from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    @property
    def writer(self) -> RunDir:
        """The run-directory view of status.json, for :class:`workbench.train.rundir.StatusWriter`."""
        return self._files


def create_eval(workspace: str | Path, spec: EvalSpec, examples: list[dict[str, Any]]) -> EvalDir:
    """Make ``evals/<name-YYYYMMDD-HHMMSS>/`` with its spec, frozen examples and a 'created' status."""
    if not spec.models:
        raise EvalError("an eval needs at least one model")
    keys = [m.key for m in spec.models]
    if len(set(keys)) != len(keys):
        raise EvalError(f"model keys must be unique: {', '.join(k for k, n in Counter(keys).items() if n > 1)}")
    if not examples:
        raise EvalError("an eval needs at least one example")
    ids = [str(e.get("id")) for e in examples]
    if len(set(ids)) != len(ids):
        raise EvalError(f"example ids must be unique: {', '.join(i for i, n in Counter(ids).items() if n > 1)[:200]}")
    for e in examples:
        if not isinstance(e.get("messages"), list) or not e["messages"]:
            raise EvalError(f"example {e.get('id')!r} has no prompt messages")
    root = evals_dir(workspace)
    root.mkdir(parents=True, exist_ok=True)
    ev = EvalDir(root / new_dir_id(root, spec.name))
    ev.path.mkdir()
    frozen = [{**e, "id": str(e["id"])} for e in examples]
    atomic_write_text(ev.examples_path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in frozen))
    atomic_write_text(ev.spec_path, dump_spec(spec))
    ev.write_status(
        {
            "eval_id": ev.id,
            "name": spec.name,
            "state": "created",
            "created": spec.created,
            "done": 0,
            "total": len(frozen) * len(spec.models),
        }
    )
    return ev


@dataclass
class EvalSummary:
    """One row of the evals list."""

    id: str
    name: str
    state: str
    models: list[str]
    """The model keys, in order."""
    labels: list[str]
    examples: int
    done: int
    total: int
    created: float
    path: str
    dataset: str | None = None
    error: str | None = None
    per_model: dict[str, int] = field(default_factory=dict)
    """Examples done per model key."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(ev: EvalDir) -> EvalSummary:
    spec = ev.spec()
    status = ev.status()
    n_examples = len(ev.examples())
    per_model = ev.progress()
    # A frozen model's answers are all it will ever have: they count as its whole share.
    expected = sum(per_model.get(m.key, 0) if m.frozen else n_examples for m in spec.models)
    return EvalSummary(
        id=ev.id,
        name=spec.name,
        state=status.state,
        models=[m.key for m in spec.models],
        labels=[m.label for m in spec.models],
        examples=n_examples,
        done=sum(per_model.values()),
        total=expected,
        created=spec.created,
        path=str(ev.path),
        dataset=spec.dataset,
        error=status.error,
        per_model=per_model,
    )


def list_evals(workspace: str | Path) -> list[EvalSummary]:
    """Every eval of the workspace, newest first; unreadable directories are left out."""
    out = []
    for path in Workspace(workspace).evals():
        try:
            out.append(summarize(EvalDir(path)))
        except EvalError:
            continue
    return sorted(out, key=lambda s: s.created, reverse=True)


def find_eval(workspace: str | Path, ref: str) -> EvalDir:
    """An eval by path, exact id, unique id prefix, or 'last' for the newest."""
    path = Path(ref).expanduser()
    if (path / "eval.yaml").is_file():
        return EvalDir(path.resolve())
    ws = Workspace(workspace)
    root = ws.evals_dir
    matches = match_ref(ws.evals(), ref, lambda p: EvalDir(p).read_status_raw().get("created") or p.stat().st_mtime)
    if len(matches) == 1:
        return EvalDir(matches[0])
    if not matches:
        raise EvalError(f"no eval {ref!r} in {root} (see `workbench eval list`)")
    raise EvalError(f"{ref!r} matches several evals: {', '.join(sorted(p.name for p in matches)[:5])}")


__all__ = [
    "LIVE_STATES",
    "STATES",
    "EvalDir",
    "EvalError",
    "EvalSpec",
    "EvalStatus",
    "EvalSummary",
    "GenerationSettings",
    "ModelRef",
    "create_eval",
    "dump_spec",
    "evals_dir",
    "find_eval",
    "list_evals",
    "parse_spec",
    "summarize",
]
