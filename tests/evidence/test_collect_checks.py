"""collect fails (and writes nothing) when a named file gives nothing but rejected records: the
error names the file and the flag of the format it looks like; a .gz that is not gzip says so."""

from __future__ import annotations

import gzip
import random
import shutil
from pathlib import Path

import pytest

from edgeinvestigate.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
LOGPUSH = DATA / "logpush/20261127"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _logpush_gz(tmp_path: Path) -> Path:
    src = next(p for p in sorted(LOGPUSH.iterdir()) if p.name.endswith(".gz"))
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    return dst


@pytest.mark.parametrize(
    ("flag", "make", "looks_flag"),
    [
        ("--tail", _logpush_gz, "--logpush"),
        ("--logpush", lambda t: shutil.copy(DATA / "tail/tail-4space.json", t / "tail.json"), "--tail"),
        (
            "--traceitems",
            lambda t: shutil.copy(DATA / "workers_logs/api-events.json", t / "events.json"),
            "--workers-logs-export",
        ),
        ("--tail", lambda t: shutil.copy(DATA / "traceitems/arrays.jsonl", t / "ti.jsonl"), None),
    ],
)
def test_wrong_format_flag_is_an_error_with_the_right_flag(tmp_path, capsys, flag, make, looks_flag):
    path = Path(make(tmp_path))
    out = tmp_path / "b"
    code, _out, err = _run(["collect", flag, str(path), "--out", str(out)], capsys)
    if looks_flag is None:  # TraceItems read as tail: the same records, loaded fine
        assert code == 0
        return
    assert code == 1
    first = err.splitlines()[0]
    assert first.startswith("error: none of the ")
    assert f"records of {path} could be read as" in first
    assert f"load it with {looks_flag} {path}" in first
    assert "nothing was written" in first
    assert not out.exists()


def test_garbage_files_are_errors(tmp_path, capsys):
    rng = random.Random(7)
    noise = bytes(rng.randrange(256) for _ in range(20_000))
    cases = {
        "noise.gz": gzip.compress(noise),  # valid gzip of random bytes
        "binary.bin": noise,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code, _out, err = _run(["collect", "--traceitems", str(path), "--out", str(tmp_path / "b")], capsys)
        assert code == 1, name
        assert "could be read as traceitems (--traceitems): it is binary data" in err.splitlines()[0]
        assert str(path) in err
        assert not (tmp_path / "b").exists()


def test_a_gz_that_is_not_gzip(tmp_path, capsys):
    path = tmp_path / "batch.log.gz"
    path.write_bytes(b"PK\x03\x04 a zip archive, not gzip\n" * 50)
    for flag in ("--logpush", "--tail", "--traceitems"):
        code, _out, err = _run(["collect", flag, str(path), "--out", str(tmp_path / "b")], capsys)
        assert code == 1, flag
        first = err.splitlines()[0]
        assert f"{path}: not a gzip file" in first
        assert "invalid JSON" not in err
        assert "not JSON" not in err
        assert not (tmp_path / "b").exists()
    # a gzip header on garbage: corrupt from its first byte
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    code, _out, err = _run(["collect", "--logpush", str(path), "--out", str(tmp_path / "b")], capsys)
    assert code == 1
    assert "corrupt gzip data" in err
    assert "nothing of the file could be read" in err


def test_a_decompressed_download_with_a_gz_name_is_read(tmp_path, capsys):
    src = next(p for p in sorted(LOGPUSH.iterdir()) if p.name.endswith(".gz"))
    path = tmp_path / src.name
    path.write_bytes(gzip.decompress(src.read_bytes()))
    code, out, _err = _run(["collect", "--logpush", str(path), "--out", str(tmp_path / "b")], capsys)
    assert code == 0
    assert "0 skipped" in out


def test_a_foreign_file_in_a_directory_does_not_fail_collect(tmp_path, capsys):
    tree = tmp_path / "logpush"
    shutil.copytree(LOGPUSH, tree)
    (tree / "notes.log.gz").write_bytes(b"not gzip at all\x00\x01")
    code, out, _err = _run(["collect", "--logpush", str(tree), "--out", str(tmp_path / "b")], capsys)
    assert code == 0
    assert "not a gzip file" in out
