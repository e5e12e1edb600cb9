"""The Logpush loader's paths build the same frames and the same report.

The reference is the per-record general path (``_logpush_record``, every line decoded and read on its
own). Against it: the fast path (typed batch decodes, columns by comprehension) and a file split
between this process and a helper process (``_split``), on the sample incident and on records of
every documented shape (``logpush_shapes.py``: every EventType and Event variant, ``Event.Queue`` as a
string or an object, objects and mixed arguments in ``Logs[].Message``, missing optional fields, both
exception casings, truncation markers, times in ms/s/ns/RFC 3339). Valid records never take the
general path; malformed ones do, and are reported the same way on every path.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from logpush_shapes import every_variant, shaped_record

import edgeinvestigate as ei
from edgeinvestigate.errors import ParseError
from edgeinvestigate.report.sample import SAMPLE_SCENARIO, SAMPLE_SEED
from edgeinvestigate.simulator import simulate
from edgeinvestigate.sources.files import _logpush, _logpush_record, _reading, _split, _split_helper

FRAMES = ("invocations", "logs", "exceptions")


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Every line through the general path, in this process (the per-record reference)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_logpush, "_read_block", _logpush._general_block)
        m.setattr(_logpush, "should_split", lambda path: False)
        yield


@contextlib.contextmanager
def split_everything(block_size: int = 8192) -> Iterator[None]:
    """Every file parsed by two processes, in many small units."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_split, "SPLIT_MIN_BYTES", 1)
        m.setattr(_reading, "BLOCK_SIZE", block_size)
        yield


@contextlib.contextmanager
def sequential() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_logpush, "should_split", lambda path: False)
        yield


def _assert_same(a: Any, b: Any) -> None:
    for name in FRAMES:
        pd.testing.assert_frame_equal(a.frame(name), b.frame(name), check_categorical=False)
    assert [f.to_dict() | {"sha256": ""} for f in a.report.files] == [
        f.to_dict() | {"sha256": ""} for f in b.report.files
    ]


def _fast_equals_reference(path: Path) -> Any:
    """The Logpush file ``path`` loaded by the per-record reference path, after checking that the
    fast path (one process) loads the same."""
    with reference_path():
        ref = ei.load((path, "logpush"))
    with sequential():
        fast = ei.load((path, "logpush"))
    _assert_same(fast, ref)
    return ref


def _write(path: Path, records: list[Any], *, gz: bool = False, lines: list[bytes] | None = None) -> Path:
    data = b"".join(
        json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for r in records
    )
    if lines:
        data += b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _shapes(n: int = 3000, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [*every_variant(), *(shaped_record(rng, i) for i in range(n))]


@pytest.fixture(scope="module")
def sample_logpush(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    simulate(SAMPLE_SCENARIO, out, seed=SAMPLE_SEED, formats=["logpush"])
    return out / "logpush"


def test_sample_incident_fast_and_split_equal_the_reference(sample_logpush: Path) -> None:
    with reference_path():
        ref = ei.load(sample_logpush, strict=True)
    with sequential():
        fast = ei.load(sample_logpush, strict=True)
    with split_everything():
        split = ei.load(sample_logpush, strict=True)
    assert len(ref.invocations) > 1000
    assert len(ref.logs) > 1000
    assert len(ref.exceptions) >= 10
    _assert_same(fast, ref)
    _assert_same(split, ref)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("frames", [FRAMES, ("invocations",)])
@pytest.mark.parametrize("window", [{}, {"since": "2026-11-27T12:00:10Z", "until": "2026-11-27T12:00:30Z"}])
def test_every_documented_shape_stays_on_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool, frames: tuple[str, ...], window: dict[str, str]
) -> None:
    path = _write(tmp_path / ("shapes.log.gz" if gz else "shapes.log"), _shapes(), gz=gz)
    with reference_path():
        ref = ei.load((path, "logpush"), frames=frames, **window)

    def general(*args: object, **kwargs: object) -> None:
        raise AssertionError("a valid record took the per-record path")

    monkeypatch.setattr(_logpush_record, "add_logpush_record", general)
    with sequential():
        fast = ei.load((path, "logpush"), frames=frames, **window)
    with split_everything():
        split = ei.load((path, "logpush"), frames=frames, **window)
    _assert_same(fast, ref)
    _assert_same(split, ref)
    assert ref.report.n_issues == 0
    if window:
        assert 0 < ref.report.filtered < ref.report.records
        return
    inv = ref.invocations
    assert set(inv["trigger"].astype(str)) == {
        "fetch",
        "scheduled",
        "alarm",
        "queue",
        "email",
        "rpc",
        "websocket",
        "unknown",
    }
    assert {"jobs", "jobs-retry", "email-jobs"} <= set(inv["queue"].dropna().astype(str))
    assert inv["truncated"].sum() > 0
    assert inv["cpu_ms"].isna().sum() > 0
    assert inv["script_version"].isna().sum() > 0
    if "logs" in frames:
        logs = ref.logs
        assert logs["message"].str.startswith('{"event":"job.step"').sum() > 0  # object arguments
        assert logs["job_id"].notna().sum() > len(logs) // 3
        assert (logs["attempt"] == 2).sum() > 0  # "attempts": "2" in snake_case objects
        assert ref.exceptions["stack"].notna().sum() > 0


def test_malformed_records_take_the_per_record_path_and_are_reported_alike(tmp_path: Path) -> None:
    recs = _shapes(1500, seed=5)
    bad = [
        b'{"EventTimestampMs":1795780800123,"EventType":"queue","Outcome":"ok","CPUTimeMs":"slow"}',
        b'{"EventTimestampMs":1795780800124,"EventType":"cronjob","Outcome":"ok"}',  # unknown EventType
        b'{"EventTimestampMs":1795780800125,"Outcome":"ok","Logs":[{"Level":3,"Message":["x"]}]}',
        b'{"EventTimestampMs":1795780800126,"Outcome":"ok","Logs":[',  # cut short
        b'{"EventTimestampMs":"yesterday","Outcome":"ok"}',
        b"not json at all",
    ]
    # the bad lines among the good ones, in several blocks
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() for r in recs]
    for k, b in enumerate(bad):
        lines.insert(200 + k * 250, b)
    path = tmp_path / "mixed.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with reference_path():
        ref = ei.load((path, "logpush"))
    with sequential():
        fast = ei.load((path, "logpush"))
    with split_everything():
        split = ei.load((path, "logpush"))
    _assert_same(fast, ref)
    _assert_same(split, ref)
    issues = ref.report.files[0].issues
    assert [i.line for i in issues] == sorted(i.line for i in issues)
    assert {200 + k * 250 + 1 for k in range(len(bad))} <= {i.line for i in issues}


def test_split_reports_stream_damage_once_and_in_place(tmp_path: Path) -> None:
    recs = _shapes(2000, seed=9)
    data = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in recs))
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])  # a truncated download
    big_line = (
        b'{"EventTimestampMs":1795780800000,"Outcome":"ok","Logs":[{"Message":["' + b"x" * 9000 + b'"]}]}'
    )
    capped = _write(tmp_path / "capped.log", recs[:800], lines=[big_line, *(b"{}" for _ in range(3))])
    for path in (cut, capped):
        kw: dict[str, Any] = {"max_record_bytes": 4096}
        with sequential():
            seq = ei.load((path, "logpush"), **kw)
        with split_everything(block_size=2048):
            split = ei.load((path, "logpush"), **kw)
        _assert_same(split, seq)
        kinds = [i.kind for i in seq.report.files[0].issues]
        assert kinds.count("gzip") + kinds.count("size") == 1


def test_split_strict_stops_at_the_first_bad_record_like_one_process(tmp_path: Path) -> None:
    lines = [json.dumps(r).encode() for r in _shapes(2000, seed=11)]
    lines.insert(1500, b'{"EventTimestampMs":1795780800000,"Outcome":7}')
    lines.insert(300, b'{"EventTimestampMs":1795780800000,"ScriptName":["a"]}')
    path = tmp_path / "strict.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    errors = []
    for ctx in (sequential(), split_everything(block_size=1024)):
        with ctx, pytest.raises(ParseError) as exc:
            ei.load((path, "logpush"), strict=True)
        errors.append((exc.value.line, exc.value.message))
    assert errors[0] == errors[1]
    assert errors[0][0] == 301


def test_the_helper_parses_its_share_and_a_failed_helper_costs_only_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "s.log.gz", _shapes(3000, seed=13), gz=True)
    with sequential():
        seq = ei.load((path, "logpush"))
    caplog.set_level(logging.DEBUG, logger="edgeinvestigate.sources.files")
    with split_everything():
        ei.load((path, "logpush"))  # the first split load of a process starts the helper
        for _ in range(3):  # a helper that a busy machine kept waiting may get no unit of a load
            caplog.clear()
            split = ei.load((path, "logpush"))
            _assert_same(split, seq)
            parsed = [r.message for r in caplog.records if "parsed by the helper" in r.message]
            assert len(parsed) == 1
            if not parsed[0].split(": ")[1].startswith("0 of"):
                break
        else:
            pytest.fail(f"the helper parsed no unit: {parsed}")
    monkeypatch.chdir(tmp_path)  # a relative path, from another folder than the helper started in
    with split_everything():
        relative = ei.load((Path("s.log.gz"), "logpush"))
    for name in FRAMES:
        pd.testing.assert_series_equal(relative.frame(name)["ts"], seq.frame(name)["ts"])

    # a helper process that dies at once: the file is read in this process, nothing is lost
    _split_helper._close()
    monkeypatch.setattr(_split_helper, "_SERVE", "import sys; sys.exit(3)")
    caplog.clear()
    with split_everything():
        again = ei.load((path, "logpush"))
    _assert_same(again, seq)
    assert any("helper process" in r.message for r in caplog.records)
    monkeypatch.undo()
    _split_helper._close()
    with split_everything():  # and the next load starts a working helper again
        _assert_same(ei.load((path, "logpush")), seq)


def test_no_split_inside_a_worker_or_for_a_small_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "small.log", _shapes(10))
    assert not _split.should_split(path)  # far under SPLIT_MIN_BYTES
    monkeypatch.setattr(_split, "SPLIT_MIN_BYTES", 1)
    assert _split.should_split(path) == (_split._cores() >= 2)
    monkeypatch.setattr(_split.multiprocessing, "parent_process", lambda: object())
    assert not _split.should_split(path)  # a worker of ei.load's pool loads whole files


def test_jobs_1_reads_a_large_file_in_this_process(
    sample_logpush: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ei.load(jobs=1)`` (``collect --jobs 1``) starts no helper, also for one large file."""
    calls: list[Path] = []

    def counted(path: Path, *args: object, **kwargs: object) -> object:
        calls.append(path)
        return real(path, *args, **kwargs)

    real = _logpush.load_split
    monkeypatch.setattr(_logpush, "load_split", counted)
    with split_everything():
        one = ei.load(sample_logpush, jobs=1)
        assert calls == []
        split = ei.load(sample_logpush)
        assert calls  # the same load without jobs=1 does split
    for name in FRAMES:
        pd.testing.assert_frame_equal(one.frame(name), split.frame(name))


def test_truncation_markers_among_other_angle_brackets_match_the_reference(tmp_path: Path) -> None:
    """The fast path finds marker lines by their first byte (``<``): a ``<`` that starts no marker
    (HTML in a message, ``<<<`` alone), two markers on one line and a marker on the last line are
    cut exactly as the per-record path cuts them."""
    rng = random.Random(17)
    recs = [shaped_record(rng, i) for i in range(400)]
    log_marker = {
        "Level": "log",
        "Message": ["<<<Logpush: messages truncated>>>"],
        "TimestampMs": 1795780800500,
    }
    recs[3]["Logs"] = [{"Level": "warn", "Message": ["<html><<< not a marker"], "TimestampMs": 1795780800400}]
    recs[5]["Logs"] = [log_marker, log_marker]
    recs[5]["Exceptions"] = [{"name": "Error", "message": "<<<Logpush: exception messages truncated>>>"}]
    recs[-1]["Logs"] = [log_marker]
    ref = _fast_equals_reference(_write(tmp_path / "markers.log", recs))
    inv = ref.invocations
    assert bool(inv["truncated"].iloc[5])
    assert bool(inv["truncated"].iloc[-1])
    assert not bool(inv["truncated"].iloc[3])
    assert (ref.logs["message"] == "<html><<< not a marker").sum() == 1


def test_the_helper_keeps_pandas_out_and_pyarrow_converts_without_it() -> None:
    """The helper refuses pandas (pyarrow would import it on its first conversion: ~0.2 s per new
    helper); the batches it builds are the same without it (the split tests above compare them)."""
    code = (
        "import sys\n"
        "from edgeinvestigate.sources.files._split_helper import keep_pandas_out\n"
        "keep_pandas_out()\n"
        "from edgeinvestigate.sources.files._logpush import warm_up\n"
        "warm_up()\n"
        "try:\n"
        "    import pandas\n"
        "except ModuleNotFoundError:\n"
        "    print('no pandas', 'pandas' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this package, as the helper gets it
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["no", "pandas", "False"]


def test_job_fields_of_every_type_and_key_spelling_match_the_reference(tmp_path: Path) -> None:
    """Job fields in a ``JSON.stringify`` string, in an object argument and in a later argument, with
    the other key spellings and values of other types: the fast path reads them as the per-record
    path does (first key that is not null, ids as text, attempts as 32-bit integers)."""
    jobs: list[dict[str, Any]] = [
        {"jobId": "job_1", "type": "EMAIL_DELIVERY", "attempt": 2, "messageId": "m1"},
        {"jobId": 12345, "jobType": "DATA_SYNC", "attempts": "3", "message_id": 99},
        {"jobId": None, "job_id": "job_2", "type": None, "job_type": "WEBHOOK", "attempt": 2.0},
        {"jobId": 1.5, "type": 7, "attempt": True, "messageId": None},
        {"job_id": "job_3", "attempt": 2**40, "attempts": 4},
        {"jobId": ["a"], "type": {"x": 1}, "attempt": "12345678901"},
        {"event": "no job fields"},
    ]
    recs = []
    for i, job in enumerate(jobs):
        for args in (
            [json.dumps(job)],
            [job],
            ["label", job, 3],
            [7, json.dumps(job)],
            ["{not json", job],
        ):
            recs.append(
                {
                    "EventTimestampMs": 1795780800000 + i,
                    "EventType": "queue",
                    "Event": {"Queue": {"QueueName": "jobs", "BatchSize": 1}},
                    "Outcome": "ok",
                    "ScriptName": "jobs-consumer",
                    "Logs": [{"Level": "log", "Message": args, "TimestampMs": 1795780800001 + i}],
                }
            )
    ref = _fast_equals_reference(_write(tmp_path / "jobs.log", recs))
    logs = ref.logs
    assert set(logs["job_id"].dropna()) == {"job_1", "12345", "job_2", "job_3"}
    assert set(logs["attempt"].dropna()) == {2, 3}
