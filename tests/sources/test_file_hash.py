"""Each loaded file's sha256 (in the report and the manifest) is hashed while the file is parsed."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.errors import ParseError
from edgeinvestigate.sources.files._worker import HASH_IN_THREAD_BYTES, sha256_file

_RECORD = (
    b'{"EventTimestampMs":1795780800000,"EventType":"queue","Outcome":"ok","ScriptName":"consumer",'
    b'"Event":{"Queue":"jobs","BatchSize":1},"WallTimeMs":3,"CPUTimeMs":1,'
    b'"Logs":[{"Level":"log","Message":["processed"],"TimestampMs":1795780800001}],"Exceptions":[]}\n'
)


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "edgeinvestigate-sha256"]


def test_every_file_reports_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(_RECORD * 50)
    packed = tmp_path / "b.log.gz"
    packed.write_bytes(gzip.compress(_RECORD * 70))
    big = tmp_path / "c.log"  # hashed in a thread while it is parsed
    n_big = HASH_IN_THREAD_BYTES // len(_RECORD) + 1
    big.write_bytes(_RECORD * n_big)
    ev = ei.load([plain, packed, big])
    got = {Path(f.path).name: f.sha256 for f in ev.report.files}
    assert got == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (plain, packed, big)}
    assert [s["sha256"] for s in ev.manifest["sources"]] == [got["a.log"], got["b.log.gz"], got["c.log"]]
    assert len(ev.invocations) == 120 + n_big


def test_a_failed_load_stops_hashing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.log"
    after = HASH_IN_THREAD_BYTES // len(_RECORD) + 1  # large enough to be hashed in a thread
    bad.write_bytes(_RECORD * 10 + b'{"EventTimestampMs": oops}\n' + _RECORD * after)
    with pytest.raises(ParseError) as err:
        ei.load(bad, strict=True)
    assert err.value.line == 11
    deadline = time.monotonic() + 10
    while _hash_threads() and time.monotonic() < deadline:  # stopped, or done: nothing left running
        time.sleep(0.01)
    assert _hash_threads() == []


def test_hashing_stops_when_asked(tmp_path: Path) -> None:
    p = tmp_path / "big.bin"
    p.write_bytes(b"x" * (9 * 1024 * 1024))  # three reads of 4 MiB
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    stop = threading.Event()
    stop.set()
    assert sha256_file(p, stop) == ""
