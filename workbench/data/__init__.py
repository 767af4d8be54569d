"""Dataset loading: read a file, detect its shape, check every row, normalize, split.

The usual path is :func:`load_rows` -> :func:`normalize` -> :func:`split_rows`
-> :func:`to_hf_dataset`; :func:`inspect_file` is the same path summarised
for ``workbench data inspect``.
"""

from workbench.data.formats import Shape, describe, detect_conversational, detect_shape, validate_row
from workbench.data.load import BadRow, LoadResult, load_rows
from workbench.data.normalize import extract_prompt, normalization_notes, normalize, render_chat, to_hf_dataset
from workbench.data.report import InspectReport, inspect_file
from workbench.data.split import SplitResult, check_ratios, split_rows
from workbench.errors import DataError

__all__ = [
    "BadRow",
    "DataError",
    "InspectReport",
    "LoadResult",
    "Shape",
    "SplitResult",
    "check_ratios",
    "describe",
    "detect_conversational",
    "detect_shape",
    "extract_prompt",
    "inspect_file",
    "load_rows",
    "normalization_notes",
    "normalize",
    "render_chat",
    "split_rows",
    "to_hf_dataset",
    "validate_row",
]
