"""The Textual UI of the workbench: one module per pane, widgets in widgets/.

Screens call core functions in :mod:`workbench` and render what they return;
they never parse a file or compute a metric themselves.
"""

import os

# Paint up to 120 frames a second (Textual's default is 60): a key press shows
# its effect up to 8 ms sooner, and an idle screen paints nothing either way.
# Set before anything imports textual, which reads it once.
os.environ.setdefault("TEXTUAL_FPS", "120")
