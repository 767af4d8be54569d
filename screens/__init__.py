"""The Textual UI of the workbench: one module per pane, widgets in widgets/.

Screens call core functions in :mod:`workbench` and render what they return;
they never parse a file or compute a metric themselves.
"""
