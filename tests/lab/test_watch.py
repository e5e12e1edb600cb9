"""``lab/_watch.py``: the trace watcher reads the collector's JSONL as it grows, whole lines only."""

from __future__ import annotations

from pathlib import Path

from edgeinvestigate.lab._watch import TraceWatcher


def test_watcher_reads_only_complete_lines(tmp_path: Path) -> None:
    real = (Path(__file__).parent / "data" / "workerd-2026-04-26-traceitems.jsonl").read_text().splitlines()
    path = tmp_path / "t.jsonl"
    watcher = TraceWatcher(path)
    assert watcher.poll() == 0  # no file yet
    path.write_text(real[0] + "\n" + real[1][:100])  # the second line is still being written
    assert watcher.poll() == 1
    with path.open("a") as fh:
        fh.write(real[1][100:] + "\n")
    assert watcher.poll() == 1
    assert watcher.lines == 2
