"""How the review grid draws an answer, a summary row and a diff: Rich text from workbench.eval's plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from workbench.eval.metrics import METRICS
from workbench.eval.results import Cell, ModelSummary, Results, Row
from workbench.eval.stats import Difference, Summary

LABEL = {"judge": "judge", "human": "you", "case": "cases"}


def metric_label(metric: str) -> str:
    return LABEL.get(metric) or (METRICS[metric].label if metric in METRICS else metric)


def short_labels(models: list[Any]) -> dict[str, str]:
    """Model labels without the run's name when every trained model comes from one run: 'step 52', not 'demo 11:40 · step 52'."""
    trained = [m for m in models if m.kind != "base"]
    heads = {m.label.split(" · ", 1)[0] for m in trained}
    if len(trained) > 1 and len(heads) == 1 and all(" · " in m.label for m in trained):
        return {m.key: m.label.split(" · ", 1)[1] if m.kind != "base" else m.label for m in models}
    return {m.key: m.label for m in models}


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(1, width - 1)] + "…"


def _grade_style(value: float, good: float, fair: float) -> str:
    return "green" if value >= good else "yellow" if value >= fair else "red"


def value_text(metric: str, value: float | None) -> Text:
    """A metric's value as the grid shows it: ✔/✖ for pass/fail rates, .82 for shares, a number otherwise."""
    if value is None:
        return Text("–", style="dim")
    meta = METRICS.get(metric)
    if metric == "case" or (meta and meta.key in ("json_valid", "schema_valid", "exact_match")):
        return Text("✔", style="green") if value >= 0.5 else Text("✖", style="bold red")
    if meta and meta.key == "refusal":
        return Text("refused", style="magenta") if value >= 0.5 else Text("")
    if meta and meta.kind == "rate":
        return Text(f"{value:.2f}".lstrip("0") if value < 1 else "1.0", style=_grade_style(value, 0.8, 0.5))
    return Text(f"{value:g}")


def cell_text(results: Results, row: Row, cell: Cell, width: int, *, blind: bool) -> Text:
    """Two lines: the answer's start, then badges (main metric, case, judge, your rating, ▼ worse than base).

    Built by appending to one Text (``+`` copies the whole text each time: thousands of cells per redraw).
    """
    if cell.output is None:
        return Text.assemble(("…\n", "dim"), ("waiting", "dim italic"))
    text = Text(end="")
    text.append(one_line(cell.output, width) or "(empty answer)", "" if cell.output.strip() else "dim italic")
    text.append("\n")
    if not blind:
        primary = results.primary
        if cell.case is not None:
            text.append("✔ case " if cell.case.passed else "✖ case ", "green" if cell.case.passed else "bold red")
        elif primary != "case":
            text.append(f"{metric_label(primary)} ")
            text.append_text(value_text(primary, cell.value(primary)))
            text.append(" ")
        if cell.value("refusal") and not (cell.case and cell.case.kind == "red-team"):
            text.append("⊘ ", "magenta")
        if cell.verdict is not None:
            j = cell.verdict.score
            if j is None:
                text.append("J? ", "dim")
            elif results.rubric.pass_fail:
                text.append("J✔ " if j else "J✖ ", "green" if j else "red")
            else:
                text.append(f"J{j} ", _grade_style(j, 4, 3))
        if results.worse_than_base(row, cell.model):
            text.append("▼ ", "bold red")
        if results.disagrees(cell):
            text.append("≠ ", "bold magenta")
    if cell.human is not None:
        text.append(f"★{cell.human}", "bold " + _grade_style(cell.human, 4, 3))
    return text


SUMMARY_CELL_W = 13
"""A summary cell: '45%±13 ▲+42'."""


def summary_cell(summary: Summary | None, metric: str) -> Text:
    """A metric's mean and the half-width of its 95% interval: '45%±13', '4.5±0.4'."""
    if summary is None or summary.mean is None:
        return Text("–", style="dim")
    half = (
        (summary.hi - summary.lo) / 2 if summary.n > 1 and summary.hi is not None and summary.lo is not None else None
    )
    if metric in ("judge", "human"):
        return Text(f"{summary.mean:.1f}" + (f"±{half:.1f}" if half is not None else ""))
    meta = METRICS.get(metric)
    if meta and meta.kind == "number":
        return Text(f"{summary.mean:.0f}")
    style = _grade_style(summary.mean, 0.8, 0.5) if meta and meta.higher_is_better else ""
    return Text(f"{summary.mean * 100:.0f}%" + (f"±{half * 100:.0f}" if half is not None else ""), style=style)


def delta_cell(delta: Difference | None, metric: str) -> Text:
    """' ▲+12' or ' ▼-8' when the paired interval excludes 0, ' ~+2' (dim) when it is within noise."""
    if delta is None or delta.mean is None:
        return Text("")
    meta = METRICS.get(metric)
    better = delta.mean > 0 if (meta is None or meta.higher_is_better is not False) else delta.mean < 0
    number = f"{delta.mean:+.1f}" if metric in ("judge", "human") else f"{delta.mean * 100:+.0f}"
    if not delta.significant:
        return Text(f" ~{number}", style="dim")
    return Text(f" {'▲' if better else '▼'}{number}", style="bold green" if better else "bold red")


def summary_table(results: Results, summaries: list[ModelSummary], metrics: list[str], width: int = 120) -> Table:
    """Per model: each metric's mean ±half its 95% interval, then its change against the base (▲▼ significant, ~ noise).

    Metrics that do not fit ``width`` are left out, the main metric and the grades first kept.
    """
    labels = short_labels([s.model for s in summaries])
    model_w = min(28, max(12, max((len(labels[s.model.key]) for s in summaries), default=12)))
    fit = max(1, (width - model_w - 13) // (SUMMARY_CELL_W + 2))  # each column is padded one cell each side
    priority = [
        results.primary,
        "case",
        "judge",
        "human",
        "token_f1",
        "exact_match",
        "similarity",
        "rouge_l",
        "refusal",
        "json_valid",
        "schema_valid",
    ]
    keep = set(sorted(metrics, key=lambda m: priority.index(m) if m in priority else len(priority))[:fit])
    metrics = [m for m in metrics if m in keep]
    table = Table(box=None, padding=(0, 1), expand=False, show_edge=False, header_style="bold")
    table.add_column("model", no_wrap=True, max_width=model_w)
    table.add_column("done", justify="right", no_wrap=True)
    for metric in metrics:
        table.add_column(
            metric_label(metric) + ("*" if metric == results.primary else ""),
            justify="right",
            no_wrap=True,
            min_width=SUMMARY_CELL_W if results.base else 8,
        )
    total = len(results.rows)
    for s in summaries:
        cells: list[Text | str] = [
            Text(labels[s.model.key], style="bold" if s.model.key == results.base else ""),
            f"{s.done}/{total}",
        ]
        for metric in metrics:
            if metric == "case":
                passed, n = s.cases
                cells.append(
                    Text(f"{passed}/{n} pass", style="green" if n and passed == n else "red") if n else Text("–")
                )
                continue
            summary = s.judge if metric == "judge" else s.human if metric == "human" else s.metrics.get(metric)
            cells.append(summary_cell(summary, metric) + delta_cell(s.delta.get(metric), metric))
        table.add_row(*cells)
    return table


def header_text(
    res: Results,
    status: Any,
    shown: int,
    filter_name: str,
    sort: str,
    search: str,
    blind: bool,
    busy: str,
    *,
    rating: bool = False,
) -> Text:
    """The pane's two header lines: the eval, its generation's state, and how the grid is filtered and sorted."""
    state = status.state
    line = Text.assemble(
        (res.ev.id, "bold"),
        f" · {Path(res.spec.dataset or '').name} · {len(res.rows)} examples × {len(res.keys)} models · ",
    )
    style = {
        "running": "bold yellow",
        "completed": "green",
        "failed": "bold red",
        "lost": "bold red",
        "stopped": "yellow",
    }.get(state, "")
    done = sum(1 for c in res.predictions if c[0] in res.keys)
    line += Text(f"{state} {done}/{res.expected_answers}", style=style)
    if state in ("running", "starting") and status.model:
        line += Text(f" (now {status.model}; x stops)", style="dim")
    elif state in ("stopped", "failed", "lost") and done < res.expected_answers:
        line += Text(" · g goes on", style="dim")
    if state == "failed" and status.error:
        line += Text(f"\n✖ {one_line(str(status.error), 110)}", style="red")
    elif rating:  # the mode the digits are in, where the eye already is
        line += Text("\n") + Text(" ● RATING MODE ", style="bold black on yellow")
        line += Text(" 1-5 rate · 0 clears · a/b/t: A/B · Esc leaves", style="bold")
        line += Text(f" · rated {res.ratings.rated_count()}/{len(res.rows)}", style="dim")
    else:
        regressions = sum(res.matches(r, "regressions") for r in res.rows)  # one filter, not all five
        second = Text(f"filter: {filter_name} ({shown}/{len(res.rows)})", style="bold" if filter_name != "all" else "")
        second += f" · sort: {sort} · main metric: {metric_label(res.primary)}"
        if search:
            second += Text(f" · search: {search!r}", style="bold")
        second += Text(" · BLIND" if blind else "", style="bold magenta")
        second += Text(
            f" · rated {res.ratings.rated_count()}/{len(res.rows)}"
            + ("" if blind else f" · regressions {regressions}"),
            style="dim",
        )
        if busy:
            second += Text(f" · {busy}", style="bold yellow")
        line += Text("\n") + second
    return line


def summary_parts(
    res: Results, metrics: list[str], summaries: list[ModelSummary], agreements: dict[str, Any], width: int
) -> list[Any]:
    """The summary table, its legend, and the judge's line: its trust (overall and per item), tokens and cost."""
    legend = (
        f"* main metric · ±: half the 95% interval · vs {res.compared_with}: ▲▼ significant, ~ within noise"
        if width >= 100
        else f"* main · ±: 95% interval · ▲▼ vs {res.compared_with.removeprefix('the ')}, ~ noise"
    )
    parts: list[Any] = [summary_table(res, summaries, metrics, width), Text(legend, style="dim")]
    if res.verdicts.single:
        overall = agreements.get("overall")
        trust = f"judge {res.verdicts.judge_model or ''}: " + (
            overall.describe() if overall else "no ratings to compare"
        )
        items = [
            f"{name} κ={a.kappa:.2f}" if a.enough and a.kappa is not None else f"{name} n={a.n}"
            for name, a in agreements.items()
            if name != "overall"
        ]
        if items:
            trust += " · per item: " + ", ".join(items)
        usage = res.verdicts.usage
        trust += f" · {usage.describe()}" if usage.total_tokens else ""
        parts.append(Text(trust, style="dim"))
    return parts


def pair_line(res: Results, row: Row, order: list[str], blind: bool) -> Text:
    """Your A/B choice between the first two columns, and (not blind) the A/B judge's verdict on them."""
    if len(order) < 2:
        return Text("")
    a, b = order[0], order[1]
    names = ("the first", "the second") if blind else (a, b)
    line = Text()
    choice = res.ratings.choice_of(row.id, a, b)
    if choice:
        line.append(
            "\nyour A/B: " + {"a": f"{names[0]} better", "b": f"{names[1]} better", "tie": "a tie"}[choice], "bold"
        )
    verdict = None if blind else (res.verdicts.pair(row.id, a, b) or res.verdicts.pair(row.id, b, a))
    if verdict is not None:
        shown = (
            "unreadable"
            if verdict.unparsed
            else (verdict.winner_model or "")
            + ("" if verdict.consistent else " (a tie: it changed its mind when the order was swapped)")
        )
        line.append(f"\nA/B judge: {shown}", "dim")
    return line


def diff_text(segments: list[tuple[str, str]]) -> Text:
    """The answer with words the reference lacks in green and the reference's missing words struck in red."""
    text = Text()
    for op, part in segments:
        text += Text(part, style={"added": "bold green", "missing": "red strike"}.get(op, ""))
    return text
