"""Issue 14 item 4: invalid UTF-8, a time beyond 64 bits and JSON nested 1,000+ deep are each one skipped
record in the load report (file and line), in every loader, plain and gzip; nothing else is lost and
nothing raises. Records are the fixtures' real ones (tests/data, shaped like the reference)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.errors import ParseError

DATA = Path(__file__).resolve().parents[1] / "data"


def _logpush_lines() -> list[bytes]:
    """Three real Logpush lines: a failing queue invocation (logs, exceptions), a fetch, a second queue."""
    gz = DATA / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz"
    first = gzip.decompress(gz.read_bytes()).splitlines()[0]
    rec = json.loads(first)
    second = json.dumps(dict(rec, EventTimestampMs=rec["EventTimestampMs"] + 1), separators=(",", ":"))
    return [first, gzip.decompress(gz.read_bytes()).splitlines()[1], second.encode()]


def _trace_record() -> dict:
    return json.loads((DATA / "tail/tail.ndjson").read_bytes().splitlines()[0])


def _workers_event() -> dict:
    return json.loads((DATA / "workers_logs/api-events.ndjson").read_bytes().splitlines()[0])


#: the hostile value each kind puts in place of a field's value, as raw JSON text
HOSTILE = {
    "invalid UTF-8": b'"caf\xe9 \xff"',  # Latin-1 bytes, not UTF-8
    "beyond 64 bits": b"123456789012345678901234567890",
    "nested 5,000 deep": b"[" * 5000 + b"]" * 5000,
}
_SENTINEL = "\x01hostile\x01"


def _compact(rec: dict) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()


def _spoil(line: bytes, kind: str, path: tuple) -> bytes:
    """``line`` with the value at ``path`` (keys and indexes) replaced by the raw hostile value."""
    rec = json.loads(line)
    node = rec
    for k in path[:-1]:
        node = node[k]
    assert isinstance(node, list) or path[-1] in node, (path, line[:200])
    node[path[-1]] = _SENTINEL
    return _compact(rec).replace(json.dumps(_SENTINEL).encode(), HOSTILE[kind])


def _files(loader: str, kind: str) -> list[bytes]:
    """Three real records (as NDJSON lines), the middle one spoilt."""
    if loader == "logpush":
        lines = _logpush_lines()
        lines[1], lines[0] = lines[0], lines[1]  # the queue invocation with logs in the middle
        key = {"invalid UTF-8": ("Logs", 0, "Message", 0), "beyond 64 bits": ("EventTimestampMs",)}.get(
            kind, ("Logs", 1, "Message")
        )
    elif loader in ("tail", "traceitems"):
        rec = _trace_record()
        lines = [_compact(dict(rec, eventTimestamp=rec["eventTimestamp"] + i)) for i in range(3)]
        key = {"invalid UTF-8": ("logs", 0, "message", 0), "beyond 64 bits": ("eventTimestamp",)}.get(
            kind, ("logs", 1, "message")
        )

    else:
        ev = _workers_event()
        lines = [
            _compact(
                dict(ev, timestamp=ev["timestamp"] + i, **{"$metadata": dict(ev["$metadata"], id=f"e{i}")})
            )
            for i in range(3)
        ]
        key = {"invalid UTF-8": ("source", "event"), "beyond 64 bits": ("timestamp",)}.get(kind, ("source",))
    lines[1] = _spoil(lines[1], kind, key)
    if loader == "traceitems":  # JSON.stringify(events) of one event per line
        lines = [b"[" + ln + b"]" for ln in lines]
    return lines


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("loader", ["logpush", "tail", "traceitems", "workers_logs_export"])
def test_a_hostile_record_is_one_skipped_record(tmp_path, loader, kind, compress):
    lines = _files(loader, kind)
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / ("records.log.gz" if compress else "records.log")
    path.write_bytes(gzip.compress(data) if compress else data)

    ev = ei.load((path, loader))  # never raises

    rep = ev.report.files[0]
    errors = [i for i in rep.issues if i.severity == "error"]
    assert [(i.line, i.severity) for i in errors] == [(2, "error")], rep.issues
    assert rep.skipped == 1
    if loader == "workers_logs_export":
        assert rep.records == 2  # events: the other two are read
    else:
        assert len(ev.invocations) == 2  # the records around it are all there
    with pytest.raises(ParseError) as info:
        ei.load((path, loader), strict=True)
    assert str(info.value).startswith(f"{path}:2: ")


def test_the_messages_say_what_is_wrong(tmp_path):
    lines = _logpush_lines()
    spoilt = {
        kind: _spoil(lines[0], kind, key)
        for kind, key in (
            ("invalid UTF-8", ("Logs", 0, "Message", 0)),
            ("beyond 64 bits", ("EventTimestampMs",)),
            ("nested 5,000 deep", ("Logs", 1, "Message")),
        )
    }
    path = tmp_path / "lp.log"
    path.write_bytes(b"\n".join([lines[0], *spoilt.values(), lines[2]]) + b"\n")
    ev = ei.load((path, "logpush"))
    messages = {i.line: i.message for _, i in ev.report.issues()}
    assert messages[2].startswith("invalid UTF-8 at byte ")
    assert "EventTimestampMs 123456789012345678901234567890 does not fit in 64 bits" in messages[3]
    assert "nested too deeply" in messages[4]
    assert len(ev.invocations) == 2


def test_collect_lists_them_and_writes_the_rest(tmp_path, capsys):
    # the report of issue 14: one \xff inside a Logpush message aborted collect with a traceback
    lines = _logpush_lines()
    lines[0], lines[1] = lines[1], lines[0].replace(b'"Message":["', b'"Message":["\xff', 1)
    assert b"\xff" in lines[1]
    src = tmp_path / "20261127"
    src.mkdir()
    (src / "batch.log.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    out = tmp_path / "bundle"
    main(["collect", "--logpush", str(src), "--out", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"error: {src / 'batch.log.gz'}:2: invalid UTF-8 at byte" in captured.out
    assert ei.Evidence.open(out).manifest["rows"]["invocations"] == 2


def test_every_loader_counts_the_same_with_or_without_logs(tmp_path):
    # the invocations-only load (logs not decoded) skips the same record as the full one
    lines = _logpush_lines()
    lines[0], lines[1] = lines[1], lines[0].replace(b'"Message":["', b'"Message":["\xff', 1)
    path = tmp_path / "lp.log"
    path.write_bytes(b"\n".join(lines * 3) + b"\n")
    full = ei.load((path, "logpush"))
    counts = ei.load((path, "logpush"), frames=("invocations",))
    assert list(full.invocations["invocation_id"]) == list(counts.invocations["invocation_id"])
    assert (
        [i.line for _, i in full.report.issues()] == [i.line for _, i in counts.report.issues()] == [2, 5, 8]
    )
