"""Errors the workbench raises for the user to read.

A :class:`WorkbenchError` carries a message written for a person (what went
wrong, where, what was expected); the CLI prints it without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class WorkbenchError(Exception):
    """An error whose message is meant for the user, not a developer."""


class ConfigError(WorkbenchError):
    """A run config that cannot be read or does not validate."""


class ModelError(WorkbenchError):
    """A model that cannot be resolved or loaded."""


class RunError(WorkbenchError):
    """A run directory that cannot be started, found or controlled."""


class ShipError(WorkbenchError):
    """A merge, GGUF export or other shipping step that cannot be done as asked."""


class ServeError(WorkbenchError):
    """A server that cannot be started, found, reached or stopped."""


class DataError(WorkbenchError):
    """A dataset that cannot be loaded, or rows that do not fit their shape.

    ``bad_rows`` keeps every bad row found (the message lists only the first
    few), so a caller can show or rewrite all of them.
    """

    def __init__(self, message: str, bad_rows: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.bad_rows: list[object] = list(bad_rows)


def one_line(exc: BaseException) -> str:
    """An exception as one short line (its type and the first line of its message), to quote in a user error."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
