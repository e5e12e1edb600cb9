"""One `replay run` per plan at a time on this machine: the plan lock (keyed by the plan id, in a
machine-wide directory) and the ledger lock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from replay_scenario import ACCOUNT, build, cli_env, cli_run, replay_ids_on, run_cli, settled

from edgeinvestigate.errors import ReplayError, ReplayRefusedError
from edgeinvestigate.replay._lock import PlanLock, RunLock, lock_dir
from edgeinvestigate.sandbox.testing import running_sandbox


def test_one_run_per_ledger_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "plan.ledger.sqlite"
    first = RunLock(path)
    first.acquire()
    second = RunLock(path)
    with pytest.raises(ReplayRefusedError, match=r"another replay run is using the ledger .*\(pid"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_a_second_lock_of_the_same_plan_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = PlanLock("abc123", plan_path=tmp_path / "a" / "plan.json", ledger_path=tmp_path / "a.sqlite")
    first.acquire()
    try:
        # another copy of the plan, another ledger: the same plan id, the same lock
        second = PlanLock("abc123", plan_path=tmp_path / "b" / "plan.json", ledger_path=tmp_path / "b.sqlite")
        with pytest.raises(ReplayRefusedError) as err:
            second.acquire()
        assert err.value.exit_code == 3
        text = err.value.message
        assert f"pid {os.getpid()}, user " in text
        assert "started 20" in text
        assert "UTC" in text
        assert "last heartbeat 0 s ago" in text
        assert str(tmp_path / "a" / "plan.json") in text  # where the other run's plan is
        assert "Nothing was sent" in text
        assert (
            f"replay status {tmp_path / 'a' / 'plan.json'} --ledger {tmp_path / 'a.sqlite'}" in err.value.hint
        )
        # another plan is not blocked
        other = PlanLock("def456")
        other.acquire()
        other.release()
    finally:
        first.release()
    again = PlanLock("abc123")
    again.acquire()
    assert again.note == ""  # released cleanly: nothing to take over
    again.release()


def test_the_lock_directory_is_shared_by_every_user_and_ids_cannot_escape_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path / "shared-locks"
    monkeypatch.setenv("EDGEINVESTIGATE_REPLAY_LOCK_DIR", str(where))
    lock = PlanLock("../../etc/passwd")
    lock.acquire()
    try:
        assert lock.path.parent == where
        assert lock.path.name.startswith("x")
        assert lock.path.name.endswith(".lock")
        assert stat.S_IMODE(where.stat().st_mode) == 0o1777  # like /tmp: everyone locks, no one deletes
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o666
        doc = json.loads(lock.path.read_text())
        assert doc["pid"] == os.getpid()
        assert doc["plan_id"] == "../../etc/passwd"
    finally:
        lock.release()
    assert json.loads(lock.path.read_text())["released_at"] > 0
    # without the variable: one directory for the whole machine, not the per-user $TMPDIR
    monkeypatch.delenv("EDGEINVESTIGATE_REPLAY_LOCK_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "mine"))
    assert lock_dir() == Path("/tmp/edgeinvestigate-replay-locks")


def test_a_symlinked_lock_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "locks").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("EDGEINVESTIGATE_REPLAY_LOCK_DIR", str(tmp_path / "locks"))
    with pytest.raises(Exception, match="is not a directory") as err:
        PlanLock("abc").acquire()
    assert "EDGEINVESTIGATE_REPLAY_LOCK_DIR" in str(err.value)


def test_a_lock_file_that_cannot_be_opened_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path / "locks"
    (where / "abc.lock").mkdir(parents=True)  # in the way (even root cannot open it as a file)
    monkeypatch.setenv("EDGEINVESTIGATE_REPLAY_LOCK_DIR", str(where))
    with pytest.raises(ReplayError, match=f"cannot open the replay lock {where}/abc.lock: ") as err:
        PlanLock("abc").acquire()
    assert "EDGEINVESTIGATE_REPLAY_LOCK_DIR" in err.value.hint


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from edgeinvestigate.replay._lock import PlanLock
    lock = PlanLock(sys.argv[1], plan_path=sys.argv[2])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_note(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, "plan-x", str(tmp_path / "plan.json")],
        stdout=subprocess.PIPE,
        env=env,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == b"locked"
            with pytest.raises(ReplayRefusedError, match=rf"pid {holder.pid}, user .* started 20"):
                PlanLock("plan-x").acquire()
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
    # the kernel dropped the lock with the process; its details are still in the file
    lock = PlanLock("plan-x")
    lock.acquire()
    try:
        assert lock.note.startswith("took over the stale run lock of plan plan-x: the run of ")
        assert f"pid {holder.pid}" in lock.note
        assert "its process is gone" in lock.note
        assert "resumes from the ledger" in lock.note
    finally:
        lock.release()


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_two_copies_of_a_plan_run_at_once_push_each_message_once(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path, n=600)  # 360 to replay
        a, b = tmp_path / "a", tmp_path / "b"
        a.mkdir()
        b.mkdir()
        shutil.copy(sc.plan_path, a / "plan.json")
        shutil.copy(sc.plan_path, b / "plan.json")
        env = cli_env(sb)
        # the first copy at 10 msg/s (about 36 s, so a busy CI machine still starts the second copy while
        # the first runs); the second with another ledger as well
        first = run_cli(
            ["replay", "run", str(a / "plan.json"), "--yes", "--no-progress", "--rate", "10"], env
        )
        ledger_a = a / "plan.ledger.sqlite"
        deadline = time.monotonic() + 60
        while settled(ledger_a) < 10:
            assert time.monotonic() < deadline, first.stderr.read().decode() if first.stderr else ""
            time.sleep(0.02)
        second = cli_run(
            ["replay", "run", str(b / "plan.json"), "--yes", "--ledger", str(tmp_path / "other.sqlite")], env
        )
        assert second.returncode == 3, second.stderr
        err = " ".join(second.stderr.split())
        assert "another replay run of this plan is in progress on this machine" in err
        assert f"pid {first.pid}, user " in err
        assert str(a / "plan.json") in err
        assert not (tmp_path / "other.sqlite").exists()  # refused before its ledger was made
        _, out_err = first.communicate(timeout=120)
        assert first.returncode == 0, out_err.decode()

        copies = Counter(of for of, _, _ in replay_ids_on(sb.queue_state(ACCOUNT, "jobs")))
        assert set(copies) == sc.selected
        assert set(copies.values()) == {1}  # one copy of each message, not two
        # afterwards the other copy is refused too: its messages were replayed by the first
        late = cli_run(["replay", "run", str(b / "plan.json"), "--yes"], env)
        assert late.returncode == 3, late.stderr
        assert "already replayed and removed from the DLQ by another plan" in " ".join(late.stderr.split())
        assert len(replay_ids_on(sb.queue_state(ACCOUNT, "jobs"))) == len(sc.selected)
