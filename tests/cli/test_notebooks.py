"""``edgeinvestigate notebooks list``: the notebooks and their parameters, spelled as the CLI takes them."""

from __future__ import annotations

import pytest
from _helpers.cli import run


def test_notebooks_list_names_parameters_as_they_are_typed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "notebooks", "list")
    assert code == 0
    assert "run it with -p execute=true" in out  # the CLI spelling, not Python's execute=True
    assert "execute=True" not in out
