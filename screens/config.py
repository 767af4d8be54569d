"""The Config pane: a run config as a form, validated live, with derived figures and a memory estimate.

The form is a list of fields grouped like the schema's sections; Enter edits the
highlighted one (a toggle, a choice or a line of text), and every change is
re-assessed in a worker (debounced): findings appear beside their field, and
``f`` applies the fix a finding suggests. The pane renders what
:func:`workbench.config.assess.assess` returns; it computes nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from screens.modals import ChoiceScreen, PromptScreen
from screens.widgets.lazy import LoadsWhenShown
from workbench.config import assess as assess_mod
from workbench.config.fields import GROUPS, get_field, info, set_field, show
from workbench.config.schema import RunConfig, dump_config, load_config, parse_config
from workbench.config.validate import ConfigFinding
from workbench.errors import WorkbenchError
from workbench.workspace import Workspace

DEBOUNCE_S = 0.3
MARK = {"error": ("✖", "bold red"), "warning": ("⚠", "yellow"), "info": ("ℹ", "cyan")}
NEW_CONFIG = "name: my-run\nmodel: bundled\ndata:\n  train: data/train.jsonl\n"


@dataclass
class Assessed(Message):
    config: RunConfig
    result: Any  # assess.Assessment
    error: str = ""


class ConfigPane(LoadsWhenShown, Vertical):
    """Build and check a run config by keyboard."""

    BINDINGS = [
        Binding("enter", "edit", "Edit", id="config.edit", tooltip="Edit the highlighted field", show=True),
        Binding("f", "fix", "Apply fix", id="config.fix", tooltip="Apply the fix suggested for the highlighted field"),
        Binding(
            "F",
            "fix_all",
            "Fix all",
            id="config.fix_all",
            show=False,
            tooltip="Apply every suggested fix (errors and warnings)",
        ),
        Binding("u", "undo", "Undo", id="config.undo", tooltip="Undo the last change to the config"),
        Binding(
            "p",
            "preset",
            "Preset",
            id="config.preset",
            tooltip="Apply a preset: style/format, domain adaptation, deep task change, DPO",
        ),
        Binding("ctrl+s", "save", "Save", id="config.save", tooltip="Save the YAML (Save as when new)"),
        Binding("S", "save_as", "Save as", id="config.save_as", show=False, tooltip="Save the YAML under another name"),
        Binding("o", "open", "Open", id="config.open", tooltip="Open another config of the workspace"),
        Binding("N", "new", "New", id="config.new", show=False, tooltip="Start a new config"),
        Binding("d", "diff", "Diff", id="config.diff", show=False, tooltip="Differences against another config"),
        Binding(
            "x",
            "export",
            "Export",
            id="config.export",
            tooltip="Export: TRL CLI config (trl sft/dpo --config) or a plain Python script",
        ),
        Binding(
            "m",
            "probe",
            "Measure step",
            id="config.probe",
            show=False,
            tooltip="Run one real training step: time per step and peak memory",
        ),
        Binding(
            "i",
            "memory_details",
            "Memory details",
            id="config.memory",
            show=False,
            tooltip="How each item of the memory estimate is worked out",
        ),
        Binding(
            "a",
            "advisor",
            "Advisor",
            id="config.advisor",
            tooltip="Prompting, RAG, SFT, DPO, LoRA or full? A short questionnaire with a starter config",
        ),
        Binding(
            "D",
            "diagnose",
            "Diagnose",
            id="config.diagnose",
            show=False,
            tooltip="Paste an error message or pick a run: likely cause and fix",
        ),
    ]

    def __init__(self, workspace: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.initial_config: str | None = None
        self.path: Path | None = None
        self.config: RunConfig | None = None
        self.saved_text = ""
        self.history: list[RunConfig] = []
        self.assessment: Any = None
        self.step_seconds: float | None = None
        self.probe: Any = None
        self._timer = None
        self._rows: list[str | None] = []  # field path per option (None for a section title)
        self._status = ""

    def compose(self) -> ComposeResult:
        yield Static("Loading a config…", id="config-header")
        with Horizontal():
            yield OptionList(id="form")
            with VerticalScroll(id="config-side"):
                yield Static("", id="field-help")
                yield Static("", id="derived")
                yield Static("", id="memory")
                yield Static("", id="all-findings")

    def first_shown(self) -> None:
        """Load and assess a config the first time the pane is shown (assessing reads data and a tokenizer)."""
        configs = Workspace(self.workspace).configs()
        wanted = Path(self.initial_config) if self.initial_config else None
        if wanted is not None and wanted.exists():
            self.load(wanted)
        elif configs:
            self.load(configs[0])
        else:
            self.set_config(parse_config(NEW_CONFIG, base_dir=self.workspace), path=None, saved="")

    # --- the config -----------------------------------------------------------

    def load(self, path: Path) -> None:
        try:
            config = load_config(path)
        except WorkbenchError as exc:
            self.notify(str(exc), title="Cannot open", severity="error", timeout=15)
            return
        self.history.clear()
        self.set_config(config, path=path, saved=dump_config(config))
        self.app.remember(last_config=str(path))

    def set_config(
        self, config: RunConfig, *, path: Path | str | None = "keep", saved: str | None = None, record: bool = False
    ) -> None:
        if record and self.config is not None:
            self.history.append(self.config)
        self.config = config
        if path != "keep":
            self.path = path  # type: ignore[assignment]
        if saved is not None:
            self.saved_text = saved
        self._render_form()
        self._render_header()
        self._schedule()

    @property
    def dirty(self) -> bool:
        return self.config is not None and dump_config(self.config) != self.saved_text

    def change(self, path: str, value: Any) -> bool:
        """Set one field; a bad value is refused with the reason and the config stays as it was."""
        if self.config is None:
            return False
        try:
            new = set_field(self.config, path, value)
        except WorkbenchError as exc:
            self.notify(str(exc), title="Not changed", severity="error", timeout=10)
            return False
        if dump_config(new) != dump_config(self.config):
            self.set_config(new, record=True)
        return True

    # --- assessing (debounced, in a worker) ----------------------------------

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self._assess_now)

    def _assess_now(self) -> None:
        if self.config is not None:
            self._set_status("checking…")
            self._assess(self.config, self.step_seconds)

    @work(thread=True, exclusive=True, group="config-assess", exit_on_error=False)
    def _assess(self, config: RunConfig, step_seconds: float | None) -> None:
        try:
            result = assess_mod.assess(config, step_seconds=step_seconds)
        except Exception as exc:
            self.post_message(Assessed(config, None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(Assessed(config, result))

    def on_assessed(self, message: Assessed) -> None:
        if message.config is not self.config:
            return  # a later change is being assessed
        if message.result is None:
            self.notify(message.error, title="Check failed", severity="error", timeout=12)
            self._set_status("")
            return
        self.assessment = message.result
        self._set_status("")
        self._render_form()
        self._render_side()

    # --- rendering ------------------------------------------------------------

    def findings_for(self, path: str) -> list[ConfigFinding]:
        if self.assessment is None:
            return []
        return [f for f in self.assessment.findings if f.field == path or f.field.startswith(path + ".")]

    def _render_form(self) -> None:
        form = self.query_one(OptionList)
        config = self.config
        if config is None:
            return
        highlighted = form.highlighted
        width = 24
        options: list[Option] = []
        rows: list[str | None] = []
        for title, paths in GROUPS:
            options.append(Option(Text(title, style="bold reverse"), disabled=True))
            rows.append(None)
            for path in paths:
                value = show(get_field(config, path)) or "—"
                line = Text(f"  {path.split('.')[-1]:<{width}}", style="")
                line.append(value[:40], style="bold")
                marks = self.findings_for(path)
                if marks:
                    worst = min(marks, key=lambda f: ("error", "warning", "info").index(f.severity))
                    mark, style = MARK[worst.severity]
                    line.append(f"  {mark}", style=style)
                options.append(Option(line, id=path))
                rows.append(path)
        form.set_options(options)
        self._rows = rows
        if highlighted is None or highlighted >= len(rows) or rows[highlighted] is None:
            highlighted = 1
        form.highlighted = highlighted
        self._render_field_help()

    def _render_header(self) -> None:
        name = (
            str(self.path.relative_to(self.workspace))
            if self.path and self.path.is_relative_to(self.workspace)
            else (str(self.path) if self.path else "new config (not saved)")
        )
        dirty = " [b]· modified[/b] (ctrl+s saves)" if self.dirty else ""
        counts = ""
        if self.assessment is not None:
            sev = [f.severity for f in self.assessment.findings]
            counts = (
                f" · [red]{sev.count('error')} error(s)[/red] · [yellow]{sev.count('warning')} warning(s)[/yellow]"
                f" · {sev.count('info')} note(s)"
            )
        status = getattr(self, "_status", "")
        self.query_one("#config-header", Static).update(
            f"[b]{_escape(name)}[/b]{dirty}{counts}\n"
            f"[dim]Enter edits the field · f applies its fix · p presets · a advisor · x export[/dim]"
            + (f"   [b]{status}[/b]" if status else ""),
            layout=False,
        )

    def _set_status(self, text: str) -> None:
        self._status = text
        self._render_header()

    def current_path(self) -> str | None:
        index = self.query_one(OptionList).highlighted
        return self._rows[index] if index is not None and 0 <= index < len(self._rows) else None

    @on(OptionList.OptionHighlighted, "#form")
    def _highlighted(self, _: OptionList.OptionHighlighted) -> None:
        self._render_field_help()

    def _render_field_help(self) -> None:
        path = self.current_path()
        widget = self.query_one("#field-help", Static)
        if path is None or self.config is None:
            widget.update("")
            return
        meta = info(path)
        out = Text()
        out.append(f"{path}\n", style="bold")
        out.append(meta.description + "\n", style="")
        if meta.choices:
            out.append(f"choices: {', '.join(meta.choices)}\n", style="dim")
        if path == "lora.target_modules" and self.assessment is not None and getattr(self.assessment, "modules", None):
            out.append("this model has: " + self.assessment.modules + "\n", style="dim")
        for f in self.findings_for(path):
            mark, style = MARK[f.severity]
            out.append(f"{mark} {f.message}", style=style)
            if f.suggestion is not None:
                out.append(f"\n  f sets {f.field} = {show(f.suggestion)}", style="dim")
            out.append("\n")
        widget.update(out)

    def _render_side(self) -> None:
        a = self.assessment
        derived = self.query_one("#derived", Static)
        memory = self.query_one("#memory", Static)
        everything = self.query_one("#all-findings", Static)
        derived.update(Text(a.derived_text() if hasattr(a, "derived_text") else "", style=""))
        memory.update(Text(a.memory_text() if hasattr(a, "memory_text") else ""))
        out = Text()
        if a.findings:
            out.append("All findings\n", style="bold")
            for f in a.findings:
                mark, style = MARK[f.severity]
                out.append(f"{mark} ", style=style)
                out.append(f"{f.field}: ", style="bold")
                out.append(f"{f.message}\n")
        else:
            out.append("✓ No findings: this config passes every check.\n", style="green")
        everything.update(out)
        self._render_header()
        self._render_field_help()

    # --- actions --------------------------------------------------------------

    @on(OptionList.OptionSelected, "#form")
    def _selected(self, _: OptionList.OptionSelected) -> None:
        self.action_edit()

    def action_edit(self) -> None:
        path = self.current_path()
        if path is None or self.config is None:
            return
        meta = info(path)
        current = get_field(self.config, path)
        if meta.kind == "bool":
            self.change(path, not current)
            return
        if meta.kind == "choice":
            options = [(f"{c}{'  (current)' if c == show(current) else ''}", c) for c in meta.choices]
            self.app.push_screen(
                ChoiceScreen(f"{path}: {meta.description}", options),
                lambda v: self.change(path, v) if v is not None else None,
            )
            return
        hint = "empty: not set" if meta.optional else ""
        if meta.kind == "modules":
            hint = "all-linear, or names separated by commas (q_proj, v_proj)"
            modules = getattr(self.assessment, "modules", "") if self.assessment is not None else ""
            if modules:
                hint += f"\nThis model has: {modules}"
        self.app.push_screen(
            PromptScreen(f"{path}: {meta.description}", show(current), help_text=hint),
            lambda v: self.change(path, v) if v is not None else None,
        )

    def action_fix(self) -> None:
        path = self.current_path()
        fixes = [f for f in (self.findings_for(path) if path else []) if f.suggestion is not None]
        if not fixes and self.assessment is not None:
            fixes = [f for f in self.assessment.findings if f.suggestion is not None]
            if fixes:
                self._goto(fixes[0].field)
        if not fixes:
            self.notify("No suggested fix here.", timeout=3)
            return
        f = fixes[0]
        if self.change(f.field, f.suggestion):
            self.notify(f"{f.field} = {show(f.suggestion)} ({f.message[:80]})", title="Fixed", timeout=5)

    def action_fix_all(self) -> None:
        if self.assessment is None or self.config is None:
            return
        config, applied = self.config, []
        for f in self.assessment.findings:
            if f.suggestion is None or f.severity == "info":
                continue
            try:
                config = set_field(config, f.field, f.suggestion)
                applied.append(f.field)
            except WorkbenchError:
                continue
        if applied:
            self.set_config(config, record=True)
            self.notify("Applied: " + ", ".join(applied) + ". u undoes them one at a time.", timeout=6)

    def _goto(self, path: str) -> None:
        if path in self._rows:
            self.query_one(OptionList).highlighted = self._rows.index(path)

    def action_undo(self) -> None:
        if not self.history:
            self.notify("Nothing to undo.", timeout=2)
            return
        self.set_config(self.history.pop())

    def action_preset(self) -> None:
        from workbench.config.presets import PRESETS, apply_preset

        options = [(f"{p.title}: {p.when_to_use}", key) for key, p in PRESETS.items()]

        def done(key: str | None) -> None:
            if key is not None and self.config is not None:
                self.set_config(apply_preset(self.config, key), record=True)
                self.notify(f"Preset applied: {PRESETS[key].title}. u undoes it.", timeout=5)

        self.app.push_screen(ChoiceScreen("Apply a preset (data paths and model are kept)", options), done)

    def action_save(self) -> None:
        if self.path is None:
            self.action_save_as()
            return
        self._write(self.path)

    def action_save_as(self) -> None:
        default = f"configs/{self.config.name if self.config else 'run'}.yaml"

        def done(value: str | None) -> None:
            if value:
                target = Path(value)
                self._write(target if target.is_absolute() else self.workspace / target)

        self.app.push_screen(PromptScreen("Save the config as (relative to the workspace)", default), done)

    def _write(self, path: Path) -> None:
        if self.config is None:
            return
        text = dump_config(self.config)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from workbench.fileio import atomic_write_text

            atomic_write_text(path, text)
        except OSError as exc:
            self.notify(f"Not saved: {exc}", severity="error", timeout=10)
            return
        self.path, self.saved_text = path, text
        self.app.remember(last_config=str(path))
        self._render_header()
        self.notify(f"Saved {path.name}. The Train pane's n launches it.", timeout=5)

    def action_open(self) -> None:
        configs = Workspace(self.workspace).configs()
        options = [(str(p.relative_to(self.workspace)), str(p)) for p in configs]
        self.app.push_screen(ChoiceScreen("Open a config", options), lambda v: self.load(Path(v)) if v else None)

    def action_new(self) -> None:
        self.history.clear()
        self.set_config(parse_config(NEW_CONFIG, base_dir=self.workspace), path=None, saved="")

    def action_diff(self) -> None:
        from workbench.config.diff import diff_text

        configs = [p for p in Workspace(self.workspace).configs() if p != self.path]
        options = [(str(p.relative_to(self.workspace)), str(p)) for p in configs]

        def done(value: str | None) -> None:
            if value and self.config is not None:
                try:
                    other = load_config(Path(value))
                except WorkbenchError as exc:
                    self.notify(str(exc), severity="error")
                    return
                from screens.modals import HelpScreen

                text = diff_text(other, self.config) or "No differences."
                self.app.push_screen(
                    HelpScreen([(f"{Path(value).name} → this config", [("", line) for line in text.splitlines()])])
                )

        self.app.push_screen(ChoiceScreen("Diff against which config?", options), done)

    def action_export(self) -> None:
        options = [
            ("The workbench's YAML (what `workbench train` runs)", "yaml"),
            ("TRL's own CLI config (trl sft/dpo --config FILE)", "trl"),
            ("A plain Python script with TRL and PEFT", "script"),
        ]

        def done(kind: str | None) -> None:
            if kind is None or self.config is None:
                return
            stem = self.config.name
            default = {
                "yaml": f"exports/{stem}.yaml",
                "trl": f"exports/{stem}.trl.yaml",
                "script": f"exports/{stem}.py",
            }[kind]
            self.app.push_screen(
                PromptScreen("Write it to (relative to the workspace)", default),
                lambda target: self._export(kind, target) if target else None,
            )

        self.app.push_screen(ChoiceScreen("Export this config", options), done)

    def _export(self, kind: str, target: str) -> None:
        assert self.config is not None
        path = Path(target) if Path(target).is_absolute() else self.workspace / target
        self._set_status(f"exporting to {path.name}…")
        self._write_export(self.config, kind, path)

    @work(thread=True, exclusive=True, group="config-export", exit_on_error=False)
    def _write_export(self, config: RunConfig, kind: str, path: Path) -> None:
        """In a worker: the export counts the dataset, and converts the bundled model on first use."""
        from workbench.config.export import export_as

        try:
            text, command, _ = export_as(config, kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except (WorkbenchError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"Not exported: {exc}", severity="error", timeout=10)
            self.app.call_from_thread(self._set_status, "")
            return
        extra = f" Run: {command.replace('FILE', str(path))}" if command else ""
        self.app.call_from_thread(self.notify, f"Wrote {path}.{extra}", timeout=10)
        self.app.call_from_thread(self._set_status, "")

    def action_probe(self) -> None:
        if self.config is None:
            return
        self._set_status("measuring one training step…")
        self._probe(self.config)

    @work(thread=True, exclusive=True, group="config-probe", exit_on_error=False)
    def _probe(self, config: RunConfig) -> None:
        from workbench.config.probe import probe_step

        try:
            result = probe_step(config)
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"Probe failed: {exc}", severity="error", timeout=15)
            self.app.call_from_thread(self._set_status, "")
            return

        def show_result() -> None:
            self.probe = result
            self.step_seconds = result.seconds_per_step
            self._set_status("")
            self.notify(
                f"One step: {result.seconds_per_step:.2f} s; peak {result.peak_bytes / 2**30:.2f} GiB "
                f"({result.device}). {result.note}",
                title="Measured",
                timeout=12,
            )
            self._schedule()

        self.app.call_from_thread(show_result)

    def action_memory_details(self) -> None:
        from screens.modals import HelpScreen

        lines = self.assessment.memory_details() if self.assessment is not None else []
        if lines:
            self.app.push_screen(HelpScreen([("GPU memory estimate", [("", line) for line in lines])]))

    def action_advisor(self) -> None:
        from screens.advisor import AdvisorScreen

        def done(yaml_text: str | None) -> None:
            if yaml_text:
                try:
                    config = parse_config(yaml_text, base_dir=self.workspace)
                except WorkbenchError as exc:
                    self.notify(str(exc), severity="error")
                    return
                self.history.clear()
                self.set_config(config, path=None, saved="")
                self.notify("Starter config loaded: point data.train at your file, then ctrl+s.", timeout=8)

        self.app.push_screen(AdvisorScreen(), done)

    def action_diagnose(self) -> None:
        from screens.advisor import DiagnoseScreen

        self.app.push_screen(DiagnoseScreen(self.workspace))


def _escape(text: str) -> str:
    from textual.markup import escape

    return escape(text)
