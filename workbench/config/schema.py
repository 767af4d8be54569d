"""The run config: one pydantic model for everything a training run needs.

Every field carries a one-line description with its unit; the Config pane
shows it, ``workbench check`` prints it, and YAML round-trips through
:func:`load_config` / :func:`dump_config`. An unknown key is an error with a
did-you-mean, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, overload

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    train: str = Field(description="training data file or datasets directory, relative to the config file")
    val: str | None = Field(None, description="validation file; when absent, val_ratio of train is held out")
    test: str | None = Field(None, description="test file, kept for evaluation; never trained on")
    max_train_examples: int | None = Field(
        None, ge=1, description="train on the first N training examples only, for a quick try"
    )
    max_eval_examples: int | None = Field(
        None, ge=1, description="evaluate on the first N validation examples only (faster evals)"
    )
    val_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="share of train held out for eval when no val file (0-1)")
    split_seed: int = Field(0, description="seed of the train/val split, so it is reproducible")
    shape: str | None = Field(None, description="force a dataset shape instead of detecting it (e.g. alpaca)")
    system_prompt: str | None = Field(None, description="system message prepended to examples that have none")
    skip_bad_rows: bool = Field(
        False, description="train on the good rows when some rows are malformed (they are counted and logged)"
    )


class LoraConfig(_Section):
    r: int = Field(16, ge=1, le=1024, description="LoRA rank: width of the low-rank update (4-64 typical)")
    alpha: float = Field(
        32, gt=0, description="LoRA alpha: the update is scaled by alpha/r (alpha/sqrt(r) with rsLoRA)"
    )
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA input (0-0.1 typical)")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="modules to adapt: 'all-linear' or names such as q_proj, v_proj"
    )
    rslora: bool = Field(False, description="rank-stabilized scaling alpha/sqrt(r): better for large ranks")
    dora: bool = Field(False, description="weight-decomposed LoRA (DoRA): slower steps, sometimes better quality")


class TrainConfig(_Section):
    optimizer: str = Field(
        "adamw_torch", description="optimizer name as transformers knows it (adamw_torch, adamw_8bit, ...)"
    )
    learning_rate: float = Field(
        2e-4, gt=0, description="peak learning rate (LoRA ~1e-4 to 2e-4; full ~1e-5 to 5e-5; DPO ~5e-7 to 5e-6)"
    )
    lr_scheduler: str = Field("cosine", description="learning-rate schedule after warmup (cosine, linear, constant)")
    warmup_ratio: float = Field(
        0.05, ge=0.0, le=0.5, description="share of steps spent warming the learning rate up from 0"
    )
    weight_decay: float = Field(0.0, ge=0.0, description="decoupled weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradients are clipped to this global norm")
    batch_size: int = Field(8, ge=1, description="examples per device per forward pass")
    grad_accum: int = Field(1, ge=1, description="forward passes accumulated per optimizer step")
    epochs: float = Field(3.0, gt=0, description="passes over the training data (ignored when max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps; overrides epochs")
    max_length: int = Field(512, ge=8, description="tokens per example; longer examples are truncated")
    packing: bool = Field(
        False,
        description="pack several examples into each sequence of max_length (best-fit): more examples per step",
    )
    padding_free: Literal["auto", True, False] = Field(
        "auto",
        description="each micro-batch as one row without padding tokens; auto: where flash-attention runs it unmasked",
    )
    group_by_length: Literal["auto", True, False] = Field(
        "auto", description="batch examples of similar length together, so rows pad less; auto: when rows are padded"
    )
    liger_kernel: bool = Field(
        False, description="Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU, loss): less memory on a CUDA GPU"
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in backward: less memory, ~30% slower"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="compute precision: auto is bf16 where the GPU or CPU (AMX, AVX512-BF16) has it, "
        "fp16 on older GPUs, else fp32",
    )
    dpo_beta: float = Field(0.1, gt=0, description="DPO: strength of the pull toward the reference model (0.05-0.5)")


class EvalConfig(_Section):
    logging_steps: int = Field(5, ge=1, description="log train loss every N optimizer steps")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps (default: about 10 times per run)")
    save_steps: int | None = Field(None, ge=1, description="checkpoint every N steps (default: each evaluation)")
    save_total_limit: int | None = Field(
        3, ge=1, description="keep at most this many checkpoints (the best is always kept)"
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop when eval loss has not improved for N evaluations (off when empty)"
    )
    stop_on_overfit: bool = Field(
        False, description="stop when the detector sees overfitting, keeping the best checkpoint"
    )
    load_best: bool = Field(True, description="the final adapter is the checkpoint with the lowest eval loss")


class DistributedConfig(_Section):
    nproc_per_node: int = Field(
        1, ge=1, description="training processes on each machine: one per GPU (torchrun's --nproc_per_node)"
    )
    nnodes: int = Field(1, ge=1, description="machines that train together; more than one needs rdzv_endpoint")
    node_rank: int | None = Field(
        None, ge=0, description="this machine's rank among nnodes (0 hosts rank 0); empty: torchrun's rendezvous picks"
    )
    rdzv_endpoint: str | None = Field(
        None, description="host:port every machine reaches for the rendezvous (required when nnodes > 1)"
    )
    rdzv_id: str | None = Field(
        None, description="rendezvous id shared by the machines of one run (default: the run id)"
    )
    backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="collective backend: auto is nccl with CUDA GPUs, gloo on CPUs"
    )
    accelerate_config: str | None = Field(
        None,
        description="an accelerate config YAML (FSDP, DeepSpeed) to launch through, relative to the config file",
    )

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port, such as node01:29500")
        return value

    @property
    def world_size(self) -> int:
        """Training processes in all: processes per node × nodes."""
        return self.nproc_per_node * self.nnodes

    def label(self) -> str:
        """How many processes train, for a summary line: "1 process", "2 processes", "8 processes (4 × 2 nodes)"."""
        n = self.world_size
        text = f"{n} process{'es' * (n != 1)}"
        if self.nnodes > 1:
            text += f" ({self.nproc_per_node} × {self.nnodes} nodes)"
        if self.accelerate_config:
            text += f" via accelerate ({Path(self.accelerate_config).name})"
        return text

    @property
    def launched(self) -> bool:
        """Whether the worker runs under a launcher (torchrun or accelerate) rather than as one process."""
        return self.world_size > 1 or self.accelerate_config is not None


class RunConfig(_Section):
    name: str = Field("run", description="a short name; the run id is built from it")
    model: str = Field("bundled", description="'bundled' (SmolLM2-135M-Instruct), a local model directory, or a hub id")
    trust_remote_code: bool = Field(
        False, description="run the model repository's own Python code (only for repos you trust)"
    )
    method: Literal["sft", "dpo"] = Field(
        "sft", description="sft: learn from demonstrations; dpo: learn from preference pairs"
    )
    finetune: Literal["lora", "qlora", "full"] = Field(
        "lora", description="lora adapters, qlora (4-bit base, CUDA), or full fine-tuning"
    )
    seed: int = Field(42, description="random seed for initialization and data order")
    data: DataConfig
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    # Where relative data paths are resolved from; set by load_config, not written out.
    base_dir: Path | None = Field(None, exclude=True, description="directory relative paths are resolved against")

    @overload
    def resolve(self, path: str) -> Path: ...
    @overload
    def resolve(self, path: None) -> None: ...
    def resolve(self, path: str | None) -> Path | None:
        """A data path from the config, resolved against the config's directory."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() or self.base_dir is None else self.base_dir / p

    def resolved_model(self) -> str:
        """The model spec, with a relative local directory resolved like data paths."""
        candidate = self.resolve(self.model)
        return str(candidate) if candidate is not None and candidate.exists() else self.model


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from YAML; errors name the file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> RunConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config fields, got {type(data).__name__}")
    lines = _key_lines(node) if node is not None else {}
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, lines)) from None
    config.base_dir = base_dir
    return config


def yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """A YAML syntax error as a ConfigError that names the file and line."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}" if mark else source
    return ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}")


def dump_config(config: RunConfig) -> str:
    """The config as YAML, in field order, without defaults hidden."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(dump_config(config), encoding="utf-8")


def _key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path of a YAML document to its 1-based line."""
    out: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            out[path] = key.start_mark.line + 1
            out.update(_key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[prefix + (i,)] = item.start_mark.line + 1
            out.update(_key_lines(item, prefix + (i,)))
    return out


def _section_model(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _explain(exc: ValidationError, source: str, lines: dict[tuple, int]) -> str:
    msgs = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        line = lines.get(loc) or lines.get(loc[:-1])
        where = f"{source}:{line}" if line else source
        if err["type"] == "extra_forbidden":
            model = _section_model(loc[:-1])
            known = list(model.model_fields) if model else []
            known = [k for k in known if k != "base_dir"]
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(known)}"
            msgs.append(f"{where}: unknown field '{field}'{hint}")
        elif err["type"] == "missing":
            msgs.append(f"{where}: missing required field '{field}'")
        else:
            got = _short(err.get("input"))
            msgs.append(f"{where}: field '{field}': {err['msg']} (got {got})")
    return "\n".join(msgs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_help() -> dict[str, str]:
    """Dotted field name -> its one-line description, for help screens and `workbench check`."""
    out: dict[str, str] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if name == "base_dir":
                continue
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            else:
                out[prefix + name] = field.description or ""

    walk(RunConfig, "")
    return out


def summary(config: RunConfig) -> list[tuple[str, str]]:
    """The few settings that identify a run, as (label, value) pairs for a side panel."""
    t, lora = config.train, config.lora
    length = f"{t.max_steps} steps" if t.max_steps else f"{t.epochs:g} epochs"
    rows = [
        ("model", Path(config.model).name if "/" in config.model and Path(config.model).exists() else config.model),
        ("method", f"{config.method.upper()} · {config.finetune}"),
        ("data", Path(config.data.train).name),
        ("lr", f"{t.learning_rate:g} {t.lr_scheduler}"),
        ("batch", f"{t.batch_size} × {t.grad_accum} accum"),
        ("length", f"{length}, max_length {t.max_length}"),
    ]
    if config.finetune != "full":
        targets = lora.target_modules if isinstance(lora.target_modules, str) else ",".join(lora.target_modules)
        rows.insert(2, ("lora", f"r={lora.r} α={lora.alpha:g} on {targets}"))
    if config.distributed.launched:
        rows.append(("processes", config.distributed.label()))
    return rows
