"""A run config as a Slurm batch script: the same run on N nodes through torchrun (``workbench export --to slurm``).

The job writes an ordinary run directory under the workspace's ``runs/``:
the batch step creates it (``python -m workbench.train.launch --prepare``,
the runner's own :func:`~workbench.train.runner.prepare`, with the config
embedded in the script), ``srun`` starts one torchrun per node, which meet at
the first node of the allocation (``scontrol show hostnames``) under the job
id and start ``python -m workbench.train.worker RUN_DIR`` once per GPU, and a
last step settles the status from the processes' recorded errors
(:func:`workbench.train.launch.finish`). Passing a run directory to the
script resumes that run instead. Paths are absolute: the workspace, the
Python that exported it and the project are expected at the same place on
every node (a shared filesystem).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from workbench.config.distributed import DEFAULT_PORT, torchrun_args
from workbench.config.schema import RunConfig, dump_config

PROJECT = Path(__file__).resolve().parents[2]
"""The directory that holds the ``workbench`` package (on PYTHONPATH in the job)."""

_CONFIG_END = "WORKBENCH_CONFIG"


def to_slurm(
    config: RunConfig,
    *,
    workspace: str | Path,
    nodes: int | None = None,
    gpus_per_node: int | None = None,
    python: str | None = None,
) -> str:
    """The sbatch script; ``nodes`` and ``gpus_per_node`` override the config's ``distributed`` section.

    ``config`` is taken as the run directory records it (see
    :func:`workbench.train.runner.resolved_copy`): every path absolute.
    """
    from workbench.train.launch import LINE_PREFIX, SHUTDOWN_TIMEOUT, WORKER
    from workbench.train.runner import resolved_copy

    d = config.distributed
    nodes = nodes or d.nnodes
    gpus = gpus_per_node or d.nproc_per_node
    distributed = d.model_copy(update={"nnodes": nodes, "nproc_per_node": gpus, "node_rank": None})
    resolved = resolved_copy(config).model_copy(update={"distributed": distributed})
    text = dump_config(resolved)
    if any(line.strip() == _CONFIG_END for line in text.splitlines()):  # cannot be, but would end the heredoc early
        raise ValueError(f"the config contains a line {_CONFIG_END}")
    port = d.rdzv_endpoint.rpartition(":")[2] if d.rdzv_endpoint else str(DEFAULT_PORT)
    ws = Path(workspace).expanduser().resolve()
    q = shlex.quote
    torchrun = torchrun_args(gpus, nodes, rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT", rdzv_id="$SLURM_JOB_ID")
    launch = " ".join(f'"{a}"' if a.startswith("$") else q(a) for a in torchrun)
    return f"""#!/bin/bash
# Slurm job: the workbench run {q(config.name)} on {nodes} node(s) x {gpus} GPU(s) = {nodes * gpus} processes.
# Written by `workbench export CONFIG --to slurm`. Submit it with:
#   sbatch FILE            a new run under {ws}/runs/
#   sbatch FILE RUN_DIR    resume that run from its last checkpoint, with the same processes
# Watch it from any machine that sees the workspace: workbench -w {q(str(ws))} runs / logs -f RUN.
# Stop it with `workbench stop RUN` (rank 0 reads the STOP file; every process stops after the same step
# and the checkpoint is saved once) or with scancel (torchrun passes SIGTERM to the processes, which stop
# the same way within {SHUTDOWN_TIMEOUT} s). A process that dies fails the run with its own error.
#SBATCH --job-name={q("workbench-" + config.name)}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --output={q(str(ws / "runs" / "slurm-%j.out"))}
set -euo pipefail

WORKSPACE={q(str(ws))}
PYTHON={q(python or sys.executable)}
export PYTHONPATH={q(str(PROJECT))}${{PYTHONPATH:+:$PYTHONPATH}}
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE={q(LINE_PREFIX)}

NODES=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
MASTER_ADDR="${{NODES[0]}}"
MASTER_PORT={port}
mkdir -p "$WORKSPACE/runs"

if [ $# -ge 1 ]; then
    RUN_DIR="$("$PYTHON" -m workbench.train.launch --reopen "$1")"
    RESUME=(--resume)
else
    CONFIG_FILE="$(mktemp --suffix=.yaml)"
    trap 'rm -f "$CONFIG_FILE"' EXIT
    cat > "$CONFIG_FILE" <<'{_CONFIG_END}'
{text.rstrip()}
{_CONFIG_END}
    RUN_DIR="$("$PYTHON" -m workbench.train.launch --prepare "$CONFIG_FILE" "$WORKSPACE" \\
        "$MASTER_ADDR:$MASTER_PORT" "$SLURM_JOB_ID")"
    RESUME=()
fi
echo "run directory: $RUN_DIR"

set +e
srun --nodes={nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 \\
    "$PYTHON" -m torch.distributed.run {launch} \\
    --tee 3 --shutdown-timeout {SHUTDOWN_TIMEOUT} \\
    -m {WORKER} "$RUN_DIR" ${{RESUME[@]+"${{RESUME[@]}}"}} >> "$RUN_DIR/train.log" 2>&1
rc=$?
set -e
"$PYTHON" -m workbench.train.launch --finish "$RUN_DIR" "$rc"
"""
