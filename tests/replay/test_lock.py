"""One `replay run` per plan at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeinvestigate.errors import ReplayRefusedError
from edgeinvestigate.replay._lock import RunLock


def test_one_run_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "plan.ledger.sqlite"
    first = RunLock(path)
    first.acquire()
    second = RunLock(path)
    with pytest.raises(ReplayRefusedError, match=r"another replay run of this plan is in progress \(pid"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
