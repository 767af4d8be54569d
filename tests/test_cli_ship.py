"""``workbench merge`` and ``workbench gguf`` end to end through workbench.cli.main, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shipkit import fake_run

from workbench.cli import main
from workbench.ship.provenance import read_provenance


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_model_dir) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    fake_run(ws, tiny_model_dir)
    return ws


def test_merge_prints_what_it_wrote(ws, capsys):
    assert main(["-w", str(ws), "merge", "demo"]) == 0
    out, err = capsys.readouterr()
    path = ws / "models" / "demo-20261203-114013-merged"
    assert f"wrote {path} (" in out and " MB) in " in out
    assert "merged demo-20261203-114013/adapter (run demo-20261203-114013, step 4)" in out
    assert f"workbench gguf {path} --type q8_0" in out
    assert "merge_and_unload" in err  # progress goes to stderr
    assert read_provenance(path)["source"] == "demo-20261203-114013/adapter"


def test_merge_json(ws, tmp_path, capsys):
    out_dir = tmp_path / "m"
    assert main(["-w", str(ws), "merge", "demo/checkpoint-8", "-o", str(out_dir), "--json", "-q"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["path"] == str(out_dir) and data["step"] == 8 and data["dtype"] == "fp32"
    assert data["source"] == "demo-20261203-114013/ckpt-8" and data["size_bytes"] > 0
    assert (out_dir / "model.safetensors").is_file()
    assert err == ""
    # again: the directory is there now
    assert main(["-w", str(ws), "merge", "demo/checkpoint-8", "-o", str(out_dir), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["-w", str(ws), "merge", "demo/checkpoint-8", "-o", str(out_dir), "-q", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["merge", "nope"], "error: merge: no model 'nope'"),
        (["merge", "demo/ckpt-99"], "error: merge: no model 'demo/ckpt-99'"),
        (["merge", "base"], "nothing to merge"),
    ],
)
def test_merge_errors_exit_2_without_a_traceback(ws, capsys, argv, message):
    assert main(["-w", str(ws), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_merge_refuses_a_bad_dtype_in_the_parser(ws, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-w", str(ws), "merge", "demo", "--dtype", "nf4"])
    assert exit_.value.code == 2 and "invalid choice: 'nf4'" in capsys.readouterr().err


def test_gguf_export_end_to_end(ws, capsys):
    pytest.importorskip("workbench.ship.gguf")
    model_dir = ws / "models" / "demo-20261203-114013-merged"
    if not model_dir.is_dir():
        assert main(["-w", str(ws), "merge", "demo", "-q"]) == 0
    assert main(["-w", str(ws), "gguf", str(model_dir), "--type", "f16", "--json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(model_dir.parent / f"{model_dir.name}.f16.gguf") and data["qtype"] == "f16"
    assert Path(data["path"]).stat().st_size == data["size_bytes"] > 0
    assert Path(data["modelfile"]).is_file()


def test_gguf_error_on_a_directory_that_is_no_model(ws, tmp_path, capsys):
    pytest.importorskip("workbench.ship.gguf")
    assert main(["-w", str(ws), "gguf", str(tmp_path), "--type", "q8_0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path) in err and "Traceback" not in err


def test_merge_last_means_the_newest_runs_final_adapter(ws, tmp_path, capsys):
    assert main(["-w", str(ws), "merge", "last", "-o", str(tmp_path / "m"), "--json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "demo-20261203-114013/adapter" and data["step"] == 4
