"""Fixtures of the capture tests: a real Tail Worker collector process on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Collector:
    url: str
    out: Path
    proc: subprocess.Popen[bytes]

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        return self.proc.returncode


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """``edgeinvestigate lab collector`` (which calls ``serve_collector``) as a real process."""
    out = tmp_path / "trace" / "traceitems.jsonl"
    ready = tmp_path / "collector.ready.json"
    log = (tmp_path / "collector.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeinvestigate",
            "lab",
            "collector",
            "--listen",
            "127.0.0.1:0",
            "--out",
            str(out),
            "--ready-file",
            str(ready),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None, (tmp_path / "collector.log").read_text()
            assert time.monotonic() < deadline, "the collector did not become ready"
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid
        yield Collector(info["url"], out, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
