"""Where a bundle may be written and what a bundle must hold: --overwrite only ever replaces an
evidence bundle, never the inputs or another folder; a bundle with a missing or foreign frame file
is an error, not an empty bundle."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.errors import BundleError


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def incident(tmp_path: Path, data_dir: Path) -> Path:
    """A folder of raw telemetry, shaped like `edgeinvestigate simulate --out inc`."""
    inc = tmp_path / "inc"
    for sub in ("tail", "traceitems", "workers_logs", "logpush"):
        shutil.copytree(data_dir / sub, inc / sub)
    return inc


def test_overwrite_refuses_a_folder_holding_the_inputs(incident, capsys):
    before = _snapshot(incident)
    trace = incident / "traceitems" / "arrays.jsonl"
    code, _out, err = _run(
        ["collect", "--traceitems", str(trace), "--out", str(incident), "--overwrite"], capsys
    )
    assert code == 1
    assert f"it holds the input {trace}" in err.splitlines()[0]
    assert _snapshot(incident) == before  # nothing deleted, nothing added
    # the folder of the input, or a folder inside an input directory: refused as well
    logpush = incident / "logpush"
    for flag, inp, out in (("--traceitems", trace, trace.parent), ("--logpush", logpush, logpush / "b")):
        code, _out, err = _run(["collect", flag, str(inp), "--out", str(out), "--overwrite"], capsys)
        assert code == 1, out
        assert f"the input {inp}" in err
    assert _snapshot(incident) == before


def test_overwrite_refuses_a_folder_that_is_not_a_bundle(tmp_path, data_dir, capsys):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "x.txt").write_text("my notes\n")
    code, _out, err = _run(
        ["collect", "--tail", str(data_dir / "tail/tail.ndjson"), "--out", str(other), "--overwrite"], capsys
    )
    assert code == 1
    assert f"{other} is not an evidence bundle" in err
    assert "nothing was changed" in err
    assert _snapshot(other) == {"x.txt": b"my notes\n"}
    # a manifest.json of something else is no bundle either
    (other / "manifest.json").write_text('{"name": "my-app"}')
    with pytest.raises(BundleError, match="not an evidence bundle"):
        ei.load(data_dir / "tail/tail.ndjson").save(other, overwrite=True)
    assert sorted(_snapshot(other)) == ["manifest.json", "x.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["notes"]  # no temporary leftovers


def test_overwrite_replaces_a_bundle(tmp_path, data_dir, capsys):
    out = tmp_path / "b"
    main(["collect", "--tail", str(data_dir / "tail/tail.ndjson"), "--out", str(out)])
    main(["collect", "--tail", str(data_dir / "tail/tail-4space.json"), "--out", str(out), "--overwrite"])
    capsys.readouterr()
    [f] = ei.Evidence.open(out).report.files
    assert f.path.endswith("tail-4space.json")


def test_out_dot_is_a_clear_error(tmp_path, data_dir, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("keep\n")
    monkeypatch.chdir(work)
    tail = str(data_dir / "tail/tail.ndjson")
    for out in (".", "..", str(tmp_path)):
        code, _out, err = _run(["collect", "--tail", tail, "--out", out, "--overwrite"], capsys)
        assert code == 1, out
        assert "current directory or one of its parents" in err.splitlines()[0]
        assert "Traceback" not in err
    assert os.listdir(work) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["work"]


def _bundle(tmp_path: Path, data_dir: Path) -> Path:
    return ei.load(data_dir / "tail/tail.ndjson").save(tmp_path / "b")


@pytest.mark.parametrize("how", ["deleted", "renamed"])
def test_open_names_a_missing_frame_file(tmp_path, data_dir, how):
    b = _bundle(tmp_path, data_dir)
    if how == "deleted":
        (b / "invocations.parquet").unlink()
    else:
        (b / "invocations.parquet").rename(b / "invocations.parquet.bak")
    with pytest.raises(BundleError) as info:
        ei.Evidence.open(b)
    msg = str(info.value)
    assert f"evidence bundle {b} is incomplete" in msg
    assert "invocations.parquet is missing (manifest.json says 11 rows)" in msg
    assert "re-create the bundle" in msg


def test_open_refuses_frame_paths_outside_the_bundle(tmp_path, data_dir):
    b = _bundle(tmp_path, data_dir)
    secret = tmp_path / "outside.parquet"
    shutil.copy(b / "logs.parquet", secret)
    for rel in ("../outside.parquet", "../../etc/passwd", str(secret), "sub/logs.parquet", ".."):
        m = json.loads((b / "manifest.json").read_text())
        m["frames"]["logs"] = rel
        (b / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(BundleError, match=r"frame files must be plain file names inside the bundle"):
            ei.Evidence.open(b)


# --- issue 14 item 11: Evidence.open trusts nothing in the bundle -------------------------------


def _saved(tmp_path: Path, data_dir: Path, name: str = "bundle") -> Path:
    ev = ei.load([data_dir / "tail/tail.ndjson", data_dir / "logpush/20261127"])
    return ev.save(tmp_path / name)


def test_open_checks_the_row_count_before_reading_a_frame(tmp_path, data_dir, monkeypatch):
    # a 146 KB frame file of 1M rows took 2.4 GB to read before its row count was compared
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = _saved(tmp_path, data_dir)
    table = pq.read_table(out / "invocations.parquet")
    pq.write_table(
        pa.concat_tables([table.slice(0, 1)] * 50_000).combine_chunks(), out / "invocations.parquet"
    )
    assert (out / "invocations.parquet").stat().st_size < 200_000

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the frame was read before its row count was checked")

    monkeypatch.setattr(pq.ParquetFile, "read", no_reading)
    monkeypatch.setattr(pq, "read_table", no_reading)
    with pytest.raises(BundleError) as info:
        ei.Evidence.open(out)
    expected = json.loads((out / "manifest.json").read_text())["rows"]["invocations"]
    assert f"invocations.parquet has 50000 rows but the manifest says {expected}" in str(info.value)


def test_open_refuses_a_frame_file_linked_from_another_saved(tmp_path, data_dir):
    mine, other = _saved(tmp_path, data_dir, "mine"), _saved(tmp_path, data_dir, "other")
    (mine / "logs.parquet").unlink()
    (mine / "logs.parquet").symlink_to(other / "logs.parquet")
    with pytest.raises(BundleError) as info:
        ei.Evidence.open(mine)
    assert f"its logs frame file logs.parquet is a symbolic link (to {other / 'logs.parquet'})" in str(
        info.value
    )
    (mine / "logs.parquet").unlink()
    shutil.copy(other / "logs.parquet", mine / "logs.parquet")  # a copy of its own is fine
    assert ei.Evidence.open(mine).equals(ei.Evidence.open(other))


def test_a_frame_file_changed_after_open_is_refused_when_first_read(tmp_path, data_dir):
    """Frames are read on first use: the file is checked again then (a link, a deleted file, a file
    with other rows), with the file named."""
    mine, other = _saved(tmp_path, data_dir, "mine"), _saved(tmp_path, data_dir, "other")
    ev = ei.Evidence.open(mine)
    (mine / "logs.parquet").unlink()
    (mine / "logs.parquet").symlink_to(other / "logs.parquet")
    with pytest.raises(BundleError, match=r"its logs frame file logs\.parquet is a symbolic link"):
        _ = ev.logs
    ev = ei.Evidence.open(other)
    (other / "exceptions.parquet").unlink()
    with pytest.raises(BundleError, match=r"exceptions frame file exceptions\.parquet is missing"):
        _ = ev.exceptions
    assert len(ev.invocations)  # the other frames still read


def test_open_refuses_a_linked_or_hostile_manifest(tmp_path, data_dir):
    out = _saved(tmp_path, data_dir)
    manifest = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="its JSON is nested too deeply"):
        ei.Evidence.open(out)
    (out / "manifest.json").write_bytes(b'{"format": "\xff"}')
    with pytest.raises(BundleError, match="cannot read"):
        ei.Evidence.open(out)
    bad_report = json.loads(manifest)
    bad_report["report"] = {"files": [{"path": "x", "source": "tail", "surprise": 1}]}
    (out / "manifest.json").write_text(json.dumps(bad_report))
    with pytest.raises(BundleError, match="cannot read the load report"):
        ei.Evidence.open(out)
    (out / "manifest.json").unlink()
    (tmp_path / "elsewhere.json").write_text(manifest)
    (out / "manifest.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(BundleError, match=r"manifest manifest\.json is a symbolic link"):
        ei.Evidence.open(out)
    assert not ei.evidence.bundle.is_bundle(out)


def test_a_bundle_directory_reached_through_a_link_opens(tmp_path, data_dir):
    out = _saved(tmp_path, data_dir)
    (tmp_path / "latest").symlink_to(out)  # evidence/latest -> evidence/INC-123
    assert ei.Evidence.open(tmp_path / "latest").equals(ei.Evidence.open(out))
