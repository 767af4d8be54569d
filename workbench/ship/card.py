"""The model card (README.md) of a merged model, written with huggingface_hub's ``ModelCard``.

The card says what a person deciding whether to use the model needs: the base, the method (SFT/DPO,
LoRA/QLoRA/full with r, alpha and the adapted modules), the run's config, the data (files, rows,
SHA-256), the eval figures with their 95% intervals and the regression/red-team verdict from every eval
of the workspace that included the model, the known limitations, and the library versions. The eval
figures come from the eval core (:func:`workbench.eval.report.report_data`), never recomputed here.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from workbench.eval.store import EvalError, ModelRef

LIBRARIES = ("torch", "transformers", "peft", "trl", "finetune-workbench")


def _same_model(candidate: ModelRef, ref: ModelRef) -> bool:
    if candidate.kind == "base":
        return False
    return candidate.key == ref.key or (bool(candidate.path) and candidate.path == ref.path)


def model_evals(workspace: str | Path, ref: ModelRef) -> list[dict[str, Any]]:
    """Every eval of the workspace that included ``ref``: its figures with intervals, against the base, the gate.

    Each entry: ``eval``, ``dataset``, ``examples``, ``main_metric``, ``key`` (the model's key in that eval),
    ``done``, ``metrics`` and ``against_base`` (as :func:`workbench.eval.report.report_data` gives them),
    ``cases`` (per kind: passed, total) and ``gate`` (``ok``, ``summary``) over this model's cases only.
    """
    from workbench.eval.report import report_data
    from workbench.eval.results import Results
    from workbench.eval.store import EvalDir, list_evals
    from workbench.eval.suites import KINDS, gate

    out: list[dict[str, Any]] = []
    for summary in list_evals(workspace):
        ev = EvalDir(summary.path)
        try:
            key = next((m.key for m in ev.spec().models if _same_model(m, ref)), None)
            if key is None:
                continue
            results = Results(ev)
            data = report_data(results, curves=[])
        except (EvalError, OSError, ValueError):
            continue
        mine = next((m for m in data["models"] if m["key"] == key), None)
        if mine is None or not mine["done"]:
            continue
        cases = [results.cases[(key, row.id)] for row in results.rows if (key, row.id) in results.cases]
        ok, text = gate(cases) if cases else (True, "no regression or red-team cases in this eval")
        out.append(
            {
                "eval": ev.id,
                "dataset": data["dataset"],
                "examples": data["examples"],
                "main_metric": data["main_metric"],
                "key": key,
                "done": mine["done"],
                "metrics": mine["metrics"],
                "against_base": mine["against_base"],
                "cases": {
                    k: [sum(c.passed for c in cases if c.kind == k), sum(c.kind == k for c in cases)] for k in KINDS
                },
                "gate": {"ok": ok, "summary": text} if cases else None,
            }
        )
    return out


def library_versions() -> dict[str, str]:
    """The installed versions of the libraries a merged model was made with."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _hub_base(base: str) -> str | None:
    """The base as a hub id for the card's metadata (bundled → its hub id; a local directory: none)."""
    from workbench.models import BUNDLED_HUB_ID, is_bundled

    if is_bundled(base):
        return BUNDLED_HUB_ID
    if Path(base).expanduser().exists() or base.count("/") != 1:
        return None
    return base


def _base_name(base: str) -> str:
    from workbench.models import BUNDLED_HUB_ID, is_bundled

    return f"{BUNDLED_HUB_ID} (the workbench's bundled model)" if is_bundled(base) else base


def _figure(summary: Mapping[str, Any], metric: str) -> str:
    from workbench.eval.metrics import METRICS

    mean, lo, hi = summary.get("mean"), summary.get("lo"), summary.get("hi")
    if mean is None:
        return "–"
    rate = metric in METRICS and METRICS[metric].kind == "rate"
    if lo is None or hi is None:
        return f"{mean:.0%}" if rate else f"{mean:.2f}"
    text = f"{mean:.0%} [{lo:.0%}, {hi:.0%}]" if rate else f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"
    return f"{text} (n={summary.get('n')})"


def _delta(d: Mapping[str, Any] | None, metric: str) -> str:
    from workbench.eval.metrics import METRICS

    if not d or d.get("mean") is None:
        return ""
    scale, unit = (100, " pts") if metric in METRICS and METRICS[metric].kind == "rate" else (1, "")
    text = f"{d['mean'] * scale:+.1f}{unit} [{d['lo'] * scale:+.1f}, {d['hi'] * scale:+.1f}]"
    return text + (" significant" if d.get("significant") else " (within noise)")


def _method(prov: Mapping[str, Any]) -> list[str]:
    config = prov.get("config") or {}
    finetune = str(prov.get("finetune") or config.get("finetune") or "lora")
    lines = [f"- Method: {str(config.get('method') or 'sft').upper()}, {finetune}"]
    if finetune in ("lora", "qlora"):
        lora = config.get("lora") or {}
        targets = lora.get("target_modules", "all-linear")
        targets = ", ".join(targets) if isinstance(targets, list) else str(targets)
        lines.append(f"- LoRA: r {lora.get('r', 16)}, alpha {lora.get('alpha', 32)}, modules {targets}")
    source = prov.get("source")
    step = f", step {prov['step']}" if prov.get("step") is not None else ""
    lines.append(
        f"- Merged from: `{source}` (run {prov.get('run_id') or '–'}{step}) into the base in {prov.get('dtype')}"
    )
    lines += [f"- Note: {n}" for n in prov.get("notes") or []]
    return lines


def _data(prov: Mapping[str, Any]) -> list[str]:
    files = prov.get("data") or []
    if not files:
        return ["No data files are recorded for this model."]
    lines = ["| split | file | rows | sha256 |", "|---|---|---|---|"]
    for f in files:
        rows = "missing" if f.get("missing") else f.get("rows", "–")
        lines.append(f"| {f.get('split', '')} | `{f.get('path')}` | {rows} | `{f.get('sha256') or '–'}` |")
    if prov.get("system_prompt"):
        lines += ["", "System prompt of the training data (use it when prompting the model):", "", "```"]
        lines += [str(prov["system_prompt"]), "```"]
    return lines


def _evals(evals: Sequence[Mapping[str, Any]]) -> list[str]:
    if not evals:
        return ["No eval of this workspace included this model yet (`workbench eval` to make one).", ""]
    lines: list[str] = []
    for e in evals:
        lines += [
            f"### {e['eval']}",
            "",
            f"{e['done']} of {e['examples']} examples from `{e.get('dataset')}`; main metric: {e['main_metric']}. "
            "Figures are means with 95% bootstrap intervals; the change is paired against the base model.",
            "",
            "| metric | this model | against the base |",
            "|---|---|---|",
        ]
        for metric, summary in e["metrics"].items():
            lines.append(f"| {metric} | {_figure(summary, metric)} | {_delta(e['against_base'].get(metric), metric)} |")
        gate = e.get("gate")
        if gate:
            verdict = "PASS" if gate["ok"] else "FAIL"
            lines += ["", f"Suites' verdict: **{verdict}**: " + str(gate["summary"]).splitlines()[0]]
        lines.append("")
    return lines


def _limitations(prov: Mapping[str, Any]) -> list[str]:
    train = [f for f in prov.get("data") or [] if f.get("split") == "train"]
    rows = sum(int(f["rows"]) for f in train if isinstance(f.get("rows"), int))
    cap = ((prov.get("config") or {}).get("data") or {}).get("max_train_examples")
    # max_train_examples caps what the trainer took (the first N rows of the file)
    count = f"the first {cap} of {rows}" if isinstance(cap, int) and 0 < cap < rows else str(rows)
    evals = prov.get("evals") or []
    lines = [
        f"- Trained on {count} examples of one task ({', '.join(Path(str(f['path'])).name for f in train) or 'unknown data'}); "
        "expect it to do that task, not to be better in general than its base.",
    ]
    if evals:
        most = max(int(e["done"]) for e in evals)
        lines.append(
            f"- Evaluated on at most {most} examples: intervals this wide on small evals are the honest figure."
        )
    else:
        lines.append("- Not evaluated in this workspace.")
    red = [(e["eval"], e["cases"].get("red-team", [0, 0])) for e in evals if e.get("cases")]
    red = [(name, c) for name, c in red if c[1]]
    if red:
        lines += [f"- Red-team cases: {c[0]} of {c[1]} passed ({name})." for name, c in red]
    else:
        lines.append("- No red-team cases were run against it: its refusals and safety are untested.")
    lines.append(f"- Merged in {prov.get('dtype')}; the base's own limitations and license apply.")
    return lines


def card_text(prov: Mapping[str, Any], name: str, versions: Mapping[str, str] | None = None) -> str:
    """The card's Markdown body (without the metadata header)."""
    versions = library_versions() if versions is None else versions
    config_yaml = yaml.safe_dump(dict(prov.get("config") or {}), sort_keys=False, allow_unicode=True).strip()
    body = [
        f"# {name}",
        "",
        f"A fine-tune of {_base_name(str(prov.get('base')))}, merged into a plain transformers model "
        "(safetensors, tokenizer with the chat template, generation config with the template's stop tokens) "
        "by finetune-workbench.",
        "",
        "## Model",
        "",
        f"- Base: {_base_name(str(prov.get('base')))}",
        *_method(prov),
        "",
        "## Training data",
        "",
        *_data(prov),
        "",
        "## Evaluation",
        "",
        *_evals(prov.get("evals") or []),
        "## Known limitations",
        "",
        *_limitations(prov),
        "",
        "## Training config",
        "",
        "```yaml",
        config_yaml,
        "```",
        "",
        "## Libraries",
        "",
        *[f"- {lib} {ver}" for lib, ver in versions.items()],
        "",
    ]
    return "\n".join(body)


def write_model_card(model_dir: str | Path, prov: Mapping[str, Any], *, name: str | None = None) -> Path:
    """``README.md`` in ``model_dir``: ModelCardData metadata (base_model, library, tags) and :func:`card_text`."""
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = prov.get("config") or {}
    tags = ["finetune-workbench", str(config.get("method") or "sft"), str(prov.get("finetune") or "lora"), "merged"]
    data = ModelCardData(
        base_model=_hub_base(str(prov.get("base"))),
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=list(dict.fromkeys(tags)),
    )
    name = name or model_dir.name
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card_text(prov, name)}")
    path = model_dir / "README.md"
    card.save(path)
    return path


__all__ = ["card_text", "library_versions", "model_evals", "write_model_card"]
