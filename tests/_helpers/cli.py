"""The CLI run in this process, as the CLI tests call it."""

from __future__ import annotations

import pytest

from edgeinvestigate.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``edgeinvestigate ARGS...``: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
