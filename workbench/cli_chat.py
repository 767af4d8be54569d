"""``workbench chat``: (being built)."""

from __future__ import annotations

import argparse
from typing import Any


def add_chat_commands(sub: Any) -> None:
    """Hang the commands on the main parser's subparsers."""
    del sub
    _ = argparse
