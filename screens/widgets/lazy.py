"""Panes whose start-up work waits for their first showing, so the app starts quick and the shown pane stays smooth."""

from __future__ import annotations


class LoadsWhenShown:
    """Mixin for a pane: the app calls ensure_loaded() each time the pane is shown; first_shown() runs once."""

    _loaded = False

    def ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            self.first_shown()

    def first_shown(self) -> None:
        """Start the pane's loading (in a worker when it is slow)."""
