"""Shared test set-up. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


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
