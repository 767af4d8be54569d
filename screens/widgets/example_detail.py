"""One example in full: its conversation, its findings and its note (text is never read as markup)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from workbench.data.findings import DataFinding, severity_rank
from workbench.data.formats import Shape
from workbench.data.store import Example
from workbench.data.tokens import TokenView
from workbench.data.view import Turn

ROLE_STYLE = {"system": "bold magenta", "user": "bold cyan", "assistant": "bold green", "tool": "bold yellow"}
SEVERITY_MARK = {"error": ("✖", "bold red"), "warning": ("⚠", "yellow"), "info": ("ℹ", "cyan")}


def _turns(turns: tuple[Turn, ...] | list[Turn]) -> Text:
    out = Text()
    for turn in turns:
        out.append(f"{turn.role.upper()}\n", style=ROLE_STYLE.get(turn.role, "bold"))
        content = turn.content if turn.content.strip() else "(empty)"
        out.append(content + "\n\n", style="" if turn.content.strip() else "italic red")
    return out


def render_example(ex: Example, shape: Shape, findings: list[DataFinding], *, total: int, position: int) -> Group:
    """The detail view: a title line, findings first (the reason to look), then the conversation."""
    v = ex.view(shape)
    title = Text.assemble(
        (f"Example {ex.id}", "bold"),
        f"  ({position + 1} of {total} shown) · ",
        (ex.status, {"accepted": "green", "rejected": "red", "flagged": "yellow"}.get(ex.status, "")),
        f" · line {ex.line}" if ex.line else "",
        f" · {ex.source}" if ex.source != "file" else "",
    )
    parts: list = [title]
    if ex.note:
        parts.append(Text.assemble(("note: ", "bold yellow"), ex.note))
    for problem in ex.problems:
        parts.append(Text.assemble(("✖ shape: ", "bold red"), problem, ("  (e edits it)", "dim")))
    for f in sorted(findings, key=lambda f: severity_rank(f.severity)):
        mark, style = SEVERITY_MARK.get(f.severity, ("•", ""))
        line = Text.assemble((f"{mark} {f.check}: ", style), f.message)
        if f.suggestion:
            line.append(f"\n   → {f.suggestion}", style="dim")
        parts.append(line)
    parts.append(Text(""))
    if v.is_preference:
        parts.append(_turns(v.prompt))
        table = Table.grid(expand=True, padding=(0, 1))
        table.add_column(ratio=1)
        table.add_column(ratio=1)
        table.add_row(Text("CHOSEN", style="bold green"), Text("REJECTED", style="bold red"))
        table.add_row(Text(v.response_text or "(empty)"), Text(v.rejected_text or "(empty)"))
        parts.append(table)
    else:
        if v.label is not None:
            parts.append(Text(f"label: {'desirable' if v.label else 'undesirable'}", style="bold"))
        parts.append(_turns(v.turns))
    return Group(*parts)


def render_tokens(view: TokenView, *, model: str, position: int, total: int) -> Group:
    """The mask view: the example as the trainer tokenizes it; loss tokens bright, the rest dim, the cut marked."""
    head = Text.assemble(
        ("Tokens", "bold"),
        f"  ({position + 1} of {total} shown) · {model} · {len(view.ids)} tokens · ",
        (f"{view.loss_tokens} carry loss", "bold green"),
        f" · max_length {view.max_length}",
    )
    parts: list = [head, Text("bright green: trained on (labels) · dim: context only (masked) · m: back", style="dim")]
    for problem in view.problems:
        parts.append(Text.assemble(("⚠ mask: ", "yellow"), problem))
    body = Text()
    for i, (piece, loss) in enumerate(zip(view.pieces, view.loss)):
        if i == view.cut:
            body.append(f"\n✂ max_length {view.max_length}: the trainer never sees what follows\n", style="bold red")
        if view.cut is not None and i >= view.cut:
            body.append(piece, style="strike dim")
        else:
            body.append(piece, style="bold green" if loss else "dim")
    parts += [Text(""), body]
    return Group(*parts)
