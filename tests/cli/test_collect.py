"""``edgeinvestigate collect``: what it says about what it collected, on files and against a sandbox.

On files: sources holding the same invocations are counted once, a Logpush tree is summarised per folder, a
folder without telemetry is refused and a window that drops everything is warned about. Against the sandbox of
the README's incident: each DLQ warning is shown once, an empty Workers Logs window is warned about, and an
unknown queue names the account to set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers.cli import run

from edgeinvestigate.sandbox.testing import RunningSandbox


def test_collect_notes_sources_holding_the_same_invocations(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    # the loader drops the cross-source duplicates (issue 2): counted once, and said so
    dups = manifest["report"]["duplicates"]
    assert dups == {"logpush+tail": manifest["rows"]["invocations"]}, dups
    notes = manifest["report"]["notes"]
    assert not any("doubled" in n for n in notes), notes


def test_collect_summary_groups_a_logpush_tree(
    capsys: pytest.CaptureFixture[str], incident: Path, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "collect", str(incident / "logpush"), "--out", str(tmp_path / "ev"))
    assert code == 0
    n_files = len(list((incident / "logpush").rglob("*.log.gz")))
    assert n_files > 5
    lines = out.splitlines()
    assert lines[0].startswith(f"{n_files} files under {incident / 'logpush'}")
    assert "[logpush]" in lines[0]
    assert not any(".log.gz" in line for line in lines)
    assert "note:" not in out  # one format: nothing doubled


def test_collect_help_examples_are_not_rewrapped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "collect", "--help")
    assert code == 0
    assert "    edgeinvestigate collect --listen 127.0.0.1:8788 --out traceitems.jsonl\n" in out
    assert "      --since -2h --out evidence/INC-124\n" in out


def test_help_of_dlq_mode_tells_the_attempt_cost(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "collect", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "every snapshot spends one of the DLQ pull consumer's max_retries" in text
    assert "pushed back as a new message" in text
    assert "refuses up front" in text


def test_collect_refuses_a_folder_without_telemetry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "collect", str(empty), "--out", str(tmp_path / "ev"))
    assert code == 1
    assert err.splitlines()[0] == f"error: no telemetry files found in {empty}"
    assert err.splitlines()[1].startswith("hint: check the path")
    assert not (tmp_path / "ev").exists()


def test_collect_warns_when_the_window_drops_everything(
    capsys: pytest.CaptureFixture[str], incident: Path, tmp_path: Path
) -> None:
    tail = incident / "tail" / "tail.json"
    args = ["collect", str(tail), "--since", "2030-01-01T00:00Z", "--out", str(tmp_path / "ev")]
    code, _, err = run(capsys, *args)
    assert code == 0
    assert "warning: all " in err
    assert "records are outside the time window (--since 2030-01-01T00:00Z --until (open))" in err


# --- against the sandbox of the README's incident (tests/_helpers/incident.py) --------------------


def test_collect_warns_once_per_dlq_warning(
    incident_sandbox_env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "collect", "--dlq", "jobs-dlq", "--out", str(tmp_path / "ev"))
    assert code == 0, err
    both = out + err
    assert both.count("peek saw 100 of") == 1, both  # was: stdout note, bare stderr, stderr warning
    assert "warning: peek saw 100 of" in err
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    notes = manifest["report"]["notes"] if "report" in manifest else []
    assert any("peek saw 100 of" in n for n in notes)  # kept for the report
    (collection,) = manifest["dlq_collections"]
    assert collection["complete"] is False
    assert collection["backlog_count"] > 100


def test_collect_warns_when_workers_logs_returns_nothing(
    incident_sandbox_env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "ev"
    code, out, err = run(
        capsys,
        "collect",
        "--workers-logs",
        "jobs-consumer",
        "--since",
        "2025-01-01T00:00Z",
        "--until",
        "2025-01-01T01:00Z",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    assert err.count("Workers Logs returned 0 events for 'jobs-consumer'") == 1, err
    assert "2025-01-01T00:00:00+00:00 and 2025-01-01T01:00:00+00:00" in err
    assert "check the window" in err
    assert "CLOUDFLARE_ACCOUNT_ID" in err
    assert "returned 0 events" not in out  # shown once, on stderr
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert any("returned 0 events" in n for n in manifest.get("report", {}).get("notes", []))


def test_collect_in_the_window_gets_events_and_no_empty_warning(
    incident_sandbox_env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = run(
        capsys, "collect", "--workers-logs", "jobs-consumer", "--since", "-3h", "--out", str(tmp_path / "ev")
    )
    assert code == 0, err
    assert "returned 0 events" not in err
    rows = json.loads((tmp_path / "ev" / "manifest.json").read_text())["rows"]
    assert rows["invocations"] > 0


def test_unknown_queue_on_the_sandbox_names_the_simulator_account(
    incident_sandbox_env: RunningSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "collect", "--dlq", "jobs-dlq", "--account-id", "0" * 32, "--out", str(tmp_path / "ev")
    )
    assert code != 0
    assert "unknown queue name 'jobs-dlq'" in err
    assert "ground_truth.json" in err
    # the client does not know the simulator: the hint names the file and the variable to set
    assert "set CLOUDFLARE_ACCOUNT_ID (or --account-id) to that account_id" in err
