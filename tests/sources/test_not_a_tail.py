"""A file forced to the tail or TraceItem loader must hold tail / TraceItem records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.errors import ParseError

LOGPUSH_LINE = {
    "CPUTimeMs": 9,
    "DispatchNamespace": "",
    "Entrypoint": "",
    "Event": {"BatchSize": 1, "Queue": "email-jobs"},
    "EventTimestampMs": 1795788300000,
    "EventType": "queue",
    "Exceptions": [{"Message": "SMTP 421", "Name": "Error", "TimestampMs": 1795788300300}],
    "Logs": [{"Level": "log", "Message": ["sending"], "TimestampMs": 1795788300100}],
    "Outcome": "exception",
    "ScriptName": "email-consumer",
    "ScriptTags": [],
    "WallTimeMs": 412,
}
TAIL_EVENT = {
    "outcome": "ok",
    "scriptName": "jobs-api",
    "exceptions": [],
    "logs": [{"message": ["accepted"], "level": "log", "timestamp": 1795788360010}],
    "eventTimestamp": 1795788360000,
    "event": {
        "request": {"url": "https://jobs.example.com/submit", "method": "POST"},
        "response": {"status": 202},
    },
}


@pytest.fixture
def logpush_file(tmp_path: Path) -> Path:
    p = tmp_path / "20261127T140000Z_20261127T140459Z_a1b2c3d4.log"
    lines = [{**LOGPUSH_LINE, "EventTimestampMs": LOGPUSH_LINE["EventTimestampMs"] + i} for i in range(3)]
    p.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return p


@pytest.mark.parametrize(
    ("source", "kind"), [("tail", "wrangler tail"), ("traceitems", "Tail Worker TraceItem")]
)
def test_a_logpush_file_forced_as_tail_is_rejected(logpush_file: Path, source: str, kind: str) -> None:
    ev = ei.load([(logpush_file, source)])
    assert len(ev.invocations) == 0
    rep = ev.report.files[0]
    assert rep.records == 3
    assert rep.skipped == 3
    first = rep.issues[0]
    assert first.kind == "format"
    assert f"does not look like a {kind} capture" in first.message
    assert "looks like 'logpush' data" in first.message
    assert "--logpush" in first.message
    bad = [i for i in rep.issues if i.kind == "not-tail"]
    assert [i.line for i in bad] == [1, 2, 3]
    assert all(
        i.message.startswith("not a tail event: expected wrangler tail / TraceItem fields") for i in bad
    )
    assert "EventTimestampMs" in bad[0].message


def test_strict_raises_on_the_first_non_tail_record(logpush_file: Path) -> None:
    with pytest.raises(ParseError) as err:
        ei.load([(logpush_file, "tail")], strict=True)
    assert err.value.line == 1
    assert str(logpush_file) in str(err.value)
    assert "not a tail event" in str(err.value)


def test_a_stray_object_in_a_tail_capture_is_listed_not_loaded(tmp_path: Path) -> None:
    p = tmp_path / "tail.json"
    first = json.dumps(TAIL_EVENT, indent=2)
    p.write_text(first + "\n" + json.dumps({"a": 1}, indent=2) + "\n")
    ev = ei.load(p)
    assert len(ev.invocations) == 1
    (path, issue), *_ = ev.report.issues("error")
    assert issue.kind == "not-tail"
    assert path == str(p)
    assert issue.line == len(first.splitlines()) + 1  # where the stray object starts
    assert "['a']" in issue.message
    assert not any(i.kind == "format" for _, i in ev.report.issues())  # the file is a tail capture
    with pytest.raises(ParseError, match="not a tail event"):
        ei.load(p, strict=True)


def test_a_file_of_nothing_known(tmp_path: Path) -> None:
    p = tmp_path / "odd.json"
    p.write_text('{"a": 1}\n{"b": 2}\n')
    ev = ei.load([(p, "tail")])
    assert len(ev.invocations) == 0
    assert ev.report.skipped == 2
    assert "matches none of the known telemetry formats" in ev.report.files[0].issues[0].message


def test_tail_sampling_notices_stay_notices(tmp_path: Path) -> None:
    p = tmp_path / "traceitems.jsonl"
    notice = {
        "message": "Tail is currently in sampling mode due to the high volume of messages.",
        "type": "overload",
    }
    p.write_text(json.dumps([TAIL_EVENT]) + "\n" + json.dumps([notice]) + "\n")
    ev = ei.load([(p, "traceitems")])
    assert len(ev.invocations) == 1
    assert ev.report.skipped == 0
    assert [i.kind for _, i in ev.report.issues()] == ["tail-info"]


def test_collect_refuses_a_forced_tail(
    tmp_path: Path, logpush_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "INC"
    with pytest.raises(SystemExit) as info:
        main(["collect", "--tail", str(logpush_file), "--out", str(out)])
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()[0]
    assert f"none of the 3 records of {logpush_file} could be read as tail (--tail)" in err
    assert f"it looks like logpush data; load it with --logpush {logpush_file}" in err
    assert not out.exists()
