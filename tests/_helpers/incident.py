"""The incident the README walks through, on a sandbox: the default scenario moved to the last two hours.

Started by the ``incident_sandbox`` fixture of tests/conftest.py, for the tests that follow the README
against a real sandbox on 127.0.0.1 (collect, tail, the API client, the documented account id).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeinvestigate._http import Secret
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox
from edgeinvestigate.simulator import simulate

TOKEN = "reviewer-findings-token"


@contextmanager
def incident_on_sandbox(tmp: Path) -> Iterator[tuple[RunningSandbox, Path]]:
    """A sandbox holding the default incident moved to the last two hours (133 DLQ messages), and the
    simulator's output folder."""
    with running_sandbox(tmp, token=TOKEN) as sb:
        incident = tmp / "incident"
        summary = simulate(
            "default",
            incident,
            seed=3,
            invocations=1000,
            start="-2h",
            sandbox_url=sb.base,  # the root URL, as the README shows it
            token=Secret(TOKEN),
            formats=["dlq"],
        )
        assert summary.dlq_messages > 100  # more than a peek can see
        yield sb, incident
