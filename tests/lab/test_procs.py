"""``lab/_procs.py``: every started process (and what it spawned) is stopped, and a dead one is named."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from edgeinvestigate.errors import EdgeInvestigateError
from edgeinvestigate.lab._procs import ProcessSet, wait_until


def test_process_set_stops_the_whole_group(tmp_path: Path) -> None:
    """A child that spawns a grandchild (like wrangler spawning workerd): both are stopped."""
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    with ProcessSet(tmp_path / "logs") as procs:
        proc = procs.start("parent", [sys.executable, "-c", script])
        wait_until(lambda: proc.log_path.read_text().strip() != "", timeout=10, what="the grandchild pid")
        grandchild = int(proc.log_path.read_text().split()[0])
        assert psutil.pid_exists(grandchild)
    # leaving the block stopped both, by pid and process group
    proc.popen.wait(timeout=5)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the grandchild survived"
        time.sleep(0.05)


def test_process_set_stops_children_when_the_run_fails(tmp_path: Path) -> None:
    started = []

    def failing_run() -> None:
        with ProcessSet(tmp_path / "logs") as procs:
            started.append(procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"]))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_run()
    assert started[0].popen.poll() is not None


def test_wait_until_names_the_dead_process(tmp_path: Path) -> None:
    with ProcessSet(tmp_path / "logs") as procs:
        proc = procs.start("crasher", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"])
        with pytest.raises(EdgeInvestigateError, match=r"(?s)crasher exited \(code 3\).*bad config"):
            wait_until(lambda: False, timeout=10, what="readiness", proc=proc)
