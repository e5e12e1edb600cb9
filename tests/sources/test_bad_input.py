"""Bad input never crashes a load and is never dropped silently; strict mode names file:line."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeinvestigate as ei
from edgeinvestigate.errors import LoadError, ParseError

GOOD_LP = {
    "EventTimestampMs": 1795788300000,
    "EventType": "queue",
    "Outcome": "ok",
    "ScriptName": "w",
    "Event": {"Queue": "q", "BatchSize": 1},
    "Logs": [{"Level": "log", "Message": ["hi"], "TimestampMs": 1795788300001}],
    "Exceptions": [],
}


def _lp_lines(n: int) -> list[str]:
    return [json.dumps(dict(GOOD_LP, EventTimestampMs=1795788300000 + i)) for i in range(n)]


def test_invalid_json_line_is_listed_with_its_line(tmp_path):
    lines = _lp_lines(3)
    lines.insert(1, '{"EventTimestampMs": 1795788300000, "Outcome": "ok", ')  # cut record
    p = tmp_path / "bad.log"
    p.write_text("\n".join(lines) + "\n")
    ev = ei.load((p, "logpush"))
    assert len(ev.invocations) == 3
    [(path, issue)] = ev.report.issues()
    assert path == str(p)
    assert issue.line == 2
    assert issue.kind == "json"
    assert issue.severity == "error"
    assert ev.report.skipped == 1
    assert not ev.report.ok
    with pytest.raises(ParseError) as info:
        ei.load((p, "logpush"), strict=True)
    assert f"{p}:2:" in str(info.value)
    assert "expected one workers_trace_events JSON object per line" in str(info.value)


def test_truncated_gzip_keeps_what_decoded(tmp_path):
    data = gzip.compress(("\n".join(_lp_lines(2000)) + "\n").encode())
    p = tmp_path / "cut.log.gz"
    p.write_bytes(data[: len(data) // 2])
    ev = ei.load(p)
    n = len(ev.invocations)
    assert 0 < n < 2000
    kinds = [i.kind for _, i in ev.report.issues()]
    assert "gzip" in kinds  # the cut stream
    gz = next(i for _, i in ev.report.issues() if i.kind == "gzip")
    assert gz.offset == len(data) // 2
    assert "truncated" in gz.message
    with pytest.raises(ParseError, match=r"cut\.log\.gz \(byte \d+\): the gzip stream ends early"):
        ei.load(p, strict=True)


def test_wrong_types_become_null_with_a_warning(tmp_path):
    rec = dict(GOOD_LP, CPUTimeMs="fast", ScriptName=42, EventTimestampMs="yesterday", Logs="nope")
    p = tmp_path / "types.log"
    p.write_text(json.dumps(rec) + "\n")
    ev = ei.load((p, "logpush"))
    inv = ev.invocations.iloc[0]
    assert inv.isna()[["cpu_ms", "script", "ts"]].all()
    assert inv.n_logs == 0
    issues = ev.report.issues()
    assert {i.severity for _, i in issues} == {"warning"}
    assert {"CPUTimeMs", "ScriptName", "EventTimestampMs", "Logs"} <= {
        i.message.split("'")[1] for _, i in issues
    }
    with pytest.raises(ParseError, match=r"types\.log:1: .*expected"):
        ei.load((p, "logpush"), strict=True)


def test_tail_wrong_types(tmp_path):
    rec = {
        "outcome": 3,
        "scriptName": ["x"],
        "eventTimestamp": 1795788300000,
        "logs": [5, {"message": ["ok"], "level": "log", "timestamp": 1795788300000}],
        "exceptions": {},
        "event": {"queue": "q", "batchSize": "ten"},
    }
    p = tmp_path / "tail.json"
    p.write_text(json.dumps(rec, indent=4) + "\n")
    ev = ei.load((p, "tail"))
    inv = ev.invocations.iloc[0]
    assert inv.n_logs == 1
    assert inv.isna()[["outcome", "script", "batch_size"]].all()
    assert inv.queue == "q"
    assert len(ev.report.issues("warning")) == 5


def test_unknown_event_variants_are_kept_and_reported(tmp_path):
    p = tmp_path / "v.log"
    p.write_text(json.dumps(dict(GOOD_LP, EventType="teleport")) + "\n")
    ev = ei.load((p, "logpush"))
    assert ev.invocations.iloc[0].trigger == "unknown"
    [(_, issue)] = ev.report.issues()
    assert issue.kind == "variant"
    assert "teleport" in issue.message
    t = tmp_path / "v.json"
    t.write_text(
        json.dumps(
            {
                "outcome": "ok",
                "eventTimestamp": 1795788300000,
                "logs": [],
                "exceptions": [],
                "event": {"workflowStep": "a"},
            }
        )
        + "\n"
    )
    ev = ei.load(t)
    assert ev.invocations.iloc[0].trigger == "unknown"
    assert ev.report.issues()[0][1].kind == "variant"


def test_ten_megabyte_line(tmp_path):
    lines = _lp_lines(2)
    lines.insert(1, "{" + "x" * 10_000_000)  # garbage
    big_log = {"Level": "log", "Message": ["y" * 10_000_000], "TimestampMs": 1795788300001}
    lines.insert(2, json.dumps(dict(GOOD_LP, Logs=[big_log])))
    p = tmp_path / "big.log"
    p.write_text("\n".join(lines) + "\n")
    ev = ei.load(p, max_record_bytes=16 * 1024 * 1024)  # above the 8 MiB default: loads it
    assert len(ev.invocations) == 3
    assert len(ev.logs.iloc[1].message) == 10_000_000
    [(_, issue)] = ev.report.issues()
    assert issue.line == 2
    assert len(issue.message) < 300
    # with the default cap both 10 MB lines are skipped and listed, never decoded
    ev = ei.load(p)
    assert len(ev.invocations) == 2
    issues = [i for _, i in ev.report.issues()]
    assert [(i.line, i.kind, i.severity) for i in issues] == [(2, "size", "error"), (3, "size", "error")]
    assert "larger than max_record_bytes (8,388,608); skipped" in issues[1].message
    assert all(len(i.message) < 300 for i in issues)


def test_unterminated_pretty_object_and_garbage_between(tmp_path):
    rec = {"outcome": "ok", "eventTimestamp": 1795788300000, "logs": [], "exceptions": [], "event": None}
    text = json.dumps(rec, indent=2) + "\nConnected to worker!\n" + json.dumps(rec, indent=2)[:-10]
    p = tmp_path / "tail.json"
    p.write_text(text)
    ev = ei.load((p, "tail"))
    assert len(ev.invocations) == 1
    errs = ev.report.issues("error")
    assert [i.line for _, i in errs] == [8, 9]
    with pytest.raises(ParseError, match=r"tail\.json:8: not JSON"):
        ei.load((p, "tail"), strict=True)


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        ei.load(tmp_path / "nope.json")
    p = tmp_path / "notes.txt"
    p.write_text("these are my incident notes\n")
    with pytest.raises(LoadError, match="cannot tell the telemetry format"):
        ei.load(p)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    ev = ei.load(empty)
    assert ev.report.files[0].source == "empty"
    assert ev.invocations.empty


# --- property: mangled input never crashes and nothing disappears silently ---------------------

SAMPLES = {
    "logpush": "logpush/20261127/batch-2.log",
    "tail": "tail/tail-4space.json",
    "traceitems": "traceitems/arrays.jsonl",
    "workers_logs_export": "workers_logs/dashboard-export.json",
}


@st.composite
def mangled(draw, data: bytes) -> bytes:
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["cut", "flip", "insert", "dup", "delete"]),
                st.integers(0, len(data)),
                st.binary(max_size=20),
            ),
            min_size=1,
            max_size=4,
        )
    )
    out = bytearray(data)
    for op, pos, junk in ops:
        pos = min(pos, len(out))
        if op == "cut":
            del out[pos:]
        elif op == "flip" and pos < len(out):
            out[pos] = (out[pos] + 1 + (junk[0] if junk else 0)) % 256
        elif op == "insert":
            out[pos:pos] = junk
        elif op == "dup":
            out[pos:pos] = out[max(0, pos - 50) : pos]
        elif op == "delete":
            del out[pos : pos + 1 + len(junk)]
    return bytes(out)


@pytest.mark.parametrize("source", sorted(SAMPLES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mangled_input_never_crashes(tmp_path, data_dir, source, data):
    raw = (data_dir / SAMPLES[source]).read_bytes()
    bad = data.draw(mangled(raw))
    mode = data.draw(st.sampled_from(["plain", "gzip", "gzip-cut"]))
    p = tmp_path / ("m.json" if mode == "plain" else "m.gz")
    if mode == "plain":
        p.write_bytes(bad)
    else:
        gz = gzip.compress(bad)
        p.write_bytes(gz if mode == "gzip" else gz[: data.draw(st.integers(10, max(10, len(gz) - 1)))])
    ev = ei.load((p, source))  # never raises
    rep = ev.report.files[0]
    # every record read is accounted for: loaded, filtered, or reported
    assert rep.invocations == len(ev.invocations)
    assert rep.records >= rep.invocations
    if len(ev.invocations) == 0 and bad.strip():
        assert rep.n_issues > 0 or rep.records > 0 or source == "workers_logs_export"
    strict_error = None
    try:
        ei.load((p, source), strict=True)
    except ParseError as exc:
        strict_error = str(exc)
    if strict_error is not None:
        assert str(p) in strict_error
    else:
        assert ev.report.skipped == 0
        assert not ev.report.issues("warning")
