"""The width of the terminal the output goes to, for commands that fit tables and text to it."""

from __future__ import annotations

import os
import shutil
import sys

__all__ = ["terminal_width"]


def terminal_width() -> int | None:
    """Columns of the terminal on stdout (or ``$COLUMNS``); ``None`` when stdout is a pipe or file.

    Piped output is left whole (for grep, files and chat); a terminal gets lines that fit it.
    """
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns
