"""An eval's report: Markdown for a PR or a wiki, JSON for scripts, HTML to mail round.

Tables of every metric per model with 95% intervals and the paired change
against the base, the regression/red-team gate, the judge and how far it
agrees with the human ratings, the checkpoint curves beside the loss, and the
worst examples in full.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workbench.eval.curves import Curve, checkpoint_curve, runs_with_checkpoints
from workbench.eval.metrics import METRICS
from workbench.eval.results import ModelSummary, Results, Row
from workbench.eval.scoring import write_scores
from workbench.eval.suites import gate
from workbench.fileio import atomic_write_text

WORST = 8


def _fmt(summary: Any, metric: str) -> str:
    if summary is None or summary.mean is None:
        return "–"
    if metric in METRICS and METRICS[metric].kind == "rate":
        return f"{summary.mean:.0%} [{summary.lo:.0%}, {summary.hi:.0%}]"
    return f"{summary.mean:.2f} [{summary.lo:.2f}, {summary.hi:.2f}]"


def _delta(d: Any, metric: str) -> str:
    if d is None or d.mean is None:
        return ""
    scale = 100 if metric in METRICS and METRICS[metric].kind == "rate" else 1
    unit = " pts" if scale == 100 else ""
    text = f"{d.mean * scale:+.1f}{unit} [{d.lo * scale:+.1f}, {d.hi * scale:+.1f}]"
    return text + (" ✔ significant" if d.significant else " (noise)")


def _metrics(results: Results) -> list[str]:
    keys = [k for k in METRICS if any(row.cells[m].value(k) is not None for row in results.rows for m in results.keys)]
    return keys + [
        k
        for k in ("judge", "human")
        if any(row.cells[m].value(k) is not None for row in results.rows for m in results.keys)
    ]


def _summary_of(s: ModelSummary, metric: str) -> Any:
    return s.judge if metric == "judge" else s.human if metric == "human" else s.metrics.get(metric)


def worst_rows(results: Results, model: str | None = None, n: int = WORST) -> list[Row]:
    """The examples where the model (default: the last fine-tuned one) did worst, against the base when there is one."""
    model = model or next((k for k in reversed(results.keys) if k != results.base), None) or results.keys[0]
    rows = results.view("all", sort="delta" if results.base and model != results.base else "score", model=model)
    return [r for r in rows if r.cells[model].output is not None][:n]


def curves_of(results: Results) -> list[Curve]:
    """The checkpoint curve of every run with two or more checkpoints in the eval (computed once per report)."""
    return [checkpoint_curve(results, run) for run in runs_with_checkpoints(results)]


def report_data(results: Results, curves: list[Curve] | None = None) -> dict[str, Any]:
    """Everything the report says, as plain data (report.json)."""
    metrics = _metrics(results)
    summaries = results.summaries([m for m in metrics if m in METRICS])
    cases = [results.cases[(m, row.id)] for row in results.rows for m in results.keys if (m, row.id) in results.cases]
    ok, gate_text = gate(cases) if cases else (True, "no regression or red-team cases in this eval")
    regressions = results.regressions(summaries=summaries)
    if regressions:
        ok = False
        gate_text += "\n" + "\n".join(f"  regression: {r.describe()}" for r in regressions)
    elif results.spec.baseline:
        gate_text += f"\n  no significant drop against {results.spec.baseline}"
    curves = curves_of(results) if curves is None else curves
    agreement = {k: a.to_dict() for k, a in results.agreement().items()}
    return {
        "eval": results.ev.id,
        "dataset": results.spec.dataset,
        "examples": len(results.rows),
        "generation": results.spec.generation.model_dump(),
        "main_metric": results.primary,
        "models": [
            {
                "key": s.model.key,
                "label": s.model.label,
                "kind": s.model.kind,
                "done": s.done,
                "metrics": {m: asdict(v) for m in metrics if (v := _summary_of(s, m)) is not None},
                "against_base": {m: asdict(d) for m, d in s.delta.items()},
                "cases_passed": s.cases[0],
                "cases": s.cases[1],
            }
            for s in summaries
        ],
        "gate": {"ok": ok, "summary": gate_text},
        "judge": {
            "model": results.verdicts.judge_model,
            "rubric": results.rubric.to_dict(),
            "verdicts": len(results.verdicts.single),
            "pairs": len(results.verdicts.pairs),
            "usage": results.verdicts.usage.model_dump(),
            "agreement": agreement,
        },
        "checkpoints": [
            {
                "run": c.run_id,
                "metric": c.metric,
                "best_by_metric": c.best_by_metric,
                "best_by_loss": c.best_by_loss,
                "verdict": c.verdict(),
                "points": [{"step": st, "model": k, **asdict(s)} for st, k, s in c.points],
                "eval_loss": c.eval_loss,
            }
            for c in curves
        ],
        "worst": [
            {
                "id": r.id,
                "prompt": r.prompt,
                "reference": r.reference,
                "answers": {m: r.cells[m].output for m in results.keys},
                "note": r.note,
            }
            for r in worst_rows(results)
        ],
        "ratings": {"rated_examples": results.ratings.rated_count()},
    }


def _text_chart(curve: Curve) -> str:
    """The metric and the eval loss by step, as a plotext text chart for the Markdown report."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(70, 14)
    plt.theme("clear")
    plt.subplots(1, 2)
    plt.subplot(1, 1).title(f"{curve.metric} by step")
    plt.subplot(1, 1).plot([p[0] for p in curve.points], [p[2].mean or 0 for p in curve.points], marker="*")
    plt.subplot(1, 2).title("eval loss")
    if curve.eval_loss:
        plt.subplot(1, 2).plot([s for s, _ in curve.eval_loss], [v for _, v in curve.eval_loss], marker="*")
    text = plt.build()
    plt.clear_figure()
    return text


def markdown(results: Results, data: dict[str, Any], curves: list[Curve]) -> str:
    metrics = _metrics(results)
    out = [
        f"# Eval {data['eval']}",
        "",
        f"{data['examples']} examples from `{data['dataset']}`; main metric **{data['main_metric']}**; "
        f"greedy={results.spec.generation.greedy}, max_new_tokens={results.spec.generation.max_new_tokens}.",
        "",
        "Means with 95% bootstrap intervals; changes against the base are paired over the same examples "
        "and called significant only when the interval excludes 0.",
        "",
        "| model | done | " + " | ".join(metrics) + " |",
        "|---|---:|" + "---:|" * len(metrics),
    ]
    summaries = results.summaries([m for m in metrics if m in METRICS])
    for s in summaries:
        out.append(f"| {s.model.label} | {s.done} | " + " | ".join(_fmt(_summary_of(s, m), m) for m in metrics) + " |")
    if results.base:
        out += [
            "",
            "## Against the base",
            "",
            "| model | " + " | ".join(metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        for s in summaries:
            if s.delta:
                out.append(f"| {s.model.label} | " + " | ".join(_delta(s.delta.get(m), m) for m in metrics) + " |")
    out += [
        "",
        "## Regression and red-team gate",
        "",
        ("PASS: " if data["gate"]["ok"] else "FAIL: ") + data["gate"]["summary"],
    ]
    judge = data["judge"]
    if judge["verdicts"] or judge["pairs"]:
        out += [
            "",
            "## LLM judge",
            "",
            f"Judge `{judge['model']}`, {judge['verdicts']} graded answers, "
            f"{judge['pairs']} A/B pairs; {judge['usage'].get('total_tokens', 0)} tokens.",
        ]
        for item, a in results.agreement().items():
            out.append(f"- agreement with your ratings on {item}: {a.describe()}")
    for c in data["checkpoints"]:
        curve = next(x for x in curves if x.run_id == c["run"])
        out += ["", f"## Checkpoints of {c['run']}", "", c["verdict"], "", "```", _text_chart(curve), "```"]
    out += ["", f"## Worst examples ({len(data['worst'])})", ""]
    labels = {m.key: m.label for m in results.models}
    for w in data["worst"]:
        out += [f"### Example {w['id']}", "", "**Prompt:** " + w["prompt"].strip(), ""]
        if w["reference"] is not None:
            out += ["**Reference:**", "", "```", w["reference"], "```"]
        for key, answer in w["answers"].items():
            out += [
                f"**{labels.get(key, key)}:**",
                "",
                "```",
                answer if answer is not None else "(not generated)",
                "```",
            ]
        if w["note"]:
            out += [f"_Note: {w['note']}_"]
        out.append("")
    return "\n".join(out) + "\n"


def _svg_chart(curve: Curve, width: int = 520, height: int = 180) -> str:
    """A small SVG line chart: the metric (green) and the eval loss (orange, own scale) by step."""

    def line(points: Sequence[tuple[float, float]], color: str) -> str:
        if len(points) < 1:
            return ""
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(xs), max(xs) or 1
        y0, y1 = min(ys), max(ys)

        def sx(x: float) -> float:
            return 30 + (x - x0) / ((x1 - x0) or 1) * (width - 40)

        def sy(y: float) -> float:
            return height - 20 - (y - y0) / ((y1 - y0) or 1) * (height - 40)

        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>'

    metric = [(p[0], p[2].mean) for p in curve.points if p[2].mean is not None]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'style="background:#fafafa;border:1px solid #ddd">'
        + line(metric, "#2a9d4a")
        + line(list(curve.eval_loss), "#e07b00")
        + f'<text x="30" y="14" font-size="12">{html.escape(curve.metric)} (green) and eval loss (orange) by step</text></svg>'
    )


def _inline(text: str) -> str:
    """**bold**, `code` and _italic_ of the report's Markdown, escaped."""
    import re

    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"<i>\1</i>", out)


def _markdown_html(md: str, charts: dict[str, str]) -> str:
    """The report's own Markdown (headings, tables, fences, paragraphs) as HTML; charts go after their heading."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            block = "\n".join(lines[i + 1 : end])
            if not (block.strip() and any(h in out[-3:] for h in charts.values())):  # the SVG replaces the text chart
                out.append(f"<pre>{html.escape(block)}</pre>")
            i = end + 1
            continue
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(set(c) <= set("-:") for c in cells):
                    rows.append(cells)
                i += 1
            head, *body = rows
            out.append(
                "<table><tr>"
                + "".join(f"<th>{_inline(c)}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            continue
        level = len(line) - len(line.lstrip("#"))
        if 0 < level <= 3 and line[level : level + 1] == " ":
            title = line[level + 1 :]
            out.append(f"<h{level}>{_inline(title)}</h{level}>")
            if title in charts:
                out.append(charts[title])
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def html_report(results: Results, data: dict[str, Any], curves: list[Curve]) -> str:
    """A standalone page: the Markdown report's tables as HTML, with SVG charts of the checkpoint curves."""
    charts = {f"Checkpoints of {c.run_id}": _svg_chart(c) for c in curves}
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
        "th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "th{background:#f4f4f4}pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;font-size:13px}"
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>Eval " + html.escape(data["eval"]) + "</title>"
        f"<style>{style}</style></head><body>\n"
        + _markdown_html(markdown(results, data, curves), charts)
        + "\n</body></html>\n"
    )


def write_report(results: Results, directory: Path | None = None) -> list[Path]:
    """report.md, report.json and report.html in the eval directory (or ``directory``)."""
    directory = directory or results.ev.path
    curves = curves_of(results)
    data = report_data(results, curves)
    paths = [directory / "report.md", directory / "report.json", directory / "report.html"]
    atomic_write_text(paths[0], markdown(results, data, curves))
    atomic_write_text(paths[1], json.dumps(data, indent=1, ensure_ascii=False, default=str))
    atomic_write_text(paths[2], html_report(results, data, curves))
    write_scores(results.ev)
    return paths
