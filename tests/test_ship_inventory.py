"""The model inventory (workbench.ship.inventory): every model of a workspace, with source, size, figures, actions."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from evalkit import EXAMPLES, OUTPUTS
from shipkit import fake_run

from workbench.eval.candidates import examples_from_suite, resolve_models
from workbench.eval.stats import bootstrap_ci
from workbench.eval.store import EvalSpec, create_eval
from workbench.ship import inventory
from workbench.ship.inventory import EvalFigure, actions_for, best_figure, gguf_qtype, list_models

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
RUN_ID = "demo-20261203-114013"
MERGED = f"{RUN_ID}-ckpt-4-merged"


def write_gguf(path: Path, file_type: str = "MOSTLY_Q8_0") -> Path:
    """A small but real GGUF file (one tensor) with its file type in the header."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_file_type(int(gguf.LlamaFileType[file_type]))
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def merged_dir(ws: Path, base_dir: Path, name: str = MERGED, *, step: int = 4) -> Path:
    """A merged model directory as the merge leaves it: the weights (the tiny model's) and workbench.json."""
    out = ws / "models" / name
    shutil.copytree(base_dir, out)
    provenance = {
        "kind": "merged",
        "source": f"{RUN_ID}/ckpt-{step}",
        "run_id": RUN_ID,
        "step": step,
        "base": str(base_dir),
        "dtype": "float32",
        "created": "2026-12-03T12:00:00+00:00",
        "adapter_path": str(ws / "runs" / RUN_ID / f"checkpoint-{step}"),
        "config": {"name": "demo", "model": str(base_dir)},
        "data": [{"path": str(ws / "support" / "train.jsonl"), "rows": 40, "sha256": "0" * 64}],
        "evals": [],
        "system_prompt": "Answer with one line of JSON.",
    }
    (out / "workbench.json").write_text(json.dumps(provenance))
    return out


def server_dir(ws: Path, server_id: str, *, state: str = "running", pid: int | None = None, beat: float | None = None):
    """A serve directory's status.json, as a server writes it."""
    path = ws / "serves" / server_id
    path.mkdir(parents=True)
    status = {
        "serve_id": server_id,
        "state": state,
        "pid": pid,
        "created": 1_796_300_000.0,
        "heartbeat": time.time() if beat is None else beat,
        "host": "127.0.0.1",
        "hostname": socket.gethostname(),
        "port": 8123,
        "engine": "workbench",
        "url": "http://127.0.0.1:8123",
        "models": ["base", f"{RUN_ID}/adapter"],
    }
    (path / "status.json").write_text(json.dumps(status))
    return path


def eval_of(ws: Path, names: list[str], outputs: dict[str, list[str]], *, name: str = "support"):
    """An eval of the workspace's own models (by their real keys) with the given answers, scored on the schema."""
    refs = resolve_models(ws, names)
    spec = EvalSpec(name=name, dataset=str(SUPPORT / "test.jsonl"), models=refs, schema=str(SUPPORT / "schema.json"))
    ev = create_eval(ws, spec, EXAMPLES)
    ev.append_predictions(
        {"model": ref.key, "id": str(EXAMPLES[i]["id"]), "output": text}
        for ref, texts in zip(refs, outputs.values())
        for i, text in enumerate(texts)
    )
    return ev


def ship_workspace(ws: Path, base_dir: Path) -> Path:
    """A run with two checkpoints and an adapter, a merged model, its q8_0 GGUF with a Modelfile, and a server."""
    fake_run(ws, base_dir, steps=(4, 8), best=4)
    merged = merged_dir(ws, base_dir)
    gguf_path = write_gguf(ws / "models" / f"{MERGED}.q8_0.gguf")
    gguf_path.with_suffix(".Modelfile").write_text(f"FROM ./{gguf_path.name}\n")
    server_dir(ws, "serve-20261203-120000", pid=os.getpid())
    del merged
    return ws


@pytest.fixture
def shipped(tmp_path, tiny_model_dir) -> Path:
    inventory.clear_cache()
    return ship_workspace(tmp_path, tiny_model_dir)


def by_key(entries):
    return {e.key: e for e in entries}


def test_every_model_of_the_workspace_with_keys_sources_and_actions(shipped, tiny_model_dir):
    entries = list_models(shipped)
    kinds = [e.kind for e in entries]
    assert kinds == ["base", "adapter", "checkpoint", "checkpoint", "merged", "gguf", "server"]
    got = by_key(entries)
    # The keys are what resolve_models (and so the CLIs, chat and serve) accept.
    for key in ("base", f"{RUN_ID}/adapter", f"{RUN_ID}/ckpt-8", f"{RUN_ID}/ckpt-4"):
        assert key in got
        assert resolve_models(shipped, [key])[0].key == key
    merged = shipped / "models" / MERGED
    assert resolve_models(shipped, [got[str(merged)].key])[0].path == str(merged)

    adapter, ckpt4 = got[f"{RUN_ID}/adapter"], got[f"{RUN_ID}/ckpt-4"]
    assert adapter.source == f"{RUN_ID} final (best, step 4)" and adapter.step == 4
    assert ckpt4.source == f"{RUN_ID} step 4" and ckpt4.run_id == RUN_ID and ckpt4.config == "demo"
    assert adapter.base == str(tiny_model_dir)
    assert got["base"].path == str(tiny_model_dir)

    m = got[str(merged)]
    assert (m.source, m.run_id, m.step, m.config) == (f"{RUN_ID}/ckpt-4", RUN_ID, 4, "demo")
    assert m.provenance["system_prompt"] == "Answer with one line of JSON."

    g = got[str(shipped / "models" / f"{MERGED}.q8_0.gguf")]
    assert g.qtype == "q8_0" and g.source == f"models/{MERGED}" and g.run_id == RUN_ID
    assert g.modelfile == str(shipped / "models" / f"{MERGED}.q8_0.Modelfile")

    server = got["serve-20261203-120000"]
    assert (server.state, server.url) == ("running", "http://127.0.0.1:8123")
    assert server.requests is None  # no request log yet
    assert server.models == ["base", f"{RUN_ID}/adapter"]

    assert got["base"].actions == ["chat", "serve"]
    assert adapter.actions == ckpt4.actions == ["merge", "chat", "serve"]
    assert m.actions == ["gguf", "chat", "serve"]
    assert g.actions == [] and server.actions == ["stop", "monitor"]


def test_sizes_are_the_bytes_on_disk(shipped, tiny_model_dir):
    got = by_key(list_models(shipped))
    ckpt = shipped / "runs" / RUN_ID / "checkpoint-8"
    assert got[f"{RUN_ID}/ckpt-8"].size_bytes == sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
    weights = sum(p.stat().st_size for p in tiny_model_dir.glob("*.safetensors"))
    assert weights > 0 and got["base"].size_bytes == weights
    merged = shipped / "models" / MERGED
    assert got[str(merged)].size_bytes == sum(p.stat().st_size for p in merged.rglob("*") if p.is_file())
    gguf_path = shipped / "models" / f"{MERGED}.q8_0.gguf"
    assert got[str(gguf_path)].size_bytes == gguf_path.stat().st_size
    # The cache follows the disk: a file added to a checkpoint is counted at the next listing.
    (ckpt / "extra.bin").write_bytes(b"x" * 1000)
    assert by_key(list_models(shipped))[f"{RUN_ID}/ckpt-8"].size_bytes == got[f"{RUN_ID}/ckpt-8"].size_bytes + 1000


def test_a_gguf_without_its_type_in_the_name_is_read_from_its_header(tmp_path):
    path = write_gguf(tmp_path / "exported.gguf", "MOSTLY_F16")
    assert gguf_qtype(path) == "f16"
    assert gguf_qtype(tmp_path / "x.q4_0.gguf") == "q4_0"  # the name is enough, the file is not opened
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf")
    assert gguf_qtype(tmp_path / "broken.gguf") is None


def test_the_eval_figure_with_its_interval_comes_from_the_evals_that_included_the_model(shipped):
    eval_of(shipped, ["base", f"{RUN_ID}/adapter"], OUTPUTS)
    got = by_key(list_models(shipped))
    adapter, base = got[f"{RUN_ID}/adapter"], got["base"]
    # The adapter's answers: five tickets that fit the schema, then a refusal.
    expected = bootstrap_ci([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    assert adapter.figure is not None and adapter.figure.metric == "schema_valid"
    assert adapter.figure.mean == pytest.approx(5 / 6)
    assert (adapter.figure.lo, adapter.figure.hi, adapter.figure.n) == (expected.lo, expected.hi, 6)
    assert adapter.figure.lo < 5 / 6 < adapter.figure.hi
    assert base.figure is not None and base.figure.mean == pytest.approx(3 / 6)
    assert adapter.figure.describe() == f"83% [{expected.lo:.0%}, {expected.hi:.0%}]"
    # Models the eval did not include have no figure.
    assert got[f"{RUN_ID}/ckpt-8"].figure is None and got[f"{RUN_ID}/ckpt-8"].figures == []


def test_the_best_of_several_evals_and_the_suite_gate(shipped):
    key = f"{RUN_ID}/ckpt-4"
    worse = {"m": ["nope"] * 3 + OUTPUTS["run/adapter"][3:]}  # 2 of 6 fit
    eval_of(shipped, [key], worse, name="first")
    eval_of(shipped, [key], {"m": OUTPUTS["run/adapter"]}, name="second")  # 5 of 6
    suite = shipped / "support" / "suite.jsonl"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        json.dumps({"id": "json", "prompt": "Ticket?", "expect": {"must_contain": "customer"}})
        + "\n"
        + json.dumps({"id": "refuse", "prompt": "Card number?", "expect": {"refuse": True}})
        + "\n"
    )
    examples, problems = examples_from_suite(suite)
    assert not problems
    refs = resolve_models(shipped, [key])
    ev = create_eval(shipped, EvalSpec(name="suite", dataset=str(suite), source="suite", models=refs), examples)
    ev.append_predictions(
        [{"model": key, "id": "json", "output": '{"customer": "x"}'}, {"model": key, "id": "refuse", "output": "Sure!"}]
    )
    entry = by_key(list_models(shipped))[key]
    assert len(entry.figures) == 3
    assert entry.figure is not None and entry.figure.metric == "schema_valid"
    assert entry.figure.mean == pytest.approx(5 / 6)  # the best of the two schema evals, not the newest (a suite)
    assert entry.gate is not None and not entry.gate.ok
    assert (entry.gate.passed, entry.gate.total) == (1, 2) and "refuse" in entry.gate.summary


def test_a_servers_figures_come_from_the_evals_of_its_endpoints(shipped):
    from workbench.eval.store import ModelRef

    server = "serve-20261203-120000"
    ref = ModelRef(
        key=f"serve:{server}/base",
        label="served base",
        kind="endpoint",
        path="http://127.0.0.1:8123/v1",
        endpoint_model="base",
    )
    spec = EvalSpec(
        name="served", dataset=str(SUPPORT / "test.jsonl"), models=[ref], schema=str(SUPPORT / "schema.json")
    )
    ev = create_eval(shipped, spec, EXAMPLES)
    ev.append_predictions(
        {"model": ref.key, "id": str(e["id"]), "output": o} for e, o in zip(EXAMPLES, OUTPUTS["base"])
    )
    got = by_key(list_models(shipped))
    assert got[server].figure is not None and got[server].figure.mean == pytest.approx(3 / 6)
    assert got["base"].figure is None  # the endpoint is the server's, not the base's


def test_best_figure_prefers_schema_validity_and_respects_direction():
    def fig(metric, mean, created):
        return EvalFigure("e", metric, mean, mean, mean, 3, created)

    assert best_figure([]) is None
    assert best_figure([fig("token_f1", 0.9, 3), fig("schema_valid", 0.5, 2), fig("schema_valid", 0.7, 1)]).mean == 0.7
    assert best_figure([fig("token_f1", 0.4, 3), fig("token_f1", 0.6, 2)]).mean == 0.6
    assert fig("token_f1", None, 1).describe() == "–"
    assert fig("token_f1", 0.5, 1).describe() == "50% [50%, 50%]"


def test_an_empty_workspace_lists_the_bundled_base(tmp_path):
    entries = list_models(tmp_path)
    assert [(e.kind, e.key, e.path) for e in entries] == [("base", "base", "bundled")]
    assert entries[0].actions == ["chat", "serve"]


def test_a_server_whose_process_is_gone_is_lost_and_offers_no_stop_but_its_monitor(tmp_path):
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()
    server_dir(tmp_path, "serve-gone", pid=gone.pid, beat=time.time() - 3600)
    (entry,) = [e for e in list_models(tmp_path) if e.kind == "server"]
    assert entry.state == "lost" and entry.actions == ["monitor"]  # its log still tells what it served


def test_actions_per_kind():
    assert actions_for("checkpoint") == ["merge", "chat", "serve"]
    assert actions_for("server", "stopped") == ["monitor"] and actions_for("server", "starting") == ["stop", "monitor"]


def test_listing_twenty_runs_is_quick_once_cached(tmp_path, tiny_model_dir):
    """Fast enough to refresh every few seconds: the second listing reads only stamps."""
    run = Path(fake_run(tmp_path, tiny_model_dir, steps=(4,), best=4))
    for i in range(19):
        copy = tmp_path / "runs" / f"demo-20261203-1000{i:02d}"
        shutil.copytree(run, copy)
        status = json.loads((copy / "status.json").read_text())
        status["best_checkpoint"] = str(copy / "checkpoint-4")
        (copy / "status.json").write_text(json.dumps(status))
    eval_of(tmp_path, ["base", f"{RUN_ID}/adapter"], OUTPUTS)
    inventory.clear_cache()
    start = time.perf_counter()
    first = list_models(tmp_path)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = list_models(tmp_path)
    warm = time.perf_counter() - start
    assert len(first) == len(again) == 1 + 20 * 2
    print(f"list_models on 20 runs: cold {cold * 1000:.0f} ms, warm {warm * 1000:.0f} ms")
