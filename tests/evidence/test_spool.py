"""The spool (``collect`` and ``investigate`` loading straight into frame files) makes exactly the
frames that loading in memory, masking and sorting make: on the sample incident, on every documented
Logpush shape in many files (out of time order across files, credentials in URLs, messages and
stacks), with worker processes and without; mixed formats fall back to memory; the command leaves
no spool behind, also when it fails."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pandas as pd
import pytest
from _helpers.cli import run
from sources.logpush_shapes import write_corpus

import edgeinvestigate as ei
from edgeinvestigate.evidence._secrets import mask_secrets
from edgeinvestigate.evidence._spool import spool_load
from edgeinvestigate.evidence.collect import collect

CAP = 8 * 1024 * 1024
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqb2JzIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def _saved(ev: ei.Evidence, where: Path) -> ei.Evidence:
    """``ev`` as a bundle written the usual way shows it (categories of the rows it holds)."""
    return ei.Evidence.open(ev.save(where))


def _in_memory(paths: list[Path], where: Path, **kw: object) -> ei.Evidence:
    ev = mask_secrets(ei.load(paths, **kw))  # type: ignore[arg-type]
    return _saved(ev, where)


def _used(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with categories of the rows it holds only: in memory, a file whose records all fell
    outside the window still names a category of ``source_file``; the spool keeps none of it."""
    return df.assign(
        **{
            c: df[c].cat.remove_unused_categories()
            for c in df.columns
            if isinstance(df[c].dtype, pd.CategoricalDtype)
        }
    )


def _assert_same(spooled: ei.Evidence, memory: ei.Evidence) -> None:
    for name in ("invocations", "logs", "exceptions", "dlq"):
        pd.testing.assert_frame_equal(_used(spooled.frame(name)), _used(memory.frame(name)))
    assert spooled.report.to_dict() == memory.report.to_dict()
    assert spooled.manifest["rows"] == memory.manifest["rows"]
    assert spooled.manifest["sources"] == memory.manifest["sources"]


def _with_credentials(folder: Path, files: int, seed: int = 7) -> list[Path]:
    """Shaped Logpush files whose order of names is not their order in time, with credentials in
    some URLs, log messages and exception stacks."""
    paths = write_corpus(folder, 900, files=files, seed=seed)
    rng = random.Random(seed)
    for k, path in enumerate(paths):
        records = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        for rec in records:
            shift = (len(paths) - k) * 3_600_000  # later files hold earlier events
            if isinstance(rec.get("EventTimestampMs"), int):
                rec["EventTimestampMs"] -= shift
            roll = rng.random()
            if roll < 0.05 and rec.get("Logs"):
                rec["Logs"][0]["Message"] = [f"calling the API with Authorization: Bearer {BEARER}"]
            elif (
                roll < 0.08
                and isinstance(rec.get("Event"), dict)
                and isinstance(rec["Event"].get("Request"), dict)
            ):
                rec["Event"]["Request"]["URL"] = f"https://api.example.net/jobs?token={BEARER}"
        path.write_bytes(gzip.compress(b"\n".join(json.dumps(r).encode() for r in records) + b"\n"))
    return paths


def test_spooled_frames_equal_the_in_memory_ones_on_the_sample(tmp_path: Path, data_dir: Path) -> None:
    got = spool_load([data_dir / "logpush"], tmp_path / "spool", max_record_bytes=CAP)
    assert got is not None
    _assert_same(got.evidence, _in_memory([data_dir / "logpush"], tmp_path / "memory"))


@pytest.mark.parametrize("fmt", ["tail", "traceitems", "workers_logs"])
def test_spooled_frames_equal_the_in_memory_ones_for_every_format(
    tmp_path: Path, data_dir: Path, fmt: str
) -> None:
    """Each folder holds several files (and layouts) of one format: spooled like Logpush."""
    got = spool_load([data_dir / fmt], tmp_path / "spool", max_record_bytes=CAP)
    assert got is not None
    assert len(got.evidence.invocations) > 0
    _assert_same(got.evidence, _in_memory([data_dir / fmt], tmp_path / "memory"))


@pytest.mark.parametrize("jobs", [1, 2])
def test_spooled_frames_equal_on_every_shape_out_of_order_with_credentials(tmp_path: Path, jobs: int) -> None:
    paths = _with_credentials(tmp_path / "in", files=6)
    got = spool_load([tmp_path / "in"], tmp_path / "spool", jobs=jobs, max_record_bytes=CAP)
    assert got is not None
    memory = _in_memory([tmp_path / "in"], tmp_path / "memory", jobs=jobs)
    _assert_same(got.evidence, memory)
    masked = {k: v for k, v in memory.manifest["secrets_masked"].items() if k != "kept"}
    assert got.masked == masked
    assert masked["logs"] > 0
    assert masked["invocations"] > 0
    assert BEARER not in got.evidence.logs["message"].astype(str).str.cat()
    ts = got.evidence.logs["ts"]
    assert ts.dropna().is_monotonic_increasing
    assert len(paths) == 6
    # the frames are written in storage order and saved as they are
    saved = ei.Evidence.open(got.evidence.save(tmp_path / "bundle"))
    _assert_same(saved, memory)


def test_a_time_window_and_kept_secrets(tmp_path: Path) -> None:
    _with_credentials(tmp_path / "in", files=3)
    window = {"since": "2026-11-27T09:30Z", "until": "2026-11-27T11:00Z"}
    got = spool_load([tmp_path / "in"], tmp_path / "spool", max_record_bytes=CAP, mask=False, **window)
    assert got is not None
    assert got.masked is None
    memory = _saved(ei.load([tmp_path / "in"], **window), tmp_path / "memory")  # type: ignore[arg-type]
    _assert_same(got.evidence, memory)
    assert 0 < len(got.evidence.invocations) < 900


def test_mixed_formats_load_in_memory(tmp_path: Path, data_dir: Path) -> None:
    inputs = [data_dir / "logpush", data_dir / "tail"]
    assert spool_load(inputs, tmp_path / "spool", max_record_bytes=CAP) is None
    via = collect(inputs, spool=tmp_path / "spool2")
    assert via.equals(collect(inputs))  # the same duplicates dropped, the same notes


def test_collect_command_writes_the_spooled_bundle_and_removes_the_spool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_credentials(tmp_path / "in", files=4)
    out = tmp_path / "cases" / "bundle"
    code, stdout, _ = run(capsys, "collect", "--logpush", str(tmp_path / "in"), "--out", str(out))
    assert code == 0
    saved = ei.Evidence.open(out)
    memory = _in_memory([tmp_path / "in"], tmp_path / "memory")
    for name in ("invocations", "logs", "exceptions"):
        pd.testing.assert_frame_equal(saved.frame(name), memory.frame(name))
    assert saved.manifest["secrets_masked"] == memory.manifest["secrets_masked"]
    assert saved.derived("clusters") is not None
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["bundle"]  # no spool left
    assert BEARER not in stdout


def test_a_failed_collect_leaves_neither_bundle_nor_spool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_corpus(tmp_path / "in", 300, files=3)
    lines = gzip.decompress(paths[1].read_bytes()).splitlines()
    lines[41] = b'{"EventTimestampMs": 1764244800000, "Outcome": '  # cut off mid-record
    paths[1].write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    out = tmp_path / "cases" / "bundle"
    code, _, err = run(capsys, "collect", "--logpush", str(tmp_path / "in"), "--strict", "--out", str(out))
    assert code != 0
    assert f"{paths[1]}:42: invalid JSON" in err
    assert "nothing was written" in err
    assert list((tmp_path / "cases").iterdir()) == []


def test_inputs_given_as_a_generator_are_all_loaded(tmp_path: Path, data_dir: Path) -> None:
    got = spool_load((p for p in [data_dir / "logpush"]), tmp_path / "spool", max_record_bytes=CAP)
    assert got is not None
    assert len(got.evidence.invocations) == len(ei.load(data_dir / "logpush").invocations) > 0


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_full_disk_is_a_clear_error_and_nothing_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    import errno

    import pyarrow.parquet as pq

    write_corpus(tmp_path / "in", 600, files=4)
    real = pq.write_table

    def full(table: object, where: object, **kw: object) -> None:
        if ".spool-" in str(where):  # the spool's parts only (forked workers inherit this)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(table, where, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "cases" / "bundle"
    code, _, err = run(
        capsys, "collect", "--logpush", str(tmp_path / "in"), "--jobs", jobs, "--out", str(out)
    )
    assert code != 0
    assert "cannot write the telemetry to the spool" in err
    assert "No space left on device" in err
    assert "nothing was written" in err
    assert "Traceback" not in err
    assert list((tmp_path / "cases").iterdir()) == []


def test_too_little_memory_for_the_sort_says_which_setting_to_raise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_corpus(tmp_path / "in", 3000, files=2)
    monkeypatch.setenv("EDGEINVESTIGATE_DUCKDB_MEMORY", "1MB")
    out = tmp_path / "cases" / "bundle"
    code, _, err = run(capsys, "collect", "--logpush", str(tmp_path / "in"), "--out", str(out))
    assert code != 0
    assert "ran out of DuckDB's memory" in err
    assert "EDGEINVESTIGATE_DUCKDB_MEMORY" in err
    assert list((tmp_path / "cases").iterdir()) == []
