"""The `edgeinvestigate lab` commands: help and the failure paths (one-line errors with a hint)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "lab", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_help_lists_the_commands() -> None:
    r = _run("--help")
    assert r.returncode == 0
    for name in ("run", "collector", "status"):
        assert f"  {name}" in r.stdout
    run_help = _run("run", "--help").stdout
    for option in ("--keep-state", "--out", "--state", "--npm", "--seed", "--jobs", "--no-replay"):
        assert option in run_help


def test_bad_listen_address(tmp_path: Path) -> None:
    r = _run("collector", "--listen", "localhost", "--out", str(tmp_path / "t.jsonl"))
    assert r.returncode == 2
    assert "error: --listen must be HOST:PORT" in r.stderr
    assert not (tmp_path / "t.jsonl").exists()


def test_status_of_a_missing_run(tmp_path: Path) -> None:
    r = _run("status", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert f"error: {tmp_path / 'nope' / 'summary.json'} does not exist" in r.stderr
    assert "hint: run `edgeinvestigate lab run --out DIR` first" in r.stderr


def test_run_refuses_to_empty_a_foreign_folder(tmp_path: Path) -> None:
    keep = tmp_path / "notes.txt"
    keep.write_text("my notes")
    r = _run("run", "--out", str(tmp_path), "--npm", "never", "--no-report")
    assert r.returncode == 2
    assert "is not empty and holds no earlier lab run" in r.stderr
    assert "hint: pick an empty or new folder with --out" in r.stderr
    assert keep.read_text() == "my notes"  # nothing deleted, nothing started
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
