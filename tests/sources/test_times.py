"""Issue 14 item 7: a time is read in the units the reference allows for its field, and a value that lands
outside 2010-01-01 .. now + 1 day in every allowed unit becomes null with a warning (it was never
reinterpreted: Logpush EventTimestampMs 253402300800000, the year 9999 in ms, used to load as 1978).

Units (../shared/reference/cloudflare-formats.md): Logpush ``…Ms`` fields are epoch ms, but the job's
timestamp_format may give ns or s, or RFC 3339 strings (B2); tail events, TraceItems (A2/A4), Workers Logs
events (C2) and queue messages (D1, E) are epoch ms (ISO strings are read too: they say their own unit).
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.sources.api.dlq_frame import dlq_frame
from edgeinvestigate.sources.files._coerce import LOGPUSH_UNITS, MS_ONLY, BadTime, parse_ms

DATA = Path(__file__).resolve().parents[1] / "data"
T0 = 1_795_788_300_000  # 2026-11-27T14:05:00Z
YEAR_9999_MS = 253_402_300_800_000


def _logpush_record() -> dict:
    gz = DATA / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz"
    return json.loads(gzip.decompress(gz.read_bytes()).splitlines()[0])


def _write_ndjson(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs))
    return path


def test_parse_ms_reads_only_the_allowed_units():
    hi = T0 + 86_400_000
    assert parse_ms(T0, LOGPUSH_UNITS, hi) == T0
    assert parse_ms(T0 // 1000, LOGPUSH_UNITS, hi) == T0  # seconds (timestamp_format unix)
    assert parse_ms(T0 * 1_000_000, LOGPUSH_UNITS, hi) == T0  # ns (unixnano)
    assert parse_ms("2026-11-27T14:05:00Z", LOGPUSH_UNITS, hi) == T0  # rfc3339
    assert parse_ms(str(T0), LOGPUSH_UNITS, hi) == T0
    assert isinstance(parse_ms(T0 * 1000, LOGPUSH_UNITS, hi), BadTime)  # µs: not a Logpush unit
    assert isinstance(parse_ms(T0 // 1000, MS_ONLY, hi), BadTime)  # seconds: not a tail unit
    bad = parse_ms(YEAR_9999_MS, LOGPUSH_UNITS, hi)
    assert isinstance(bad, BadTime)
    assert not bad.too_big
    assert bad.says("EventTimestampMs") == (
        "field 'EventTimestampMs' is 253402300800000, which is no time between 2010-01-01 and tomorrow "
        "read as ms or seconds or ns"
    )
    assert parse_ms(2**64, MS_ONLY, hi).too_big  # type: ignore[union-attr]
    assert parse_ms(hi + 1, MS_ONLY, hi).which  # type: ignore[union-attr]  # after tomorrow
    assert parse_ms(1_262_303_999_999, MS_ONLY, hi).which  # type: ignore[union-attr]  # 2009
    assert parse_ms("9999-12-31T00:00:00Z", MS_ONLY, hi).which  # type: ignore[union-attr]
    assert parse_ms(True, MS_ONLY, hi).text == "True"  # type: ignore[union-attr]
    assert parse_ms(float("nan"), MS_ONLY, hi).text == "nan"  # type: ignore[union-attr]
    assert parse_ms(None) is None


def test_logpush_year_9999_is_null_with_a_warning_not_1978(tmp_path):
    rec = _logpush_record()
    recs = [rec, dict(rec, EventTimestampMs=YEAR_9999_MS), dict(rec, EventTimestampMs=T0 + 5)]
    for frames in (("invocations", "logs", "exceptions"), ("invocations",)):
        ev = ei.load((_write_ndjson(tmp_path / "lp.log", recs), "logpush"), frames=frames)
        ts = list(ev.invocations["ts"])
        assert ts[0] == pd.Timestamp(T0, unit="ms", tz="UTC")
        assert pd.isna(ts[1])  # not 1978-01-11
        assert ts[2] == pd.Timestamp(T0 + 5, unit="ms", tz="UTC")
        [(_, issue)] = ev.report.issues()
        assert (issue.line, issue.kind, issue.severity) == (2, "time", "warning")
        assert "253402300800000, which is no time between 2010-01-01 and tomorrow" in issue.message
        assert ev.report.skipped == 0


def test_logpush_reads_seconds_ns_and_rfc3339_in_every_time_field(tmp_path):
    rec = _logpush_record()
    secs = dict(rec, EventTimestampMs=T0 // 1000)
    secs["Logs"] = [dict(lg, TimestampMs=lg["TimestampMs"] // 1000) for lg in rec["Logs"]]
    nanos = dict(rec, EventTimestampMs=T0 * 1_000_000)
    nanos["Exceptions"] = [dict(e, TimestampMs=e["TimestampMs"] * 1_000_000) for e in rec["Exceptions"]]
    text = dict(rec, EventTimestampMs="2026-11-27T14:05:00Z")
    ev = ei.load((_write_ndjson(tmp_path / "units.log", [rec, secs, nanos, text]), "logpush"))
    assert ev.report.n_issues == 0
    assert set(ev.invocations["ts"]) == {pd.Timestamp(T0, unit="ms", tz="UTC")}
    assert ev.logs["ts"].notna().all()
    assert ev.exceptions["ts"].notna().all()
    micros = dict(rec, EventTimestampMs=T0 * 1000)  # µs is not a unit Logpush writes: not guessed
    ev = ei.load((_write_ndjson(tmp_path / "us.log", [micros]), "logpush"))
    assert pd.isna(ev.invocations["ts"].iloc[0])
    assert "read as ms or seconds or ns" in ev.report.issues()[0][1].message


def test_the_window_ends_a_day_from_now(tmp_path):
    rec = _logpush_record()
    now = int(time.time() * 1000)
    recs = [dict(rec, EventTimestampMs=now - 60_000), dict(rec, EventTimestampMs=now + 3 * 86_400_000)]
    ev = ei.load((_write_ndjson(tmp_path / "future.log", recs), "logpush"))
    assert ev.invocations["ts"].notna().tolist() == [True, False]
    assert [i.line for _, i in ev.report.issues("warning")] == [2]


def test_tail_times_are_ms_only(tmp_path):
    rec = json.loads((DATA / "tail/tail.ndjson").read_text().splitlines()[0])
    secs = dict(rec, eventTimestamp=rec["eventTimestamp"] // 1000)
    far = dict(rec, eventTimestamp=YEAR_9999_MS)
    iso = dict(rec, eventTimestamp="2026-11-27T14:05:00.000Z")
    ev = ei.load((_write_ndjson(tmp_path / "tail.ndjson", [rec, secs, far, iso]), "tail"))
    assert ev.invocations["ts"].notna().tolist() == [True, False, False, True]
    warnings = [(i.line, i.message) for _, i in ev.report.issues("warning")]
    assert [line for line, _ in warnings] == [2, 3]
    assert "which is no time between 2010-01-01 and tomorrow read as ms" in warnings[0][1]


def test_workers_logs_year_9999_is_null(tmp_path):
    events = [json.loads(x) for x in (DATA / "workers_logs/api-events.ndjson").read_text().splitlines()]
    events[0] = dict(events[0], timestamp=YEAR_9999_MS)
    ev = ei.load((_write_ndjson(tmp_path / "wl.ndjson", events), "workers_logs_export"))
    assert ev.logs["ts"].isna().sum() == 1
    assert any("253402300800000" in i.message for _, i in ev.report.issues("warning"))


def test_dlq_times_out_of_the_window_are_null_and_said(tmp_path):
    msg = {
        "id": "m1",
        "body": "hi",
        "attempts": 1,
        "timestamp_ms": YEAR_9999_MS,
        "metadata": {"CF-Content-Type": "text"},
    }
    df = dlq_frame([msg, dict(msg, id="m2", timestamp_ms=T0)], "jobs-dlq")
    assert pd.isna(df.loc[0, "enqueued_at"])
    assert (
        "timestamp_ms 253402300800000, which is no time between 2010-01-01 and tomorrow"
        in df.loc[0, "decode_error"]
    )
    assert df.loc[1, "enqueued_at"] == pd.Timestamp(T0, unit="ms", tz="UTC")


@pytest.mark.parametrize("since", [None, "2026-11-27T14:00Z"])
def test_windowed_loads_read_units_the_same_way(tmp_path, since):
    rec = _logpush_record()
    recs = [dict(rec, EventTimestampMs=T0 // 1000), dict(rec, EventTimestampMs=YEAR_9999_MS)]
    ev = ei.load((_write_ndjson(tmp_path / "w.log", recs), "logpush"), since=since)
    assert ev.invocations["ts"].iloc[0] == pd.Timestamp(T0, unit="ms", tz="UTC")
    assert pd.isna(ev.invocations["ts"].iloc[1])  # no time: kept, never filtered away


@pytest.mark.parametrize("unit", ["ms", "s", "ns"])
@pytest.mark.parametrize("since", [None, "2026-11-27T14:00Z"])
def test_times_in_any_logpush_unit_stay_on_the_fast_path(tmp_path, monkeypatch, unit, since):
    # timestamp_format unix / unixnano: valid records, so never the general path
    from edgeinvestigate.sources.files import _logpush_record as general_path

    scale = {"ms": 1, "s": 0.001, "ns": 1_000_000}[unit]
    rec = _logpush_record()
    recs = []
    for i in range(300):
        r = json.loads(json.dumps(rec))
        r["EventTimestampMs"] = int((T0 + i * 1000) * scale)
        for lg in r["Logs"]:
            lg["TimestampMs"] = int((T0 + i * 1000 + 5) * scale)
        for e in r["Exceptions"]:
            e["TimestampMs"] = int((T0 + i * 1000 + 400) * scale)
        recs.append(r)

    def general(*args: object, **kwargs: object) -> None:
        raise AssertionError("a valid record took the general path")

    monkeypatch.setattr(general_path, "add_logpush_record", general)
    ev = ei.load((_write_ndjson(tmp_path / "u.log", recs), "logpush"), since=since)
    assert ev.report.n_issues == 0
    assert ev.invocations["ts"].iloc[-1] == pd.Timestamp(T0 + 299_000, unit="ms", tz="UTC")
    assert ev.logs["ts"].notna().all()
    written = int((T0 + 299_400) * scale)  # whole seconds lose the .4
    assert ev.exceptions["ts"].iloc[-1] == pd.Timestamp(round(written / scale), unit="ms", tz="UTC")


def test_the_fast_path_warns_like_the_general_one(tmp_path):
    # the same implausible times, read by the typed columns and by the general path (a marker line)
    rec = _logpush_record()
    bad = json.loads(json.dumps(rec))
    bad["EventTimestampMs"] = YEAR_9999_MS
    bad["Logs"][1]["TimestampMs"] = 42
    general = json.loads(json.dumps(bad))
    general["Logs"].append(
        {"Level": "log", "Message": ["<<<Logpush: messages truncated>>>"], "TimestampMs": T0}
    )
    ev = ei.load((_write_ndjson(tmp_path / "w.log", [rec, bad, general]), "logpush"))
    warnings = [(i.line, i.message) for _, i in ev.report.issues("warning")]
    fast = sorted(m for line, m in warnings if line == 2)
    slow = sorted(m for line, m in warnings if line == 3)
    assert fast == slow
    assert len(fast) == 2
    assert "field 'Logs[1]' is 42, which is no time between 2010-01-01 and tomorrow" in fast[1]
    assert ev.invocations["ts"].isna().tolist() == [False, True, True]
