"""``edgeinvestigate tail`` against the sandbox of the README's incident: a tail of nothing says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers.cli import run

from edgeinvestigate.sandbox.testing import RunningSandbox


def test_tail_of_nothing_warns(
    incident_sandbox_env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "tail", "nosuch-script", "--duration", "0.5", "--out", str(tmp_path / "t.ndjson")
    )
    assert code == 0, err
    assert "captured 0 tail events" in out
    assert err.count("no tail events of 'nosuch-script' arrived in 0.5s") == 1, err
    assert "wrangler deployments list --name nosuch-script" in err
