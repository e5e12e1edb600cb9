"""``LoadReport.summary()``: the files of one folder and format on one line, one with problems on its own."""

from __future__ import annotations

from edgeinvestigate.models.load_report import FileReport, LoadReport


def test_summary_keeps_files_with_problems_on_their_own_line() -> None:
    files = [FileReport(path=f"lp/2026/{i}.log.gz", source="logpush", records=10) for i in range(8)]
    files[3].skipped = 2
    files[3].n_issues = 2
    text = LoadReport(files=files).summary()
    lines = text.splitlines()
    assert lines[0] == "7 files under lp/2026 [logpush]: 70 records -> 0 invocations, 0 logs, 0 exceptions"
    assert lines[1].startswith("lp/2026/3.log.gz [logpush]: 10 records")
    assert "2 SKIPPED" in lines[1]
    few = LoadReport(files=files[:2]).summary().splitlines()
    assert few[0].startswith("lp/2026/0.log.gz")
    assert few[1].startswith("lp/2026/1.log.gz")
