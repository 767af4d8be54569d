"""Which eval is a served model's release eval: the newest complete dataset eval of the same weights (the same
adapter or checkpoint, or what a merged model was merged from), never a suite eval or a revalidation; and the
schema the server checks answers against."""

from __future__ import annotations

import json
import time
from pathlib import Path

from shipkit import fake_run

from workbench.eval.candidates import examples_from_dataset, resolve_models
from workbench.eval.store import EvalSpec, ModelRef, create_eval
from workbench.monitor.release import identity, release_eval, served_model_refs
from workbench.serve.servedir import ServeDir, ServeSpec
from workbench.ship.provenance import schema_of_ref

SUPPORT = Path(__file__).resolve().parents[1] / "sample_data" / "support"
RUN_ID = "demo-20261203-114013"


def make_eval(ws: Path, refs: list[ModelRef], *, name: str, done: int | None = None, **extra):
    examples = examples_from_dataset(SUPPORT / "test.jsonl")[:6]
    spec = EvalSpec(name=name, dataset=str(SUPPORT / "test.jsonl"), models=refs, created=time.time(), **extra)
    ev = create_eval(ws, spec, examples)
    for ref in refs:
        ev.append_predictions(
            {"model": ref.key, "id": e["id"], "output": e["reference"], "finish": "stop"}
            for e in examples[: len(examples) if done is None else done]
        )
    time.sleep(1.05)  # eval ids carry the second: keep them apart and ordered
    return ev


def test_the_newest_complete_eval_of_the_adapter_is_its_release(tmp_path: Path, tiny_model_dir: Path):
    fake_run(tmp_path, tiny_model_dir, steps=(4, 8), best=8)
    adapter, ckpt4 = resolve_models(tmp_path, [f"{RUN_ID}/adapter", f"{RUN_ID}/ckpt-4"])
    base = resolve_models(tmp_path, ["base"])[0]
    older = make_eval(tmp_path, [base, adapter], name="first")
    make_eval(tmp_path, [adapter], name="partial", done=3)  # not every example answered: not a release
    make_eval(tmp_path, [adapter], name="recheck", revalidation={"server": "s"})  # a revalidation: never
    release = release_eval(tmp_path, adapter)
    assert release is not None and release.eval.id == older.id and release.model_key == adapter.key
    assert release.via is None
    assert release_eval(tmp_path, ckpt4) is None  # another step is other weights
    newer = make_eval(tmp_path, [ckpt4, adapter], name="second")
    assert release_eval(tmp_path, adapter).eval.id == newer.id
    assert release_eval(tmp_path, ckpt4).model_key == ckpt4.key


def test_a_merged_model_falls_back_to_the_eval_of_what_it_was_merged_from(tmp_path: Path, tiny_model_dir: Path):
    fake_run(tmp_path, tiny_model_dir, steps=(4, 8), best=8)
    (ckpt8,) = resolve_models(tmp_path, [f"{RUN_ID}/ckpt-8"])
    merged = tmp_path / "models" / "demo-merged"
    merged.mkdir(parents=True)
    (merged / "config.json").write_text("{}")
    (merged / "workbench.json").write_text(json.dumps({"run_id": RUN_ID, "step": 8, "data": []}))
    ref = ModelRef(key="merged", label="demo merged", kind="base", path=str(merged))
    assert ("checkpoint", RUN_ID, 8) not in identity(ref)  # the merged dir is itself, not the checkpoint
    ev = make_eval(tmp_path, [ckpt8], name="ckpt")
    release = release_eval(tmp_path, ref)
    assert release is not None and release.eval.id == ev.id and release.via == f"merged from {ckpt8.label}"
    own = make_eval(tmp_path, [ref], name="merged")  # an eval of the merged model itself wins
    assert release_eval(tmp_path, ref).eval.id == own.id


def test_served_refs_go_by_the_names_clients_send(tmp_path: Path, tiny_model_dir: Path):
    fake_run(tmp_path, tiny_model_dir, steps=(4,), best=4)
    refs = resolve_models(tmp_path, ["base", f"{RUN_ID}/adapter", f"{RUN_ID}/ckpt-4"])
    sd = ServeDir(tmp_path / "serves" / "demo-1")
    sd.path.mkdir(parents=True)
    sd.write_spec(ServeSpec(models=["base", "x", "y"], refs=refs, workspace=str(tmp_path)))
    sd.write_status({"serve_id": "demo-1", "state": "stopped", "created": time.time()})
    assert list(served_model_refs(tmp_path, "demo-1")) == ["base", RUN_ID, f"{RUN_ID}/ckpt-4"]


def test_the_schema_beside_the_training_data_is_the_servers(tmp_path: Path, tiny_model_dir: Path):
    fake_run(tmp_path, tiny_model_dir, steps=(4,), best=4)
    adapter, base = resolve_models(tmp_path, [f"{RUN_ID}/adapter", "base"])
    assert schema_of_ref(tmp_path, adapter) == (SUPPORT / "schema.json").resolve()
    assert schema_of_ref(tmp_path, base) is None
    merged = tmp_path / "merged"
    merged.mkdir()
    prov = {"data": [{"split": "train", "path": str(SUPPORT / "train.jsonl")}]}
    (merged / "workbench.json").write_text(json.dumps(prov))
    ref = ModelRef(key="m", label="m", kind="base", path=str(merged))
    assert schema_of_ref(tmp_path, ref) == (SUPPORT / "schema.json").resolve()
