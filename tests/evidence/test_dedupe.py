"""Cross-source duplicates: one incident collected from several telemetry formats is counted once."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._framing import iter_documents

SINGLE = ("tail", "logpush", "traceitems")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "inc"
    main(["simulate", "default", "--out", str(out), "--seed", "3"])
    return out


def _paths(sim: Path) -> dict[str, Path]:
    return {
        "tail": sim / "tail/tail.json",
        "logpush": sim / "logpush",
        "traceitems": sim / "traceitems/traceitems.jsonl",
    }


def _counts(ev: ei.Evidence) -> tuple[int, int, int, int]:
    inv = ev.invocations
    return len(inv), len(ev.logs), len(ev.exceptions), int(inv["failed"].sum())


@pytest.fixture(scope="module")
def single(sim: Path) -> dict[str, ei.Evidence]:
    return {name: ei.load(p) for name, p in _paths(sim).items()}


# --- rewriting simulator files (cutting windows, dropping fields) --------------------------------


def _tail_records(path: Path) -> list[Any]:
    ctx = FileContext(path=str(path), source="tail")
    return [v for v, _line, _raw in iter_documents(path.read_bytes(), ctx)]


def _write_tail(path: Path, records: list[Any]) -> Path:
    # the wrangler 4.24.4+ form: 4-space pretty objects back to back
    path.write_text("".join(json.dumps(r, indent=4) + "\n" for r in records))
    return path


def _traceitem_lines(path: Path) -> list[list[dict[str, Any]]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _logpush_records(root: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(root.rglob("*.gz")):
        out.extend(msgspec.json.decode(line) for line in gzip.decompress(f.read_bytes()).splitlines())
    return out


def _write_logpush(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(gzip.compress(b"".join(msgspec.json.encode(r) + b"\n" for r in records)))
    return path


def _ms(iso: str) -> int:
    return int(pd.Timestamp(iso).value // 1_000_000)


# --- tests ---------------------------------------------------------------------------------------


def test_single_sources_agree(single: dict[str, ei.Evidence]) -> None:
    counts = {name: _counts(ev) for name, ev in single.items()}
    assert len(set(counts.values())) == 1, counts
    assert counts["tail"][0] > 1000
    assert all(not ev.report.duplicates for ev in single.values())


def test_three_formats_of_one_incident_count_once(sim: Path, single: dict[str, ei.Evidence]) -> None:
    paths = _paths(sim)
    ev = ei.load([paths["tail"], paths["logpush"], paths["traceitems"]])
    n = len(single["tail"].invocations)
    assert _counts(ev) == _counts(single["tail"])
    # every pair is reported, and every duplicate is counted once
    assert sum(ev.report.duplicates.values()) == 2 * n
    assert all("+" in pair for pair in ev.report.duplicates)
    assert {s for pair in ev.report.duplicates for s in pair.split("+")} == set(SINGLE)
    assert "were counted once" in ev.report.summary()
    # the kept rows keep their own logs and exceptions, the dropped ones take theirs along
    ids = set(ev.invocations["invocation_id"].astype(str))
    assert set(ev.logs["invocation_id"].astype(str)) <= ids
    assert set(ev.exceptions["invocation_id"].astype(str)) <= ids
    assert sorted(ev.logs["message"].astype(str)) == sorted(single["tail"].logs["message"].astype(str))
    assert sorted(ev.exceptions["message"].astype(str)) == sorted(
        single["logpush"].exceptions["message"].astype(str)
    )
    # the per-invocation content is the single-source content
    cols = ["ts", "script", "trigger", "outcome", "n_logs", "n_exceptions"]
    got = ev.invocations[cols].astype(str).sort_values(cols).reset_index(drop=True)
    want = single["tail"].invocations[cols].astype(str).sort_values(cols).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_dedupe_false_keeps_everything(sim: Path, single: dict[str, ei.Evidence]) -> None:
    paths = _paths(sim)
    ev = ei.load([paths["tail"], paths["logpush"]], dedupe=False)
    assert len(ev.invocations) == 2 * len(single["tail"].invocations)
    assert ev.report.duplicates == {}


def test_overlapping_windows_give_the_union(
    tmp_path: Path, sim: Path, single: dict[str, ei.Evidence]
) -> None:
    """tail from 14:30, Logpush until 14:45, TraceItems 14:20-14:50: the middle is in all three."""
    paths = _paths(sim)
    t_since, lp_until = _ms("2026-11-27T14:30Z"), _ms("2026-11-27T14:45Z")
    ti_since, ti_until = _ms("2026-11-27T14:20Z"), _ms("2026-11-27T14:50Z")
    tail = _write_tail(
        tmp_path / "tail.json", [r for r in _tail_records(paths["tail"]) if r["eventTimestamp"] >= t_since]
    )
    lp = _write_logpush(
        tmp_path / "logpush.log.gz",
        [r for r in _logpush_records(paths["logpush"]) if r["EventTimestampMs"] < lp_until],
    )
    ti = tmp_path / "traceitems.jsonl"
    lines = []
    for items in _traceitem_lines(paths["traceitems"]):
        kept = [i for i in items if ti_since <= i["eventTimestamp"] < ti_until]
        if kept:
            lines.append(json.dumps(kept))
    ti.write_text("\n".join(lines) + "\n")

    parts = [ei.load(p) for p in (tail, lp, ti)]
    assert all(len(p.invocations) < len(single["tail"].invocations) for p in parts)
    ev = ei.load([tail, lp, ti])
    # the union covers the whole incident: exactly the single-source counts
    assert _counts(ev) == _counts(single["tail"])
    overlap = sum(len(p.invocations) for p in parts) - len(ev.invocations)
    assert overlap > 0
    assert sum(ev.report.duplicates.values()) == overlap

    # the same through Evidence.merge of bundles loaded separately
    merged = ei.Evidence.merge(parts)
    assert _counts(merged) == _counts(single["tail"])
    assert merged.report.duplicates == ev.report.duplicates


def test_same_source_lookalikes_are_all_kept(
    tmp_path: Path, sim: Path, single: dict[str, ei.Evidence]
) -> None:
    """Two identical invocations in one tail capture are two invocations, even next to Logpush."""
    paths = _paths(sim)
    records = _tail_records(paths["tail"])
    twin = next(r for r in records if r.get("logs"))
    tail = _write_tail(tmp_path / "tail.json", [*records, twin])
    alone = ei.load(tail)
    n = len(single["tail"].invocations)
    assert len(alone.invocations) == n + 1
    ev = ei.load([tail, paths["logpush"]])
    assert len(ev.invocations) == n + 1
    assert len(ev.logs) == len(alone.logs)
    assert ev.report.duplicates == {"logpush+tail": n}
    # the other way round: two lookalikes in Logpush, one in the tail capture
    lp_records = _logpush_records(paths["logpush"])
    lp_twin = next(r for r in lp_records if r["EventTimestampMs"] == twin["eventTimestamp"])
    lp = _write_logpush(tmp_path / "lp.log.gz", [*lp_records, lp_twin])
    ev = ei.load([paths["tail"], lp])
    assert len(ev.invocations) == n + 1
    assert ev.report.duplicates == {"logpush+tail": n}


def test_sources_with_missing_fields_still_pair(
    tmp_path: Path, sim: Path, single: dict[str, ei.Evidence]
) -> None:
    """Local workerd TraceItems lack scriptName/cpu/wall; a Logpush job may not select Logs or CPU."""
    paths = _paths(sim)
    ti = tmp_path / "workerd.jsonl"
    lines = []
    for items in _traceitem_lines(paths["traceitems"]):
        for item in items:
            for key in ("scriptName", "cpuTime", "wallTime", "scriptVersion"):
                item.pop(key, None)
        lines.append(json.dumps(items))
    ti.write_text("\n".join(lines) + "\n")
    lp = _write_logpush(
        tmp_path / "lp.log.gz",
        [
            {k: v for k, v in r.items() if k not in ("Logs", "CPUTimeMs", "WallTimeMs")}
            for r in _logpush_records(paths["logpush"])
        ],
    )
    workerd, partial = ei.load(ti), ei.load(lp)
    assert workerd.invocations["script"].isna().all()
    assert (partial.invocations["n_logs"] == 0).all()
    ev = ei.load([lp, ti])
    n = len(single["tail"].invocations)
    assert len(ev.invocations) == n
    assert ev.report.duplicates == {"logpush+traceitems": n}
    # the kept rows are the ones with logs (the TraceItems), with their logs
    assert set(ev.invocations["source"].astype(str)) == {"traceitems"}
    assert len(ev.logs) == len(single["tail"].logs)


def test_merge_of_bundles_from_two_formats(tmp_path: Path, single: dict[str, ei.Evidence]) -> None:
    a, b = single["tail"], single["traceitems"]
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    merged = ei.Evidence.merge([ei.Evidence.open(tmp_path / "a"), ei.Evidence.open(tmp_path / "b")])
    assert _counts(merged) == _counts(a)
    n = len(a.invocations)
    assert merged.report.duplicates == {"tail+traceitems": n}
    merged.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m/manifest.json").read_text())
    assert manifest["report"]["duplicates"] == {"tail+traceitems": n}
    assert ei.Evidence.open(tmp_path / "m").report.duplicates == {"tail+traceitems": n}
    assert len(ei.Evidence.merge([a, b], dedupe=False).invocations) == 2 * n


@pytest.mark.parametrize("stamp", ["rfc3339", "unix"])
def test_second_precision_logpush_pairs_with_millisecond_tail(
    tmp_path: Path, sim: Path, single: dict[str, ei.Evidence], stamp: str
) -> None:
    """A Logpush job with ``timestamp_format: rfc3339`` (the dashboard's default) or ``unix`` may give
    whole seconds; its rows are still the tail capture's invocations, counted once."""
    paths = _paths(sim)
    records = _logpush_records(paths["logpush"])
    for r in records:
        second = r["EventTimestampMs"] // 1000
        r["EventTimestampMs"] = (
            pd.Timestamp(second, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
            if stamp == "rfc3339"
            else second
        )
    lp = _write_logpush(tmp_path / "lp.log.gz", records)
    coarse = ei.load(lp)
    assert (coarse.invocations["ts"].dt.microsecond == 0).all()
    n = len(single["tail"].invocations)
    assert len(coarse.invocations) == n
    ev = ei.load([paths["tail"], lp])
    assert ev.report.duplicates == {"logpush+tail": n}
    assert _counts(ev) == _counts(single["tail"])


def test_a_second_precision_row_never_glues_two_precise_invocations(
    tmp_path: Path, sim: Path, single: dict[str, ei.Evidence]
) -> None:
    """Tail and TraceItems rows of the same second but different milliseconds stay two invocations,
    even when a second-precision Logpush row of that second matches both."""
    paths = _paths(sim)
    stamps = (t.value // 1_000_000 for t in single["tail"].invocations["ts"])
    ms = int(next(v for v in stamps if v % 1000 not in (0, 999)))
    records = _tail_records(paths["tail"])
    first = next(r for r in records if r["eventTimestamp"] == ms)
    # the tail capture keeps only this invocation; the TraceItem file only a copy 1 ms later (another one)
    t = _write_tail(tmp_path / "tail.json", [first])
    items = [item for line in _traceitem_lines(paths["traceitems"]) for item in line]
    twin = next(i for i in items if i["eventTimestamp"] == ms)
    later = {**twin, "eventTimestamp": ms + 1}
    ti = tmp_path / "ti.jsonl"
    ti.write_text(json.dumps([later]) + "\n")
    lp_rec = next(r for r in _logpush_records(paths["logpush"]) if r["EventTimestampMs"] == ms)
    extra = [r for r in _logpush_records(paths["logpush"]) if r["EventTimestampMs"] // 1000 != ms // 1000][:3]
    coarse = [{**r, "EventTimestampMs": r["EventTimestampMs"] // 1000 * 1000} for r in [lp_rec, *extra]]
    lp = _write_logpush(tmp_path / "lp.log.gz", coarse)
    ev = ei.load([t, ti, lp])
    # tail and TraceItems differ by 1 ms: two invocations; the Logpush row pairs with one of them
    assert len(ev.invocations) == 2 + len(extra)
    assert sum(ev.report.duplicates.values()) == 1
