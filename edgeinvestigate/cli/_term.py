"""The width of the terminal the output goes to, for commands that fit tables and text to it."""

from __future__ import annotations

import os
import shutil
import sys

__all__ = ["fit_lines", "terminal_width"]


def terminal_width() -> int | None:
    """Columns of the terminal on stdout (or ``$COLUMNS``); ``None`` when stdout is a pipe or file.

    Piped output is left whole (for grep, files and chat); a terminal gets lines that fit it.
    """
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def fit_lines(text: str, width: int | None = None) -> str:
    """Wrap every line of ``text`` longer than the terminal, keeping its indentation.

    Continuation lines are indented four more spaces than the line they continue. With no terminal
    (``terminal_width()`` is ``None``) the text is returned whole.
    """
    import textwrap

    width = terminal_width() if width is None else width
    if width is None:
        return text
    out: list[str] = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip(" "))]
        out.extend(
            textwrap.wrap(
                line.strip(),
                width=max(width, len(indent) + 20),
                initial_indent=indent,
                subsequent_indent=indent + "    ",
                break_long_words=True,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
