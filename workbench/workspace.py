"""The workspace: where configs, datasets, runs, evals and suites are found, by one set of rules.

A workspace is a directory (the app's and the CLI's ``--workspace``). The app's pickers, the
CLI and the eval planner all find what they offer here, by one walk of the workspace:

* The walk enters every directory except hidden ones (``.git``, ``.venv``, ``.workbench``...),
  ``__pycache__``, ``node_modules`` and ``site-packages``, the directories of long jobs
  (``runs/``, ``evals/``, ``serves/``, ``sweeps/``, ``models/``, at any depth: a run's ``config.yaml`` is a
  copy, not a config of the user's) and a ``datasets`` directory (found as one dataset).
* It skips the workbench's own side files: hidden files (a dataset's journal
  ``.NAME.journal`` and lock ``.NAME.lock``, the temporary files of atomic writes), the review
  state ``NAME.review.json``, the original kept on the first save ``NAME.orig``, a task's
  ``schema.json`` and ``state.json`` (the app's state; a datasets directory's marker).
* A **config** is a ``*.yaml`` or ``*.yml`` file with a top-level key of a run config
  (``model``, ``data``, ``method``, ``finetune``, ``lora`` or ``train``), seen in its first
  64 KiB. It is not validated: a config with mistakes is still listed, so that the Config
  pane can open it and show them, while other YAML (a TRL export, CI or compose files) is
  not offered.
* A **dataset** is a file of a type :mod:`workbench.data.readers` reads (JSONL/NDJSON, a
  JSON file holding rows, CSV, Parquet) or a directory saved by datasets' ``save_to_disk``
  (``dataset_dict.json``, or ``state.json`` with ``dataset_info.json``). Suites are not
  datasets.
* A **suite** (regression or red-team cases) is a JSONL file whose first line has ``expect``.
* **Runs** are the directories of ``runs/`` with a ``status.json`` or ``config.yaml``;
  **evals** those of ``evals/`` with an ``eval.yaml``; **sweeps** those of ``sweeps/`` with a ``spec.yaml``.
* **Servers** are the directories of ``serves/`` with a ``status.json`` or ``serve.yaml``;
  **merged models** those of ``models/`` with a ``config.json``, and **GGUF files** the
  ``*.gguf`` of ``models/``.

Lists are sorted by path relative to the workspace, part by part; datasets put the files
whose name starts with ``train`` first (the one to open by default). Everything returned is
a plain absolute :class:`~pathlib.Path`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

# The directories of long jobs and of what they produce (merged models and GGUF files in models/).
JOB_DIRS = frozenset({"runs", "evals", "serves", "sweeps", "models"})
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
SCHEMA_NAME = "schema.json"  # a task's JSON Schema, beside its dataset
SIDE_NAMES = frozenset({SCHEMA_NAME, "state.json"})
SIDE_SUFFIXES = (".review.json", ".orig")
CONFIG_SUFFIXES = (".yaml", ".yml")
CONFIG_KEYS = ("model", "data", "method", "finetune", "lora", "train")
_CONFIG_KEY = re.compile(rf"^(?:{'|'.join(CONFIG_KEYS)})\s*:", re.MULTILINE)
SNIFF = 65536


def is_side_file(name: str) -> bool:
    """Whether a file name is one the workbench (or a tool) keeps beside the user's files."""
    return name.startswith(".") or name in SIDE_NAMES or name.endswith(SIDE_SUFFIXES)


def is_datasets_dir(path: Path, names: set[str] | None = None) -> bool:
    """A directory written by datasets' ``save_to_disk`` (a DatasetDict or a Dataset)."""
    if names is None:
        try:
            names = set(os.listdir(path))
        except OSError:
            return False
    return "dataset_dict.json" in names or {"state.json", "dataset_info.json"} <= names


def is_config(path: Path) -> bool:
    """A ``*.yaml`` / ``*.yml`` file with a top-level run-config key (not validated; see the module doc)."""
    if not path.name.lower().endswith(CONFIG_SUFFIXES) or is_side_file(path.name):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF).decode("utf-8", "replace")
    except OSError:
        return False
    return _CONFIG_KEY.search(head) is not None


def is_suite(path: Path) -> bool:
    """A JSONL file whose first readable line is a case (it has ``expect``)."""
    if Path(path).suffix != ".jsonl":
        return False
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    return isinstance(data := json.loads(line), dict) and "expect" in data
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return False


def is_dataset(path: Path) -> bool:
    """A file of a supported data type holding rows, or a datasets directory; not a side file or a suite."""
    from workbench.data.readers import looks_like_dataset

    path = Path(path)
    if path.is_dir():
        return is_datasets_dir(path)
    return not is_side_file(path.name) and looks_like_dataset(path) and not is_suite(path)


class Workspace:
    """One workspace directory and what is in it."""

    def __init__(self, path: str | Path = ".") -> None:
        self.path = Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    @property
    def evals_dir(self) -> Path:
        return self.path / "evals"

    @property
    def sweeps_dir(self) -> Path:
        return self.path / "sweeps"

    @property
    def serves_dir(self) -> Path:
        return self.path / "serves"

    @property
    def models_dir(self) -> Path:
        """Merged models (directories) and GGUF files (with their Modelfiles) made from the runs."""
        return self.path / "models"

    # --- the walk -------------------------------------------------------------------------

    def _walk(self) -> Iterator[Path]:
        """Every file the rules let through, and every datasets directory (not entered)."""
        for top, dirs, files in os.walk(self.path):
            here = Path(top)
            if here != self.path and is_datasets_dir(here, set(files)):
                dirs.clear()
                yield here
                continue
            dirs[:] = [d for d in dirs if not (d.startswith(".") or d in SKIP_DIRS or d in JOB_DIRS)]
            for name in files:
                if not is_side_file(name):
                    yield here / name

    def _sorted(self, paths: Iterator[Path] | list[Path]) -> list[Path]:
        return sorted(paths, key=lambda p: p.relative_to(self.path).parts)

    def configs(self) -> list[Path]:
        """Run configs (``*.yaml``, ``*.yml``) by path."""
        return self._sorted(p for p in self._walk() if p.name.lower().endswith(CONFIG_SUFFIXES) and is_config(p))

    def datasets(self) -> list[Path]:
        """Datasets of every supported type, files named ``train*`` first, then by path."""
        from workbench.data.readers import looks_like_dataset

        found = [p for p in self._walk() if p.is_dir() or (looks_like_dataset(p) and not is_suite(p))]
        return sorted(self._sorted(found), key=lambda p: not p.name.startswith("train"))

    def suites(self) -> list[Path]:
        """Regression and red-team suites, by path."""
        return self._sorted(p for p in self._walk() if p.suffix == ".jsonl" and is_suite(p))

    # --- the directories of long jobs -----------------------------------------------------

    def runs(self) -> list[Path]:
        """The run directories of ``runs/`` (a ``status.json`` or ``config.yaml`` in each), by name."""
        return self._jobs(self.runs_dir, ("status.json", "config.yaml"))

    def evals(self) -> list[Path]:
        """The eval directories of ``evals/`` (an ``eval.yaml`` in each), by name."""
        return self._jobs(self.evals_dir, ("eval.yaml",))

    def sweeps(self) -> list[Path]:
        """The sweep directories of ``sweeps/`` (a ``spec.yaml`` in each), by name."""
        return self._jobs(self.sweeps_dir, ("spec.yaml",))

    def servers(self) -> list[Path]:
        """The server directories of ``serves/`` (a ``status.json`` or ``serve.yaml`` in each), by name."""
        return self._jobs(self.serves_dir, ("status.json", "serve.yaml"))

    def merged_models(self) -> list[Path]:
        """The model directories of ``models/`` (a ``config.json`` in each), by name."""
        return self._jobs(self.models_dir, ("config.json",))

    def gguf_files(self) -> list[Path]:
        """The ``*.gguf`` files of ``models/`` (at its top level or one directory down), by path."""
        try:
            found = [*self.models_dir.glob("*.gguf"), *self.models_dir.glob("*/*.gguf")]
        except OSError:
            return []
        return sorted(p for p in found if p.is_file())

    @staticmethod
    def _jobs(root: Path, marks: tuple[str, ...]) -> list[Path]:
        try:
            entries = sorted(root.iterdir())
        except OSError:
            return []
        return [p for p in entries if p.is_dir() and any((p / m).is_file() for m in marks)]


__all__ = [
    "SCHEMA_NAME",
    "Workspace",
    "is_config",
    "is_dataset",
    "is_datasets_dir",
    "is_side_file",
    "is_suite",
]
