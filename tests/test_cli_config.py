"""`workbench export | estimate | probe CONFIG`: the Config pane's core, headless; bad input is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from workbench.cli import main
from workbench.config import load_config, parse_config

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"


@pytest.fixture
def config_file(tmp_path, tiny_model_dir) -> Path:
    """A config on the tiny model, its data given relative to the config's directory."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text((SUPPORT / "train.jsonl").read_text())
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "tiny.yaml"
    path.write_text(
        f"name: tiny-cli\nmodel: {tiny_model_dir}\n"
        "data:\n  train: ../data/train.jsonl\n  val_ratio: 0.1\n  max_train_examples: 40\n"
        "lora:\n  r: 4\n  alpha: 8\n  target_modules: [q_proj, v_proj]\n"
        "train:\n  batch_size: 2\n  epochs: 1\n  max_length: 128\n  precision: fp32\n"
    )
    return path


def _fails_clearly(capsys, argv: list[str], *needles: str) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in captured.err + captured.out, err
    for needle in needles:
        assert needle in err, err


# --- export -------------------------------------------------------------------------


def test_export_yaml_is_the_resolved_config(capsys, config_file, tmp_path):
    assert main(["export", str(config_file), "--to", "yaml"]) == 0
    text = capsys.readouterr().out
    exported = parse_config(text)
    assert exported.data.train == str(tmp_path / "data" / "train.jsonl")  # absolute: works wherever it is written
    original = load_config(config_file).model_dump()
    assert {k: v for k, v in exported.model_dump().items() if k != "data"} == {
        k: v for k, v in original.items() if k != "data"
    }
    out = tmp_path / "elsewhere" / "copy.yaml"
    assert main(["export", str(config_file), "--to", "yaml", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert load_config(out).model_dump() == exported.model_dump()


def test_export_trl_writes_the_workers_interval(capsys, config_file, tmp_path, tiny_model_dir):
    out = tmp_path / "exports" / "tiny.trl.yaml"
    assert main(["export", str(config_file), "--to", "trl", "-o", str(out)]) == 0
    assert f"trl sft --config {out}" in capsys.readouterr().out
    exported = yaml.safe_load(out.read_text())
    assert exported["model_name_or_path"] == str(tiny_model_dir)
    # 320 rows, 32 held out, the first 40 trained on: 20 steps of 2, so the workbench evaluates every 2
    assert exported["eval_steps"] == exported["save_steps"] == 2 and exported["eval_strategy"] == "steps"


def test_export_script_json(capsys, config_file):
    assert main(["export", str(config_file), "--to", "script", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["to"] == "script" and report["path"] is None and report["n_train"] == 40
    assert report["command"] == "python FILE"
    compile(report["text"], "train.py", "exec")
    assert "'eval_steps': 2" in report["text"]


def test_export_bad_inputs_are_one_clear_line(capsys, tmp_path, config_file):
    _fails_clearly(capsys, ["export", str(tmp_path / "nope.yaml"), "--to", "trl"], "nope.yaml", "no such config file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: [unclosed\n")
    _fails_clearly(capsys, ["export", str(bad), "--to", "yaml"], "bad.yaml:", "not valid YAML")
    bad.write_text("data:\n  train: x.jsonl\ntrain:\n  batch_sise: 4\n")
    _fails_clearly(capsys, ["export", str(bad), "--to", "script"], "bad.yaml:4", "batch_size")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fails_clearly(capsys, ["export", str(config_file), "--to", "yaml", "-o", str(blocker / "x.yaml")], "cannot write")
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(config_file), "--to", "gguf"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


# --- estimate -----------------------------------------------------------------------


def test_estimate_table_and_json(capsys, config_file):
    assert main(["estimate", str(config_file)]) == 0
    out = capsys.readouterr().out
    for label in ("GPU memory estimate", "weights", "activations", "total", "Derived figures", "total steps"):
        assert label in out, label
    assert main(["estimate", str(config_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    memory = report["memory"]
    names = [item["name"] for item in memory["items"]]
    assert "weights" in names and all(item["bytes"] >= 0 and item["explanation"] for item in memory["items"])
    at_peak = sum(i["bytes"] for i in memory["items"] if i["at_peak"] and i["phase"] != "overhead")
    overhead = sum(i["bytes"] for i in memory["items"] if i["phase"] == "overhead")
    assert memory["allocated_bytes"] == at_peak and memory["total_bytes"] == at_peak + overhead
    assert memory["precision"]["name"] and memory["rows"] == 2 and memory["seq_len"] == 128
    derived = report["derived"]
    assert derived["effective_batch"] == 2 and derived["examples"] == 40 and derived["total_steps"] == 20
    assert derived["eval_every"] == 2 and derived["why"]["total_steps"]
    assert report["n_train"] == 40 and isinstance(report["findings"], list)


def test_estimate_without_a_model_says_why(capsys, tmp_path):
    path = tmp_path / "nomodel.yaml"
    path.write_text(f"model: {tmp_path / 'missing-model'}\ndata:\n  train: {SUPPORT / 'train.jsonl'}\n")
    assert main(["estimate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "GPU memory estimate: unknown (" in out and "missing-model" in out and "Derived figures" in out
    _fails_clearly(capsys, ["estimate", str(tmp_path / "nope.yaml")], "no such config file")


# --- probe --------------------------------------------------------------------------


def test_probe_measures_a_step(capsys, config_file):
    assert main(["probe", str(config_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seconds_per_step"] > 0 and report["peak_bytes"] > 0 and report["steps"] == 1
    assert report["peak_kind"] in ("cpu rss", "cuda allocated") and report["device"]
    rows, length = report["batch_shape"]
    assert rows <= 2 and length <= 128
    assert main(["probe", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "seconds per step" in out and "peak memory" in out


def test_probe_bad_inputs(capsys, tmp_path, config_file):
    _fails_clearly(capsys, ["probe", str(tmp_path / "nope.yaml")], "no such config file")
    broken = tmp_path / "broken.yaml"
    broken.write_text(config_file.read_text().replace("batch_size: 2", "batch_size: 0"))
    _fails_clearly(capsys, ["probe", str(broken)], "broken.yaml:12", "train.batch_size")
    with pytest.raises(SystemExit):
        main(["probe", str(config_file), "--steps", "0"])
    assert "at least 1" in capsys.readouterr().err
