"""Shared test set-up. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from edgeinvestigate.sandbox.testing import RunningSandbox

# Property tests must not fail on a slow or busy machine (2 shared cores in CI): no per-example deadline,
# no "too slow" health check. Under CI (``CI`` set) the examples are derandomised, so a CI run is
# reproducible; locally every run explores new examples.
settings.register_profile("local", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("local"), derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "local")

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: realistic sample files of every telemetry format (see tests/sources/make_fixtures.py)."""
    return DATA


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (the source-backed format reference and the OpenAPI subset)."""
    if not REFERENCE.is_dir():
        pytest.skip(f"the shared reference folder is not at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def openapi_spec_path(reference_dir: Path) -> Path:
    return reference_dir / "cloudflare-openapi-subset.json"


@pytest.fixture(autouse=True)
def _no_real_cloudflare(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never talk to the real Cloudflare API."""
    for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_BASE_URL"):
        if name in os.environ:
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist workers export COLUMNS=80; the CLI would take that for a terminal and wrap its output.

    Tests that check wrapping set COLUMNS themselves.
    """
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(scope="session")
def incident_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningSandbox, Path]]:
    """The incident the README walks through, on a sandbox (tests/_helpers/incident.py): the sandbox and the
    simulator's output folder. One per session: no test that uses it changes what another one reads (a peek
    leases nothing)."""
    from _helpers.incident import incident_on_sandbox

    with incident_on_sandbox(tmp_path_factory.mktemp("incident-sandbox")) as loaded:
        yield loaded


@pytest.fixture
def incident_sandbox_env(
    monkeypatch: pytest.MonkeyPatch, incident_sandbox: tuple[RunningSandbox, Path]
) -> RunningSandbox:
    """CLOUDFLARE_API_TOKEN, _ACCOUNT_ID and _API_BASE_URL (the bare root URL) for ``incident_sandbox``."""
    from _helpers.incident import TOKEN

    sb, incident = incident_sandbox
    account = json.loads((incident / "ground_truth.json").read_text())["account_id"]
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", account)
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", sb.base)  # no /client/v4: accepted
    return sb
