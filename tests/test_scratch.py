"""Scratch folders: a job killed outright leaves its folder, and the next job of that kind sweeps it up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeinvestigate._scratch import MIN_AGE_S, _host, _start_time, scratch_dir, sweep_stale

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="sweeping needs /proc")

_KILLED = """
import os, signal, sys
from edgeinvestigate._scratch import scratch_dir
d = scratch_dir("edgeinvestigate-load", sys.argv[1])
(d / "0.logs.arrow").write_bytes(b"x" * 4096)
print(d, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _age(path: Path) -> None:
    old = time.time() - MIN_AGE_S - 5
    os.utime(path, (old, old))


def test_a_killed_jobs_folder_is_swept_by_the_next_job_of_its_kind(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", _KILLED, str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == -signal.SIGKILL
    left = Path(run.stdout.strip())
    assert left.parent == tmp_path
    assert (left / "0.logs.arrow").exists()
    other_kind = scratch_dir("edgeinvestigate-split", tmp_path)  # another kind's job does not touch it
    assert left.exists()
    _age(left)
    mine = scratch_dir("edgeinvestigate-load", tmp_path)
    assert not left.exists()
    assert mine.exists()
    assert other_kind.exists()
    assert mine.stat().st_mode & 0o777 == 0o700
    assert mine.name.startswith(f"edgeinvestigate-load-{os.getpid()}.{_start_time(os.getpid())}.{_host()}-")


def test_only_folders_whose_owner_is_gone_are_swept(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid, dead_start = child.pid, _start_time(child.pid)
    child.wait()
    me, my_start = os.getpid(), _start_time(os.getpid())
    assert my_start is not None
    host = _host()
    dead = f"{dead_pid}.{dead_start or 1}.{host}"
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    names = {
        "dead": f"edgeinvestigate-load-{dead}-aaaa",
        "running": f"edgeinvestigate-load-{me}.{my_start}.{host}-bbbb",
        "reused_id": f"edgeinvestigate-load-{me}.{my_start + 1}.{host}-cccc",  # same id, another start
        "fresh": f"edgeinvestigate-load-{dead}-dddd",
        "other_kind": f"edgeinvestigate-sql-{dead}-eeee",
        "other_host": f"edgeinvestigate-load-{dead_pid}.{dead_start or 1}.{other_host}-ffff",  # a shared disk
        "old_naming": "edgeinvestigate-load-hj3bz_bq",
        "not_ours": "something-else",
    }
    for key, name in names.items():
        (tmp_path / name).mkdir()
        if key != "fresh":
            _age(tmp_path / name)
    removed = sweep_stale(tmp_path, "edgeinvestigate-load")
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["reused_id"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n for k, n in names.items() if k not in ("dead", "reused_id")
    )
    assert sweep_stale(tmp_path / "missing", "edgeinvestigate-load") == []  # no such place: nothing to do


def test_a_killed_collects_spool_and_half_saved_bundle_are_swept_by_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``collect`` spools its frames and saves its bundle through folders beside the bundle (disk): a
    run killed outright leaves them; the next run into the same place removes them, and no other's."""
    from _helpers.cli import run
    from sources.logpush_shapes import write_corpus

    write_corpus(tmp_path / "in", 200, seed=3)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = f"{child.pid}.{_start_time(child.pid) or 1}.{_host()}"
    child.wait()
    left = [tmp_path / f".bundle.spool-{dead}-x1", tmp_path / f".bundle.saving-{dead}-x2"]
    kept = [tmp_path / f".other.spool-{dead}-x3", tmp_path / "notes"]
    for d in left + kept:
        d.mkdir()
        (d / "part-0.parquet").write_bytes(b"PAR1")
        _age(d)
    code, _, err = run(
        capsys, "collect", "--logpush", str(tmp_path / "in"), "--out", str(tmp_path / "bundle")
    )
    assert code == 0, err
    assert [d for d in left if d.exists()] == []
    assert all(d.exists() for d in kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["bundle", "in", ".other.spool-" + dead + "-x3", "notes"]
    )
