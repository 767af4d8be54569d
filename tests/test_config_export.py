"""Exports of a run config: the workbench YAML, TRL's CLI config (read back by TRL's own parser), a script."""

from __future__ import annotations

import enum
import importlib
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.config import RunConfig, load_config, parse_config
from workbench.config.check import count_training_examples
from workbench.config.export import to_python_script, to_trl_config, to_yaml
from workbench.config.trl_args import (
    EVAL_SHARE,
    checkpointing_key,
    machine_precision,
    peft_arguments,
    precision_arguments,
    resolve_precision,
    training_arguments,
)
from workbench.config.validate import Hardware, total_steps
from workbench.data.split import split_rows
from workbench.models import BUNDLED_HUB_ID

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "sample_data" / "configs"
SUPPORT = ROOT / "sample_data" / "support"
CPU = Hardware()


def sample(name: str, **changes) -> RunConfig:
    """A sample config with some sections' fields changed: sample("tiny", train={"packing": True})."""
    config = load_config(CONFIGS / f"{name}.yaml")
    data = config.model_dump()
    for section, values in changes.items():
        if isinstance(values, dict):
            data[section].update(values)
        else:
            data[section] = values
    result = RunConfig.model_validate(data)
    result.base_dir = config.base_dir
    return result


def trl_parse(config: RunConfig, tmp_path: Path, **kwargs):
    """The export read back by the parser `trl sft` / `trl dpo` builds: (script, training, model, datasets) args."""
    export = to_trl_config(config, hardware=CPU, **kwargs)
    path = tmp_path / f"{config.name}.trl.yaml"
    path.write_text(export.yaml_text)
    parser = importlib.import_module(f"trl.scripts.{config.method}").make_parser()
    # fail_with_unknown_args (the default) makes any key TRL does not know an error
    return parser.parse_args_and_config(["--config", str(path)])


# --- the workbench YAML ------------------------------------------------------------------------------------


def test_to_yaml_round_trips():
    config = sample("demo")
    assert parse_config(to_yaml(config)).model_dump() == config.model_dump()


# --- TRL's CLI ---------------------------------------------------------------------------------------------


def test_trl_sft_export_parses_with_trls_own_parser(tmp_path):
    config = sample(
        "tiny",
        lora={"dora": True, "dropout": 0.1},
        train={"packing": True, "grad_accum": 2, "weight_decay": 0.01, "lr_scheduler": "linear"},
    )
    _, args, model, mixture = trl_parse(config, tmp_path, output_dir=str(tmp_path / "out"))
    assert type(args).__name__ == "SFTConfig"
    assert Path(model.model_name_or_path).is_dir() and model.dtype == "float32"
    assert model.use_peft and model.lora_r == 8 and model.lora_alpha == 16 and model.lora_dropout == 0.1
    assert model.lora_target_modules == ["q_proj", "v_proj"] and model.use_dora and not model.use_rslora
    [dataset] = mixture.datasets
    assert (dataset.path, dataset.data_files) == ("json", str(SUPPORT / "train.jsonl"))
    assert dataset.split == "train[:16]"  # max_train_examples, with no held-out split to come after it
    assert mixture.test_split_size is None
    assert args.learning_rate == 5e-4 and args.lr_scheduler_type.value == "linear" and args.warmup_steps == 0.05
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 2
    assert args.weight_decay == 0.01 and args.max_grad_norm == 1.0 and args.optim.value == "adamw_torch"
    assert args.max_steps == 4 and args.max_length == 192 and args.packing is True
    assert args.bf16 is False and args.fp16 is False  # TRL would turn bf16 on if we left it out
    assert args.activation_checkpointing is False and args.gradient_checkpointing is False
    assert args.seed == 42 and args.data_seed == 42 and args.run_name == "tiny"
    assert args.output_dir == str(tmp_path / "out") and args.logging_steps == 1
    # data.val is a separate file: TRL's CLI cannot take one, so evaluation is off and the YAML says why
    assert args.eval_strategy.value == "no" and args.load_best_model_at_end is False
    assert args.save_steps == 2


def test_trl_dpo_export_parses_with_trls_own_parser(tmp_path):
    config = sample(
        "dpo",
        lora={"rslora": True, "target_modules": ["q_proj", "k_proj", "v_proj"]},
        train={"gradient_checkpointing": True, "dpo_beta": 0.25},
    )
    _, args, model, mixture = trl_parse(config, tmp_path)
    assert type(args).__name__ == "DPOConfig"
    assert args.beta == 0.25 and args.learning_rate == 3e-5 and args.max_steps == 20 and args.max_length == 256
    assert args.activation_checkpointing is True
    assert model.use_rslora and model.lora_r == 16 and model.lora_alpha == 32
    assert model.lora_target_modules == ["q_proj", "k_proj", "v_proj"]
    [dataset] = mixture.datasets
    assert dataset.data_files == str(SUPPORT / "preferences.jsonl") and dataset.split == "train"
    assert mixture.test_split_size == 0.1  # val_ratio: TRL holds the share out itself
    assert args.eval_strategy.value == "steps" and args.eval_steps == 5 and args.save_steps == 5
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss" and not args.greater_is_better
    assert args.save_total_limit == 3 and args.output_dir == "outputs/dpo"


def test_trl_export_eval_interval_without_and_with_the_dataset_size(tmp_path):
    config = sample("dpo", train={"max_steps": None, "epochs": 2}, eval={"eval_steps": None})
    _, args, _, _ = trl_parse(config, tmp_path)
    assert args.eval_steps == EVAL_SHARE and args.save_steps == EVAL_SHARE and args.load_best_model_at_end
    # 90 examples / batch 4 = 23 steps per epoch, 46 steps; the workbench evaluates every 46 // 10 = 4
    _, args, _, _ = trl_parse(config, tmp_path, n_train=90)
    assert args.eval_steps == 4 and args.save_steps == 4


def test_trl_export_full_fine_tuning_qlora_and_precision(tmp_path):
    _, _, model, _ = trl_parse(sample("tiny", finetune="full", train={"precision": "fp32"}), tmp_path)
    assert model.use_peft is False
    text = to_trl_config(sample("tiny", finetune="qlora"), hardware=Hardware(cuda=True, bf16=True)).yaml_text
    exported = yaml.safe_load(text)
    assert exported["load_in_4bit"] and exported["use_bnb_nested_quant"] and exported["bnb_4bit_quant_type"] == "nf4"
    assert exported["dtype"] == "bfloat16" and exported["bf16"] is True and exported["fp16"] is False
    assert "precision auto: resolved to bf16" in text
    fp16 = yaml.safe_load(to_trl_config(sample("tiny", train={"precision": "fp16"}), hardware=CPU).yaml_text)
    assert (fp16["dtype"], fp16["bf16"], fp16["fp16"]) == ("float32", False, True)


def test_trl_export_comments_what_has_no_trl_equivalent():
    config = sample(
        "demo",
        eval={"stop_on_overfit": True, "early_stopping_patience": 3},
        data={"system_prompt": "Be brief.", "max_eval_examples": 10},
    )
    export = to_trl_config(config, hardware=CPU)
    assert export.command == "trl sft --config FILE"
    comments = "\n".join(line for line in export.yaml_text.splitlines() if line.startswith("#"))
    for field in (
        "eval.stop_on_overfit",
        "eval.early_stopping_patience",
        "data.val",
        "data.system_prompt",
        "completion-only loss",
    ):
        assert field in comments
    assert comments.count("no TRL equivalent") >= 5
    assert "stop_on_overfit" not in yaml.safe_load(export.yaml_text)  # comments only, never keys TRL would refuse


def test_exports_embed_no_environment_values(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    config = sample("dpo")
    for text in (to_yaml(config), to_trl_config(config, hardware=CPU).yaml_text, to_python_script(config)):
        assert "hf_secret_value_123" not in text
    # the cache appears only as the bundled model's converted copy (see the next test), never otherwise
    monkeypatch.setenv("WORKBENCH_CACHE", "/secret/cache/place")
    config = sample("dpo", model=str(tiny_model_dir))
    for text in (to_yaml(config), to_trl_config(config, hardware=CPU).yaml_text, to_python_script(config)):
        assert "hf_secret_value_123" not in text and "/secret/cache/place" not in text


def test_exports_of_the_bundled_model_name_its_local_copy(bundled_dir, tmp_path):
    """Defect 5: the hub id cannot be reached without a hub; the exports load the converted copy, hub id beside it."""
    text = to_trl_config(sample("tiny"), hardware=CPU).yaml_text
    path = Path(yaml.safe_load(text)["model_name_or_path"])
    assert path.is_absolute() and path.is_dir() and (path / "config.json").is_file()
    assert path == bundled_dir
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert any(BUNDLED_HUB_ID in line for line in comments)
    assert all(BUNDLED_HUB_ID not in line for line in text.splitlines() if not line.startswith("#"))
    script = tmp_path / "train.py"
    script.write_text(to_python_script(sample("tiny")))
    assert runpy.run_path(str(script), run_name="exported")["MODEL"] == str(bundled_dir)
    [line] = [line for line in script.read_text().splitlines() if line.startswith("MODEL = ")]
    assert line.split("#", 1)[1].strip() == f"the hub original: {BUNDLED_HUB_ID}"


def test_training_arguments_of_the_demo_config():
    """training_arguments on a sample config: intervals, schedule, LoRA, precision (build_trainer: next test)."""
    config = sample("demo")
    args = training_arguments(config, output_dir="/runs/x", steps=64, has_eval=True)
    assert args["eval_steps"] == args["save_steps"] == 4 and args["warmup_steps"] == 0.05
    assert args["max_steps"] == -1 and args["num_train_epochs"] == 5 and args["packing"] is False
    assert args[checkpointing_key()] is False and "beta" not in args
    assert peft_arguments(config) == {
        "r": 32,
        "lora_alpha": 64,
        "lora_dropout": 0.0,
        "target_modules": "all-linear",
        "use_rslora": False,
        "use_dora": False,
        "task_type": "CAUSAL_LM",
    }
    assert peft_arguments(sample("demo", finetune="full")) is None
    assert resolve_precision("auto", Hardware(cuda=True, bf16=False)) == "fp16"
    assert resolve_precision("auto", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    from trl import SFTConfig

    SFTConfig(**args, use_cpu=True, bf16=False)  # every key is one SFTConfig takes
    with_flags = training_arguments(config, output_dir="/runs/x", steps=64, has_eval=True, precision="fp16")
    assert with_flags == {**args, **precision_arguments("fp16")[1]}


def _plain(value):
    return value.value if isinstance(value, enum.Enum) else value


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_the_mapping_is_the_workers(tiny_model_dir, tmp_path, method):
    """The real trainer of build_trainer has exactly the shared mapping's arguments, and both exports write them.

    build_trainer is what the worker and the probe train with. Every field of its TRL config equals that of a
    config built from training_arguments (plus the worker's process settings), so an argument the worker set
    anywhere else would fail here; the TRL CLI export, read back by TRL's own parser, and the script's ARGS
    carry the same values for every key of the mapping.
    """
    import torch
    from transformers import TrainerCallback

    from workbench.train.rundir import RunDir
    from workbench.train.worker import PROCESS_ARGUMENTS, build_trainer

    config = _tiny_config(tiny_model_dir, tmp_path, method)
    config.data.val = None  # a held-out share, so TRL's CLI evaluates as the worker does
    config.data.max_train_examples = 40
    config.train.max_steps, config.train.epochs = None, 1  # steps from the data: 40 examples / batch 2 = 20
    config.eval.eval_steps = None  # about ten evaluations: every 2 steps
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    trainer, _ = build_trainer(run, config, TrainerCallback())
    n_train = count_training_examples(config)
    assert n_train == 40 and trainer.args.eval_steps == 2 and trainer.args.save_steps == 2
    precision = machine_precision(config.train.precision)
    mapping = training_arguments(
        config,
        output_dir=str(run.path),
        steps=total_steps(config, n_train),
        has_eval=True,
        precision=precision,
    )
    expected = type(trainer.args)(**mapping, **PROCESS_ARGUMENTS, use_cpu=not torch.cuda.is_available())
    assert trainer.args.to_dict() == expected.to_dict()  # field by field, as the config classes normalize them

    peft = peft_arguments(config)
    lora = trainer.model.peft_config["default"]
    for key, value in peft.items():
        got = _plain(getattr(lora, key))
        assert (set(got) if key == "target_modules" else got) == (set(value) if key == "target_modules" else value)
    assert trainer.model.dtype == getattr(torch, precision_arguments(precision, cuda=torch.cuda.is_available())[0])

    _, exported, model, _ = trl_parse(config, tmp_path, n_train=n_train, output_dir=str(run.path))
    assert model.model_name_or_path == str(tiny_model_dir)
    for key in mapping:
        assert _plain(getattr(exported, key)) == _plain(getattr(trainer.args, key)), key

    script = tmp_path / "train.py"
    script.write_text(to_python_script(config, n_train=n_train, output_dir=str(run.path)))
    ns = runpy.run_path(str(script), run_name="exported")
    flags = ns["PRECISIONS"][ns["precision"]()][1]
    assert {**ns["ARGS"], **flags} == mapping
    assert ns["LORA"] == peft


# --- the standalone script ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "dpo", "demo"])
def test_script_compiles_and_imports_no_workbench(name):
    script = to_python_script(sample(name))
    compile(script, f"{name}.py", "exec")
    imports = {line.split()[1].split(".")[0] for line in script.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {
        "__future__",
        "json",
        "math",
        "random",
        "pathlib",
        "torch",
        "datasets",
        "peft",
        "transformers",
        "trl",
    }
    assert "workbench" not in imports


def test_script_splits_and_converts_rows_like_the_workbench(tmp_path):
    from workbench.data import load_rows, normalize
    from workbench.train.dataprep import completion_only

    path = tmp_path / "x.py"
    path.write_text(to_python_script(sample("dpo", method="sft", data={"system_prompt": "Be brief."})))
    script = runpy.run_path(str(path), run_name="exported")
    for n, ratio, seed in [(10, 0.1, 0), (97, 0.25, 3), (3, 0.05, 1), (288, 0.1, 42)]:
        expected = split_rows(list(range(n)), ratios=(1 - ratio, ratio, 0.0), seed=seed)
        assert script["hold_out"](list(range(n)), ratio, seed) == (expected.train, expected.val)
    for source in ("train.jsonl", "alpaca_sample.json", "sharegpt_sample.jsonl", "preferences.jsonl"):
        loaded = load_rows(SUPPORT / source)
        ours = [
            completion_only(r) for r in normalize(loaded.rows, loaded.shape, method="sft", system_prompt="Be brief.")
        ]
        assert script["load"](SUPPORT / source) == ours, source


def _tiny_config(tiny_model_dir: Path, tmp_path: Path, method: str) -> RunConfig:
    train = SUPPORT / ("preferences.jsonl" if method == "dpo" else "train.jsonl")
    data = {"train": str(train), "max_train_examples": 8, "val_ratio": 0.2, "max_eval_examples": 4}
    if method == "sft":
        data.update(val=str(SUPPORT / "val.jsonl"))
    return RunConfig.model_validate(
        {
            "name": f"tiny-{method}",
            "model": str(tiny_model_dir),
            "method": method,
            "data": data,
            "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            "train": {"batch_size": 2, "max_steps": 2, "max_length": 384, "learning_rate": 1e-3, "precision": "fp32"},
            "eval": {"logging_steps": 1, "eval_steps": 1},
        }
    )


def _run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_script_trains_the_tiny_model(tiny_model_dir, tmp_path, method):
    out = tmp_path / "out"
    script = tmp_path / "train.py"
    script.write_text(to_python_script(_tiny_config(tiny_model_dir, tmp_path, method), output_dir=str(out)))
    _run([sys.executable, str(script)], tmp_path)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and any("eval_loss" in entry for entry in state["log_history"])


@pytest.mark.slow
def test_trl_export_trains_with_trls_own_script(tiny_model_dir, tmp_path):
    """`trl sft --config FILE` minus the accelerate launcher: TRL's sft script reads and trains the export."""
    out = tmp_path / "out"
    config = _tiny_config(tiny_model_dir, tmp_path, "sft")
    config.data.val = None  # a held-out share, so TRL evaluates too
    path = tmp_path / "tiny.trl.yaml"
    path.write_text(to_trl_config(config, output_dir=str(out), hardware=CPU).yaml_text)
    _run([sys.executable, "-m", "trl.scripts.sft", "--config", str(path)], tmp_path)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
