"""The distributed section: its fields and checks, the figures and memory it changes, the Slurm export."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml
from configkit import make_config
from test_config_memory import llama_7b_config

from workbench.config.derived import derived
from workbench.config.distributed import read_accelerate_config, sharding, torchrun_args
from workbench.config.memory import estimate_memory
from workbench.config.modelinfo import facts_from_config
from workbench.config.schema import load_config, parse_config, summary
from workbench.config.slurm import to_slurm
from workbench.config.trl_args import training_arguments
from workbench.config.validate import Context, Hardware, total_steps, validate
from workbench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def make(**distributed):
    return make_config(train__batch_size=4, train__grad_accum=2, distributed=distributed)


def findings(config, hardware=None):
    return {(f.severity, f.field): f for f in validate(config, Context(hardware=hardware or Hardware()))}


# --- the section --------------------------------------------------------------------------------------------


def test_defaults_are_one_process():
    d = make().distributed
    assert (d.nproc_per_node, d.nnodes, d.world_size, d.backend, d.launched) == (1, 1, 1, "auto", False)
    assert make(nproc_per_node=4, nnodes=2).distributed.world_size == 8
    assert make(accelerate_config="fsdp.yaml").distributed.launched  # one process, launched by accelerate


def test_bad_values_name_the_field_and_line():
    text = "data: {train: t.jsonl}\ndistributed:\n  nproc_per_node: 0\n  rdzv_endpoint: node01\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="c.yaml")
    assert "c.yaml:3: field 'distributed.nproc_per_node'" in str(err.value)
    assert "c.yaml:4: field 'distributed.rdzv_endpoint'" in str(err.value) and "host:port" in str(err.value)
    with pytest.raises(ConfigError, match="did you mean 'nproc_per_node'"):
        parse_config("data: {train: t.jsonl}\ndistributed:\n  nprocs_per_node: 2\n")


def test_summary_names_the_processes():
    assert ("processes", "8 processes (4 × 2 nodes)") in summary(make(nproc_per_node=4, nnodes=2, rdzv_endpoint="h:1"))
    assert all(label != "processes" for label, _ in summary(make()))


# --- checks -----------------------------------------------------------------------------------------------------


def test_several_nodes_need_a_rendezvous():
    found = findings(make(nnodes=2))
    assert ("error", "distributed.rdzv_endpoint") in found
    found = findings(make(nnodes=2, rdzv_endpoint="node01:29500"))
    assert ("warning", "distributed.rdzv_id") in found  # each machine's run id differs
    assert not any(f[0] == "error" for f in findings(make(nnodes=2, rdzv_endpoint="node01:29500", rdzv_id="job")))
    assert ("error", "distributed.node_rank") in findings(make(nnodes=2, rdzv_endpoint="h:1", node_rank=2))


def test_backend_and_gpu_count_against_the_machine():
    nccl = findings(make(nproc_per_node=2, backend="nccl"))
    assert nccl[("error", "distributed.backend")].suggestion == "auto"
    gpus = Hardware(cuda=True, bf16=True, gpu_count=2)
    too_many = findings(make(nproc_per_node=4), gpus)[("warning", "distributed.nproc_per_node")]
    assert "4 processes per node but 2 GPU(s)" in too_many.message and too_many.suggestion == 2
    assert ("warning", "distributed.nproc_per_node") not in findings(make(nproc_per_node=2), gpus)
    assert ("info", "distributed.nproc_per_node") in findings(make(nproc_per_node=2))  # CPU processes: gloo


def test_accelerate_config_is_read_and_checked(tmp_path):
    missing = findings(make(accelerate_config=str(tmp_path / "nope.yaml")))
    assert "no such accelerate config" in missing[("error", "distributed.accelerate_config")].message
    (tmp_path / "bad.yaml").write_text("distributed_type: [\n")
    bad = findings(make(accelerate_config=str(tmp_path / "bad.yaml")))
    assert "bad.yaml:2: not valid YAML" in bad[("error", "distributed.accelerate_config")].message
    (tmp_path / "fsdp.yaml").write_text("distributed_type: FSDP\nnum_processes: 8\n")
    fsdp = findings(make(nproc_per_node=2, accelerate_config=str(tmp_path / "fsdp.yaml")))
    assert "num_processes 8; the run starts 2" in fsdp[("info", "distributed.nproc_per_node")].message
    assert not any(f[0] == "error" for f in fsdp)
    assert "shards on CUDA GPUs only" in fsdp[("warning", "distributed.accelerate_config")].message  # no GPU here
    gpus = findings(
        make(nproc_per_node=2, accelerate_config=str(tmp_path / "fsdp.yaml")), Hardware(cuda=True, gpu_count=2)
    )
    assert ("warning", "distributed.accelerate_config") not in gpus


def test_the_sample_runs_on_two_processes_without_errors():
    from workbench.config.check import check_config

    config = load_config(SAMPLE / "configs" / "tiny-ddp.yaml")
    tiny = load_config(SAMPLE / "configs" / "tiny.yaml")
    assert config.distributed.world_size == 2
    assert config.model_dump(exclude={"name", "distributed"}) == tiny.model_dump(exclude={"name", "distributed"})
    assert not check_config(config, Hardware()).errors


# --- derived figures and the trainer's arguments ----------------------------------------------------------------


def test_effective_batch_and_steps_count_every_process():
    config = make_config(train__batch_size=4, train__grad_accum=2, train__epochs=2, distributed={"nproc_per_node": 4})
    d = derived(config, n_train=1000)
    assert d.effective_batch == 32 and "× 4 processes" in d.why["effective_batch"]  # 4 × 2 × 4
    assert d.steps_per_epoch == 32 and d.total_steps == 64  # ceil(1000 / 32) × 2
    assert total_steps(config, 1000) == d.total_steps
    rows = {row.label: row for row in d.lines()}
    assert rows["processes"].value == "4 (DDP over 4: a full replica on each)"
    assert "processes" not in {row.label for row in derived(make(), n_train=1000).lines()}


def test_training_arguments_of_several_processes():
    one = training_arguments(make(), output_dir="o", steps=10, has_eval=False, cuda=False)
    assert "ddp_backend" not in one and "ddp_find_unused_parameters" not in one
    two = training_arguments(make(nproc_per_node=2), output_dir="o", steps=10, has_eval=False, cuda=False)
    assert two["ddp_backend"] == "gloo" and two["ddp_find_unused_parameters"] is False
    gpus = training_arguments(make(nproc_per_node=2), output_dir="o", steps=10, has_eval=False, cuda=True)
    assert gpus["ddp_backend"] == "nccl"
    unknown = training_arguments(make(nproc_per_node=2), output_dir="o", steps=10, has_eval=False)
    assert "ddp_backend" not in unknown  # auto, on a machine not known: accelerate picks


# --- memory -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def facts_7b():
    return facts_from_config(llama_7b_config(), path="llama-7b (made up)")


def _bytes(estimate, name):
    return next((i.bytes for i in estimate.items if i.name == name), None)


def test_ddp_keeps_a_full_replica_and_fsdp_shards_it(facts_7b, tmp_path):
    accelerate = tmp_path / "fsdp.yaml"
    accelerate.write_text("distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n")
    one = estimate_memory(make(), facts_7b)
    ddp = estimate_memory(make(nproc_per_node=4), facts_7b)
    fsdp = estimate_memory(make(nproc_per_node=4, accelerate_config=str(accelerate)), facts_7b)
    assert _bytes(ddp, "weights") == _bytes(one, "weights") == facts_7b.total_params * 2  # bf16, on every GPU
    assert (
        _bytes(ddp, "DDP gradient buckets") == _bytes(one, "gradients") and _bytes(one, "DDP gradient buckets") is None
    )
    for name in ("weights", "LoRA parameters", "gradients", "optimizer states"):
        assert _bytes(fsdp, name) == math.ceil(_bytes(one, name) / 4), name
    per_layer = 4 * 4096 * 4096 + 3 * 4096 * 11008  # q, k, v, o and gate, up, down of one layer
    assert _bytes(fsdp, "gathered layers") == 2 * per_layer * 2  # this layer and the prefetched one, bf16
    assert _bytes(fsdp, "DDP gradient buckets") is None
    assert fsdp.total < one.total < ddp.total
    assert (fsdp.world_size, fsdp.sharding) == (4, "FSDP FULL_SHARD over 4")
    assert any("per GPU, 4 processes" in note for note in fsdp.notes)


def test_sharding_strategies_from_the_accelerate_config(tmp_path):
    def shard(text: str, **distributed):
        path = tmp_path / f"a{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(text)
        return sharding(make(accelerate_config=str(path), **{"nproc_per_node": 4, **distributed}))

    grad_op = shard("distributed_type: FSDP\nfsdp_config: {fsdp_version: 2, fsdp_reshard_after_forward: false}\n")
    assert (grad_op.params, grad_op.grads, grad_op.optimizer) == (1, 4, 4)
    numbered = shard("distributed_type: FSDP\nfsdp_config: {fsdp_sharding_strategy: 1}\n")  # accelerate's 1: FULL_SHARD
    assert (numbered.params, numbered.gathered_layer) == (4, True)
    hybrid = shard(
        "distributed_type: FSDP\nfsdp_config: {fsdp_reshard_after_forward: HYBRID_SHARD}\n",
        nnodes=2,
        rdzv_endpoint="h:1",
    )
    assert (hybrid.params, hybrid.label) == (4, "FSDP HYBRID_SHARD over 4")  # sharded within a node of 4, of 8
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    zero2 = shard("distributed_type: DEEPSPEED\ndeepspeed_config: {deepspeed_config_file: ds.json}\n")
    assert (zero2.params, zero2.grads, zero2.optimizer, zero2.label) == (1, 4, 4, "DeepSpeed ZeRO-2 over 4")
    zero3 = shard("distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: 3}\n")
    assert (zero3.params, zero3.gathered_layer) == (4, True)
    assert read_accelerate_config(tmp_path / "ds.json").distributed_type == "NO"  # a mapping without the key


# --- torchrun and Slurm -----------------------------------------------------------------------------------------


def test_torchrun_arguments():
    assert torchrun_args(2, 1) == ["--nproc_per_node", "2", "--nnodes", "1", "--standalone"]
    assert torchrun_args(8, 2, rdzv_endpoint="n1:29500", rdzv_id="j7")[4:] == [
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        "n1:29500",
        "--rdzv_id",
        "j7",
    ]
    assert torchrun_args(8, 2, rdzv_endpoint="n1:29500", node_rank=1)[4:] == [
        "--node_rank",
        "1",
        "--master_addr",
        "n1",
        "--master_port",
        "29500",
    ]


def test_launcher_arguments(tmp_path):
    from workbench.train.launch import launcher_args
    from workbench.train.rundir import RunDir

    run = RunDir(tmp_path / "run-1")
    kind, args = launcher_args(make(nproc_per_node=2), run, resume=True, log_dir="/tmp/x")
    assert (
        kind == "torchrun"
        and "--standalone" in args
        and args[-4:] == ["-m", "workbench.train.worker", str(run.path), "--resume"]
    )
    assert args[args.index("--tee") + 1] == "3"
    several = launcher_args(make(nproc_per_node=2, nnodes=2, rdzv_endpoint="n1:29400"), run, resume=False, log_dir="x")[
        1
    ]
    assert several[several.index("--rdzv_id") + 1] == "run-1"  # the run id, when the config names none
    (tmp_path / "fsdp.yaml").write_text("distributed_type: FSDP\n")
    kind, args = launcher_args(
        make(nproc_per_node=4, accelerate_config=str(tmp_path / "fsdp.yaml")), run, resume=False, log_dir="x"
    )
    assert kind == "accelerate" and args[:6] == [
        "--config_file",
        str(tmp_path / "fsdp.yaml"),
        "--num_processes",
        "4",
        "--num_machines",
        "1",
    ]
    assert "--multi_gpu" in args and int(args[args.index("--main_process_port") + 1]) > 0


def _slurm(tmp_path, **kwargs):
    config = load_config(SAMPLE / "configs" / "tiny-ddp.yaml")
    return to_slurm(config, workspace=tmp_path / "ws", python="/opt/venv/bin/python", **kwargs)


def test_slurm_script_runs_the_config_on_n_nodes(tmp_path):
    script = _slurm(tmp_path, nodes=3, gpus_per_node=8)
    assert "#SBATCH --nodes=3\n" in script and "#SBATCH --gpus-per-node=8\n" in script
    assert f"WORKSPACE={tmp_path / 'ws'}\n" in script and "PYTHON=/opt/venv/bin/python\n" in script
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in script
    line = next(x for x in script.splitlines() if "torch.distributed.run" in x)
    assert "--nproc_per_node 8 --nnodes 3 --rdzv_backend c10d" in line
    assert '--rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv_id "$SLURM_JOB_ID"' in line
    assert "MASTER_PORT=29500\n" in script
    embedded = script.split("<<'WORKBENCH_CONFIG'\n")[1].split("\nWORKBENCH_CONFIG\n")[0]
    config = yaml.safe_load(embedded)
    assert config["distributed"]["nnodes"] == 3 and config["distributed"]["nproc_per_node"] == 8
    assert Path(config["data"]["train"]).is_absolute() and config["data"]["train"].endswith("support/train.jsonl")
    assert "--prepare" in script and "--finish" in script and "--reopen" in script


def test_slurm_script_is_valid_bash(tmp_path):
    path = tmp_path / "job.sh"
    path.write_text(_slurm(tmp_path))
    assert "#SBATCH --nodes=1\n" in path.read_text() and "#SBATCH --gpus-per-node=2\n" in path.read_text()
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_export_slurm_from_the_command_line(tmp_path, capsys):
    from workbench.cli import main

    config = str(SAMPLE / "configs" / "tiny-ddp.yaml")
    out = tmp_path / "job.sh"
    assert main(["-w", str(tmp_path), "export", config, "--to", "slurm", "--nodes", "2", "-o", str(out)]) == 0
    assert "run it with: sbatch" in capsys.readouterr().out
    assert "#SBATCH --nodes=2\n" in out.read_text() and f"WORKSPACE={tmp_path}\n" in out.read_text()
    assert main(["export", config, "--to", "yaml", "--nodes", "2"]) == 2
    assert "--nodes and --gpus-per-node are for --to slurm" in capsys.readouterr().err


def test_slurm_script_with_a_dollar_in_the_config_keeps_it(tmp_path):
    config = load_config(SAMPLE / "configs" / "tiny-ddp.yaml")
    config.data.system_prompt = "costs $HOME and `date`"
    script = to_slurm(config, workspace=tmp_path)
    embedded = script.split("<<'WORKBENCH_CONFIG'\n")[1].split("\nWORKBENCH_CONFIG\n")[0]
    assert yaml.safe_load(embedded)["data"]["system_prompt"] == "costs $HOME and `date`"  # a quoted heredoc
