"""The workspace's monitor thresholds: ``monitor.yaml`` at the workspace's root, every key optional.

```yaml
psi_watch: 0.1          # population stability index: below, stable; up to psi_alert, watch
psi_alert: 0.25         # above: shifted, an alert
failure_margin: 0.10    # a failure rate this far (absolute) above the release eval's is an alert ...
alpha: 0.01             # ... when it is also significant at this level (one-sided)
min_requests: 30        # no alert, no drift reading on fewer requests than this in the window
error_rate: 0.05        # HTTP errors (4xx from the model route, 5xx, clients gone) above this share
latency_p95_s: null     # an alert when p95 latency is above this many seconds (null: none)
judge_model: null       # a litellm model that grades revalidation answers (its key from the environment)
```

The defaults are the usual readings of PSI (< 0.1 stable, 0.1-0.25 watch, > 0.25 shifted) and a
margin that a handful of bad answers in a small window cannot cross by chance.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench.errors import WorkbenchError

SETTINGS_NAME = "monitor.yaml"


class MonitorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    psi_watch: float = Field(0.1, gt=0, description="PSI from which a figure is 'watch'")
    psi_alert: float = Field(0.25, gt=0, description="PSI above which a figure is 'shifted': an alert")
    failure_margin: float = Field(
        0.10, gt=0, lt=1, description="a failure rate this far (absolute) above its release figure alerts"
    )
    alpha: float = Field(0.01, gt=0, lt=0.5, description="the significance a failure-rate rise must also reach")
    min_requests: int = Field(30, ge=1, description="fewer requests in the window: no alert and no drift reading")
    error_rate: float = Field(0.05, gt=0, lt=1, description="an alert when HTTP errors are above this share")
    latency_p95_s: float | None = Field(None, gt=0, description="an alert when p95 latency is above this (seconds)")
    judge_model: str | None = Field(
        None, description="a litellm model (openai/gpt-4o-mini) that grades revalidation answers; None: no judge"
    )


def settings_path(workspace: str | Path) -> Path:
    return Path(workspace) / SETTINGS_NAME


def load_settings(workspace: str | Path) -> MonitorSettings:
    """The workspace's thresholds (the defaults when there is no monitor.yaml); a bad file names the key."""
    path = settings_path(workspace)
    if not path.is_file():
        return MonitorSettings()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise WorkbenchError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise WorkbenchError(f"{path}: expected a mapping of thresholds (psi_alert: 0.25, ...)")
    try:
        settings = MonitorSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise WorkbenchError(f"{path}: {problems}") from None
    if settings.psi_watch >= settings.psi_alert:
        raise WorkbenchError(f"{path}: psi_watch ({settings.psi_watch}) must be below psi_alert ({settings.psi_alert})")
    return settings


__all__ = ["SETTINGS_NAME", "MonitorSettings", "load_settings", "settings_path"]
