"""Scratch folders of a running job, and sweeping up those that a killed job left behind.

A load hands Arrow IPC files between processes through a folder in ``/dev/shm`` (memory), the SQL
engine spills to a folder in the temporary folder, and ``collect`` spools its frames, and saves a
bundle, through folders beside the bundle (disk); each removes its folder when it ends. A process
killed outright (the out-of-memory killer on a busy day, ``kill -9``, a CI timeout) cannot: its
folder stays, and in ``/dev/shm`` it holds memory that the next attempt needs (one killed 10M-event
load left 6.5 GB there; its spool and half-saved bundle hold gigabytes of disk).

So a scratch folder's name carries its owner: ``<name>-<pid>.<start>.<host>-XXXXXXXX`` (``<name>``
says what it is for, e.g. ``edgeinvestigate-load``; ``<start>`` the process's start time, ``<host>`` a
digest of the host name), and making one first removes the folders of the same name, in the same
place and of the same user, whose owner is gone: made on this host, no process with that id or one
that started at another time (the id was reused), and untouched for a minute. A folder of another
host (a shared disk) is never swept; where ``/proc`` is missing (not Linux), nothing is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Final

__all__ = ["scratch_dir", "sweep_stale"]

log = logging.getLogger(__name__)

#: a folder younger than this is never swept, whatever its name says
MIN_AGE_S: Final = 60.0
_OWNER: Final = r"-(?P<pid>\d+)\.(?P<start>\d+)\.(?P<host>[0-9a-f]{8})-"


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/<pid>/stat`` field 22); ``None``
    when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count from the last ")"
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _owner_tag() -> str:
    pid = os.getpid()
    return f"{pid}.{_start_time(pid) or 0}.{_host()}"


def sweep_stale(where: Path, name: str) -> list[Path]:
    """Remove the scratch folders called ``name`` in ``where`` whose owner is gone (see the module
    docs); the folders removed."""
    if not Path("/proc/self/stat").exists():
        return []
    named = re.compile(re.escape(name) + _OWNER)
    host = _host()
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(where))
    except OSError:
        return []
    for entry in entries:
        m = named.match(entry.name)
        if m is None or m["host"] != host:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        mine = entry.is_dir(follow_symlinks=False) and st.st_uid == os.getuid()
        if not mine or now - st.st_mtime < MIN_AGE_S:
            continue
        pid, start = int(m["pid"]), int(m["start"])
        if _start_time(pid) == start:
            continue  # its owner is running
        shutil.rmtree(entry.path, ignore_errors=True)
        log.info("removed %s: left by process %d, which is gone", entry.path, pid)
        removed.append(Path(entry.path))
    return removed


def scratch_dir(name: str, where: str | Path | None = None) -> Path:
    """A new private folder (0700) for this process's scratch files in ``where`` (default: the
    temporary folder), named ``<name>-<owner>-XXXXXXXX``, after sweeping up the stale ones of that
    name there. The caller removes it."""
    base = Path(where) if where is not None else Path(tempfile.gettempdir())
    sweep_stale(base, name)
    return Path(tempfile.mkdtemp(prefix=f"{name}-{_owner_tag()}-", dir=base))
