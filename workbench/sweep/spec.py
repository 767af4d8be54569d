"""The sweep spec: a base config, a search space over its fields, and how Optuna searches it.

A spec is a YAML file beside the configs::

    name: tiny-sweep
    base_config: ../configs/tiny.yaml      # relative to this file
    space:                                  # any field of the run config, dotted
      train.learning_rate: {low: 1.0e-4, high: 5.0e-3, log: true}
      lora.r: {choices: [4, 8, 16]}
      lora.dropout: {low: 0.0, high: 0.1}
      train.batch_size: {low: 2, high: 8, step: 2}   # int, because the field is an int
    sampler: tpe                            # tpe | random | grid
    trials: 12                              # in the whole study (all machines together)
    parallel: 1                             # trials running at once on this machine
    objective: {metric: eval_loss}          # or token_f1, schema_valid... on the validation split
    pruner: {kind: median, warmup_steps: 2}

A parameter's kind follows the config field: an ``int`` field gets integer values, a float
field floats; ``choices`` make it categorical. :func:`check_spec` refuses a field that does
not exist (with a did-you-mean), a bound the config's own types refuse (``lora.r`` above
1024), and a bound one of the config rules calls an error (a learning rate far outside the
usual range), before any GPU time is spent.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.config.schema import RunConfig, _key_lines, field_help, load_config
from workbench.errors import ConfigError

#: Metrics a trial can be judged by: the eval loss the trainer writes, or an eval-core metric on the validation split.
TASK_METRICS = ("token_f1", "exact_match", "rouge_l", "json_valid", "schema_valid", "refusal")
OBJECTIVE_METRICS = ("eval_loss", *TASK_METRICS)
MINIMIZED = frozenset({"eval_loss", "refusal"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpec(_Strict):
    """One dimension of the search space."""

    low: float | None = Field(None, description="lowest value (with high)")
    high: float | None = Field(None, description="highest value (with low)")
    log: bool = Field(False, description="sample uniformly on a log scale (learning rates)")
    step: float | None = Field(None, gt=0, description="only values low, low+step, ... (and a grid sampler's points)")
    choices: list[Any] | None = Field(None, min_length=1, description="a categorical choice among these values")

    @model_validator(mode="after")
    def _range_or_choices(self) -> ParamSpec:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices (a list of values)")
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step do not go together (Optuna refuses them)")
        return self

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        scale = " (log)" if self.log else ""
        step = f" step {self.step:g}" if self.step else ""
        return f"{self.low:g} to {self.high:g}{step}{scale}"


class ObjectiveSpec(_Strict):
    metric: str = Field("eval_loss", description="eval_loss (the trainer's) or " + ", ".join(TASK_METRICS))
    direction: Literal["minimize", "maximize"] | None = Field(
        None, description="default: minimize a loss, maximize a score"
    )
    limit: int = Field(50, ge=1, description="validation examples generated for a task metric")

    @model_validator(mode="after")
    def _known(self) -> ObjectiveSpec:
        if self.metric not in OBJECTIVE_METRICS:
            close = difflib.get_close_matches(self.metric, OBJECTIVE_METRICS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"unknown metric {self.metric!r}; {hint}known: {', '.join(OBJECTIVE_METRICS)}")
        if self.direction is None:
            self.direction = "minimize" if self.metric in MINIMIZED else "maximize"
        return self

    @property
    def is_task_metric(self) -> bool:
        return self.metric != "eval_loss"


class PrunerSpec(_Strict):
    kind: Literal["median", "hyperband", "none"] = Field("median", description="how unpromising trials are stopped")
    startup_trials: int = Field(2, ge=0, description="median: trials that finish before any is pruned")
    warmup_steps: int = Field(0, ge=0, description="median: steps of a trial before it can be pruned")
    min_steps: int = Field(1, ge=1, description="hyperband: the smallest budget a trial gets, in steps")
    reduction_factor: int = Field(3, ge=2, description="hyperband: the share of trials kept at each rung is 1/this")


class SweepSpec(_Strict):
    name: str = Field("sweep", description="a short name; the sweep id and its runs' names are built from it")
    base_config: str = Field(description="the run config every trial starts from, relative to this file")
    space: dict[str, ParamSpec] = Field(description="dotted config field -> its range or choices")
    sampler: Literal["tpe", "random", "grid"] = Field("tpe", description="how Optuna picks the next parameters")
    seed: int | None = Field(None, description="the sampler's seed, for a search that repeats")
    trials: int = Field(10, ge=1, description="trials in the whole study, on every machine together")
    parallel: int = Field(1, ge=1, description="trials running at once on this machine")
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    first_trials: list[dict[str, Any]] = Field(
        default_factory=list, description="parameters to try first, in order (a known-good config, say)"
    )
    storage: str | None = Field(
        None, description="an Optuna RDB URL (postgresql://, mysql://) shared by several machines; default SQLite here"
    )
    study_name: str | None = Field(None, description="the study to create or join in the storage (default: name)")

    base_dir: Path | None = Field(None, exclude=True)

    @property
    def base_path(self) -> Path:
        path = Path(self.base_config).expanduser()
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    @property
    def direction(self) -> str:
        return self.objective.direction or "minimize"


@dataclass
class SpecCheck:
    """What :func:`check_spec` found: errors (the sweep will not start) and warnings."""

    spec: SweepSpec
    base: RunConfig
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_spec(text: str, *, source: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """A sweep spec from YAML; errors name the file, line and field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping (base_config, space, ...), got {type(data).__name__}")
    lines = _key_lines(node) if node is not None else {}
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = lines.get(loc) or lines.get(loc[:-1]) or lines.get(loc[:2]) or lines.get(loc[:1])
            where = f"{source}:{line}" if line else source
            name = ".".join(str(p) for p in loc) or "spec"
            if err["type"] == "extra_forbidden":
                known = [k for k in _model_at(loc[:-1]).model_fields if k != "base_dir"]
                close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
                msgs.append(f"{where}: unknown field '{name}'; {hint}")
            elif err["type"] == "missing":
                msgs.append(f"{where}: missing required field '{name}'")
            else:
                msg = str(err["msg"]).removeprefix("Value error, ")
                msgs.append(f"{where}: {name}: {msg}")
        raise ConfigError("\n".join(msgs)) from None
    spec.base_dir = base_dir
    return spec


def _model_at(loc: tuple) -> type[BaseModel]:
    """The spec section a validation error's location points into."""
    sections: dict[str, type[BaseModel]] = {"objective": ObjectiveSpec, "pruner": PrunerSpec}
    if len(loc) >= 2 and loc[0] == "space":
        return ParamSpec
    return sections.get(str(loc[0]), SweepSpec) if loc else SweepSpec


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep spec") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_spec(text, source=str(path), base_dir=path.resolve().parent)


def with_params(base: RunConfig, params: dict[str, Any], *, name: str | None = None) -> RunConfig:
    """The base config with dotted fields set to ``params``; the config's own types check each value."""
    data = base.model_dump(mode="json")
    for dotted, value in params.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    if name is not None:
        data["name"] = name
    config = RunConfig.model_validate(data)
    config.base_dir = base.base_dir
    return config


def field_kind(dotted: str) -> str:
    """``int``, ``float``, ``bool`` or ``other``: the type of a config field, as a parameter takes it."""
    model: Any = RunConfig
    *parents, leaf = dotted.split(".")
    for part in parents:
        model = model.model_fields[part].annotation
    annotation = str(model.model_fields[leaf].annotation)
    for kind in ("bool", "int", "float"):
        if annotation == f"<class '{kind}'>" or annotation.startswith(f"{kind} |"):
            return kind
    return "other"


def boundary_values(dotted: str, param: ParamSpec) -> list[Any]:
    """The values a parameter can take at its edges (every choice of a categorical)."""
    if param.choices is not None:
        return list(param.choices)
    assert param.low is not None and param.high is not None
    if field_kind(dotted) == "int":
        return sorted({math.ceil(param.low), math.floor(param.high)})
    return sorted({param.low, param.high})


def grid_points(dotted: str, param: ParamSpec) -> list[Any] | None:
    """Every value a grid sampler visits: the choices, or low..high by step (ints by 1); None when unbounded."""
    if param.choices is not None:
        return list(param.choices)
    assert param.low is not None and param.high is not None
    is_int = field_kind(dotted) == "int"
    step = param.step or (1 if is_int else None)
    if step is None:
        return None
    n = math.floor((param.high - param.low) / step + 1e-9) + 1
    values = [param.low + i * step for i in range(n)]
    return [round(v) for v in values] if is_int else [round(v, 12) for v in values]


def check_spec(spec: SweepSpec, *, source: str = "sweep spec", rules: bool = True) -> SpecCheck:
    """Every problem of a spec before a trial starts: fields, bounds (types and rules), sampler, base config."""
    base = load_config(spec.base_path)
    report = SpecCheck(spec, base)
    known = [name for name in field_help() if name != "name"]
    usable: dict[str, ParamSpec] = {}
    for dotted, param in spec.space.items():
        if dotted not in known:
            close = difflib.get_close_matches(dotted, known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else _fields_hint(dotted, known)
            report.errors.append(f"{source}: space.{dotted}: not a field of the run config; {hint}")
            continue
        kind = field_kind(dotted)
        if param.choices is None and kind not in ("int", "float"):
            report.errors.append(
                f"{source}: space.{dotted}: not a number: give choices (a list of values), not a range"
            )
            continue
        usable[dotted] = param
    for dotted, param in usable.items():
        for value in boundary_values(dotted, param):
            try:
                with_params(base, {dotted: value})
            except ValidationError as exc:
                reason = "; ".join(str(e["msg"]) for e in exc.errors())
                report.errors.append(f"{source}: space.{dotted}: the value {value!r} is refused: {reason}")
    if rules and usable and not report.errors:
        _rule_check(report, usable, source)
    if spec.sampler == "grid":
        for dotted, param in usable.items():
            if grid_points(dotted, param) is None:
                report.errors.append(
                    f"{source}: space.{dotted}: a grid sampler needs choices or a step for a float range"
                )
    for i, params in enumerate(spec.first_trials):
        unknown = sorted(set(params) - set(spec.space))
        if unknown:
            report.errors.append(
                f"{source}: first_trials[{i}]: {', '.join(unknown)} not in the space ({', '.join(spec.space)})"
            )
    if spec.objective.is_task_metric and not (base.data.val or base.data.val_ratio > 0):
        report.errors.append(
            f"{source}: objective.metric {spec.objective.metric}: the base config has no validation split"
        )
    if spec.pruner.kind != "none" and not _evaluates(base):
        report.warnings.append(
            f"{source}: pruner {spec.pruner.kind}: the base config has no validation split, so nothing can be pruned"
        )
    if spec.parallel > spec.trials:
        report.warnings.append(f"{source}: parallel {spec.parallel} is more than the {spec.trials} trials")
    return report


def _fields_hint(dotted: str, known: list[str]) -> str:
    section = dotted.split(".")[0] + "."
    inside = [k.removeprefix(section) for k in known if k.startswith(section)]
    if inside:
        return f"the fields of {section[:-1]}: {', '.join(inside)}"
    return "sections: " + ", ".join(sorted({k.split(".")[0] for k in known if "." in k}))


def _evaluates(config: RunConfig) -> bool:
    return bool(config.data.val or config.data.val_ratio > 0)


def _rule_check(report: SpecCheck, space: dict[str, ParamSpec], source: str) -> None:
    """Refuse a bound that one of the config rules calls an error (and that the base config does not have)."""
    from workbench.config.check import gather_context
    from workbench.config.validate import validate

    ctx = gather_context(report.base)
    before = {(f.field, f.message) for f in validate(report.base, ctx) if f.severity == "error"}
    for finding in before:
        report.errors.append(f"{source}: base config {report.spec.base_config}: {finding[0]}: {finding[1]}")
    for dotted, param in space.items():
        for value in boundary_values(dotted, param):
            config = with_params(report.base, {dotted: value})
            for f in validate(config, ctx):
                if f.severity == "error" and (f.field, f.message) not in before:
                    report.errors.append(f"{source}: space.{dotted} = {value!r}: {f.field}: {f.message}")
