"""``lab/_driver.py``: waiting for the runtime gives up at once when the runtime died."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from edgeinvestigate.errors import EdgeInvestigateError
from edgeinvestigate.lab._driver import Driver
from edgeinvestigate.lab._procs import ProcessSet
from edgeinvestigate.lab._watch import TraceWatcher


def test_waiting_stops_at_once_when_the_runtime_dies(tmp_path: Path) -> None:
    with ProcessSet(tmp_path / "logs") as procs:
        dead = procs.start(
            "wrangler-1-v41", [sys.executable, "-c", "print('workerd crashed'); raise SystemExit(7)"]
        )
        dead.popen.wait(timeout=10)
        driver = Driver(
            "http://127.0.0.1:9", TraceWatcher(tmp_path / "t.jsonl"), print, processes=lambda: [dead]
        )
        t0 = time.monotonic()
        with pytest.raises(
            EdgeInvestigateError, match=r"(?s)wrangler-1-v41 \(pid \d+\) exited with code 7.*crashed"
        ):
            driver.wait_settled(["baseline-0000"], timeout=60, what="the baseline jobs")
        assert time.monotonic() - t0 < 5
