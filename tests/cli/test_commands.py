"""The CLI as an on-call engineer meets it: one-line errors, output that fits 100 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeinvestigate.cli import main
from edgeinvestigate.models.load_report import FileReport, LoadReport
from edgeinvestigate.simulator import simulate


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("incident")
    simulate("default", out, seed=3, invocations=400)
    return out


@pytest.fixture(scope="module")
def bundle(incident: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "ev"
    main(  # returns on success, raises SystemExit on failure
        [
            "collect",
            str(incident / "tail" / "tail.json"),
            str(incident / "logpush"),
            "--dlq-file",
            str(incident / "dlq" / "messages.json"),
            "--out",
            str(out),
        ]
    )
    assert (out / "manifest.json").is_file()
    return out


@pytest.mark.parametrize(
    ("args", "needle", "command"),
    [
        (["clusters", "/nonexistent/bundle"], "'/nonexistent/bundle' does not exist", "clusters"),
        (["report", ".", "--out", "x", "--notebook", "nosuch"], "'nosuch' is not one of", "report"),
        (["collect", "--bogus"], "No such option '--bogus'", "collect"),
        (["replay", "plan", "."], "Missing option '--from'", "replay plan"),
    ],
)
def test_usage_errors_are_one_line_with_a_hint(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str, command: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert lines[1] == f"hint: `edgeinvestigate {command} --help` lists the arguments and options"
    assert "Usage:" not in err
    assert "Traceback" not in err


def test_report_refuses_a_corrupt_manifest_before_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{broken")
    out = tmp_path / "report"
    code, _, err = run(capsys, "report", str(bad), "--out", str(out))
    assert code == 1
    assert err.splitlines()[0].startswith(f"error: cannot read {bad / 'manifest.json'}: ")
    assert "hint: re-create the bundle with `edgeinvestigate collect" in err
    assert not out.exists()  # no kernel started, no partial report
    (bad / "manifest.json").write_text("[1, 2]")
    code, _, err = run(capsys, "report", str(bad), "--out", str(out))
    assert code == 1
    assert "is not an evidence bundle manifest" in err


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


def test_explain_accepts_a_cluster_id(capsys: pytest.CaptureFixture[str], bundle: Path) -> None:
    code, out, _ = run(capsys, "clusters", str(bundle), "--format", "json")
    top = json.loads(out)["clusters"][0]
    code, out, _ = run(capsys, "clusters", str(bundle), "--explain", top["cluster_id"])
    assert code == 0
    assert out.splitlines()[0].startswith(f"cluster {top['cluster_id']}: explaining its first error row")
    assert f"id:        {top['cluster_id']}" in out
    assert f"cluster:   {top['template']}" in out


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


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        ("nosuch=1", "unknown parameter 'nosuch'"),
        ("top_n=five", "top_n"),
        ("api_token=x", "secrets are never notebook parameters"),
        ("bundle=elsewhere", "give the bundle as the BUNDLE argument"),
    ],
)
def test_bad_notebook_parameter_is_a_bad_argument(
    capsys: pytest.CaptureFixture[str], bundle: Path, tmp_path: Path, param: str, needle: str
) -> None:
    code, _, err = run(capsys, "report", str(bundle), "--out", str(tmp_path / "r"), "-p", param)
    assert code == 2  # like every other bad argument
    assert err.startswith("error: ")
    assert needle in err.splitlines()[0]
    assert err.splitlines()[1].startswith("hint: ")
    assert not (tmp_path / "r").exists()


def test_collect_help_examples_are_not_rewrapped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "collect", "--help")
    assert code == 0
    assert "    edgeinvestigate collect --listen 127.0.0.1:8788 --out traceitems.jsonl\n" in out
    assert "      --since -2h --out evidence/INC-124\n" in out


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


def test_notebooks_list_names_parameters_as_they_are_typed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "notebooks", "list")
    assert code == 0
    assert "run it with -p execute=true" in out  # the CLI spelling, not Python's execute=True
    assert "execute=True" not in out
