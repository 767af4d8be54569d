"""The fine-tuning workbench core: data, config, training and eval, with no UI.

Everything here is plain Python returning plain data; the Textual app in
``screens/`` and the headless CLI in :mod:`workbench.cli` both call into it.
"""

__version__ = "0.1.0"
