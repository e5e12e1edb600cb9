"""When ``ei.load`` starts worker processes: by the text the files hold, not their size on disk."""

from __future__ import annotations

import gzip
from pathlib import Path

from edgeinvestigate.evidence._loading import PARALLEL_MIN_BYTES, _enough_text, plan_files

_RECORD = (
    b'{"EventTimestampMs":1795780800000,"EventType":"queue","Outcome":"ok","ScriptName":"consumer",'
    b'"Logs":[{"Level":"log","Message":["processed"],"TimestampMs":1795780800001}],"Exceptions":[]}\n'
)


def _gzip(path: Path, text_bytes: int) -> Path:
    n = text_bytes // len(_RECORD) + 1
    path.write_bytes(gzip.compress(_RECORD * n, compresslevel=1))
    return path


def test_gzip_files_count_by_their_text(tmp_path: Path) -> None:
    half = PARALLEL_MIN_BYTES // 2 + 1
    a, b = _gzip(tmp_path / "a.log.gz", half), _gzip(tmp_path / "b.log.gz", half)
    assert a.stat().st_size + b.stat().st_size < PARALLEL_MIN_BYTES // 10  # small on disk
    assert _enough_text(plan_files([a, b], "logpush"))  # enough text for two processes
    assert not _enough_text(plan_files([a], "logpush"))  # one file: its own split decides
    small = _gzip(tmp_path / "c.log.gz", PARALLEL_MIN_BYTES // 8)
    assert not _enough_text(plan_files([small, _gzip(tmp_path / "d.log.gz", 1000)], "logpush"))


def test_plain_files_count_by_their_size(tmp_path: Path) -> None:
    n = PARALLEL_MIN_BYTES // 2 // len(_RECORD) + 1
    files = []
    for name in ("a.log", "b.log"):
        (tmp_path / name).write_bytes(_RECORD * n)
        files.append(tmp_path / name)
    assert _enough_text(plan_files(files, "logpush"))
    assert not _enough_text(plan_files(files[:1], "logpush"))
