"""Training on several processes: what a config's ``distributed`` section means before anything starts.

Three things follow from the section, and each has one function here:

* the collective backend (:func:`resolve_backend`): ``auto`` is nccl where CUDA
  GPUs train, gloo on CPUs;
* how the training state is split across the processes (:func:`sharding`):
  plain DDP keeps a full replica on every device; an accelerate config for
  FSDP or DeepSpeed ZeRO shards parameters, gradients and optimizer states
  (read from the YAML, :func:`read_accelerate_config`). The memory estimate
  and the derived figures take it from here;
* torchrun's arguments (:func:`torchrun_args`), which the runner's launcher
  and the Slurm export both pass.

No torch import: the Config pane calls this on every edit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from workbench.config.schema import RunConfig, yaml_error
from workbench.errors import ConfigError

Backend = Literal["nccl", "gloo"]

DEFAULT_PORT = 29500
"""torchrun's usual rendezvous port, for a Slurm job when the config names none."""

#: FSDP1's sharding strategies by name and by accelerate's 1-based number; FSDP2's reshard flag maps to the first two.
FSDP_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "HYBRID_SHARD_ZERO2")


@dataclass(frozen=True)
class AccelerateFacts:
    """What the memory estimate and the checks need from an accelerate config file."""

    path: Path
    distributed_type: str  # FSDP, DEEPSPEED, MULTI_GPU, NO, ...
    num_processes: int | None = None
    num_machines: int | None = None
    fsdp_strategy: str | None = None  # one of FSDP_STRATEGIES
    zero_stage: int | None = None  # DeepSpeed ZeRO stage 0-3


@dataclass(frozen=True)
class Sharding:
    """Over how many processes each part of the training state is split (1: every process holds all of it)."""

    label: str
    params: int = 1
    grads: int = 1
    optimizer: int = 1
    ddp: bool = False  # DDP's gradient buckets (a second copy of the gradients) exist
    gathered_layer: bool = False  # parameters are gathered one layer at a time for compute (FSDP, ZeRO-3)

    @property
    def sharded(self) -> bool:
        return max(self.params, self.grads, self.optimizer) > 1


def resolve_backend(backend: str, cuda: bool) -> Backend:
    """The collective backend that runs: ``auto`` is nccl with CUDA, gloo without."""
    if backend == "auto":
        return "nccl" if cuda else "gloo"
    return "nccl" if backend == "nccl" else "gloo"


def accelerate_path(config: RunConfig) -> Path | None:
    """The accelerate config file, resolved against the run config's directory like the data paths."""
    return config.resolve(config.distributed.accelerate_config)


def read_accelerate_config(path: Path) -> AccelerateFacts:
    """The facts of an accelerate config YAML; a ConfigError names the file when it cannot be read."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise ConfigError(f"{path}: no such accelerate config file (distributed.accelerate_config)") from None
    return _read_accelerate(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_accelerate(path: str, _mtime: int, _size: int) -> AccelerateFacts:
    """Read once per file version: the Config pane asks on every edit."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the accelerate config ({exc})") from None
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an accelerate config is a mapping (accelerate config writes one)")
    kind = str(data.get("distributed_type") or "NO").upper()
    fsdp, deepspeed = (
        part if isinstance(part := data.get(key), dict) else {} for key in ("fsdp_config", "deepspeed_config")
    )
    return AccelerateFacts(
        Path(path),
        kind,
        _int(data.get("num_processes")),
        _int(data.get("num_machines")),
        _fsdp_strategy(fsdp) if kind == "FSDP" else None,
        _zero_stage(deepspeed, Path(path).parent) if kind == "DEEPSPEED" else None,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _fsdp_strategy(fsdp: dict[str, Any]) -> str:
    """FSDP's sharding strategy: FSDP1 names or numbers it, FSDP2 says whether it reshards after forward."""
    value = fsdp.get("fsdp_reshard_after_forward", fsdp.get("fsdp_sharding_strategy"))
    if isinstance(value, bool):
        return "FULL_SHARD" if value else "SHARD_GRAD_OP"
    if isinstance(value, int) and 1 <= value <= len(FSDP_STRATEGIES):
        return FSDP_STRATEGIES[value - 1]
    if isinstance(value, str):
        text = value.strip().upper()
        if text.isdigit() and 1 <= int(text) <= len(FSDP_STRATEGIES):
            return FSDP_STRATEGIES[int(text) - 1]
        if text in ("TRUE", "FALSE"):
            return "FULL_SHARD" if text == "TRUE" else "SHARD_GRAD_OP"
        if text in FSDP_STRATEGIES:
            return text
    return "FULL_SHARD"  # accelerate's default


def _zero_stage(deepspeed: dict[str, Any], base: Path) -> int | None:
    """The ZeRO stage: the accelerate config's own field, else the DeepSpeed JSON it points at."""
    stage = _int(deepspeed.get("zero_stage"))
    if stage is not None:
        return stage
    file = deepspeed.get("deepspeed_config_file")
    if not isinstance(file, str):
        return None
    try:
        import json

        path = Path(file) if Path(file).is_absolute() else base / file
        found = json.loads(path.read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage")
    except (OSError, ValueError, AttributeError):
        return None
    return _int(found)


def sharding(config: RunConfig, facts: AccelerateFacts | None = None) -> Sharding:
    """How the config's processes split the training state (see the module docstring).

    ``facts`` is the accelerate config's, read from ``distributed.accelerate_config``
    when not given; a file that cannot be read counts as plain DDP (the checks report it).
    """
    d = config.distributed
    n, per_node = d.world_size, d.nproc_per_node
    if facts is None and d.accelerate_config:
        try:
            facts = read_accelerate_config(accelerate_path(config) or Path(d.accelerate_config))
        except ConfigError:
            facts = None
    if n == 1:
        return Sharding("one process")
    if facts is not None and facts.distributed_type == "FSDP":
        strategy = facts.fsdp_strategy or "FULL_SHARD"
        group = per_node if strategy.startswith("HYBRID") else n
        label = f"FSDP {strategy} over {group}"
        if strategy in ("FULL_SHARD", "HYBRID_SHARD"):
            return Sharding(label, group, group, group, gathered_layer=True)
        if strategy in ("SHARD_GRAD_OP", "HYBRID_SHARD_ZERO2"):
            return Sharding(label, 1, group, group)
        return Sharding(label)
    if facts is not None and facts.distributed_type == "DEEPSPEED":
        stage = facts.zero_stage if facts.zero_stage is not None else 0
        label = f"DeepSpeed ZeRO-{stage} over {n}"
        return Sharding(
            label, n if stage >= 3 else 1, n if stage >= 2 else 1, n if stage >= 1 else 1, False, stage >= 3
        )
    return Sharding(f"DDP over {n}: a full replica on each", ddp=True)


def torchrun_args(
    nproc_per_node: int | str,
    nnodes: int | str,
    *,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
    node_rank: int | str | None = None,
) -> list[str]:
    """torchrun's arguments for this many processes (before ``-m module``); strings pass shell variables through.

    One node without an endpoint is ``--standalone``: a rendezvous on a free local
    port, so two runs on one machine never collide. More nodes meet at
    ``rdzv_endpoint``: through the c10d rendezvous under ``rdzv_id``, which hands
    out the node ranks, or, when ``node_rank`` is given, through torchrun's static
    rendezvous with the endpoint as the master address and this node's fixed rank.
    """
    args = ["--nproc_per_node", str(nproc_per_node), "--nnodes", str(nnodes)]
    if str(nnodes) == "1" and rdzv_endpoint is None:
        return [*args, "--standalone"]
    host, _, port = str(rdzv_endpoint).rpartition(":")
    if node_rank is not None:
        return [*args, "--node_rank", str(node_rank), "--master_addr", host, "--master_port", port]
    args += ["--rdzv_backend", "c10d", "--rdzv_endpoint", str(rdzv_endpoint)]
    return args + (["--rdzv_id", rdzv_id] if rdzv_id else [])
