"""Widgets of our own, reusable across panes."""
