"""Issue 14 items 5 and 6: what an input folder holds besides telemetry files.

A FIFO or a device file inside a folder is skipped with a note (reading one blocks or never ends: a
``/dev/zero`` link grew RSS without end); symbolic links are followed, sub-folders too (a
``20261128 -> ../elsewhere`` day folder), with loop protection; a dangling link is reported and the
rest loads."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.errors import LoadError

DATA = Path(__file__).resolve().parents[1] / "data"
LP = DATA / "logpush/20261127/20261127T140000Z_20261127T140030Z_ab12cd34.log.gz"


def _tree(tmp_path: Path) -> Path:
    """logpush/20261127/<real file>, and elsewhere/<the same records, shifted a day> to link to."""
    root = tmp_path / "logpush"
    (root / "20261127").mkdir(parents=True)
    shutil.copy(LP, root / "20261127" / LP.name)
    other = tmp_path / "elsewhere"
    other.mkdir()
    lines = gzip.decompress(LP.read_bytes()).replace(b'"EventTimestampMs":17957', b'"EventTimestampMs":17958')
    (other / "batch.log.gz").write_bytes(gzip.compress(lines))
    return root


def _skipped(ev: ei.Evidence) -> dict[str, tuple[str, str]]:
    return {
        os.path.basename(f.path): (f.issues[0].severity, f.issues[0].message)
        for f in ev.report.files
        if f.source == "skipped"
    }


@pytest.mark.timeout(60)  # a FIFO that is opened blocks: the test fails instead of hanging
def test_fifos_and_device_files_are_skipped_with_a_note(tmp_path):
    root = _tree(tmp_path)
    os.mkfifo(root / "20261127" / "pipe.log")
    (root / "20261127" / "null.log").symlink_to("/dev/null")
    ev = ei.load(root)
    assert len(ev.invocations) == 4
    skipped = _skipped(ev)
    assert skipped["pipe.log"] == (
        "info",
        "a FIFO (named pipe), not a regular file; skipped (reading it could block or never end)",
    )
    assert skipped["null.log"][1].startswith("a device file, not a regular file; skipped")
    assert ev.report.skipped == 0  # no record was lost


def test_a_fifo_given_directly_is_a_clear_error(tmp_path):
    fifo = tmp_path / "tail.json"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match=r"is a FIFO \(named pipe\), not a file: collect reads files"):
        ei.load(fifo)


def test_symlinked_day_folders_are_followed_and_dangling_links_reported(tmp_path):
    root = _tree(tmp_path)
    (root / "20261128").symlink_to("../elsewhere")  # a day folder kept on another disk
    (root / "20261129").symlink_to("../gone")  # dangling folder link
    (root / "20261127" / "old.log.gz").symlink_to("rotated-away.log.gz")  # dangling file link
    ev = ei.load(root)
    assert len(ev.invocations) == 8  # both days
    assert sorted(
        {os.path.basename(os.path.dirname(p)) for p in ev.invocations["source_file"].astype(str)}
    ) == [
        "20261127",
        "20261128",
    ]
    skipped = _skipped(ev)
    assert skipped["20261129"] == (
        "warning",
        "a symbolic link to ../gone, which does not exist (dangling); skipped",
    )
    assert skipped["old.log.gz"][0] == "warning"
    assert "dangling" in skipped["old.log.gz"][1]


def test_link_loops_and_second_paths_are_read_once(tmp_path):
    root = _tree(tmp_path)
    (root / "20261127" / "up").symlink_to("..")  # a loop
    (root / "again").symlink_to("20261127")  # the same folder by another name
    (root / "20261127" / "same.log.gz").symlink_to(LP.name)  # the same file by another name
    ev = ei.load(root)
    assert len(ev.invocations) == 4  # every record once
    notes = _skipped(ev)
    assert set(notes) == {"up", "again", "same.log.gz"}
    assert all(sev == "info" for sev, _ in notes.values())


def test_a_dangling_link_given_directly_says_so(tmp_path):
    link = tmp_path / "tail.json"
    link.symlink_to("missing.json")
    with pytest.raises(LoadError) as info:
        ei.load(link)
    assert f"{link} is a symbolic link to missing.json, which does not exist (dangling)" in str(info.value)


@pytest.mark.timeout(60)
def test_collect_lists_what_it_skipped_and_writes_the_rest(tmp_path, capsys):
    root = _tree(tmp_path)
    (root / "20261128").symlink_to("../elsewhere")
    (root / "20261129").symlink_to("../gone")
    os.mkfifo(root / "20261127" / "pipe")
    out = tmp_path / "bundle"
    main(["collect", "--logpush", str(root), "--out", str(out)])
    text = capsys.readouterr().out
    assert (
        f"warning: {root / '20261129'}: a symbolic link to ../gone, which does not exist (dangling)" in text
    )
    assert f"info: {root / '20261127' / 'pipe'}: a FIFO (named pipe), not a regular file" in text
    assert ei.Evidence.open(out).manifest["rows"]["invocations"] == 8


def test_only_skipped_entries_is_no_telemetry(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.log").symlink_to("nowhere.log")
    with pytest.raises(SystemExit):
        main(["collect", str(root), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert (
        f"no telemetry files found in {root} (skipped: {root / 'a.log'}: a symbolic link to nowhere.log"
        in err
    )
