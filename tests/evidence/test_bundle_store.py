"""The bundle as the engine's store: Parquet written for scanning, frames read on first use, derived
frames stored with the bundle, SQL over it (edgeinvestigate.evidence._store, _frames, _sql)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import edgeinvestigate as ei
from edgeinvestigate.errors import BundleError
from edgeinvestigate.evidence import _frames
from edgeinvestigate.evidence._frames import StoredFrame
from edgeinvestigate.evidence._store import ROW_GROUP_ROWS
from edgeinvestigate.models.frames import conform


def _evidence(n: int = 1000) -> ei.Evidence:
    """Invocations and logs out of time order (as several files give them), no DLQ."""
    rng = np.random.default_rng(0)
    ts = pd.to_datetime(1_795_780_800_000 + rng.integers(0, 3_600_000, n), unit="ms", utc=True)
    ids = [f"{i:016x}" for i in range(n)]
    inv = conform(
        pd.DataFrame({"invocation_id": ids, "ts": ts, "outcome": "ok", "script": "w"}), "invocations"
    )
    logs = conform(
        pd.DataFrame(
            {"invocation_id": ids, "ts": ts, "level": "error", "message": [f"boom {i}" for i in range(n)]}
        ),
        "logs",
    )
    exc = conform(
        pd.DataFrame({"invocation_id": ids[:3], "ts": ts[:3], "name": "Error", "message": "x"}), "exceptions"
    )
    return ei.Evidence(invocations=inv, logs=logs, exceptions=exc)


def test_frames_are_written_for_scanning(tmp_path: Path) -> None:
    ev = _evidence(300_000)
    dest = ev.save(tmp_path / "b")
    for name in ("invocations", "logs"):
        meta = pq.read_metadata(dest / f"{name}.parquet")
        assert meta.num_rows == 300_000
        assert meta.num_row_groups == -(-300_000 // ROW_GROUP_ROWS)  # 128k-row groups
        ts = meta.schema.to_arrow_schema().field("ts").type
        assert str(ts) == "timestamp[ms, tz=UTC]"
        stats = [meta.row_group(i).column(1).statistics for i in range(meta.num_row_groups)]
        assert all(s is not None and s.has_min_max for s in stats)
        # sorted by ts: each row group starts where the one before ended, so a window skips groups
        assert all(a.max <= b.min for a, b in itertools.pairwise(stats))
    # readable as is by another engine, in time order
    con = duckdb.connect()
    rows = con.sql(f"SELECT ts FROM read_parquet('{dest / 'logs.parquet'}')").fetchnumpy()["ts"]
    assert len(rows) == 300_000
    assert bool(np.all(rows[1:] >= rows[:-1]))


def test_storage_order_is_stable_and_puts_missing_times_last() -> None:
    ev = _evidence(5)
    logs = ev.logs.copy()
    logs.loc[1, "ts"] = pd.NaT
    logs.loc[3, "ts"] = logs.loc[0, "ts"]  # a tie: keeps its order after row 0
    ordered = dataclasses.replace(ev, logs=conform(logs, "logs")).in_storage_order()
    assert ordered.logs["ts"].isna().tolist()[-1]
    ties = ordered.logs[ordered.logs["ts"] == logs.loc[0, "ts"]]["message"].tolist()
    assert ties == ["boom 0", "boom 3"]
    assert ordered.in_storage_order() is ordered  # sorted already: the same object


def test_sort_for_storage_sorts_in_place_like_in_storage_order() -> None:
    ev = _evidence(50)
    shuffled = dataclasses.replace(ev, logs=ev.logs.sample(frac=1.0, random_state=3).reset_index(drop=True))
    expected = shuffled.in_storage_order()
    before = shuffled.logs
    shuffled.sort_for_storage()
    assert shuffled.logs is not before  # replaced by the sorted copy
    pd.testing.assert_frame_equal(shuffled.logs, expected.logs)
    assert shuffled.in_storage_order() is shuffled
    stored = expected.with_derived("demo", {"x": pd.DataFrame({"a": [1]})}, key="k")
    with pytest.raises(ValueError, match="derived frames"):
        stored.sort_for_storage()


def test_an_opened_bundle_reads_a_frame_only_when_it_is_used(tmp_path: Path) -> None:
    _evidence().save(tmp_path / "b")
    ev = ei.Evidence.open(tmp_path / "b")
    assert isinstance(ev.__dict__["_frame_logs"], StoredFrame)
    assert ev.manifest["rows"]["logs"] == 1000  # from the footer, nothing read
    assert repr(ev).startswith("<Evidence invocations=1000, logs=1000")
    assert len(ev.logs) == 1000
    assert isinstance(ev.__dict__["_frame_logs"], pd.DataFrame)
    assert isinstance(ev.__dict__["_frame_exceptions"], StoredFrame)
    assert ev.bundle_path == tmp_path / "b"
    windowed = dataclasses.replace(ev, logs=ev.logs.head(3))
    assert windowed.bundle_path is None  # a copy with other frames is not that bundle


def test_reading_a_large_frame_prints_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _evidence().save(tmp_path / "b")
    monkeypatch.setattr(_frames, "LARGE_FRAME_ROWS", 500)
    ev = ei.Evidence.open(tmp_path / "b")
    _ = ev.exceptions  # 3 rows: quiet
    assert capsys.readouterr().err == ""
    _ = ev.logs
    err = capsys.readouterr().err
    assert err.startswith("note: reading the logs frame (1,000 rows)")
    assert 'ev.sql("SELECT ... FROM logs")' in err


def test_an_old_bundle_still_opens(tmp_path: Path) -> None:
    """A bundle of an older release: frames unsorted, no row groups to speak of, no derived frames."""
    ev = _evidence()
    dest = ev.save(tmp_path / "b")
    for name in ("invocations", "logs", "exceptions", "dlq"):  # rewrite as the old save did
        pq.write_table(
            pq.read_table(dest / f"{name}.parquet").take(np.arange(len(ev.frame(name)))[::-1]),
            dest / f"{name}.parquet",
            compression="zstd",
        )
    old = ei.Evidence.open(dest)
    assert old.derived("clusters") is None
    assert len(old.logs) == 1000
    assert not old.logs["ts"].is_monotonic_increasing
    clusters = ei.cluster(old)
    assert clusters.origin == "computed"
    assert "holds no stored clusters" in clusters.note


def test_derived_frames_are_stored_with_the_bundle_and_read_lazily(tmp_path: Path) -> None:
    ev = _evidence().in_storage_order()
    extra = pd.DataFrame({"row": np.arange(3), "label": ["a", "b", None]})
    held = ev.with_derived("demo", {"demo_rows": extra}, key="k1", info={"why": "a test"})
    assert ev.derived("demo") is None  # a copy holds them
    dest = held.save(tmp_path / "b")
    assert (dest / "derived" / "demo_rows.parquet").is_file()
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["derived"]["demo"] == {
        "key": "k1",
        "info": {"why": "a test"},
        "frames": {"demo_rows": "derived/demo_rows.parquet"},
        "rows": {"demo_rows": 3},
    }
    back = ei.Evidence.open(dest).derived("demo")
    assert back is not None
    assert back.key == "k1"
    assert back.info == {"why": "a test"}
    assert isinstance(back.frames["demo_rows"], StoredFrame)
    assert back.frame("demo_rows")["label"].tolist() == ["a", "b", None]
    # a time window (or any copy with other frames) drops them: their rows would not match
    opened = ei.Evidence.open(dest)
    assert dataclasses.replace(opened, logs=opened.logs.head(2)).derived("demo") is None


def test_derived_frames_need_the_storage_order() -> None:
    ev = _evidence()  # out of time order
    with pytest.raises(ValueError, match="storage order"):
        ev.with_derived("demo", {"demo_rows": pd.DataFrame({"row": [0]})}, key="k")
    with pytest.raises(ValueError, match="names of evidence frames"):
        ev.in_storage_order().with_derived("demo", {"logs": pd.DataFrame()}, key="k")


@pytest.mark.parametrize("rel", ["../outside.parquet", "derived/../logs.parquet", "/etc/passwd", "x.parquet"])
def test_derived_paths_outside_the_derived_folder_are_refused(tmp_path: Path, rel: str) -> None:
    ev = _evidence().in_storage_order()
    dest = ev.with_derived("demo", {"demo_rows": pd.DataFrame({"row": [0]})}, key="k").save(tmp_path / "b")
    shutil.copy(dest / "logs.parquet", tmp_path / "outside.parquet")
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["derived"]["demo"]["frames"]["demo_rows"] = rel
    (dest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="refusing to read it"):
        ei.Evidence.open(dest)


def test_sql_over_a_saved_bundle_reads_the_parquet_files(tmp_path: Path) -> None:
    ev = _evidence()
    ev.save(tmp_path / "b")
    opened = ei.Evidence.open(tmp_path / "b")
    n = opened.sql("SELECT count(*) FROM logs WHERE level = 'error'").fetchall()[0]
    assert n == (1000,)
    assert isinstance(opened.__dict__["_frame_logs"], StoredFrame)  # nothing loaded into pandas
    plan = opened.sql("EXPLAIN SELECT * FROM logs").fetchall()
    assert "parquet" in str(plan).lower()
    first = opened.rel("invocations").order("ts").limit(1).df()
    assert first["ts"].iloc[0] == ev.invocations["ts"].min()
    settings = dict(
        opened.sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('threads', 'enable_progress_bar', 'memory_limit', 'TimeZone')"
        ).fetchall()
    )
    assert settings["threads"] == "2"
    assert settings["enable_progress_bar"] == "false"
    assert settings["TimeZone"] == "UTC"
    assert settings["memory_limit"] != ""


def test_sql_over_evidence_in_memory_and_frames_of_your_own() -> None:
    ev = _evidence(10)
    assert ev.sql("SELECT count(*) FROM invocations").fetchall()[0] == (10,)
    mine = pd.DataFrame({"invocation_id": ev.invocations["invocation_id"].astype(str)[:4], "tag": "x"})
    got = ev.sql("SELECT count(*) FROM logs JOIN mine USING (invocation_id)", mine=mine).fetchall()[0]
    assert got == (4,)
    # a frame set later is what the views show
    changed = dataclasses.replace(ev, logs=ev.logs.head(2))
    assert changed.sql("SELECT count(*) FROM logs").fetchall()[0] == (2,)
