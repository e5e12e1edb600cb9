"""Logpush workers_trace_events: gzip and plain, directory trees, time formats, casings, markers."""

from __future__ import annotations

import gzip
import json
import os

import pandas as pd
import pyarrow as pa
import pytest

import edgeinvestigate as ei
from edgeinvestigate.models.frames import conform
from edgeinvestigate.sources.files import _logpush_record
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._rows import Rows


def test_directory_tree_any_file_names(data_dir):
    ev = ei.load(data_dir / "logpush")
    files = [f.path.rsplit("/", 2)[-2:] for f in ev.report.files]
    assert files == [
        ["20261127", "20261127T140000Z_20261127T140030Z_ab12cd34.log.gz"],
        ["20261127", "batch-2.log"],
        ["20261128", "timestamps.gz"],
    ]
    assert {f.source for f in ev.report.files} == {"logpush"}
    assert ev.report.ok
    assert ev.report.n_issues == 0
    assert len(ev.invocations) == 10
    assert len(ev.logs) == 8
    assert len(ev.exceptions) == 4


def test_fields_and_triggers(data_dir):
    inv = ei.load(data_dir / "logpush/20261127").invocations
    assert list(inv["trigger"].astype(str)) == [
        "queue",
        "fetch",
        "queue",
        "alarm",
        "rpc",
        "websocket",
        "scheduled",
    ]
    q = inv.iloc[0]
    assert (q.script, q.queue, q.batch_size, q.cpu_ms, q.wall_ms) == (
        "email-consumer",
        "email-jobs",
        1,
        9.0,
        412.0,
    )
    assert q.script_version == "5d1f6a3e-8c2b-4a51-9f0e-2b7c3d4e5f60"
    # "" for DispatchNamespace / Entrypoint means none -> null
    assert pd.isna(q.dispatch_namespace)
    assert pd.isna(q.entrypoint)
    f = inv.iloc[1]
    assert (f.url, f.method, f.status) == ("https://jobs.example.com/enqueue", "POST", 202)
    # CPU/Wall not selected by the job -> null, not 0
    assert pd.isna(f.cpu_ms)
    assert pd.isna(f.wall_ms)
    # exceededCpu with zero times: failed, zeros kept
    s = inv.iloc[6]
    assert s.outcome == "exceededCpu"
    assert bool(s.failed)
    assert s.cpu_ms == 0.0


def test_truncation_markers_and_lower_case_exceptions(data_dir):
    ev = ei.load(data_dir / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz")
    t = ev.invocations.iloc[2]
    assert bool(t.truncated)
    assert bool(t.failed)
    assert t.n_logs == 1
    assert t.n_exceptions == 1
    exc = ev.exceptions[ev.exceptions["invocation_id"] == t.invocation_id].iloc[0]
    assert exc["name"] == "Error"
    assert pd.isna(exc["message"])
    logs = ev.logs[ev.logs["invocation_id"] == t.invocation_id]
    assert list(logs["message"]) == ["x" * 200]
    assert not ev.invocations.iloc[0].truncated


def test_timestamps_in_ms_ns_s_and_rfc3339(data_dir):
    ref = ei.load(data_dir / "logpush/20261127").invocations
    alt = ei.load(data_dir / "logpush/20261128").invocations
    # ns and RFC 3339 keep the ms; epoch seconds lose the sub-second part
    assert list(alt["ts"]) == [ref["ts"].iloc[0], ref["ts"].iloc[1].floor("s"), ref["ts"].iloc[2]]


def test_structured_logs(data_dir):
    logs = ei.load(data_dir / "logpush/20261127").logs
    assert list(logs["job_id"].iloc[:2]) == ["job_01HZX3", "job_01HZX3"]
    assert list(logs["attempt"].iloc[:2]) == [3, 3]
    assert logs["message_id"].iloc[0] == "9f1c2d3e4b5a69788"
    assert pd.isna(logs["message_id"].iloc[1])
    assert logs["message"].iloc[2] == "enqueued job_01HZX9"


def _general_only(path, frames=("invocations", "logs", "exceptions")):
    ctx = FileContext(path=str(path), source="logpush", frames=frames)
    rows = Rows()
    for line in path.read_bytes().splitlines():
        _logpush_record.add_logpush_line(line, rows, ctx, 0)
    return {k: conform(v, k) for k, v in rows.to_tables("logpush", str(path)).items()}


def test_fast_and_general_paths_agree(tmp_path, data_dir):
    src = gzip.decompress(
        (data_dir / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz").read_bytes()
    )
    odd = {"EventTimestampMs": 1795788300000, "Outcome": "ok", "Exceptions": [], "Logs": [
        {"Level": "log", "Message": ['{"jobId":12345,"type":"DATA_SYNC","attempt":"2"}'], "TimestampMs": 1},
        {"Level": "log", "Message": ["{not json"], "TimestampMs": 2},
        {"Level": "log", "Message": ["step", {"job_id": "j-9", "attempts": 4}], "TimestampMs": 3},
        {"level": "warn", "message": ["lower-case keys"], "timestampMs": 4},
    ]}  # fmt: skip
    p = tmp_path / "plain.log"
    p.write_bytes(
        src + (data_dir / "logpush/20261127/batch-2.log").read_bytes() + json.dumps(odd).encode() + b"\n"
    )
    fast = ei.load((p, "logpush"))
    slow = _general_only(p)
    for name in ("invocations", "logs", "exceptions"):
        pd.testing.assert_frame_equal(fast.frame(name), slow[name])
    odd_logs = fast.logs.tail(4)
    assert odd_logs["job_id"].astype(object).where(odd_logs["job_id"].notna(), None).tolist() == [
        "12345", None, "j-9", None,
    ]  # fmt: skip
    assert odd_logs["attempt"].fillna(-1).tolist() == [2, -1, 4, -1]
    assert odd_logs["level"].astype(str).tolist() == ["log", "log", "log", "warn"]


def test_invocations_only_keeps_counts(data_dir):
    full = ei.load(data_dir / "logpush")
    inv = ei.load(data_dir / "logpush", frames=("invocations",))
    pd.testing.assert_frame_equal(full.invocations, inv.invocations)
    assert inv.logs.empty
    assert inv.exceptions.empty


def test_since_until_are_pushed_down(data_dir):
    ev = ei.load(data_dir / "logpush/20261127", since="2026-11-27T14:06:00Z", until="2026-11-27T14:07:10Z")
    assert [t.strftime("%H:%M:%S") for t in ev.invocations["ts"]] == ["14:06:00", "14:07:00"]
    f = ev.report.files
    assert sum(x.filtered for x in f) == 5
    assert sum(x.records for x in f) == 7
    assert set(ev.logs["invocation_id"]) <= set(ev.invocations["invocation_id"])
    assert ev.manifest["window"] == {
        "since": "2026-11-27T14:06:00+00:00",
        "until": "2026-11-27T14:07:10+00:00",
    }


def test_parallel_load_equals_sequential(tmp_path, data_dir, monkeypatch):
    # several files, forced into 2 processes
    recs = [json.loads(x) for x in (data_dir / "logpush/20261127/batch-2.log").read_text().splitlines()]
    for i in range(4):
        with gzip.open(tmp_path / f"part-{i}.log.gz", "wt") as fh:
            for r in recs:
                r = dict(r, EventTimestampMs=r["EventTimestampMs"] + i)
                fh.write(json.dumps(r) + "\n")
    seq = ei.load(tmp_path, jobs=1)
    par = ei.load(tmp_path, jobs=2)  # this process and a worker share the files
    from edgeinvestigate.evidence import _loading as evidence

    monkeypatch.setattr(evidence, "_PARENT_TAKES_SHARE", False)
    workers = ei.load(tmp_path, jobs=2)  # every file through a worker and the Arrow IPC hand-over
    for other in (par, workers):
        for name in ("invocations", "logs", "exceptions"):
            pd.testing.assert_frame_equal(seq.frame(name), other.frame(name))
        assert [f.path for f in seq.report.files] == [f.path for f in other.report.files]
        assert [f.sha256 for f in seq.report.files] == [f.sha256 for f in other.report.files]


def test_parallel_load_survives_a_dying_worker(tmp_path, data_dir, monkeypatch, caplog):
    # the worker dies (as under the OOM killer) in its first file: its files are loaded here instead
    recs = [json.loads(x) for x in (data_dir / "logpush/20261127/batch-2.log").read_text().splitlines()]
    for i in range(4):
        with gzip.open(tmp_path / f"part-{i}.log.gz", "wt") as fh:
            for r in recs:
                fh.write(json.dumps(dict(r, EventTimestampMs=r["EventTimestampMs"] + i)) + "\n")
    seq = ei.load(tmp_path, jobs=1)
    from edgeinvestigate.evidence import _loading as evidence
    from edgeinvestigate.sources.files import _worker

    if evidence._mp_context().get_start_method() != "fork":
        pytest.skip("the patched worker function reaches only forked workers")

    def die(*args: object, **kwargs: object) -> None:
        os._exit(9)

    monkeypatch.setattr(_worker, "load_one_to_ipc", die)  # inherited by the forked worker
    monkeypatch.setattr(evidence, "_PARENT_TAKES_SHARE", False)
    with caplog.at_level("WARNING", logger="edgeinvestigate.evidence.bundle"):
        par = ei.load(tmp_path, jobs=2)
    for name in ("invocations", "logs", "exceptions"):
        pd.testing.assert_frame_equal(seq.frame(name), par.frame(name))
    assert "parallel load failed" in caplog.text


def test_only_selected_fields(tmp_path):
    p = tmp_path / "min.log"
    p.write_text('{"EventTimestampMs":1795788300000,"Outcome":"ok","ScriptName":"w"}\n')
    inv = ei.load(p).invocations
    assert len(inv) == 1
    assert inv.iloc[0].trigger == "unknown"
    assert inv.iloc[0].n_logs == 0
    assert pd.isna(inv.iloc[0].cpu_ms)
    assert pd.isna(inv.iloc[0].queue)


@pytest.mark.parametrize(
    "ts",
    [
        1795788300000,
        1795788300000000000,
        1795788300,
        "2026-11-27T14:05:00Z",
        "2026-11-27T14:05:00.000+00:00",
        "1795788300000",
    ],
)
def test_time_forms(tmp_path, ts):
    p = tmp_path / "t.log"
    p.write_text(json.dumps({"EventTimestampMs": ts, "Outcome": "ok", "Logs": [], "Exceptions": []}) + "\n")
    ev = ei.load(p)
    assert ev.invocations["ts"].iloc[0] == pd.Timestamp("2026-11-27T14:05:00Z")
    assert ev.invocations["ts"].dtype == pd.ArrowDtype(pa.timestamp("ms", tz="UTC"))


def test_multi_member_gzip_and_blocks(tmp_path, data_dir, monkeypatch):
    lines = (data_dir / "logpush/20261127/batch-2.log").read_bytes()
    p = tmp_path / "members.gz"
    p.write_bytes(gzip.compress(lines) + gzip.compress(lines) + b"\x00" * 16)
    ev = ei.load(p)
    assert len(ev.invocations) == 6
    assert ev.report.n_issues == 0
    # tiny blocks: line numbers stay right across block boundaries
    from edgeinvestigate.sources.files import _reading

    monkeypatch.setattr(_reading, "BLOCK_SIZE", 64)
    bad = tmp_path / "bad.log"
    bad.write_bytes(lines + b"{broken\n" + lines)
    ev = ei.load(bad)
    assert len(ev.invocations) == 6
    assert [i.line for _, i in ev.report.issues()] == [4]


def test_whole_block_decode_agrees_with_the_general_path(tmp_path, data_dir):
    # no markers, no bad lines: the block is decoded in one call (the fast block path)
    recs = [json.loads(x) for x in (data_dir / "logpush/20261127/batch-2.log").read_text().splitlines()]
    first = json.loads(
        gzip.decompress(
            (data_dir / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz").read_bytes()
        ).splitlines()[0]
    )
    ns = dict(first, EventTimestampMs=first["EventTimestampMs"] * 1_000_000)  # ns, scaled in the columns
    p = tmp_path / "clean.log"
    # compact, as Logpush writes it (args keep the source's bytes; the general path re-encodes compactly)
    p.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in [first, *recs, ns]))
    fast = ei.load((p, "logpush"))
    slow = _general_only(p)
    for name in ("invocations", "logs", "exceptions"):
        pd.testing.assert_frame_equal(fast.frame(name), slow[name])
    assert fast.invocations["ts"].iloc[-1] == fast.invocations["ts"].iloc[0]
    assert fast.report.files[0].records == 5
    assert fast.report.files[0].logs == 4


# --- issue 14 item 9: Event.Queue as an object, on the fast path ---------------------------------


def _queue_records(data_dir, n: int) -> list[dict]:
    gz = data_dir / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz"
    rec = json.loads(gzip.decompress(gz.read_bytes()).splitlines()[0])
    out = []
    for i in range(n):
        r = dict(rec, EventTimestampMs=rec["EventTimestampMs"] + i)
        # every other record spells the queue as an object, as some jobs write it
        r["Event"] = (
            {"Queue": {"QueueName": "jobs", "BatchSize": 3}} if i % 2 else {"Queue": "jobs", "BatchSize": 3}
        )
        out.append(r)
    return out


@pytest.mark.parametrize("frames", [("invocations", "logs", "exceptions"), ("invocations",)])
@pytest.mark.parametrize("since", [None, "2026-11-27T14:00Z"])
def test_queue_given_as_an_object_keeps_its_name_on_the_fast_path(
    tmp_path, data_dir, monkeypatch, frames, since
):
    path = tmp_path / "q.log.gz"
    path.write_bytes(
        gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in _queue_records(data_dir, 1000)))
    )

    def general(*args: object, **kwargs: object) -> None:
        raise AssertionError("a well-formed record took the general path")

    monkeypatch.setattr(_logpush_record, "add_logpush_record", general)  # windowed too
    ev = ei.load((path, "logpush"), frames=frames, since=since)
    assert ev.report.n_issues == 0  # no warning per record
    assert len(ev.invocations) == 1000
    assert set(ev.invocations["queue"].astype(str)) == {"jobs"}
    assert set(ev.invocations["batch_size"]) == {3}
    assert set(ev.invocations["trigger"].astype(str)) == {"queue"}


def test_queue_object_in_the_general_path_too(tmp_path, data_dir):
    recs = _queue_records(data_dir, 2)
    recs[1]["EventTimestampMs"] = "2026-11-27T14:05:00Z"  # a string time: the general path
    recs[1]["Event"] = {"Queue": {"queueName": "jobs", "batchSize": 7}}
    path = tmp_path / "q.log"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    ev = ei.load((path, "logpush"))
    assert list(ev.invocations["queue"].astype(str)) == ["jobs", "jobs"]
    assert list(ev.invocations["batch_size"]) == [3, 7]
    assert ev.report.n_issues == 0


def test_a_block_the_typed_path_cannot_build_is_read_again_line_by_line(tmp_path, data_dir, monkeypatch):
    # should building a block's columns ever fail on a record the structs let through, the block is
    # read again through the general path: same frames, nothing raised
    path = tmp_path / "q.log"  # compact JSON, as Logpush writes it
    path.write_text(
        "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in _queue_records(data_dir, 50))
    )
    want = ei.load((path, "logpush"))
    from edgeinvestigate.sources.files import _logpush

    def broken(*args: object, **kwargs: object) -> None:
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setattr(_logpush, "flush_block", broken)
    got = ei.load((path, "logpush"))
    for name in ("invocations", "logs", "exceptions"):
        pd.testing.assert_frame_equal(want.frame(name), got.frame(name))
    assert got.report.to_dict()["files"][0]["records"] == 50
    assert got.report.n_issues == 0
