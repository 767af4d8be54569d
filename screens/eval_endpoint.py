"""The new-eval dialog's "add endpoint…": any OpenAI-compatible server (ours, vLLM) or a litellm provider.

The dialog asks for the API base URL, the model name and the NAME of the environment variable
holding the key (never the key). A server is checked with one ``GET /v1/models`` in a worker
before the candidate is added, so a server that is down, a refused key or a model it does not
serve shows here, not later in a failed eval.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from workbench.errors import WorkbenchError
from workbench.eval.remote import check_endpoint, endpoint_models, endpoint_ref, provider_ref
from workbench.eval.store import ModelRef


class EndpointScreen(ModalScreen[ModelRef | None]):
    """URL, model and key variable; ctrl+s (or Enter, or Add) checks the server and returns the candidate."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "add", "Check and add"),
    ]

    def __init__(self, url: str = "http://127.0.0.1:8000/v1") -> None:
        super().__init__()
        self.url = url

    def compose(self) -> ComposeResult:
        with Vertical(id="endpoint-dialog"):
            yield Label("[b]Add an endpoint[/b] as a candidate: its answers are scored in the same grid")
            yield Static(
                "An OpenAI-compatible API (`workbench serve`, vLLM, llama.cpp…): its base URL and a model it serves. "
                "Leave the URL empty for a provider through litellm (model as provider/name, e.g. "
                "openai/gpt-4o-mini). The key is read from the environment variable you name; it is never saved.",
                classes="dialog-help",
            )
            yield Label("URL")
            yield Input(self.url, placeholder="http://HOST:PORT/v1 (empty: a litellm provider)", id="endpoint-url")
            yield Label("model")
            yield Input("", placeholder="the name the server knows it by", id="endpoint-model")
            yield Label("key variable")
            yield Input("", placeholder="e.g. WORKBENCH_SERVE_KEY (empty: no key)", id="endpoint-key-env")
            yield Static("", id="endpoint-error")
            with Horizontal(classes="endpoint-row"):
                yield Button("Check and add (ctrl+s)", id="endpoint-add", variant="primary")
                yield Button("Cancel (Esc)", id="endpoint-cancel")

    def on_mount(self) -> None:
        self.query_one("#endpoint-url", Input).focus()

    def _show(self, text: str, style: str = "bold red") -> None:
        self.query_one("#endpoint-error", Static).update(Text(text, style=style))

    def _fields(self) -> tuple[str, str, str | None]:
        url = self.query_one("#endpoint-url", Input).value.strip()
        model = self.query_one("#endpoint-model", Input).value.strip()
        key_env = self.query_one("#endpoint-key-env", Input).value.strip() or None
        return url, model, key_env

    @on(Input.Submitted)
    @on(Button.Pressed, "#endpoint-add")
    def action_add(self) -> None:
        url, model, key_env = self._fields()
        if not url and not model:
            self._show("✖ give the server's URL (or, for a provider through litellm, its model id)")
            return
        self.query_one("#endpoint-add", Button).disabled = True
        self._show("checking…", "dim")
        self._check(url, model, key_env)

    @work(thread=True, exclusive=True, exit_on_error=False, group="endpoint-check")
    def _check(self, url: str, model: str, key_env: str | None) -> None:
        """One GET /v1/models; with no model named, the models it serves are offered instead."""
        try:
            if not url:
                ref = provider_ref(model, api_key_env=key_env)
            elif not model:
                served = endpoint_models(url, api_key_env=key_env)
                self.app.call_from_thread(self._offer, served)
                return
            else:
                ref = endpoint_ref(url, model, api_key_env=key_env)
                check_endpoint(ref)
        except WorkbenchError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, ref)

    def _offer(self, served: list[str]) -> None:
        self.query_one("#endpoint-add", Button).disabled = False
        if len(served) == 1:
            self.query_one("#endpoint-model", Input).value = served[0]
            self._show(f"the server serves {served[0]}: ctrl+s adds it", "green")
        else:
            shown = ", ".join(served[:12]) + (" …" if len(served) > 12 else "") if served else "no model"
            self._show(f"the server serves {shown}: name one", "yellow")
        self.query_one("#endpoint-model", Input).focus()

    def _failed(self, message: str) -> None:
        self.query_one("#endpoint-add", Button).disabled = False
        self._show(f"✖ {message}")

    @on(Button.Pressed, "#endpoint-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
