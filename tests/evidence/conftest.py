"""Fixtures for the evidence tests (collect, Workers Logs, queue analytics, DLQ leases)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # _metrics_scenario

from _helpers.api import ACCOUNT, TOKEN


@pytest.fixture
def account() -> str:
    return ACCOUNT


@pytest.fixture
def token() -> str:
    return TOKEN
