"""Shared test set-up. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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
