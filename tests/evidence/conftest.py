"""Fixtures for the collect tests (Cloudflare client, Workers Logs, DLQ, live tail)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _collect_helpers import ACCOUNT, TOKEN


@pytest.fixture
def account() -> str:
    return ACCOUNT


@pytest.fixture
def token() -> str:
    return TOKEN
