"""Fixtures for the loader tests: copies of the realistic sample files in tests/data (see make_fixtures.py).

``data_dir`` (tests/data itself) is in tests/conftest.py: the evidence tests read it too.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fuzz_records (shared with benchmarks/fuzz_loaders.py)

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def copy_data(tmp_path: Path):
    """Copy one file or folder of tests/data into tmp_path (for tests that mangle it)."""

    def _copy(rel: str) -> Path:
        src = DATA / rel
        dst = tmp_path / src.name
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
        return dst

    return _copy
