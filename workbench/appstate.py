"""What the app remembers between sessions: theme, and per workspace the last run and pane.

A small JSON file in the user's config directory, written atomically; a
missing or corrupt file means defaults, never a crash. No secrets go here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.fileio import atomic_write_text


def state_path() -> Path:
    root = (
        os.environ.get("WORKBENCH_CONFIG_DIR")
        or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "finetune-workbench"
    )
    return Path(root) / "state.json"


@dataclass
class AppState:
    """The remembered settings; `workspaces` maps a workspace path to its last run and pane."""

    theme: str | None = None
    workspaces: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_workspace(self, workspace: Path) -> dict[str, Any]:
        return self.workspaces.setdefault(str(workspace.resolve()), {})


def load_state(path: Path | None = None) -> AppState:
    path = path or state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return AppState(theme=data.get("theme"), workspaces=dict(data.get("workspaces") or {}))
    except (OSError, ValueError, AttributeError):
        return AppState()


def save_state(state: AppState, path: Path | None = None) -> None:
    path = path or state_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(state), indent=1))
    except OSError:
        pass  # remembering is a courtesy; failing to is no reason to stop the app
