"""Long lines fit the terminal (a replay review, the clusters table, analyze); piped output stays whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers.cli import run

from edgeinvestigate.cli._term import fit_lines

WARNING = (
    "  WARNING: 120 selected messages have no lease and sit behind 100 or more messages that are not "
    "replayed; a peek sees only the first 100, so the run cannot remove them from the DLQ: collect the DLQ "
    "with `edgeinvestigate collect --dlq jobs-dlq --dlq-mode snapshot --dlq-keep-leases` and plan again"
)


def test_long_lines_wrap_with_their_indentation() -> None:
    text = "replay plan abc: 3 messages\n" + WARNING + "\n  short line\n"
    out = fit_lines(text, width=100)
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[0] == "replay plan abc: 3 messages"
    assert lines[1].startswith("  WARNING: 120 selected")
    assert all(line.startswith("      ") for line in lines[2:-1])  # continuation: indent + 4
    assert lines[-1] == "  short line"
    assert " ".join(out.split()) == " ".join(text.split())  # no word lost
    assert out.endswith("\n")


def test_no_terminal_leaves_text_whole(monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert fit_lines(WARNING) == WARNING  # pytest captures stdout: not a terminal


def test_a_word_longer_than_the_line_is_broken_not_lost() -> None:
    word = "x" * 150
    out = fit_lines(f"  id {word}", width=60)
    assert all(len(line) <= 60 for line in out.splitlines())
    assert "".join(out.split()).count("x") == 150


def test_clusters_table_and_analyze_fit_100_columns(
    capsys: pytest.CaptureFixture[str], bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run(capsys, "clusters", str(bundle))
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    assert any(line.endswith("...") for line in out.splitlines())  # long templates are cut visibly
    code, out, _ = run(capsys, "analyze", str(bundle))
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "1. [bad_deploy, " in out
    assert "DLQ messages: " in out
    assert "in the incident's clusters" in " ".join(out.split())  # the line may wrap at 100 columns
    detection = next(line for line in out.splitlines() if line.startswith("  detection "))
    assert detection.endswith("(start of the first 1 min bucket above the background)")


def test_piped_output_keeps_whole_lines(
    capsys: pytest.CaptureFixture[str], bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run(capsys, "clusters", str(bundle), "--format", "json")
    longest = max((c["template"] for c in json.loads(out)["clusters"]), key=len)
    code, out, _ = run(capsys, "clusters", str(bundle))
    assert code == 0
    assert max(len(line) for line in out.splitlines()) > 100
    assert all(not line.endswith("...") for line in out.splitlines())
    assert longest in out
    code, out, _ = run(capsys, "analyze", str(bundle))
    assert any(len(line) > 100 for line in out.splitlines())  # hypotheses stay one line each
