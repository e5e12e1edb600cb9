"""``lab/_scenario.py``: a lab run stops its children even when it is terminated by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil


def test_sigterm_to_the_lab_stops_its_children(tmp_path: Path) -> None:
    """`timeout`, CI or a user sends SIGTERM to `lab run`: the children are still stopped."""
    script = f"""
import sys, time
from pathlib import Path
from edgeinvestigate.lab._procs import ProcessSet
from edgeinvestigate.lab._scenario import _terminate_as_exit
with _terminate_as_exit(), ProcessSet(Path({str(tmp_path)!r}) / "logs") as procs:
    p = procs.start("child", [sys.executable, "-c", "import time; time.sleep(600)"])
    print(p.pid, flush=True)
    time.sleep(600)
"""
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert psutil.pid_exists(child)
        os.kill(parent.pid, signal.SIGTERM)
        assert parent.wait(timeout=20) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child survived SIGTERM of the lab"
        time.sleep(0.05)
