"""A run config exported three ways: the workbench's YAML, TRL's CLI config, a standalone script.

The TRL config and the script take their trainer arguments from the one
mapping the worker's ``build_trainer`` uses too (:mod:`workbench.config.trl_args`),
so an exported run trains like the workbench's.

What TRL's CLI cannot express (the workbench's overfitting detector, a
separate validation file, ...) is written into the exported YAML as a comment
line saying so; the script keeps all of it that plain TRL can do. No export
reads the environment for values to embed (tokens and the like); the one
machine-specific value is the bundled model's converted copy, named by its
local path because its hub original may be out of reach (the hub id is
written beside it).
"""

from __future__ import annotations

import os
import pprint
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from workbench.config.derived import has_eval_split
from workbench.config.schema import RunConfig, dump_config
from workbench.config.trl_args import (
    PRECISIONS,
    peft_arguments,
    precision_plan,
    quantization_arguments,
    schedule,
    training_arguments,
)
from workbench.config.validate import Hardware, total_steps
from workbench.models import BUNDLED_HUB_ID, BUNDLED_NAME, bundled_model_dir, is_bundled

#: datasets' builder for each data file extension.
_BUILDERS = {
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: PEFT LoraConfig argument -> TRL ModelConfig field.
_TRL_LORA_KEYS = {
    "r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "target_modules": "lora_target_modules",
    "use_rslora": "use_rslora",
    "use_dora": "use_dora",
    "task_type": "lora_task_type",
}

#: BitsAndBytesConfig argument -> TRL ModelConfig field (TRL computes in the load dtype: no compute dtype field).
_TRL_QUANT_KEYS = {
    "load_in_4bit": "load_in_4bit",
    "bnb_4bit_quant_type": "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant": "use_bnb_nested_quant",
}

_NO_TRL = "no TRL equivalent"

#: training_arguments keys that go into the exported YAML's evaluation section.
_EVAL_KEYS = (
    "logging_steps",
    "logging_first_step",
    "eval_strategy",
    "eval_steps",
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "load_best_model_at_end",
    "metric_for_best_model",
    "greater_is_better",
    "report_to",
)

_COMPLETION_ONLY_NOTE = (
    f"completion-only loss on conversations: {_NO_TRL}; the workbench splits each conversation into prompt + "
    "final assistant turn and trains on that turn only; TRL does the same for prompt/completion rows, but trains "
    "'messages' rows on every token (assistant_only_loss needs a chat template with generation markers)"
)


class TrlExport(NamedTuple):
    """A TRL CLI config and the command that runs it (``FILE`` stands for where the YAML is written)."""

    yaml_text: str
    command: str


class ModelReference(NamedTuple):
    """What ``from_pretrained`` loads outside the workbench, and the hub original when that is a local copy."""

    path: str
    hub_id: str | None = None


def model_reference(config: RunConfig) -> ModelReference:
    """A local directory (absolute) or a hub id; the bundled model is its converted copy on this machine.

    The bundled model's hub original cannot be reached from a machine
    without the hub, and it is not the copy the workbench trains (that one
    is dequantized from the bundled Q4_1 GGUF): the export names the local
    copy, converting it first if this machine has not yet, and gives the hub
    id for use elsewhere.
    """
    if is_bundled(config.model):
        return ModelReference(str(bundled_model_dir()), BUNDLED_HUB_ID)
    return ModelReference(config.resolved_model())


def _bundled_note(ref: ModelReference) -> str:
    return (
        f"model: the workbench's copy of {BUNDLED_NAME}, converted from its bundled GGUF (Q4_1) into this "
        f"machine's cache; on a machine with the hub use the original, {ref.hub_id}"
    )


def data_path(config: RunConfig, value: str | None) -> str | None:
    """A data path from the config, resolved against the config's directory."""
    path = config.resolve(value)
    return None if path is None else os.path.normpath(path)


def default_output_dir(config: RunConfig) -> str:
    return f"outputs/{config.name}"


# --- the workbench's own YAML ----------------------------------------------------------------------------


def to_yaml(config: RunConfig) -> str:
    """The YAML the workbench trains from (``workbench train FILE``)."""
    return dump_config(config)


# --- TRL's CLI ---------------------------------------------------------------------------------------------


def to_trl_config(
    config: RunConfig,
    *,
    n_train: int | None = None,
    output_dir: str | None = None,
    hardware: Hardware | None = None,
) -> TrlExport:
    """A config file for ``trl sft --config FILE`` or ``trl dpo --config FILE``.

    ``n_train`` (training examples, as the worker counts them) pins the
    eval interval to the workbench's exact step; without it the interval is
    a share of the run (:func:`~workbench.config.trl_args.schedule`).
    ``precision: auto`` is resolved for ``hardware`` (this machine's when
    None), since TRL has no "best available" setting.
    """
    hardware = hardware or Hardware.detect()
    notes: dict[str, list[str]] = {title: [] for title in ("model", "data", "lora", "training", "evaluation")}
    data, has_eval = _trl_data(config, notes["data"])
    plan = precision_plan(config.train.precision, hardware)
    precision, dtype = plan.precision, plan.weights
    steps = total_steps(config, n_train)
    args = training_arguments(
        config,
        output_dir=output_dir or default_output_dir(config),
        steps=steps,
        has_eval=has_eval,
        precision=precision,
    )
    note = schedule(config, steps).note
    if note:
        notes["evaluation"].append(note)
    _unmapped_eval(config, notes["evaluation"])
    if config.train.precision == "auto":
        notes["training"].append(
            f"train.precision auto: resolved to {plan.label} for the exporting machine ({plan.why}); "
            "the workbench decides on the machine that trains"
        )
    if config.method == "sft":
        notes["training"].append(_COMPLETION_ONLY_NOTE)
    if config.train.padding_free is True and not config.train.packing:
        notes["training"].append(_PADDING_FREE_NOTE)
    ref = model_reference(config)
    model: dict[str, Any] = {"model_name_or_path": ref.path, "dtype": dtype}
    if ref.hub_id:
        notes["model"].append(_bundled_note(ref))
    lora = _trl_lora(config, model, notes["lora"])
    evaluation = {k: args.pop(k) for k in _EVAL_KEYS}
    sections = {"model": model, "data": data, "lora": lora, "training": args, "evaluation": evaluation}
    text = "".join(
        _comment(line)
        for line in (
            f"TRL CLI config for the workbench run '{config.name}' ({config.method.upper()}, {config.finetune}).",
            f"Run it with: trl {config.method} --config FILE",
            "Comment lines name what TRL's CLI has no equivalent for, and what differs from a workbench run.",
        )
    )
    for title, values in sections.items():
        text += "\n" + _comment(title) + "".join(_comment(note) for note in notes[title])
        text += yaml.safe_dump(values, sort_keys=False, allow_unicode=True, width=1000)
    return TrlExport(text, f"trl {config.method} --config FILE")


def _trl_data(config: RunConfig, notes: list[str]) -> tuple[dict[str, Any], bool]:
    """The ``datasets`` mixture section (TRL's DatasetMixtureConfig) and whether it yields an eval split."""
    d = config.data
    train = data_path(config, d.train)
    assert train is not None
    builder = _builder(Path(train))
    entry: dict[str, Any] = {"path": builder or train, "data_files": train, "split": "train"}
    if builder is None:
        del entry["data_files"]
        notes.append(
            f"data.train {d.train}: {_NO_TRL} for this kind of data; TRL's CLI reads jsonl, json, csv and parquet files"
        )
    section: dict[str, Any] = {"datasets": [entry]}
    split_here = d.val is None and d.val_ratio > 0
    if split_here:
        section["test_split_size"] = d.val_ratio
        notes.append(
            f"data.split_seed {d.split_seed}: {_NO_TRL}; TRL holds out its test_split_size share at "
            "random on each run, not the workbench's seeded split"
        )
        if d.max_train_examples:
            notes.append(f"data.max_train_examples {d.max_train_examples}: {_NO_TRL} after a held-out split")
        if d.max_eval_examples:
            notes.append(
                f"data.max_eval_examples {d.max_eval_examples}: {_NO_TRL}; TRL evaluates on the whole held-out share"
            )
    elif d.max_train_examples:
        entry["split"] = f"train[:{d.max_train_examples}]"
    if d.val is not None:
        notes.append(
            f"data.val {d.val}: {_NO_TRL}; TRL's CLI reads one mixture of datasets with no separate "
            "eval file, so evaluation and load_best_model_at_end are off here (the Python script keeps them)"
        )
    if d.shape or d.system_prompt:
        notes.append(
            f"data.shape / data.system_prompt: {_NO_TRL}; TRL reads rows as they are (messages, "
            "prompt/completion, text or preference columns), the workbench also converts alpaca and "
            "ShareGPT rows and adds the system prompt"
        )
    if d.skip_bad_rows:
        notes.append(f"data.skip_bad_rows: {_NO_TRL}; a malformed row stops TRL")
    return section, split_here


def _trl_lora(config: RunConfig, model: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The LoRA fields of TRL's ModelConfig; quantization settings go into ``model``."""
    peft = peft_arguments(config)
    if peft is None:
        return {"use_peft": False}
    quant = quantization_arguments(config)
    if quant is not None:
        model.update({_TRL_QUANT_KEYS[k]: v for k, v in quant.items() if k in _TRL_QUANT_KEYS})
        compute = quant["bnb_4bit_compute_dtype"]
        if model["dtype"] != compute:
            notes.append(
                f"finetune qlora: the workbench computes in {compute}, TRL in the load dtype ({model['dtype']})"
            )
    fields = {_TRL_LORA_KEYS[k]: v for k, v in peft.items()}
    targets = fields["lora_target_modules"]
    fields["lora_target_modules"] = [targets] if isinstance(targets, str) else list(targets)
    return {"use_peft": True, **fields}


def _unmapped_eval(config: RunConfig, notes: list[str]) -> None:
    e = config.eval
    if e.early_stopping_patience:
        notes.append(
            f"eval.early_stopping_patience {e.early_stopping_patience}: {_NO_TRL}; the CLI takes no "
            "callbacks (the Python script has EarlyStoppingCallback)"
        )
    if e.stop_on_overfit:
        notes.append(f"eval.stop_on_overfit: {_NO_TRL}; the workbench's overfitting detector stops the run")


# --- a standalone Python script ----------------------------------------------------------------------------


def to_python_script(config: RunConfig, *, n_train: int | None = None, output_dir: str | None = None) -> str:
    """A standalone script (datasets, transformers, trl, peft; no workbench) that trains the same run.

    It reads the same data files, converts rows the way the workbench does
    (conversations become prompt + final answer, so the loss is on the
    answer), holds out the same seeded validation rows, and resolves
    ``precision: auto`` on the machine it runs on. ``n_train`` settles the
    eval interval as for :func:`to_trl_config`.
    """
    d, e = config.data, config.eval
    steps = total_steps(config, n_train)
    args = training_arguments(
        config,
        output_dir=output_dir or default_output_dir(config),
        steps=steps,
        has_eval=has_eval_split(config),
    )
    ref = model_reference(config)
    missing = [
        note
        for flag, note in (
            (
                e.stop_on_overfit,
                "eval.stop_on_overfit: the workbench's overfitting detector is not part of this script",
            ),
            (d.skip_bad_rows, "data.skip_bad_rows: a malformed row stops this script"),
            (config.train.padding_free is True and not config.train.packing, _PADDING_FREE_NOTE),
            (d.shape, f"data.shape {d.shape}: this script detects each row's shape by its keys"),
        )
        if flag
    ]
    note = schedule(config, steps).note
    constants = {
        "MODEL": ref.path,
        "METHOD": config.method,
        "TRAIN_FILE": data_path(config, d.train),
        "VAL_FILE": data_path(config, d.val),
        "VAL_RATIO": d.val_ratio,
        "SPLIT_SEED": d.split_seed,
        "MAX_TRAIN_EXAMPLES": d.max_train_examples,
        "MAX_EVAL_EXAMPLES": d.max_eval_examples,
        "SYSTEM_PROMPT": d.system_prompt,
        "PRECISION": config.train.precision,
        "PRECISIONS": PRECISIONS,
        "QUANTIZATION": quantization_arguments(config),
        "TRUST_REMOTE_CODE": config.trust_remote_code,
        "EARLY_STOPPING_PATIENCE": e.early_stopping_patience,
        "LORA": peft_arguments(config),
        "ARGS": args,
    }
    trainer = "DPO" if config.method == "dpo" else "SFT"
    docstring = [
        f"Train the workbench run '{config.name}': {config.method.upper()} with {config.finetune}",
        f"on {constants['MODEL']}.",
        "",
        "Exported by finetune-workbench. Standalone: it needs datasets, transformers, trl and peft",
        "(and the torch they run on). Run it with:  python THIS_FILE",
    ]
    if ref.hub_id:
        docstring += ["", *textwrap.wrap(_bundled_note(ref) + " (set MODEL to it).", width=100)]
    if note:
        docstring += ["", *textwrap.wrap(note + ".", width=100)]
    if missing:
        docstring += ["", "Not in this script:"] + [f"- {note}" for note in missing]
    comments = {"MODEL": f"  # the hub original: {ref.hub_id}" if ref.hub_id else ""}
    body = "\n".join(f"{name} = {_literal(value)}{comments.get(name, '')}" for name, value in constants.items())
    return (
        "#!/usr/bin/env python3\n"
        + '"""'
        + "\n".join(docstring).replace('"""', "'''")
        + '\n"""\n\n'
        + _SCRIPT_IMPORTS.replace("{TRAINER}", trainer)
        + "\n"
        + body
        + "\n"
        + _SCRIPT_CODE.replace("{TRAINER}", trainer)
    )


def _literal(value: Any) -> str:
    """A Python literal for a constant of the script, wrapped to stay readable."""
    return pprint.pformat(value, width=100, sort_dicts=False)


_SCRIPT_IMPORTS = """from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch
from datasets import Dataset, load_dataset, load_from_disk
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, EarlyStoppingCallback
from trl import {TRAINER}Config, {TRAINER}Trainer
"""

_PADDING_FREE_NOTE = (
    "train.padding_free: TRL refuses a max_length with padding-free rows unless it packs, so max_length is "
    "null here and examples longer than train.max_length are not cut (the workbench cuts them after tokenizing)"
)

_SCRIPT_CODE = '''SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "tool": "tool", "function_call": "assistant", "observation": "tool"}
BUILDERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def read_rows(path):
    """The rows of a JSONL/JSON/CSV/Parquet file or a datasets directory, as dicts."""
    path = Path(path)
    if path.is_dir():
        data = load_from_disk(str(path))
        return [dict(row) for row in (data["train"] if hasattr(data, "keys") else data)]
    if path.suffix.lower() in BUILDERS:
        return [dict(row) for row in load_dataset(BUILDERS[path.suffix.lower()], data_files=str(path), split="train")]
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # JSON lines in a .json file
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if isinstance(data, list):
            return data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def messages(value, role):
    """A field as chat messages: a string is one turn of `role`; ShareGPT from/value keys are mapped."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [message(m) for m in value]


def message(m):
    """One turn as {role, content}, keeping its other keys (tool_calls, name)."""
    role = m["role"] if m.get("role") is not None else SHAREGPT_ROLES[m["from"]]
    content = m["content"] if m.get("content") is not None else m.get("value")
    extra = {k: v for k, v in m.items() if v is not None and k not in ("role", "content", "from", "value")}
    return {"role": role, "content": content, **extra}


def with_system(turns):
    if SYSTEM_PROMPT and turns and turns[0]["role"] != "system":
        return [{"role": "system", "content": SYSTEM_PROMPT}, *turns]
    return turns


def sft_example(row):
    """A row as TRL's SFT takes it; a conversation becomes prompt + final answer, so only the answer is learned."""
    if "instruction" in row and "output" in row:  # alpaca
        extra = row.get("input") or ""
        user = f"{row['instruction']}\\n\\n{extra}" if extra.strip() else row["instruction"]
        turns = [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
    elif "conversations" in row:  # ShareGPT
        turns = messages(row["conversations"], "user")
    elif "messages" in row:
        turns = messages(row["messages"], "user")
    elif "prompt" in row and ("completion" in row or "chosen" in row):
        if "label" in row and not row["label"]:
            return None  # an unpaired preference row labelled bad: not a demonstration
        answer = row["completion"] if "completion" in row else row["chosen"]
        return {"prompt": with_system(messages(row["prompt"], "user")), "completion": messages(answer, "assistant")}
    elif "chosen" in row:  # preference pairs without a prompt: train on the chosen conversation
        if isinstance(row["chosen"], str):
            return {"text": row["chosen"]}
        return {"messages": with_system(messages(row["chosen"], "user"))}
    else:
        return {"text": row["text"]}
    turns = with_system(turns)
    if len(turns) > 1 and turns[-1]["role"] == "assistant":
        return {"prompt": turns[:-1], "completion": turns[-1:]}
    return {"messages": turns}


def dpo_example(row):
    """A preference pair as TRL's DPO takes it (pairs without a prompt are left for TRL to split)."""
    if "prompt" not in row:
        return {"chosen": row["chosen"], "rejected": row["rejected"]}
    return {"prompt": with_system(messages(row["prompt"], "user")),
            "chosen": messages(row["chosen"], "assistant"), "rejected": messages(row["rejected"], "assistant")}


def load(path):
    convert = dpo_example if METHOD == "dpo" else sft_example
    rows = [convert(row) for row in read_rows(path)]
    return [row for row in rows if row is not None]


def hold_out(rows, ratio, seed):
    """The workbench's seeded split: shuffle, largest-remainder counts (at least one held out), source order kept."""
    n = len(rows)
    exact = [(1 - ratio) * n, ratio * n]
    counts = [math.floor(x) for x in exact]
    for i in sorted(range(2), key=lambda i: (-(exact[i] - counts[i]), i))[: n - sum(counts)]:
        counts[i] += 1
    if ratio > 0 and counts[1] == 0 and counts[0] > 1:
        counts = [counts[0] - 1, 1]
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [rows[i] for i in sorted(order[: counts[0]])], [rows[i] for i in sorted(order[counts[0]:])]


def cpu_has_bf16():
    """Whether the CPU computes bf16 natively (AMX or AVX512-BF16, from the kernel's feature flags)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return bool({"amx_bf16", "avx512_bf16"} & set(flags.partition(":")[2].split()))


def precision():
    if PRECISION != "auto":
        return PRECISION
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def main():
    train = load(TRAIN_FILE)
    if VAL_FILE:
        val = load(VAL_FILE)
    elif VAL_RATIO > 0:
        train, val = hold_out(train, VAL_RATIO, SPLIT_SEED)
    else:
        val = []
    train, val = train[:MAX_TRAIN_EXAMPLES], val[:MAX_EVAL_EXAMPLES]

    args = dict(ARGS)
    if not val:
        args.update(eval_strategy="no", load_best_model_at_end=False)
    dtype, flags = PRECISIONS[precision()]
    if not torch.cuda.is_available():
        dtype = "float32"  # on a CPU, bf16 autocasts over fp32 weights
    args.update(flags, use_cpu=not torch.cuda.is_available())

    tokenizer = AutoTokenizer.from_pretrained(MODEL, trust_remote_code=TRUST_REMOTE_CODE)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    load_kwargs = {"dtype": getattr(torch, dtype), "trust_remote_code": TRUST_REMOTE_CODE}
    if QUANTIZATION:
        load_kwargs["quantization_config"] = BitsAndBytesConfig(**QUANTIZATION)
    model = AutoModelForCausalLM.from_pretrained(MODEL, **load_kwargs)
    callbacks = []
    if EARLY_STOPPING_PATIENCE and val:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=EARLY_STOPPING_PATIENCE))
    trainer = {TRAINER}Trainer(
        model=model, args={TRAINER}Config(**args), train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(val) if val else None, processing_class=tokenizer,
        peft_config=LoraConfig(**LORA) if LORA else None, callbacks=callbacks,
    )
    trainer.train()
    trainer.save_model(args["output_dir"])
    tokenizer.save_pretrained(args["output_dir"])
    print(f"saved to {args['output_dir']}")


if __name__ == "__main__":
    main()
'''


def _builder(path: Path) -> str | None:
    """datasets' builder name for a data file, or None for a directory or an unknown extension."""
    return None if path.is_dir() else _BUILDERS.get(path.suffix.lower())


def _comment(text: str) -> str:
    """YAML comment lines, wrapped."""
    lines = textwrap.wrap(text, width=110, subsequent_indent="  ") or [""]
    return "".join(f"# {line}\n" for line in lines)


def export_as(
    config: RunConfig,
    kind: str,
    *,
    workspace: str | Path = ".",
    nodes: int | None = None,
    gpus_per_node: int | None = None,
) -> tuple[str, str | None, int | None]:
    """The exported text, the command that runs it (``FILE`` for its path) and the training examples counted.

    ``yaml`` is the config with every path made absolute (as a run directory
    records it), so the file works wherever it is written; ``trl`` and
    ``script`` get the dataset size, which pins the eval interval to the
    workbench's exact step; ``slurm`` is a batch script that runs the config
    on ``nodes`` × ``gpus_per_node`` processes (default: its ``distributed``
    section) into ``workspace`` (:mod:`workbench.config.slurm`).
    """
    from workbench.config.check import count_training_examples

    if kind == "slurm":
        from workbench.config.slurm import to_slurm

        return to_slurm(config, workspace=workspace, nodes=nodes, gpus_per_node=gpus_per_node), "sbatch FILE", None
    if kind == "yaml":
        from workbench.train.runner import resolved_copy  # the runner imports this module: import here

        return to_yaml(resolved_copy(config)), "workbench train FILE", None
    n_train = count_training_examples(config)
    if kind == "trl":
        trl = to_trl_config(config, n_train=n_train)
        return trl.yaml_text, trl.command, n_train
    return to_python_script(config, n_train=n_train), "python FILE", n_train
