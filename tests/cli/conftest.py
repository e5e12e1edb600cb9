"""Fixtures of the CLI tests: a simulated incident and the bundle `collect` makes of it, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeinvestigate.cli import main
from edgeinvestigate.simulator import simulate


@pytest.fixture(scope="session")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default scenario's files (seed 3, 400 invocations): tail, Logpush, DLQ, ..."""
    out = tmp_path_factory.mktemp("incident")
    simulate("default", out, seed=3, invocations=400)
    return out


@pytest.fixture(scope="session")
def bundle(incident: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``collect`` of the incident's tail, Logpush and DLQ file (the same invocations in two formats)."""
    out = tmp_path_factory.mktemp("bundle") / "ev"
    main(  # returns on success, raises SystemExit on failure
        [
            "collect",
            str(incident / "tail" / "tail.json"),
            str(incident / "logpush"),
            "--dlq-file",
            str(incident / "dlq" / "messages.json"),
            "--out",
            str(out),
        ]
    )
    assert (out / "manifest.json").is_file()
    return out
