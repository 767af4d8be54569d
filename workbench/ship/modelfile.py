"""An Ollama ``Modelfile`` for an exported GGUF: FROM, TEMPLATE, stop parameters and the system prompt.

Ollama does not run the Jinja chat template that ships in the GGUF; it wants its own Go-template version.
We recognize the common families by their markers (ChatML, Llama 3 headers, Mistral's ``[INST]``) and write
the matching Go template; an unknown template falls back to a ChatML-like one, with a comment that says so,
because a wrong template is silent: the model still answers, only worse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FAMILY_MARKERS: dict[str, str] = {
    "chatml": "<|im_start|>",
    "llama3": "<|start_header_id|>",
    "mistral": "[INST]",
}
"""A marker that only that family's chat template contains, checked in this order."""

END_OF_TURN: dict[str, str] = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>", "mistral": "</s>"}
"""The token that ends an assistant turn in each family: the EOS a runtime must stop on."""

FAMILY_STOPS: dict[str, tuple[str, ...]] = {
    "chatml": ("<|im_end|>", "<|im_start|>"),
    "llama3": ("<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"),
    "mistral": ("</s>", "[INST]", "[/INST]"),
}
"""Strings that must never appear in an answer: where generation stops even if the EOS was missed."""

_TEMPLATES: dict[str, str] = {
    "chatml": (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    ),
    "llama3": (
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>\n"
        "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    # Mistral has no system role: the system prompt goes before the last user message, as its template does.
    "mistral": (
        "{{- range $i, $_ := .Messages }}\n"
        '{{- if eq .Role "user" }}[INST] '
        "{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}{{ $.System }}\n\n{{ end }}"
        "{{ .Content }}[/INST]\n"
        '{{- else if eq .Role "assistant" }} {{ .Content }}</s>\n'
        "{{- end }}\n"
        "{{- end }}"
    ),
}


def template_family(chat_template: str | None) -> str | None:
    """``chatml``, ``llama3`` or ``mistral`` when the Jinja chat template is one of those, else None."""
    if not chat_template:
        return None
    for family, marker in FAMILY_MARKERS.items():
        if marker in chat_template:
            return family
    return None


def ollama_template(chat_template: str | None) -> tuple[str, str | None]:
    """The Go template for Ollama and the family it was made for (None: unknown, ChatML-like fallback)."""
    family = template_family(chat_template)
    return _TEMPLATES[family or "chatml"], family


def _quoted(text: str) -> str:
    """A Modelfile value in triple quotes (Ollama's multi-line form); a triple quote inside is broken up."""
    return '"""' + text.replace('"""', '" ""') + '"""'


def _string(text: str) -> str:
    """A one-line Modelfile string in double quotes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    return str(value)


def modelfile_text(
    gguf_name: str,
    chat_template: str,
    stops: Sequence[str],
    system_prompt: str | None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """The Modelfile for ``gguf_name`` (a file beside it): ``ollama create NAME -f THIS`` builds the model.

    ``stops`` are written as ``PARAMETER stop`` lines (the family's own stops are added when missing);
    ``params`` are further PARAMETER lines (temperature, num_ctx, ...).
    """
    template, family = ollama_template(chat_template)
    lines = [f"# Ollama Modelfile for {gguf_name}, written by the workbench", f"FROM ./{gguf_name}", ""]
    if family is None:
        lines.append("# The chat template is not one we recognize (ChatML, Llama 3, Mistral [INST]):")
        lines.append("# this TEMPLATE is a ChatML-like fallback; check it against the model's own template.")
    lines.append(f"TEMPLATE {_quoted(template)}")
    all_stops = list(dict.fromkeys([*stops, *FAMILY_STOPS.get(family or "", ())]))
    for stop in all_stops:
        if stop:
            lines.append(f"PARAMETER stop {_string(stop)}")
    for key, value in (params or {}).items():
        lines.append(f"PARAMETER {key} {_param_value(value)}")
    if system_prompt:
        lines.append(f"SYSTEM {_quoted(system_prompt)}")
    return "\n".join(lines) + "\n"
